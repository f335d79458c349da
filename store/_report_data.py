"""What the HTML report reads: one name's history, in one read transaction.

The report is the store's own code, so it reads through the store's internal
read path (:func:`~msgflux.store.engine.read_transaction`: one snapshot, so a
concurrent ``prune`` + ``gc`` can never show it half a history) and never
through :meth:`StateStore.query`, the sandbox for user SQL (which refuses a
PostgreSQL superuser session). It reads the public views, whose columns and
meaning are a documented contract, so it does not depend on how the tables
lay content out.

Only the contents of the newest versions (and the parent of the oldest of
them), of the head and of at most :data:`STATES_SHOWN` tagged versions are
read: older versions are summarised from ``state_history`` alone. Tags come
from ``state_tags``, one row per version of a traffic split, with its weight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Float, Integer, Text, text

from msgflux.store._refs import resolve
from msgflux.store._rows import Backend, name_row
from msgflux.store._time import parse_iso, utc
from msgflux.store.engine import read_transaction
from msgflux.store.errors import IntegrityError
from msgflux.store.hashing import decode_value
from msgflux.store.types import StateDiff, Version
from msgflux.store.validation import check_label

# {key: (value_hash, value)}
State = dict[str, tuple[str, Any]]

#: At most this many versions' full states are read for the report's "current state"
#: section: the head, then the versions tags point at (newest first).
STATES_SHOWN = 20

_HISTORY = text(
    "SELECT version, snapshot, parent_version, created_at, message, author, metadata "
    "FROM state_history WHERE name = :name ORDER BY version"
).columns(
    version=Integer,
    snapshot=Text,
    parent_version=Integer,
    created_at=DateTime(timezone=True),
    message=Text,
    author=Text,
    metadata=Text,
)
_TAGS = text(
    "SELECT tag, version, weight FROM state_tags WHERE name = :name ORDER BY tag, version"
).columns(tag=Text, version=Integer, weight=Float)
_VALUES_FROM = text(
    "SELECT version, key, value_type, value_hash, value FROM state_values "
    "WHERE name = :name AND version >= :low"
)
_VALUES_OF = text(
    "SELECT version, key, value_type, value_hash, value FROM state_values "
    "WHERE name = :name AND version = :number"
)


@dataclass(frozen=True)
class History:
    """One name's history as the report shows it (every list oldest first)."""

    name: str
    versions: list[Version]
    #: ``{tag: {version: weight}}``: weight 1.0 for a plain tag, one entry per version
    #: of a traffic split.
    targets: dict[str, dict[int, float]]
    #: Index into ``versions`` of the first version shown with its diff.
    detailed_from: int
    #: Contents of the detailed versions, of their parents that still exist, and of the
    #: versions in ``current``.
    states: dict[int, State]
    #: The versions whose full state the report shows: the head, then tagged versions
    #: newest first, at most :data:`STATES_SHOWN` (the rest are in ``unread``).
    current: list[int]
    #: Tagged versions beyond :data:`STATES_SHOWN`, newest first (contents not read).
    unread: list[int]

    @property
    def tags(self) -> dict[str, int]:
        """``{tag: version}``; a split reports its heaviest version (lowest on ties)."""
        return {
            tag: min(weights, key=lambda number: (-weights[number], number))
            for tag, weights in self.targets.items()
        }

    def weight(self, tag: str, number: int) -> float | None:
        """The weight of ``number`` in ``tag``'s split; None for a plain tag."""
        weights = self.targets.get(tag, {})
        return weights.get(number) if len(weights) > 1 else None

    @property
    def detailed(self) -> list[Version]:
        return self.versions[self.detailed_from :]

    @property
    def summarised(self) -> list[Version]:
        return self.versions[: self.detailed_from]

    def base(self, version: Version) -> int | None:
        """The version ``version`` is compared with: its parent, or when that was pruned its
        nearest surviving ancestor (the newest older version still here); None: nothing."""
        if version.parent is None:
            return None
        older = [other.number for other in self.versions if other.number <= version.parent]
        return older[-1] if older else None

    def diff(self, version: Version) -> StateDiff:
        """``version`` against its parent, or its nearest surviving ancestor if the parent
        was pruned (everything added when there is neither)."""
        state = self.states.get(version.number, {})
        parent: State = {}
        label = f"{self.name}@empty"
        base = self.base(version)
        if base is not None:
            label = f"{self.name}@{base}"
            parent = self.states.get(base, {})
        return StateDiff(
            old=label,
            new=f"{self.name}@{version.number}",
            added={key: value for key, (_h, value) in state.items() if key not in parent},
            removed={key: value for key, (_h, value) in parent.items() if key not in state},
            # Equal hashes are equal values (hashing.same_value, the one rule).
            changed={
                key: (parent[key][1], value)
                for key, (digest, value) in state.items()
                if key in parent and parent[key][0] != digest
            },
        )


def read_history(store: Backend, name: str, *, detailed: int) -> History:
    """Read ``name``'s versions, tags and the contents of its newest ``detailed`` versions.

    Raises:
        NameNotFound: ``name`` has no history. IntegrityError: a stored row can't be decoded.
    """
    check_label("name", name)

    history: History = read_transaction(
        store.engine,
        f"reading the history of {name!r}",
        lambda connection: _read(connection, name, detailed),
    )
    if not history.versions:
        # Raises NameNotFound / VersionNotFound with what the store has.
        read_transaction(
            store.engine,
            f"reading {name!r}",
            lambda connection: resolve(connection, name, *name_row(connection, name), "latest"),
        )
    return history


def _read(connection: Connection, name: str, detailed: int) -> History:
    if connection.dialect.name == "postgresql":
        # One snapshot for every statement below, even under READ COMMITTED: else a
        # prune + gc committed between two of them shows versions without content.
        # (Allowed as the first statement of any transaction, whatever BEGIN chose.)
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    targets: dict[str, dict[int, float]] = {}
    by_version: dict[int, list[str]] = {}
    for tag, number, weight in connection.execute(_TAGS, {"name": name}):
        targets.setdefault(str(tag), {})[int(number)] = 1.0 if weight is None else float(weight)
        by_version.setdefault(int(number), []).append(str(tag))
    versions = [
        _version(name, row, tuple(by_version.get(int(row[0]), ())))
        for row in connection.execute(_HISTORY, {"name": name})
    ]
    start = max(0, len(versions) - detailed)
    states: dict[int, State] = {}
    if start < len(versions):
        _add_values(
            states,
            connection.execute(_VALUES_FROM, {"name": name, "low": versions[start].number}),
            name,
        )
        first = versions[start]
        # Its parent, or the nearest surviving ancestor when the parent was pruned.
        base = versions[start - 1].number if start > 0 else None
        if (
            first.parent is not None
            and base is not None
            and base <= first.parent
            and base not in states
        ):
            _add_values(
                states, connection.execute(_VALUES_OF, {"name": name, "number": base}), name
            )
    wanted = sorted(by_version, reverse=True)
    if versions:
        head = versions[-1].number
        wanted = [head, *(number for number in wanted if number != head)]
    current, unread = wanted[:STATES_SHOWN], wanted[STATES_SHOWN:]
    for number in current:
        if number not in states:
            _add_values(
                states, connection.execute(_VALUES_OF, {"name": name, "number": number}), name
            )
            states.setdefault(number, {})  # a version may hold no keys
    return History(
        name=name,
        versions=versions,
        targets=targets,
        detailed_from=start,
        states=states,
        current=current,
        unread=unread,
    )


def _version(name: str, row: Any, tags: tuple[str, ...]) -> Version:
    number, snapshot, parent, created_at, message, author, metadata = row
    try:
        decoded = json.loads(metadata) if metadata else {}
    except ValueError as error:
        raise IntegrityError(
            f"version {number} of {name!r} has unreadable metadata: {error}"
        ) from None
    if not isinstance(decoded, dict):
        raise IntegrityError(f"version {number} of {name!r} has metadata that is not an object")
    moment = utc(created_at) if isinstance(created_at, datetime) else parse_iso(str(created_at))
    return Version(
        name=name,
        number=int(number),
        snapshot=str(snapshot),
        parent=None if parent is None else int(parent),
        created_at=moment,
        message=message or "",
        author=author,
        metadata=decoded,
        tags=tags,
    )


def _add_values(states: dict[int, State], rows: Any, name: str) -> None:
    for number, key, kind, digest, stored in rows:
        try:
            value = decode_value(kind, stored)
        except ValueError as error:
            raise IntegrityError(
                f"version {number} of {name!r}, key {key!r}: unreadable value: {error}"
            ) from None
        states.setdefault(int(number), {})[key] = (digest, value)
