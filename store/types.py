"""Value objects returned by the store: versions, diffs, tag events, reports."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Version",
    "ChangeSummary",
    "BlameLine",
    "Row",
    "TagEvent",
    "StateDiff",
    "Problem",
    "VerifyReport",
    "QueryResult",
    "GcResult",
    "Progress",
    "format_ranges",
]

#: A progress callback for long operations: ``progress(phase, done, total)``,
#: called every few thousand rows and once more when a phase completes.
Progress = Callable[[str, int, int], None]


def format_ranges(numbers: Iterable[int]) -> str:
    """Version numbers as runs: ``[1, 2, 3, 7]`` -> ``"1..3, 7"``."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and runs[-1][1] == number - 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(low) if low == high else f"{low}..{high}" for low, high in runs)


@dataclass(frozen=True)
class ChangeSummary:
    """What a save changed against the head it was appended to, like ``git commit``'s summary.

    Each field is a sorted tuple of keys. ``str()`` reads
    ``"2 keys changed, 1 added, 0 removed"``; ``bool()`` is true when anything changed.
    """

    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changed or self.added or self.removed)

    def __str__(self) -> str:
        count = len(self.changed)
        return (
            f"{count} key{'' if count == 1 else 's'} changed, {len(self.added)} added, "
            f"{len(self.removed)} removed"
        )


@dataclass(frozen=True)
class Version:
    """One version of a name's history (immutable).

    ``metadata`` is a fresh ``dict`` copy; changing it changes nothing stored.
    ``created`` and ``changes`` describe the call that returned the version:
    :meth:`StateStore.save` sets ``created=False`` when the content equalled the
    head's and nothing new was written, and ``changes`` to the
    :class:`ChangeSummary` against the previous head; every other method
    returns ``created=True, changes=None``. Neither takes part in ``==``.
    """

    name: str
    number: int
    snapshot: str
    parent: int | None
    created_at: datetime
    message: str
    author: str | None
    metadata: dict[str, Any] = field(hash=False, compare=True)
    tags: tuple[str, ...] = ()
    created: bool = field(default=True, compare=False)
    changes: ChangeSummary | None = field(default=None, compare=False)

    def __str__(self) -> str:
        tags = f" [{', '.join(self.tags)}]" if self.tags else ""
        return f"{self.name}@{self.number} {self.snapshot[:12]}{tags} {self.message}".rstrip()


@dataclass(frozen=True)
class BlameLine:
    """One key of a version and the version that gave it its current value.

    ``version`` is the earliest surviving version since which ``key`` has held
    ``value`` without interruption (if the version that set it was pruned, the
    first one kept after it); ``created_at``, ``author`` and ``message`` are
    that version's.
    """

    key: str
    value: Any
    version: int
    created_at: datetime
    author: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.version:>5} {self.created_at:%Y-%m-%d} {self.author or '-':<12} {self.key}"


@dataclass(frozen=True)
class TagEvent:
    """One move or removal of a tag (``version`` is ``None`` for a removal).

    For a traffic split, ``weights`` is ``{version: weight}`` and ``version`` the
    heaviest of them; ``weights`` is ``None`` for a single-version move.
    """

    name: str
    tag: str
    version: int | None
    previous_version: int | None
    moved_at: datetime
    author: str | None
    weights: dict[int, float] | None = field(default=None, hash=False, compare=True)


def _lines(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


@dataclass(frozen=True)
class StateDiff:
    """What changed from ``old`` to ``new``: added, removed and changed keys with their values.

    ``changed`` maps a key to ``(old_value, new_value)``. ``bool(diff)`` is
    true when anything differs; ``str(diff)`` is a unified diff, line by line
    inside multi-line strings.
    """

    old: str
    new: str
    added: dict[str, Any]
    removed: dict[str, Any]
    changed: dict[str, tuple[Any, Any]]
    #: Set when ``old`` is not ``new``'s parent because that was pruned: says so.
    note: str = ""

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def keys(self) -> list[str]:
        """Every key that differs, sorted."""
        return sorted({*self.added, *self.removed, *self.changed})

    def hunks(self) -> list[tuple[str, list[str]]]:
        """``(key, unified diff lines)`` for every differing key, sorted by key."""
        result = []
        for key in self.keys:
            old = (
                _lines(self.removed[key])
                if key in self.removed
                else (_lines(self.changed[key][0]) if key in self.changed else [])
            )
            new = (
                _lines(self.added[key])
                if key in self.added
                else (_lines(self.changed[key][1]) if key in self.changed else [])
            )
            lines = list(
                difflib.unified_diff(
                    old, new, f"{self.old}:{key}", f"{self.new}:{key}", lineterm="", n=2
                )
            )
            result.append((key, lines))
        return result

    def __str__(self) -> str:
        note = f"# {self.note}\n" if self.note else ""
        if not self:
            return f"{note}no differences between {self.old} and {self.new}"
        return note + "\n".join(line for _key, lines in self.hunks() for line in lines)

    def __repr__(self) -> str:
        return (
            f"StateDiff({self.old} -> {self.new}: added={sorted(self.added)}, "
            f"removed={sorted(self.removed)}, changed={sorted(self.changed)})"
        )


@dataclass(frozen=True)
class Problem:
    """One mismatch found by :meth:`StateStore.verify`."""

    kind: str
    message: str
    name: str | None = None
    version: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.name, self.version) if part is not None)
        key = f" key {self.key!r}" if self.key is not None else ""
        return f"[{self.kind}] {where}{key}: {self.message}".replace("]  ", "] ")


@dataclass(frozen=True)
class VerifyReport:
    """The result of :meth:`StateStore.verify`; true when the store is clean."""

    problems: tuple[Problem, ...]
    blobs_checked: int
    snapshots_checked: int
    versions_checked: int

    @property
    def ok(self) -> bool:
        """``True`` when no problem was found."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = (
            f"checked {self.versions_checked} versions, {self.snapshots_checked} snapshots, "
            f"{self.blobs_checked} values: "
        )
        if self.ok:
            return head + "ok"
        return head + f"{len(self.problems)} problem(s)\n" + "\n".join(map(str, self.problems))


@dataclass(frozen=True)
class GcResult:
    """How many unreferenced snapshots and values :meth:`StateStore.gc` removed.

    With ``gc(vacuum=True)``, also the database's size in bytes before and after
    (``None`` otherwise).
    """

    snapshots: int
    blobs: int
    bytes_before: int | None = None
    bytes_after: int | None = None


class Row(tuple[Any, ...]):
    """One row of a :class:`QueryResult`: a tuple (``version, value = row``) that also
    answers ``row["value"]`` by column name (``KeyError`` naming the columns if unknown)."""

    _columns: dict[str, int]

    def __new__(cls, values: Iterable[Any], columns: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._columns = columns
        return row

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):
            try:
                return tuple.__getitem__(self, self._columns[index])
            except KeyError:
                raise KeyError(
                    f"no column {index!r}; the columns are {', '.join(self._columns)}"
                ) from None
        return tuple.__getitem__(self, index)

    def keys(self) -> list[str]:
        """The column names, in order (so ``dict(row)`` works)."""
        return list(self._columns)

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (tuple(self), self._columns)


class QueryResult(list[Row]):
    """Rows of :meth:`StateStore.query` (a ``list`` of :class:`Row`) with their ``columns``.

    A row unpacks like a tuple and also answers ``row["column"]``.
    """

    def __init__(self, columns: list[str], rows: Iterable[Sequence[Any]]) -> None:
        index = {column: position for position, column in enumerate(columns)}
        super().__init__(Row(row, index) for row in rows)
        self.columns = columns
