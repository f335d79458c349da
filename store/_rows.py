"""Row helpers every room of the store shares: a name's row and lock, a version's row and
:class:`~msgflux.store.types.Version`, its tags, and the "not found" messages.

Reading guide: each function takes the open ``Connection`` of the caller's
transaction; none holds state. :mod:`msgflux.store._refs` resolves a version
reference with them; the rooms (:mod:`~msgflux.store._content`,
:mod:`~msgflux.store._history`, :mod:`~msgflux.store._guard`, ...) build on
them. :class:`Backend` is what a room needs of a store: its engine and lock
timeout, so no room imports :mod:`msgflux.store.api`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, CursorResult, Engine, select

from msgflux.store import _sql
from msgflux.store import schema as t
from msgflux.store._decode import decode_metadata
from msgflux.store._time import now, utc
from msgflux.store.errors import NameNotFound, VersionNotFound
from msgflux.store.types import Version, format_ranges

__all__: list[str] = []

#: How many items an error message lists before "...and N more".
_LISTED = 10
_MAX_NUMBER = 2**31 - 1
#: Rows per ``IN (...)`` list.
CHUNK = 500


class Backend(Protocol):
    """What the store's rooms need of a :class:`~msgflux.store.StateStore`."""

    @property
    def engine(self) -> Engine: ...

    @property
    def lock_timeout(self) -> float: ...


class Head(NamedTuple):
    """A name's row and its head version, read under the name's lock."""

    name_id: int
    head: int  # the last number handed out
    generation: Any  # names.created_at: tells a name from a deleted one that had its id
    number: int | None  # the head version (None for a new name)
    snapshot_id: int | None
    snapshot: str | None
    parent: int | None  # the head version's parent


# -- names ---------------------------------------------------------------------------------


def names(connection: Connection) -> list[str]:
    """Every name with a history, sorted."""
    return list(connection.execute(select(t.names.c.name).order_by(t.names.c.name)).scalars())


def lock_head(connection: Connection, name: str, *, create: bool) -> Head:
    """Lock the name's row for this transaction; return it with its head version.

    Raises:
        NameNotFound: ``name`` has no history and ``create`` is false.
    """
    row = _sql.fetch_one(connection, "lock_name", (name,))
    if row is None:
        if not create:
            raise name_not_found(connection, name)
        _sql.execute(connection, "insert_name", (name, _sql.time_param(connection, now())))
        row = _sql.fetch_one(connection, "lock_name", (name,))
    name_id, last, generation = int(row[0]), int(row[1]), row[2]
    version = _sql.fetch_one(connection, "head_version", (name_id, last)) if last else None
    if version is None:
        return Head(name_id, last, generation, None, None, None, None)
    return Head(name_id, last, generation, *version)


def lock_name(connection: Connection, name: str, *, create: bool) -> tuple[int, int]:
    """Lock the name's row for this transaction; return ``(name_id, head)``."""
    head = lock_head(connection, name, create=create)
    return head.name_id, head.head


def name_row(connection: Connection, name: str) -> tuple[int, int]:
    """``(name_id, head)`` of ``name``, unlocked.

    Raises:
        NameNotFound: with the names the store has.
    """
    row = connection.execute(
        select(t.names.c.id, t.names.c.head).where(t.names.c.name == name)
    ).first()
    if row is None:
        raise name_not_found(connection, name)
    return int(row.id), int(row.head)


def name_not_found(connection: Connection, name: str) -> NameNotFound:
    """The error for a missing ``name``, listing (the first of) the names that exist."""
    known = list(
        connection.execute(select(t.names.c.name).order_by(t.names.c.name).limit(10_001)).scalars()
    )
    if not known:
        return NameNotFound(f"no history named {name!r}: the store is empty")
    hint = did_you_mean(name, known) if isinstance(name, str) else ""
    more = (
        ""
        if len(known) <= 10
        else f" \u2026and {len(known) - 10:,} more" + ("" if len(known) <= 10_000 else " or so")
    )
    listed = ", ".join(known[:10]) + more
    return NameNotFound(f"no history named {name!r}{hint}: the store has {listed}")


# -- versions ------------------------------------------------------------------------------


def version_query(name_id: int) -> Any:
    """A select of ``name_id``'s version rows with their snapshot hash as ``snapshot``."""
    return (
        select(t.versions, t.snapshots.c.hash.label("snapshot"))
        .join(t.snapshots, t.snapshots.c.id == t.versions.c.snapshot_id)
        .where(t.versions.c.name_id == name_id)
    )


def version_rows(connection: Connection, name_id: int, *, number: int) -> CursorResult[Any]:
    """The version row ``number`` of ``name_id`` (zero or one row)."""
    return connection.execute(version_query(name_id).where(t.versions.c.number == number))


def tags_by_version(connection: Connection, name_id: int) -> dict[int, list[str]]:
    """``{version: [tags pointing at it]}`` of ``name_id``, tags sorted."""
    by_version: dict[int, list[str]] = {}
    for tag, version in connection.execute(
        select(t.tags.c.tag, t.tags.c.version)
        .where(t.tags.c.name_id == name_id)
        .order_by(t.tags.c.tag)
    ).tuples():
        by_version.setdefault(version, []).append(tag)
    return by_version


def tag_target(connection: Connection, name_id: int, tag: str) -> int | None:
    """The version ``tag`` points at (the heaviest of a split), or None."""
    return connection.execute(
        select(t.tags.c.version).where(t.tags.c.name_id == name_id, t.tags.c.tag == tag)
    ).scalar()


def version(
    connection: Connection, name: str, row: Any, tags: tuple[str, ...] | None = None
) -> Version:
    """The :class:`Version` of a row of :func:`version_query` (its tags read unless given)."""
    if tags is None:
        tags = tuple(
            connection.execute(
                select(t.tags.c.tag)
                .where(t.tags.c.name_id == row.name_id, t.tags.c.version == row.number)
                .order_by(t.tags.c.tag)
            ).scalars()
        )
    return Version(
        name=name,
        number=row.number,
        snapshot=row.snapshot,
        parent=row.parent,
        created_at=utc(row.created_at),
        message=row.message,
        author=row.author,
        metadata=decode_metadata(row.metadata, lambda: f"version {row.number} of {name!r}"),
        tags=tags,
    )


def version_label(name: str, ref: Any) -> Callable[[], str]:
    """What a damage message calls version ``ref`` of ``name`` (built only when needed)."""
    return lambda: (
        ("the latest version" if ref in (0, "latest", "head") else f"version {ref!r}")
        + f" of {name!r}"
    )


def plain_number(ref: Any) -> int | None:
    """``ref`` as a version number (0 for "latest"), or None if it needs the full resolver."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return ref if 1 <= ref <= _MAX_NUMBER else None
    if ref == "latest":
        return 0
    return None


# -- what exists, for messages -------------------------------------------------------------


def describe(connection: Connection, name: str, name_id: int) -> str:
    """``"'p' has versions 1-3 and tags prod"``: what a "not found" message lists."""
    numbers = list(
        connection.execute(
            select(t.versions.c.number)
            .where(t.versions.c.name_id == name_id)
            .order_by(t.versions.c.number)
        ).scalars()
    )
    tags = list(
        connection.execute(
            select(t.tags.c.tag).where(t.tags.c.name_id == name_id).order_by(t.tags.c.tag)
        ).scalars()
    )
    text = (
        f"{name!r} has versions {format_ranges(numbers)}"
        if numbers
        else f"{name!r} has no versions"
    )
    return text + (f" and tags {cut_list(tags)}" if tags else " and no tags")


def tag_not_found(connection: Connection, name: str, tag: str) -> VersionNotFound:
    """The error for a tag ``name`` never had, with a close match and what exists."""
    name_id, _head = name_row(connection, name)
    tags = list(
        connection.execute(select(t.tags.c.tag).where(t.tags.c.name_id == name_id)).scalars()
    )
    return VersionNotFound(
        f"tag {tag!r} of {name!r} not found{did_you_mean(tag, tags)}: "
        f"{describe(connection, name, name_id)}"
    )


def cut_list(items: list[str], limit: int = _LISTED) -> str:
    """``items`` joined by commas, cut after ``limit`` with "...and N more"."""
    shown = ", ".join(items[:limit])
    return shown + (f" \u2026and {len(items) - limit} more" if len(items) > limit else "")


def did_you_mean(word: str, candidates: list[str]) -> str:
    """``" (did you mean 'pipeline'?)"`` for a close candidate, else ``""``."""
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(match) for match in close) + "?)"
