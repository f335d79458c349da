"""The content path on key spans: what a save writes and what a load reads.

A version's content is not stored per version. Each key of a name has a run
of *spans* (``store/schema.py``): "from version SINCE until version UNTIL,
key K held value B at position P". Saving version ``n`` compares the new
state with the head's cells and, for each key whose value or position
differs, closes the key's open span at ``n`` and opens a new one; a removed
key's span is closed. Unchanged keys cost nothing, so a one-key change
writes two rows however many keys the state has.

Key order is kept through positions. A save that keeps the order of the keys
it shares with the head and appends new keys after them keeps every old
position; any other reordering renumbers all keys (a rare, structural change
that then costs one span per key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import is_not
from typing import Any

from sqlalchemy import Connection

from msgflux.store import _sql
from msgflux.store.types import ChangeSummary

__all__ = ["Cell", "Head", "read_cells", "write_spans", "numbers_changing", "collect"]


@dataclass(frozen=True, slots=True)
class Cell:
    """One key of a version as stored: its open span's identity and its value."""

    key_id: int
    since: int
    position: int
    blob_id: int
    hash: str
    origin: int


def read_cells(connection: Connection, name_id: int, number: int) -> dict[str, Cell]:
    """Every key of version ``number`` of ``name_id`` with its span, in no particular order."""
    return {
        key: Cell(int(key_id), int(since), int(position), int(blob_id), digest, int(origin))
        for key, key_id, since, position, blob_id, digest, origin in _sql.fetch_all(
            connection, "cells", (number, number, name_id)
        )
    }


@dataclass(frozen=True, slots=True)
class Head:
    """A name's head as a save compares against it: its cells and, when known, its keys
    and value hashes in saved order (then an unchanged key order is compared in C)."""

    cells: dict[str, Cell]
    keys: list[str] | None = None
    hashes: list[str] | None = None
    changes: ChangeSummary | None = None  # what the save that wrote it changed


def _positions(keys: Sequence[str], previous: Mapping[str, Cell]) -> list[int]:
    """Positions for ``keys``: the old ones when the shared keys keep their order."""
    last = -1
    shared_done = False
    next_free = max((cell.position for cell in previous.values()), default=-1) + 1
    positions: list[int] = []
    for key in keys:
        cell = previous.get(key)
        if cell is None:
            shared_done = True
            positions.append(next_free)
            next_free += 1
        elif shared_done or cell.position <= last:
            return list(range(len(keys)))  # reordered: renumber every key
        else:
            last = cell.position
            positions.append(cell.position)
    return positions


def write_spans(
    connection: Connection,
    name_id: int,
    number: int,
    head: Head,
    keys: list[str],
    hashes: list[str],
    blob_ids_for: Callable[[set[str]], Mapping[str, int]],
    changed: list[int] | None = None,
    base: list[str] | None = None,
    restart: frozenset[str] = frozenset(),
) -> Head:
    """Record version ``number``'s content as span changes against ``head``.

    ``blob_ids_for(digests)`` returns the stored ids of values (inserting new
    ones); it is asked only for values that are not already in ``head``.
    ``changed`` may list the indices where ``hashes`` differs from the hash
    list ``base``; it is used when ``base`` is the head's own list (the same
    object: then nothing else is compared), as
    :meth:`~msgflux.store.hashing.SnapshotHasher.hash` does. Returns the new version as
    the next save's head; it keeps ``keys`` and ``hashes``, which must not
    change afterwards. A key "changed" when its value hash did: the rule of
    :func:`~msgflux.store.hashing.same_value`. Keys in ``restart`` get a new
    span that starts here even with an unchanged value (an import across
    pruned versions in which they changed: blame then starts here too).
    """
    previous = head.cells
    opened: list[tuple[Any, ...]] = []
    closed: list[tuple[Any, ...]] = []
    if not restart and head.keys is not None and head.hashes is not None and keys == head.keys:
        # Same keys, same order (an optimiser's step): find the changed ones in C.
        old_hashes = head.hashes
        if changed is None or base is not old_hashes:
            changed = [
                index
                for index in compress(range(len(keys)), map(is_not, hashes, old_hashes))
                if hashes[index] != old_hashes[index]
            ]  # identity first, then equality
        summary = ChangeSummary(changed=tuple(sorted(keys[index] for index in changed)))
        ids = blob_ids_for({hashes[index] for index in changed})
        cells = dict(previous)
        for index in changed:
            key, digest = keys[index], hashes[index]
            old = previous[key]
            closed.append((number, name_id, old.key_id, old.since))
            cell = Cell(old.key_id, number, old.position, ids[digest], digest, number)
            cells[key] = cell
            opened.append((name_id, old.key_id, number, old.position, cell.blob_id, number))
    else:
        known = {cell.hash: cell.blob_id for cell in previous.values()}
        ids = dict(known)
        ids.update(blob_ids_for({digest for digest in hashes if digest not in known}))
        cells = {}
        for key, digest, position in zip(keys, hashes, _positions(keys, previous), strict=True):
            found = previous.get(key)
            same = found is not None and found.hash == digest and key not in restart
            if same and found is not None and found.position == position:
                cells[key] = found
                continue
            if found is not None:
                closed.append((number, name_id, found.key_id, found.since))
                key_id = found.key_id
                origin = found.origin if same else number
            else:
                key_id = _key_id(connection, name_id, key)
                origin = number
            cell = Cell(key_id, number, position, ids[digest], digest, origin)
            cells[key] = cell
            opened.append((name_id, key_id, number, position, cell.blob_id, origin))
        removed = []
        for key, old in previous.items():
            if key not in cells:
                removed.append(key)
                closed.append((number, name_id, old.key_id, old.since))
        summary = ChangeSummary(
            changed=tuple(
                sorted(
                    key
                    for key, cell in cells.items()
                    if key in previous and previous[key].hash != cell.hash
                )
            ),
            added=tuple(sorted(key for key in cells if key not in previous)),
            removed=tuple(sorted(removed)),
        )
    _sql.execute_many(connection, "close_span", closed)
    _sql.execute_many(connection, "insert_span", opened)
    return Head(cells, keys, hashes, summary)


def _key_id(connection: Connection, name_id: int, key: str) -> int:
    row = _sql.fetch_one(connection, "key_id", (name_id, key))
    if row is None:
        row = _sql.fetch_one(connection, "insert_key", (name_id, key))
    return int(row[0])


def numbers_changing(
    connection: Connection, name_id: int, key: str, limit: int | None
) -> list[int]:
    """Surviving versions whose value of ``key`` differs from the previous surviving one's.

    Newest first, at most ``limit``: the key's spans give the numbers where its
    value changed, and each is mapped to the first version that survives from
    it, so the cost follows the changes read, not the length of the history.
    Values compare by blob id: one ``blobs`` row per value hash, so this is the
    rule of :func:`~msgflux.store.hashing.same_value`.
    """
    spans = [
        (int(since), None if until is None else int(until), blob_id)
        for since, until, blob_id in _sql.fetch_all(
            connection, "key_spans", (name_id, name_id, key)
        )
    ]  # newest first
    points: list[int] = []  # where the key's value or presence changes, newest first
    later: tuple[int, Any] | None = None
    for since, until, blob_id in spans:
        if until is not None and (later is None or until != later[0]):
            points.append(until)  # removed at `until`
        if later is not None and until == later[0] and blob_id == later[1]:
            points.pop()  # only the key's position changed there
        points.append(since)
        later = (since, blob_id)

    def value_at(number: int) -> Any:
        for since, until, blob_id in spans:
            if since <= number:
                return blob_id if until is None or until > number else None
        return None

    found: list[int] = []
    # A chunk of points per round trip: enough for `limit` in one, usually.
    chunk = _NEIGHBOUR_CHUNK if limit is None else min(_NEIGHBOUR_CHUNK, max(limit * 2, 16))
    for start in range(0, len(points), chunk):
        part = points[start : start + chunk]
        around = {
            point: (first, before)
            for point, first, before in _sql.neighbours(connection, name_id, part)
        }
        for point in part:
            version, before_number = around[point]
            if version is None or (found and version >= found[-1]):
                continue
            before = None if before_number is None else value_at(int(before_number))
            if value_at(int(version)) != before:
                found.append(int(version))
                if limit is not None and len(found) >= limit:
                    return found
    return found


_NEIGHBOUR_CHUNK = 500


# What gc deletes, in order: spans that no surviving version falls in (prune
# leaves them), keys without spans, snapshots without versions, values without
# spans. SQLite runs NOT IN over one scan of spans (an ephemeral index);
# PostgreSQL plans NOT EXISTS as a hash anti-join.
_DEAD_SPANS = """
    DELETE FROM spans WHERE NOT EXISTS (
        SELECT 1 FROM versions v WHERE v.name_id = spans.name_id AND v.number >= spans.since
            AND (spans.until IS NULL OR v.number < spans.until))"""
_DEAD_KEYS = """
    DELETE FROM keys WHERE NOT EXISTS (
        SELECT 1 FROM spans s WHERE s.name_id = keys.name_id AND s.key_id = keys.id)"""
_DEAD_SNAPSHOTS = """
    DELETE FROM snapshots WHERE NOT EXISTS (
        SELECT 1 FROM versions v WHERE v.snapshot_id = snapshots.id)"""
_DEAD_BLOBS = {
    "sqlite": "DELETE FROM blobs WHERE id NOT IN (SELECT blob_id FROM spans)",
    "postgresql": """DELETE FROM blobs WHERE NOT EXISTS (
                         SELECT 1 FROM spans s WHERE s.blob_id = blobs.id)""",
}


def collect(connection: Connection) -> tuple[int, int]:
    """Delete content no surviving version uses; return ``(snapshots, values)`` deleted."""
    connection.exec_driver_sql(_DEAD_SPANS)
    connection.exec_driver_sql(_DEAD_KEYS)
    snapshots = connection.exec_driver_sql(_DEAD_SNAPSHOTS).rowcount
    blobs = connection.exec_driver_sql(_DEAD_BLOBS[connection.dialect.name]).rowcount
    return int(snapshots or 0), int(blobs or 0)
