"""Content: saving a state dict as a version, rolling back, and the rows content lives in.

Reading guide: :func:`save` and :func:`rollback` are
:meth:`StateStore.save <msgflux.store.StateStore.save>` and ``rollback``;
both append through :func:`append`, which writes with :func:`write_content`
(values, the snapshot row, key spans, the version row; bundles import
through it too). Hashing and key checks happen once, before the write
transaction, in :mod:`msgflux.store._prepare`; spans are in
:mod:`msgflux.store._spans`. :class:`Caches` is the per-store memory that
makes a one-key change cost one value: the store owns it and passes it in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection

from msgflux.store import _annotate, _guard, _spans, _sql
from msgflux.store._decode import damage
from msgflux.store._prepare import Prepared, Preparer, stored
from msgflux.store._refs import resolve
from msgflux.store._rows import (
    CHUNK,
    Backend,
    Head,
    lock_head,
    name_row,
    version,
    version_label,
    version_rows,
)
from msgflux.store._time import now
from msgflux.store.engine import read_transaction, write_transaction
from msgflux.store.errors import ConflictError, InvalidInputError
from msgflux.store.types import ChangeSummary, Version
from msgflux.store.validation import check_version_number

__all__: list[str] = []


class Unset:
    """The type of :data:`UNSET`: "no compare-and-swap asked for"."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Final = Unset()
_CACHED_NAMES = 256


class HeadCells(NamedTuple):
    """The head of a name as this store committed it, remembered per name."""

    name_id: int
    generation: Any
    number: int
    head: _spans.Head


@dataclass
class Caches:
    """Per-store caches: string -> value hash (the preparer), name id -> the cells of the
    last version this store committed (valid while that version is still the name's head:
    versions never change, and the generation tells a recreated name), and name -> head
    snapshot after this store's last save of it."""

    preparer: Preparer = field(default_factory=Preparer)
    cells: dict[int, HeadCells] = field(default_factory=dict)
    head_snapshots: dict[str, str] = field(default_factory=dict)

    def remember(self, remembered: HeadCells | None) -> None:
        """Keep a committed head's cells (called after commit only: the rows then exist)."""
        if remembered is not None:
            if len(self.cells) >= _CACHED_NAMES:
                self.cells.clear()
            self.cells[remembered.name_id] = remembered

    def head_cells(self, connection: Connection, head: Head) -> _spans.Head:
        """The head version's cells (from the cache when this store wrote it)."""
        if head.number is None:
            return _spans.Head({})
        cached = self.cells.get(head.name_id)
        if (
            cached is not None
            and cached.generation == head.generation
            and cached.number == head.number
        ):
            return cached.head
        return _spans.Head(_spans.read_cells(connection, head.name_id, head.number))


def check_expected(expected: Any, option: str) -> None:
    """Refuse an ``expected_head`` that is neither unset, ``None`` nor a version number."""
    if expected is UNSET or expected is None:
        return
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise InvalidInputError(f"{option} must be a version number or None, not {expected!r}")


def state_of(state: Any) -> Mapping[str, Any]:
    """The state dict of a Module (its ``state_dict()``) or of a mapping (itself)."""
    if isinstance(state, Mapping):
        return state
    to_state = getattr(state, "state_dict", None)
    if callable(to_state):
        result = to_state()
        if isinstance(result, Mapping):
            return result
    raise InvalidInputError(
        f"can only save a Module or a state dict (a mapping), not {type(state).__name__}"
    )


def content_of(cells: Mapping[str, _spans.Cell], snapshot: str) -> Prepared:
    """A stored version's cells as content to append again (a rollback)."""
    ordered = sorted(cells.items(), key=lambda item: item[1].position)
    return stored(
        [key for key, _ in ordered],
        [cell.hash for _, cell in ordered],
        {},
        snapshot,
        {cell.hash: cell.blob_id for _, cell in ordered},
    )


# -- the two writes ---------------------------------------------------------------------------


def save(
    store: Backend,
    caches: Caches,
    name: str,
    state: Any,
    *,
    message: str,
    author: str | None,
    metadata: Mapping[str, Any] | None,
    meta: str,
    expected_head: int | None | Unset,
    same_keys: bool,
) -> Version:
    """:meth:`StateStore.save` once its arguments are checked (``meta``: metadata as text)."""
    prepared = caches.preparer.prepare(name, state_of(state))
    known_head = caches.head_snapshots.get(name)
    if not metadata and expected_head is UNSET and known_head in (None, prepared.snapshot):
        # An identical save writes nothing: a read compares the head's hash
        # first, so it never queues behind (or blocks) a writer. Skipped when
        # this store's own last save of the name had other content: then
        # the content is almost surely new (and if another process saved
        # this very content since, the locked path below finds it so).
        unchanged = _unchanged_head(store, name, prepared.snapshot)
        if unchanged is not None:
            return unchanged

    def work(connection: Connection) -> tuple[Version, HeadCells | None]:
        head = lock_head(connection, name, create=True)
        _guard.notify_change(connection, name)  # PostgreSQL followers; sent on commit
        current = caches.head_cells(connection, head)
        if same_keys and head.number is not None:
            _annotate.check_same_keys(name, head, current.cells.keys(), prepared)
        saved, remembered = append(
            connection,
            name,
            head,
            prepared,
            current,
            message=message,
            author=author,
            metadata=meta,
            expected_head=expected_head,
        )
        if saved.number == head.number:  # identical content: no new version
            if metadata:
                row = version_rows(connection, head.name_id, number=saved.number)
                saved = _annotate.annotate_row(connection, name, row.one(), dict(metadata), author)
            return replace(saved, created=False, changes=ChangeSummary()), remembered
        return saved, remembered

    saved, remembered = write_transaction(
        store.engine, f"saving {name!r}", work, lock_timeout=store.lock_timeout
    )
    caches.remember(remembered)
    if len(caches.head_snapshots) >= _CACHED_NAMES:
        caches.head_snapshots.clear()
    caches.head_snapshots[name] = saved.snapshot
    return saved


def _unchanged_head(store: Backend, name: str, snapshot: str) -> Version | None:
    """The head of ``name`` if its content is ``snapshot`` (read without the write lock)."""

    def work(connection: Connection) -> Version | None:
        row = _sql.fetch_one(connection, "head_snapshot", (name,))
        if row is None or row[1] != snapshot:
            return None
        name_id, _head = name_row(connection, name)
        return replace(
            version(connection, name, version_rows(connection, name_id, number=int(row[0])).one()),
            created=False,
            changes=ChangeSummary(),
        )

    with damage(version_label(name, "latest")):
        return read_transaction(store.engine, f"reading {name!r}", work)


def rollback(
    store: Backend,
    caches: Caches,
    name: str,
    ref: Any,
    *,
    message: str | None,
    author: str | None,
    meta: str,
    expected_head: int | None | Unset,
) -> Version:
    """:meth:`StateStore.rollback` once its arguments are checked."""

    def work(connection: Connection) -> tuple[Version, HeadCells | None]:
        head = lock_head(connection, name, create=False)
        target = resolve(connection, name, head.name_id, head.head, ref)
        prepared = content_of(
            _spans.read_cells(connection, head.name_id, target.number), target.snapshot
        )
        _guard.notify_change(connection, name)
        return append(
            connection,
            name,
            head,
            prepared,
            caches.head_cells(connection, head),
            message=message if message is not None else f"rollback to version {target.number}",
            author=author,
            metadata=meta,
            expected_head=expected_head,
        )

    saved, remembered = write_transaction(
        store.engine, f"rolling back {name!r}", work, lock_timeout=store.lock_timeout
    )
    caches.remember(remembered)
    return replace(saved, changes=None)


# -- appending a version ------------------------------------------------------------------------


def append(
    connection: Connection,
    name: str,
    head: Head,
    prepared: Prepared,
    content: _spans.Head,
    *,
    message: str,
    author: str | None,
    metadata: str,
    expected_head: int | None | Unset,
) -> tuple[Version, HeadCells | None]:
    """Append ``prepared`` after ``head`` (whose content is ``content``); return the version
    and, if one was written, its cells for the cache.

    Raises:
        ConflictError: ``expected_head`` is not the head.
    """
    current = head.number
    if (
        expected_head is not UNSET
        and current is not None
        and head.parent == expected_head
        and head.snapshot == prepared.snapshot
    ):
        # This very content was appended on top of the expected head: our own
        # commit whose acknowledgement was lost (the transaction is retried
        # after a dropped connection), or an identical save. Either way the
        # caller's intent holds.
        return version(
            connection, name, version_rows(connection, head.name_id, number=current).one()
        ), None
    if expected_head is not UNSET and expected_head != current:
        where = f"is at version {current}" if current is not None else "has no versions"
        raise ConflictError(
            f"{name!r} {where}, not {expected_head} "
            "(expected_head): someone saved in between; load the latest and retry"
        )
    if current is not None and head.snapshot == prepared.snapshot:
        return version(
            connection, name, version_rows(connection, head.name_id, number=current).one()
        ), None
    number, created_at = head.head + 1, now()
    check_version_number(number, f"saving {name!r}")
    written = write_content(
        connection,
        head.name_id,
        number,
        head.number,
        prepared,
        content,
        created_at=created_at,
        message=message,
        author=author,
        metadata=metadata,
    )
    _sql.execute(connection, "set_head", (number, head.name_id))
    appended = Version(
        name=name,
        number=number,
        snapshot=prepared.snapshot,
        parent=current,
        created_at=created_at,
        message=message,
        author=author,
        metadata=json.loads(metadata),
        tags=(),
        changes=written.changes,
    )
    return appended, HeadCells(head.name_id, head.generation, number, written)


def write_content(
    connection: Connection,
    name_id: int,
    number: int,
    parent: int | None,
    prepared: Prepared,
    current: _spans.Head,
    *,
    created_at: datetime,
    message: str,
    author: str | None,
    metadata: str,
    restart: frozenset[str] = frozenset(),
) -> _spans.Head:
    """Write version ``number``: its new values, snapshot row, spans and version row.

    The spans are changes against ``current`` (the name's head); values
    already there are neither looked up nor written; keys in ``restart`` start
    a new span (see :func:`~msgflux.store._spans.write_spans`). Returns the
    new head.
    """

    def blob_ids_for(digests: set[str]) -> Mapping[str, int]:
        known = {
            digest: prepared.stored_ids[digest]
            for digest in digests
            if digest in prepared.stored_ids
        }
        fresh = digests - known.keys()
        if fresh:
            known.update(store_blobs(connection, prepared.encode(fresh)))
        return known

    snapshot = snapshot_id(connection, prepared)
    written = _spans.write_spans(
        connection,
        name_id,
        number,
        current,
        prepared.keys,
        prepared.hashes,
        blob_ids_for,
        changed=prepared.changed,
        base=prepared.base,
        restart=restart,
    )
    _sql.execute(
        connection,
        "insert_version",
        (
            name_id,
            number,
            snapshot,
            parent,
            _sql.time_param(connection, created_at),
            message,
            author,
            metadata,
        ),
    )
    return written


def snapshot_id(connection: Connection, prepared: Prepared) -> int:
    """The id of ``prepared``'s snapshot row, inserted if it is new."""
    inserted = _sql.fetch_one(
        connection,
        "insert_snapshot",
        (prepared.snapshot, len(prepared.keys), _sql.time_param(connection, now())),
    )
    if inserted is not None:  # the common case: new content, one statement
        return int(inserted[0])
    return int(_sql.fetch_one(connection, "snapshot_id", (prepared.snapshot,))[0])


def store_blobs(connection: Connection, encoded: Mapping[str, tuple[str, str]]) -> dict[str, int]:
    """Ids of the values ``encoded`` (hash -> (type, text)), inserting the new ones."""
    # Insert first (a stored one is skipped by ON CONFLICT), then read every id:
    # two statements for a one-key change.
    _sql.execute_many(
        connection, "insert_blob", [(digest, *text) for digest, text in encoded.items()]
    )
    return blob_ids(connection, list(encoded))


def blob_ids(connection: Connection, digests: list[str]) -> dict[str, int]:
    """``{hash: blob id}`` of stored values, read in chunks."""
    ids: dict[str, int] = {}
    for start in range(0, len(digests), CHUNK):
        ids.update(_sql.blob_ids(connection, digests[start : start + CHUNK]))
    return ids
