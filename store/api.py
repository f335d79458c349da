"""``StateStore``: the versioned, content-addressed store of state dicts.

Reading guide: :class:`StateStore` holds the public methods; each write runs
in one short transaction through :func:`~msgflux.store.engine.write_transaction`,
each read in one read transaction. Content identity is defined in
:mod:`msgflux.store.hashing`, the tables in :mod:`msgflux.store.schema`, bundles
in :mod:`msgflux.store._bundle`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from sqlalchemy import Connection, CursorResult, Row, delete, select
from sqlalchemy.engine import URL

from msgflux.store import _annotate, _bundle, _guard, _spans, _split, _sql, _where
from msgflux.store import schema as t
from msgflux.store._decode import damage, decode_metadata, decode_rows
from msgflux.store._follow import Follower
from msgflux.store._prepare import Prepared, Preparer, stored
from msgflux.store.engine import (
    STATEMENT_TIMEOUT,
    create_store_engine,
    describe,
    read_statement,
    read_transaction,
    resolve_url,
    run_readonly_query,
    write_transaction,
)
from msgflux.store.errors import (
    ConflictError,
    InvalidInputError,
    NameNotFound,
    VersionNotFound,
)
from msgflux.store.hashing import (
    canonical_json,
)
from msgflux.store.migrate import check_current, upgrade
from msgflux.store.types import (
    BlameLine,
    ChangeSummary,
    GcResult,
    Progress,
    QueryResult,
    StateDiff,
    TagEvent,
    VerifyReport,
    Version,
    format_ranges,
)
from msgflux.store.validation import (
    check_label,
    check_tag,
    check_text,
    check_version_number,
    metadata_text,
)

if TYPE_CHECKING:
    from msgflux.nn import Module

__all__ = ["StateStore", "VersionRef"]

#: A version reference: a number, ``"latest"``, a tag, or a snapshot-hash prefix (>= 4 hex digits).
VersionRef = int | str


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Final = _Unset()
_MAX_NUMBER = 2**31 - 1
_CHUNK = 500
# At most 16,384 strings of at most 16,384 characters (<= 1 GiB worst case,
# a few MB for real prompts); longer values are hashed every time.
_HASH_CACHE_SIZE = 16_384
_HASH_CACHE_MAX_STRING = 16_384


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC. PostgreSQL hands
    # back the session's time zone, which need not be UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class _Head(NamedTuple):
    """A name's row and its head version, read under the name's lock."""

    name_id: int
    head: int  # the last number handed out
    generation: Any  # names.created_at: tells a name from a deleted one that had its id
    number: int | None  # the head version (None for a new name)
    snapshot_id: int | None
    snapshot: str | None
    parent: int | None  # the head version's parent


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


def _version_label(name: str, ref: Any) -> Callable[[], str]:
    return lambda: ("the latest version" if ref in (0, "latest", "head")
                    else f"version {ref!r}") + f" of {name!r}"


def _plain_number(ref: Any) -> int | None:
    """``ref`` as a version number (0 for "latest"), or None if it needs the full resolver."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return ref if 1 <= ref <= _MAX_NUMBER else None
    if ref == "latest":
        return 0
    return None


class _HeadCells(NamedTuple):
    """The head of a name as this store committed it, remembered per name."""

    name_id: int
    generation: Any
    number: int
    head: _spans.Head


def _content_of(cells: Mapping[str, _spans.Cell], snapshot: str) -> Prepared:
    """A stored version's cells as content to append again (a rollback)."""
    ordered = sorted(cells.items(), key=lambda item: item[1].position)
    return stored([key for key, _ in ordered], [cell.hash for _, cell in ordered], {},
                  snapshot, {cell.hash: cell.blob_id for _, cell in ordered})


class StateStore:
    """A versioned store of state dicts in SQLite (a file path) or PostgreSQL (a URL).

    Every save of a state dict becomes version ``n + 1`` of its name; content
    is stored once per distinct snapshot and once per distinct value. Opening
    migrates the schema to this release's head (``migrate=True``).

    Args:
        target: a file path (embedded SQLite, created if missing) or a SQLAlchemy
            URL such as ``postgresql+psycopg://user@host/db``.
        migrate: upgrade an older schema on open; with ``False`` an older
            schema raises :class:`SchemaError`.
        lock_timeout: seconds a writer waits for another writer's lock before
            :class:`LockTimeout`.
        query_timeout: seconds after which :meth:`query` is interrupted.
        statement_timeout: PostgreSQL only: seconds after which the server cancels
            one statement of a store operation; a server that sends no answer for
            ``max(statement_timeout, lock_timeout) + 5`` seconds raises
            :class:`DatabaseError` (README, "Databases").
        durability: ``"normal"`` (survives application crashes; a power loss may
            drop the last commits) or ``"full"`` (SQLite ``synchronous=FULL``).

    Raises:
        InvalidInputError: for an unusable target; DatabaseError if it cannot be
        opened; SchemaError if it was written by a newer release.

    Example::

        store = StateStore("msgflux_state.db")
        v1 = store.save("pipeline", {"prompt": "Be brief."}, message="baseline")
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | URL = "msgflux_state.db",
        *,
        migrate: bool = True,
        lock_timeout: float = 30.0,
        query_timeout: float = 10.0,
        durability: str = "normal",
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        for option, seconds in (("lock_timeout", lock_timeout), ("query_timeout", query_timeout),
                                ("statement_timeout", statement_timeout)):
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                raise InvalidInputError(f"{option} must be a positive number of seconds")
        self.url: URL = resolve_url(target)
        self.lock_timeout = float(lock_timeout)
        self.query_timeout = float(query_timeout)
        self._engine = create_store_engine(self.url, lock_timeout=self.lock_timeout,
                                           durability=durability,
                                           statement_timeout=float(statement_timeout))
        # Per-process caches that make a one-key change cost one value:
        # string -> value hash, and name -> the cells of the last version this
        # store committed (valid while that version is still the name's head:
        # versions never change, and the generation tells a recreated name).
        self._preparer = Preparer()
        self._cells_cache: dict[int, _HeadCells] = {}
        self._head_snapshots: dict[str, str] = {}  # name -> head snapshot after our last save
        try:
            if migrate:
                upgrade(self._engine, lock_timeout=self.lock_timeout)
            else:
                read_transaction(self._engine, "opening the store",
                                 lambda connection: check_current(self._engine, connection))
        except BaseException:
            self._engine.dispose()
            raise

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Release every pooled database connection (a later call opens new ones)."""
        self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StateStore({self._where()!r})"

    def _where(self) -> str:
        return describe(self.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    # -- saving ---------------------------------------------------------------------------

    def save(
        self,
        name: str,
        state: Module | Mapping[str, Any],
        *,
        message: str = "",
        author: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expected_head: int | None | _Unset = _UNSET,
        same_keys: bool = False,
    ) -> Version:
        """Save a module's state dict (or a state dict) as the next version of ``name``.

        The returned version's ``changes`` lists the keys changed, added and
        removed against the previous head. Content identical to the latest
        version writes no version and returns that one with ``created=False``;
        ``metadata`` given with it is recorded as an annotation of it (see
        :meth:`annotate`, with this ``author``), so nothing is dropped silently.
        ``expected_head`` is a compare-and-swap: the save happens only
        if the latest version is that number (``None``: the name must be new).
        ``same_keys=True`` refuses a key set that differs from the head's.

        Raises:
            InvalidInputError: a bad name, key, value, message, author or metadata
                (the message names the key), or ``same_keys`` and the keys differ
                (the message names them); nothing is written.
            ConflictError: ``expected_head`` did not match; nothing is written.
            LockTimeout, DatabaseError: the database refused the write.

        Example::

            v = store.save("pipeline", module, message="shorter", metadata={"score": 0.78})
        """
        check_label("name", name)
        check_text("message", message, optional=False)
        check_text("author", author, optional=True)
        meta = metadata_text(metadata)
        self._check_expected(expected_head, "expected_head")
        prepared = self._preparer.prepare(name, self._state_of(state))
        known_head = self._head_snapshots.get(name)
        if not metadata and expected_head is _UNSET and known_head in (None, prepared.snapshot):
            # An identical save writes nothing: a read compares the head's hash
            # first, so it never queues behind (or blocks) a writer. Skipped when
            # this store's own last save of the name had other content: then
            # the content is almost surely new (and if another process saved
            # this very content since, the locked path below finds it so).
            unchanged = self._unchanged_head(name, prepared.snapshot)
            if unchanged is not None:
                return unchanged
        def work(connection: Connection) -> tuple[Version, _HeadCells | None]:
            head = self._lock_head(connection, name, create=True)
            _guard.notify_change(connection, name)  # PostgreSQL followers; sent on commit
            current = self._head_cells(connection, head)
            if same_keys and head.number is not None:
                _annotate.check_same_keys(name, head, current.cells.keys(), prepared)
            version, remembered = self._append(connection, name, head, prepared, current,
                                               message=message, author=author, metadata=meta,
                                               expected_head=expected_head)
            if version.number == head.number:  # identical content: no new version
                if metadata:
                    row = self._version_rows(connection, head.name_id, number=version.number)
                    version = _annotate.annotate_row(self, connection, name, row.one(),
                                                     dict(metadata), author)
                return replace(version, created=False,
                               changes=ChangeSummary()), remembered
            return version, remembered

        version, remembered = write_transaction(self._engine, f"saving {name!r}", work,
                                                lock_timeout=self.lock_timeout)
        self._remember(name, remembered)
        if len(self._head_snapshots) >= 256:
            self._head_snapshots.clear()
        self._head_snapshots[name] = version.snapshot
        return version

    def _unchanged_head(self, name: str, snapshot: str) -> Version | None:
        """The head of ``name`` if its content is ``snapshot`` (read without the write lock)."""
        def work(connection: Connection) -> Version | None:
            row = _sql.fetch_one(connection, "head_snapshot", (name,))
            if row is None or row[1] != snapshot:
                return None
            name_id, _head = self._name_row(connection, name)
            return replace(self._version(connection, name, self._version_rows(
                connection, name_id, number=int(row[0])).one()),
                created=False, changes=ChangeSummary())

        with damage(_version_label(name, "latest")):
            return read_transaction(self._engine, f"reading {name!r}", work)

    def annotate(self, name: str, ref: VersionRef, *, metadata: Mapping[str, Any],
                 author: str | None = None) -> Version:
        """Merge ``metadata`` into version ``ref``'s metadata; content and number stay.

        For scores that arrive after the save. Each key whose value changes is
        kept in an append-only record with ``author`` and the time (the
        ``state_annotations`` view); ``state_history.metadata`` and
        ``Version.metadata`` show the merged result. Returns the annotated version.

        Raises:
            VersionNotFound / NameNotFound; InvalidInputError for empty or
            non-JSON metadata or a bad author; nothing is written then.

        Example::

            store.annotate("pipeline", 7, metadata={"score": 0.91}, author="eval-bot")
        """
        check_label("name", name)
        check_text("author", author, optional=True)
        wanted = _annotate.check_annotation(metadata)

        def work(connection: Connection) -> Version:
            name_id, head = self._lock_name(connection, name, create=False)
            row = self._resolve(connection, name, name_id, head, ref)
            return _annotate.annotate_row(self, connection, name, row, wanted, author)

        return write_transaction(self._engine, f"annotating {name!r}", work,
                                 lock_timeout=self.lock_timeout)

    def delete_name(self, name: str, *, force: bool = False, author: str | None = None) -> int:
        """Delete the whole history of ``name`` (versions, tags, their records); return the
        number of versions deleted. Content is reclaimed by :meth:`gc`.

        The deletion is recorded (the ``state_name_events`` view).

        Raises:
            NameNotFound; ConflictError while ``name`` has tags, unless ``force``.
        """
        check_label("name", name)
        check_text("author", author, optional=True)
        count = write_transaction(
            self._engine, f"deleting {name!r}",
            lambda connection: _annotate.delete_name(self, connection, name, force=force,
                                                     author=author),
            lock_timeout=self.lock_timeout)
        return count

    def rename(self, name: str, new: str, *, author: str | None = None) -> int:
        """Rename the history ``name`` to ``new`` (versions, tags and records follow);
        return its number of versions. The rename is recorded (``state_name_events``).

        Raises:
            NameNotFound; ConflictError if ``new`` exists; InvalidInputError (bad name).
        """
        check_label("name", name)
        check_label("name", new)
        check_text("author", author, optional=True)
        count = write_transaction(
            self._engine, f"renaming {name!r}",
            lambda connection: _annotate.rename(self, connection, name, new, author=author),
            lock_timeout=self.lock_timeout)
        return count

    def rollback(
        self,
        name: str,
        ref: VersionRef,
        *,
        message: str | None = None,
        author: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expected_head: int | None | _Unset = _UNSET,
    ) -> Version:
        """Append a new version whose content equals version ``ref`` (history is kept).

        The new version's parent is the previous head. If the head already has
        that content, nothing is written and the head is returned.

        Raises:
            VersionNotFound: ``name`` or ``ref`` does not exist.
            ConflictError: ``expected_head`` did not match.

        Example::

            store.rollback("pipeline", 1, message="revert")   # version 3 == version 1
        """
        check_label("name", name)
        check_text("message", message, optional=True)
        check_text("author", author, optional=True)
        meta = metadata_text(metadata)
        self._check_expected(expected_head, "expected_head")

        def work(connection: Connection) -> tuple[Version, _HeadCells | None]:
            head = self._lock_head(connection, name, create=False)
            target = self._resolve(connection, name, head.name_id, head.head, ref)
            prepared = _content_of(_spans.read_cells(connection, head.name_id, target.number),
                                   target.snapshot)
            _guard.notify_change(connection, name)
            return self._append(connection, name, head, prepared,
                                self._head_cells(connection, head),
                                message=message if message is not None
                                else f"rollback to version {target.number}",
                                author=author, metadata=meta, expected_head=expected_head)

        version, remembered = write_transaction(self._engine, f"rolling back {name!r}", work,
                                                lock_timeout=self.lock_timeout)
        self._remember(name, remembered)
        return replace(version, changes=None)

    @staticmethod
    def _check_expected(expected: Any, option: str) -> None:
        if expected is _UNSET or expected is None:
            return
        if isinstance(expected, bool) or not isinstance(expected, int):
            raise InvalidInputError(f"{option} must be a version number or None, "
                                    f"not {expected!r}")

    @staticmethod
    def _state_of(state: Any) -> Mapping[str, Any]:
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

    def _lock_head(self, connection: Connection, name: str, *, create: bool) -> _Head:
        """Lock the name's row for this transaction; return it with its head version."""
        row = _sql.fetch_one(connection, "lock_name", (name,))
        if row is None:
            if not create:
                raise self._name_not_found(connection, name)
            _sql.execute(connection, "insert_name", (name, _sql.time_param(connection, _now())))
            row = _sql.fetch_one(connection, "lock_name", (name,))
        name_id, last, generation = int(row[0]), int(row[1]), row[2]
        version = _sql.fetch_one(connection, "head_version", (name_id, last)) if last else None
        if version is None:
            return _Head(name_id, last, generation, None, None, None, None)
        return _Head(name_id, last, generation, *version)

    def _lock_name(self, connection: Connection, name: str, *, create: bool) -> tuple[int, int]:
        """Lock the name's row for this transaction; return ``(name_id, head)``."""
        head = self._lock_head(connection, name, create=create)
        return head.name_id, head.head

    def _head_cells(self, connection: Connection, head: _Head) -> _spans.Head:
        """The head version's cells (from the cache when this store wrote it)."""
        if head.number is None:
            return _spans.Head({})
        cached = self._cells_cache.get(head.name_id)
        if (cached is not None and cached.generation == head.generation
                and cached.number == head.number):
            return cached.head
        return _spans.Head(_spans.read_cells(connection, head.name_id, head.number))

    def _append(self, connection: Connection, name: str, head: _Head, prepared: Prepared,
                content: _spans.Head, *, message: str, author: str | None,
                metadata: str, expected_head: int | None | _Unset
                ) -> tuple[Version, _HeadCells | None]:
        """Append ``prepared`` after ``head`` (whose content is ``content``); return the version
        and, if one was written, its cells for the cache."""
        current = head.number
        if (expected_head is not _UNSET and current is not None and head.parent == expected_head
                and head.snapshot == prepared.snapshot):
            # This very content was appended on top of the expected head: our own
            # commit whose acknowledgement was lost (the transaction is retried
            # after a dropped connection), or an identical save. Either way the
            # caller's intent holds.
            return self._version(connection, name, self._version_rows(
                connection, head.name_id, number=current).one()), None
        if expected_head is not _UNSET and expected_head != current:
            where = f"is at version {current}" if current is not None else "has no versions"
            raise ConflictError(
                f"{name!r} {where}, not {expected_head} "
                "(expected_head): someone saved in between; load the latest and retry"
            )
        if current is not None and head.snapshot == prepared.snapshot:
            return self._version(connection, name, self._version_rows(
                connection, head.name_id, number=current).one()), None
        number, created_at = head.head + 1, _now()
        check_version_number(number, f"saving {name!r}")
        written = self._write_content(connection, head.name_id, number, head.number, prepared,
                                      content, created_at=created_at, message=message,
                                      author=author, metadata=metadata)
        _sql.execute(connection, "set_head", (number, head.name_id))
        version = Version(name=name, number=number, snapshot=prepared.snapshot,
                          parent=current, created_at=created_at, message=message,
                          author=author, metadata=json.loads(metadata), tags=(),
                          changes=written.changes)
        return version, _HeadCells(head.name_id, head.generation, number, written)

    def _write_content(self, connection: Connection, name_id: int, number: int,
                       parent: int | None, prepared: Prepared, current: _spans.Head,
                       *, created_at: datetime, message: str, author: str | None,
                       metadata: str) -> _spans.Head:
        """Write version ``number``: its new values, snapshot row, spans and version row.

        The spans are changes against ``current`` (the name's head); values
        already there are neither looked up nor written. Returns the new head.
        """
        def blob_ids_for(digests: set[str]) -> Mapping[str, int]:
            known = {digest: prepared.stored_ids[digest] for digest in digests
                     if digest in prepared.stored_ids}
            fresh = digests - known.keys()
            if fresh:
                known.update(self._store_blobs(connection, prepared.encode(fresh)))
            return known

        snapshot_id = self._snapshot_id(connection, prepared)
        written = _spans.write_spans(connection, name_id, number, current, prepared.keys,
                                     prepared.hashes, blob_ids_for)
        _sql.execute(connection, "insert_version", (
            name_id, number, snapshot_id, parent, _sql.time_param(connection, created_at),
            message, author, metadata))
        return written

    def _remember(self, name: str, remembered: _HeadCells | None) -> None:
        # Called after commit only: the rows are then known to exist.
        if remembered is not None:
            if len(self._cells_cache) >= 256:
                self._cells_cache.clear()
            self._cells_cache[remembered.name_id] = remembered

    @staticmethod
    def _snapshot_id(connection: Connection, prepared: Prepared) -> int:
        """The id of ``prepared``'s snapshot row, inserted if it is new."""
        inserted = _sql.fetch_one(connection, "insert_snapshot", (
            prepared.snapshot, len(prepared.keys), _sql.time_param(connection, _now())))
        if inserted is not None:  # the common case: new content, one statement
            return int(inserted[0])
        return int(_sql.fetch_one(connection, "snapshot_id", (prepared.snapshot,))[0])

    def _store_blobs(self, connection: Connection,
                     encoded: Mapping[str, tuple[str, str]]) -> dict[str, int]:
        """Ids of the values ``encoded`` (hash -> (type, text)), inserting the new ones."""
        # Insert first (a stored one is skipped by ON CONFLICT), then read every id:
        # two statements for a one-key change.
        _sql.execute_many(connection, "insert_blob",
                          [(digest, *text) for digest, text in encoded.items()])
        return self._blob_ids(connection, list(encoded))

    @staticmethod
    def _blob_ids(connection: Connection, digests: list[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for start in range(0, len(digests), _CHUNK):
            ids.update(_sql.blob_ids(connection, digests[start:start + _CHUNK]))
        return ids

    # -- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every name with a history, sorted."""
        return read_transaction(self._engine, "listing names", lambda connection: list(
            connection.execute(select(t.names.c.name).order_by(t.names.c.name)).scalars()))

    def get(self, name: str, ref: VersionRef = "latest", *,
            at: datetime | None = None) -> Version:
        """Return the :class:`Version` that ``ref`` names (number, ``"latest"``, tag, hash prefix).

        With ``at`` (an aware datetime) instead of ``ref``: the version that was
        the latest at that moment, as in :meth:`load`.

        Raises:
            VersionNotFound / NameNotFound: with what exists; InvalidInputError for a
            malformed reference, a naive ``at``, or both ``ref`` and ``at``.
        """
        check_label("name", name)
        if at is not None and ref != "latest":
            raise InvalidInputError("give a version reference or at=, not both")

        def work(connection: Connection) -> Version:
            name_id, head = self._name_row(connection, name)
            wanted = ref if at is None else self._number_at(connection, name, name_id, head, at)
            return self._version(connection, name,
                                 self._resolve(connection, name, name_id, head, wanted))

        with damage(_version_label(name, ref)):
            return read_transaction(self._engine, f"reading {name!r}", work)

    def log(self, name: str, *, key: str | None = None, limit: int | None = None,
            author: str | None = None, since: datetime | str | None = None,
            until: datetime | str | None = None, grep: str | None = None,
            tag: str | None = None, where: str | None = None) -> list[Version]:
        """Versions of ``name``, newest first.

        With ``key``, only the versions where that key's value changed (added,
        changed or removed) against the previous version. ``limit`` caps the
        count of versions that pass the filters: ``author`` (exact),
        ``since`` / ``until`` (datetimes or ISO text; a bare date ``until``
        includes that day), ``grep`` (text in the message, any case), ``tag``
        (versions the tag ever pointed at, from its history) and ``where``
        (a metadata condition such as ``"score>0.8"``).

        Raises:
            NameNotFound: ``name`` has no history; InvalidInputError for a bad
            filter (the message names it).
        """
        from msgflux.store import _log

        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise InvalidInputError(f"limit must be a positive integer, not {limit!r}")
        log_filter = _log.make_filter(author=author, since=since, until=until, grep=grep,
                                      where=where)
        if tag is not None:
            check_label("tag", tag)
            events = self.tag_history(name, tag)
            if not events:
                self._missing_tag(name, tag)
            log_filter = replace(log_filter or _log.LogFilter(), tagged=frozenset(
                event.version for event in events if event.version is not None))
        if log_filter is not None:
            return _log.apply(self.log(name, key=key), log_filter, limit)
        check_label("name", name)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise InvalidInputError(f"limit must be a positive integer, not {limit!r}")
        if key is not None and (not isinstance(key, str) or not key):
            raise InvalidInputError(f"key must be a non-empty string, not {key!r}")

        def work(connection: Connection) -> list[Version]:
            name_id, _head = self._name_row(connection, name)
            tags = self._tags_by_version(connection, name_id)
            if key is None:
                query = self._version_query(name_id).order_by(t.versions.c.number.desc())
                if limit is not None:
                    query = query.limit(limit)
                rows = connection.execute(query).all()
            else:
                numbers = _spans.numbers_changing(connection, name_id, key, limit)
                by_number = {row.number: row for row in connection.execute(
                    self._version_query(name_id).where(t.versions.c.number.in_(numbers)))}
                rows = [by_number[number] for number in numbers]
            return [self._version(connection, name, row, tags=tuple(tags.get(row.number, ())))
                    for row in rows]

        with damage(lambda: f"the log of {name!r}"):
            return read_transaction(self._engine, f"reading the log of {name!r}", work)

    def load(self, name: str, ref: VersionRef = "latest", *,
             prefix: str | None = None, route_key: str | int | None = None,
             at: datetime | None = None) -> dict[str, Any]:
        """Return the state dict of version ``ref`` of ``name`` (keys in saved order).

        With ``prefix`` (e.g. ``"retriever."``) only the keys that start with it.
        With ``route_key`` (e.g. a user id) and a tag that splits traffic
        (:meth:`split`), the version that key is routed to: the same key always
        gets the same version for a given split. With ``at`` (an aware
        datetime) instead of ``ref``, the version that was the latest at that
        moment (saves are numbered in time order; found by binary search).

        Raises:
            VersionNotFound / NameNotFound, InvalidInputError (bad reference, a
            naive ``at``, or ``at`` with a ``ref`` or ``route_key``). With
            ``at``: VersionNotFound if the name had no version then, or if the
            version that was the latest then was pruned.
        """
        check_label("name", name)
        if at is not None:
            if ref != "latest" or route_key is not None:
                raise InvalidInputError("give a version reference (or route_key) or at=, "
                                        "not both")
            return self._load(name, ref, prefix, at=at)[1]
        if route_key is not None:
            ref = _split.route(self, name, ref, route_key)
        number = _plain_number(ref)
        if number is not None and (prefix is None or isinstance(prefix, str)):
            # The common case (a number or "latest"): one indexed query, no Version.
            statement, params = (("content_of_head", (name,)) if number == 0
                                 else ("content_of_number", (number, name)))
            where = _version_label(name, ref)
            with damage(where):
                rows = read_statement(self._engine, f"loading {name!r}", lambda connection:
                                      _sql.fetch_all(connection, statement, params))
            if rows:  # nothing: an unknown version (or an empty state), resolved below
                state = decode_rows(rows, where)
                return {key: value for key, value in state.items()
                        if key.startswith(prefix)} if prefix else state
        return self._load(name, ref, prefix)[1]  # references by tag or hash; every error

    def _load(self, name: str, ref: VersionRef, prefix: str | None,
              at: datetime | None = None) -> tuple[Version, dict[str, Any]]:
        check_label("name", name)
        if prefix is not None and not isinstance(prefix, str):
            raise InvalidInputError(f"prefix must be a string, not {type(prefix).__name__}")

        with damage(_version_label(name, ref)):
            version, state = read_transaction(
                self._engine, f"loading {name!r}",
                lambda connection: self._load_in(connection, name, ref, at=at))
        if prefix:
            state = {key: value for key, value in state.items() if key.startswith(prefix)}
        return version, state

    def _load_in(self, connection: Connection, name: str, ref: VersionRef, *,
                 at: datetime | None = None) -> tuple[Version, dict[str, Any]]:
        """The version ``ref`` (or the latest at ``at``) names and its whole state."""
        name_id, head = self._name_row(connection, name)
        if at is not None:
            ref = self._number_at(connection, name, name_id, head, at)
        row = self._resolve(connection, name, name_id, head, ref)
        return self._version(connection, name, row), decode_rows(
            _sql.fetch_all(connection, "content", (row.number, row.number, name_id)),
            _version_label(name, row.number))

    def load_into(self, module: Module, name: str, ref: VersionRef = "latest", *,
                  prefix: str | None = None, strict: bool = True,
                  at: datetime | None = None) -> Version:
        """Load version ``ref`` of ``name`` into a running module; return that :class:`Version`.

        With ``prefix`` only the keys under it are applied (the rest of the
        module is untouched). With ``strict`` (default) the stored keys (under
        ``prefix``) must match the module's exactly, else
        :class:`msgflux.errors.StateDictError` is raised and nothing changes.
        With ``at`` (an aware datetime) instead of ``ref``: the version that was
        the latest at that moment, as in :meth:`load`.

        Raises:
            VersionNotFound / NameNotFound, StateDictError, InvalidInputError.

        Example::

            store.load_into(pipeline, "pipeline", "production")
        """
        if at is not None and ref != "latest":
            raise InvalidInputError("give a version reference or at=, not both")
        version, state = self._load(name, ref, prefix, at=at)
        if strict:
            from msgflux.errors import StateDictError

            wanted = [key for key in module.state_dict() if key.startswith(prefix or "")]
            missing = [key for key in wanted if key not in state]
            unexpected = [key for key in state if key not in set(wanted)]
            if missing or unexpected:
                raise StateDictError(
                    f"version {version.number} of {name!r} does not fit the module: missing keys "
                    f"{missing}, unexpected keys {unexpected}", missing, unexpected)
        module.load_state_dict(state, strict=False)
        return version

    def diff(self, name: str, a: VersionRef | tuple[str, VersionRef],
             b: VersionRef | tuple[str, VersionRef] | None = None, *,
             prefix: str | None = None) -> StateDiff:
        """Compare two versions: what ``b`` added, removed and changed against ``a``.

        ``a`` and ``b`` are references within ``name`` or ``(other_name, ref)``
        pairs to compare across names. Without ``b``, ``a`` is compared with
        its parent (an empty state for the first version).

        Raises:
            VersionNotFound / NameNotFound, InvalidInputError.

        Example::

            print(store.diff("pipeline", 1, 2))
            store.diff("pipeline", "production", ("experiment", 3))
        """
        def side(ref: VersionRef | tuple[str, VersionRef]) -> tuple[str, VersionRef]:
            if isinstance(ref, tuple):
                if len(ref) != 2:
                    raise InvalidInputError(f"a cross-name reference is (name, version), not {ref!r}")
                return ref
            return name, ref

        new_name, new_ref = side(b if b is not None else a)
        old_side = None if b is None else side(a)
        for label in (new_name, *(old_side[:1] if old_side else ())):
            check_label("name", label)
        if prefix is not None and not isinstance(prefix, str):
            raise InvalidInputError(f"prefix must be a string, not {type(prefix).__name__}")

        def work(connection: Connection) -> tuple[str, str, dict[str, Any], dict[str, Any], str]:
            # Both sides in one read transaction: one snapshot of the store.
            new_version, new_state = self._load_in(connection, new_name, new_ref)
            new_label = f"{new_name}@{new_version.number}"
            if old_side is not None:
                old_version, old_state = self._load_in(connection, *old_side)
                return (f"{old_side[0]}@{old_version.number}", new_label, old_state, new_state,
                        "")
            if new_version.parent is None:
                return f"{new_name}@empty", new_label, {}, new_state, ""
            # The parent, or its nearest surviving ancestor if it was pruned.
            name_id, _head = self._name_row(connection, new_name)
            ancestor = connection.execute(select(t.versions.c.number).where(
                t.versions.c.name_id == name_id, t.versions.c.number <= new_version.parent)
                .order_by(t.versions.c.number.desc()).limit(1)).scalar()
            note = "" if ancestor == new_version.parent else (
                f"the parent {new_name}@{new_version.parent} was pruned; " + (
                    f"compared with the nearest surviving ancestor {new_name}@{ancestor}"
                    if ancestor is not None
                    else "no earlier version survives, compared with nothing"))
            if ancestor is None:
                return f"{new_name}@empty", new_label, {}, new_state, note
            old_state = self._load_in(connection, new_name, ancestor)[1]
            return f"{new_name}@{ancestor}", new_label, old_state, new_state, note

        old_label, new_label, old_state, new_state, note = read_transaction(
            self._engine, f"comparing versions of {new_name!r}", work)
        if prefix:
            old_state = {key: value for key, value in old_state.items() if key.startswith(prefix)}
            new_state = {key: value for key, value in new_state.items() if key.startswith(prefix)}
        return StateDiff(
            old=old_label,
            new=new_label,
            added={key: value for key, value in new_state.items() if key not in old_state},
            removed={key: value for key, value in old_state.items() if key not in new_state},
            changed={key: (old_state[key], value) for key, value in new_state.items()
                     if key in old_state and not _same(old_state[key], value)},
            note=note,
        )

    def blame(self, name: str, ref: VersionRef = "latest", *, key: str | None = None,
              prefix: str | None = None) -> list[BlameLine]:
        """For each key of version ``ref``, the version that gave the key its current value.

        Returns one :class:`BlameLine` per key (in saved key order; only ``key``,
        or the keys under ``prefix``, when given) with that version's number,
        time, author and message. If the version that set a value was pruned,
        the line names the first version kept after it. Costs one index seek
        per key, however long the history.

        Raises:
            VersionNotFound / NameNotFound; InvalidInputError for a bad reference,
            or a ``key`` that version does not have (the message names its keys).

        Example::

            for line in store.blame("pipeline", "production"):
                print(line.key, line.version, line.author)
        """
        check_label("name", name)
        if key is not None and (not isinstance(key, str) or not key):
            raise InvalidInputError(f"key must be a non-empty string, not {key!r}")
        if prefix is not None and not isinstance(prefix, str):
            raise InvalidInputError(f"prefix must be a string, not {type(prefix).__name__}")

        def work(connection: Connection) -> list[BlameLine]:
            name_id, head = self._name_row(connection, name)
            number = int(self._resolve(connection, name, name_id, head, ref).number)
            rows = _sql.fetch_all(connection, "blame", (number, number, number, name_id))
            if key is not None:
                wanted = [row for row in rows if row[0] == key]
                if not wanted:
                    keys = [row[0] for row in rows]
                    raise InvalidInputError(
                        f"{name}@{number} has no key {key!r}"
                        f"{_annotate.did_you_mean(key, keys)}; its keys: "
                        f"{_annotate.cut_list(keys)}")
                rows = wanted
            elif prefix:
                rows = [row for row in rows if row[0].startswith(prefix)]
            since = sorted({int(row[3]) for row in rows})
            versions = {row.number: row for start in range(0, len(since), _CHUNK)
                        for row in connection.execute(self._version_query(name_id).where(
                            t.versions.c.number.in_(since[start:start + _CHUNK])))}
            values = decode_rows([row[:3] for row in rows], _version_label(name, number))
            return [BlameLine(key=row[0], value=values[row[0]], version=int(row[3]),
                              created_at=_utc(versions[int(row[3])].created_at),
                              author=versions[int(row[3])].author,
                              message=versions[int(row[3])].message) for row in rows]

        with damage(_version_label(name, ref)):
            return read_transaction(self._engine, f"blaming {name!r}", work)

    def _number_at(self, connection: Connection, name: str, name_id: int, head: int,
                   at: datetime) -> int:
        """The version of ``name`` that was the latest at ``at`` (see :meth:`load`)."""
        moment = _aware(at, "at")

        def created(number: int) -> tuple[int, datetime] | None:
            row = _sql.fetch_one(connection, "version_time", (name_id, number))
            return None if row is None else (int(row[0]), _sql.time_value(row[1]))

        # Binary search over the numbers: saves are appended in time order, so the
        # answer is the last version created at or before `at`.
        low, high, found = 1, head, None
        while low <= high:
            middle = (low + high) // 2
            here = created(middle)
            if here is None or here[0] > high:
                high = middle - 1
            elif here[1] <= moment:
                found, low = here[0], here[0] + 1
            else:
                high = middle - 1
        first = created(1)
        when = moment.isoformat()
        if found is None:
            if first is not None and first[0] > 1:
                raise VersionNotFound(f"the version of {name!r} that was the latest at {when} "
                                      f"was pruned (the oldest kept is {first[0]})")
            raise VersionNotFound(f"{name!r} had no versions at {when}"
                                  + (f" (its first is from {first[1].isoformat()})"
                                     if first is not None else ""))
        following = created(found + 1)
        if following is not None and following[0] != found + 1:
            raise VersionNotFound(
                f"the version of {name!r} that was the latest at {when} may have been pruned "
                f"(versions {found + 1}..{following[0] - 1} are gone)")
        return found

    def tag_at(self, name: str, tag: str, at: datetime) -> int | None:
        """The version ``tag`` pointed at, at the moment ``at``; ``None`` if it pointed nowhere.

        Read from the tag's append-only history, so it answers for moments
        before later moves and untags.

        Raises:
            NameNotFound; VersionNotFound if the tag never existed (with what exists);
            InvalidInputError for a naive datetime (give an aware one).

        Example::

            store.tag_at("pipeline", "production", datetime(2026, 11, 24, 10, tzinfo=UTC))
        """
        check_label("name", name)
        check_label("tag", tag)
        moment = _aware(at, "at")

        def work(connection: Connection) -> tuple[bool, int | None]:
            name_id, _head = self._name_row(connection, name)
            rows = connection.execute(
                select(t.tag_events.c.version, t.tag_events.c.moved_at)
                .where(t.tag_events.c.name_id == name_id, t.tag_events.c.tag == tag)
                .order_by(t.tag_events.c.moved_at.desc(), t.tag_events.c.id.desc())).all()
            ever = bool(rows)
            for version, moved_at in rows:
                if _utc(moved_at) <= moment:
                    return ever, version
            return ever, None

        ever, version = read_transaction(self._engine, f"reading tag {tag!r} of {name!r}", work)
        if not ever:
            self._missing_tag(name, tag)
        return version

    # -- tags -----------------------------------------------------------------------------

    def tag(self, name: str, ref: VersionRef, tag: str, *, author: str | None = None,
            expected: int | None | _Unset = _UNSET) -> Version:
        """Point ``tag`` at version ``ref`` of ``name`` (creating or moving it); return that version.

        Every move is recorded in the append-only tag history. ``expected`` is a
        compare-and-swap: move only if the tag still points at that version
        (``None``: the tag must not exist yet; a ``{version: weight}`` dict: that
        split). Moving a split tag to one version ends the split. A protected tag
        (:meth:`protect`) needs ``expected`` and its condition.

        Raises:
            VersionNotFound, InvalidInputError (bad tag), ConflictError (``expected``),
            ProtectedTagError (a guard refused; the refusal is audited).

        Example::

            store.tag("pipeline", 2, "production")
        """
        check_label("name", name)
        check_tag(tag)
        check_text("author", author, optional=True)
        if expected is not _UNSET:
            _guard.check_expected(expected)
        return _guard.guarded_write(self, f"tagging {name!r}", lambda connection: _guard.move(
            self, connection, name, tag, {ref: 1.0}, expected=expected,
            has_expected=expected is not _UNSET, author=author))

    def untag(self, name: str, tag: str, *, author: str | None = None,
              expected: int | None | _Unset = _UNSET, force: bool = False) -> int:
        """Remove ``tag`` (and its split) from ``name``; return the version it pointed at.

        The removal is recorded. A protected tag needs ``force=True`` (audited).

        Raises:
            VersionNotFound: the tag does not exist; ConflictError (``expected``);
            ProtectedTagError: the tag is protected and ``force`` is false.
        """
        check_label("name", name)
        check_label("tag", tag)
        check_text("author", author, optional=True)
        if expected is not _UNSET:
            _guard.check_expected(expected)
        return _guard.guarded_write(self, f"untagging {name!r}", lambda connection: _guard.remove(
            self, connection, name, tag, expected=expected, has_expected=expected is not _UNSET,
            force=bool(force), author=author))

    def split(self, name: str, tag: str, weights: Mapping[VersionRef, float], *,
              author: str | None = None,
              expected: int | Mapping[int, float] | None | _Unset = _UNSET) -> dict[int, float]:
        """Point ``tag`` at several versions with weights summing to 1 (a traffic split).

        ``store.load(name, tag, route_key=user_id)`` and followers with a
        ``route_key`` then pick one version per key, deterministically. The
        split is recorded in the tag history; :meth:`tag` to one version ends it.
        ``get``/``tags`` report the heaviest version. Returns ``{version: weight}``.

        Raises:
            InvalidInputError: fewer than two versions, weights not positive or not
            summing to 1, two references to one version; VersionNotFound;
            ConflictError (``expected``); ProtectedTagError.

        Example::

            store.split("pipeline", "production", {12: 0.9, 13: 0.1})
        """
        check_label("name", name)
        check_tag(tag)
        check_text("author", author, optional=True)
        targets = _split.check_weights(weights)
        if expected is not _UNSET:
            _guard.check_expected(expected)
        return _guard.guarded_write(self, f"splitting {name!r}", lambda connection: (
            _guard.move(self, connection, name, tag, targets, expected=expected,
                        has_expected=expected is not _UNSET, author=author),
            self._weights(connection, name, tag))[1])

    def tag_weights(self, name: str, tag: str) -> dict[int, float]:
        """What ``tag`` points at: ``{version: 1.0}``, or ``{version: weight}`` for a split.

        Raises:
            NameNotFound; VersionNotFound if the tag does not exist.
        """
        check_label("name", name)
        check_label("tag", tag)
        return read_transaction(self._engine, f"reading tag {tag!r} of {name!r}",
                                lambda connection: self._weights(connection, name, tag))

    def _weights(self, connection: Connection, name: str, tag: str) -> dict[int, float]:
        name_id, _head = self._name_row(connection, name)
        weights = _split.current_target(connection, name_id, tag)
        if weights is None:
            raise VersionNotFound(f"tag {tag!r} of {name!r} not found: "
                                  f"{self._describe(connection, name, name_id)}")
        return weights

    def protect(self, name: str, tag: str, *, require_expected: bool = True,
                where: str | None = None, author: str | None = None) -> None:
        """Guard ``tag``: later moves need ``expected=`` and (with ``where``) a condition.

        ``where`` is a comparison on the target version's metadata, e.g.
        ``"score>=0.8"`` (see :mod:`msgflux.store._where`), checked in the
        move's own transaction. ``untag`` then needs ``force=True``. Protecting
        again replaces the policy. The change is kept in the audit record
        (view ``state_tag_audit``); view ``state_tag_policies`` lists policies.

        Raises:
            NameNotFound; InvalidInputError (bad tag or condition).

        Example::

            store.protect("pipeline", "production", where="score>=0.8")
        """
        check_label("name", name)
        check_tag(tag)
        check_text("author", author, optional=True)
        condition = None if where is None else _where.parse_condition(where).text
        _guard.guarded_write(self, f"protecting tag {tag!r} of {name!r}", lambda connection: (
            _guard.protect(self, connection, name, tag, require_expected=bool(require_expected),
                           where=condition, author=author)))

    def unprotect(self, name: str, tag: str, *, author: str | None = None) -> None:
        """Remove the guard of ``tag`` (audited).

        Raises:
            NameNotFound; VersionNotFound if the tag is not protected.
        """
        check_label("name", name)
        check_label("tag", tag)
        check_text("author", author, optional=True)
        _guard.guarded_write(self, f"unprotecting tag {tag!r} of {name!r}", lambda connection: (
            _guard.unprotect(self, connection, name, tag, author=author)))

    def follow(self, module: Module, name: str, ref: VersionRef = "latest", *,
               cache: str | os.PathLike[str] | None = None,
               on_change: Callable[[Version | None, Version], None] | None = None,
               route_key: str | int | None = None) -> Follower:
        """Load ``ref`` of ``name`` into ``module`` now and keep it following that tag.

        Returns a :class:`~msgflux.store.Follower`: ``refresh()`` swaps in a
        new version when the tag (or ``"latest"``) moved, ``start(interval)``
        does it in a thread. See :class:`~msgflux.store.Follower`.

        Raises:
            VersionNotFound, StateDictError (the version does not fit the module),
            DatabaseError when the database is away and there is no usable ``cache``.

        Example::

            follower = store.follow(pipeline, "pipeline", "production", cache="prod.json")
        """
        return Follower(self, module, name, ref, cache=cache, on_change=on_change,
                        route_key=route_key)

    def tags(self, name: str) -> dict[str, int]:
        """The tags of ``name`` and the version each points at, sorted by tag.

        Raises:
            NameNotFound.
        """
        check_label("name", name)

        def work(connection: Connection) -> dict[str, int]:
            name_id, _head = self._name_row(connection, name)
            return dict(connection.execute(
                select(t.tags.c.tag, t.tags.c.version).where(t.tags.c.name_id == name_id)
                .order_by(t.tags.c.tag)).tuples().all())

        return read_transaction(self._engine, f"reading the tags of {name!r}", work)

    def tag_history(self, name: str, tag: str | None = None) -> list[TagEvent]:
        """Every move and removal of the tags of ``name`` (or of one tag), oldest first.

        Answers "what was production last Tuesday?": the last event before then.

        Raises:
            NameNotFound.
        """
        check_label("name", name)

        def work(connection: Connection) -> list[TagEvent]:
            name_id, _head = self._name_row(connection, name)
            query = select(t.tag_events).where(t.tag_events.c.name_id == name_id)
            if tag is not None:
                query = query.where(t.tag_events.c.tag == tag)
            return [TagEvent(name, row.tag, row.version, row.previous_version,
                             _utc(row.moved_at), row.author,
                             _split.parse_weights_text(row.weights))
                    for row in connection.execute(query.order_by(t.tag_events.c.id))]

        return read_transaction(self._engine, f"reading the tag history of {name!r}", work)

    # -- SQL ------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = (), *,
              timeout: float | None = None) -> QueryResult:
        """Run one read-only SQL statement over the store and return its rows.

        Use the documented views (``state_history``, ``state_values``,
        ``state_changes``, ``state_tags``, ``state_tag_history``). Parameters
        use the driver's style: ``?`` or ``:name`` on SQLite, ``%s`` or
        ``%(name)s`` on PostgreSQL. The database itself refuses writes (see
        :func:`~msgflux.store.engine.run_readonly_query`).

        Raises:
            ReadOnlyError: the statement would write, alter, attach or change a setting.
            QueryTimeout: it ran past ``timeout`` (default ``query_timeout``) seconds.
            InvalidInputError: the database rejected the SQL.

        Example::

            store.query("SELECT version, value FROM state_values WHERE name = ? AND key = ?",
                        ("pipeline", "analyzer.instructions"))
        """
        if not isinstance(sql, str) or not sql.strip():
            raise InvalidInputError("query needs a non-empty SQL string")
        if not isinstance(params, Sequence | Mapping) or isinstance(params, str):
            raise InvalidInputError("query parameters must be a sequence or a mapping")
        seconds = self.query_timeout if timeout is None else timeout
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise InvalidInputError("timeout must be a positive number of seconds")
        bound: Any = dict(params) if isinstance(params, Mapping) else list(params)
        columns, rows = run_readonly_query(self._engine, sql, bound, timeout=float(seconds))
        return QueryResult(columns, rows)

    # -- maintenance ----------------------------------------------------------------------

    def prune(self, name: str, *, keep_last: int, dry_run: bool = False) -> list[int]:
        """Delete versions of ``name`` older than the last ``keep_last``, except tagged ones.

        Numbers are never reused. Run :meth:`gc` afterwards to reclaim content.
        Returns the deleted version numbers (with ``dry_run``, the ones that
        would be deleted; nothing is). A later version whose parent was pruned
        diffs against its nearest surviving ancestor.

        Raises:
            NameNotFound; InvalidInputError if ``keep_last`` is not a positive integer.
        """
        check_label("name", name)
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise InvalidInputError(f"keep_last must be a positive integer, not {keep_last!r}")

        def work(connection: Connection) -> list[int]:
            name_id, head = self._lock_name(connection, name, create=False)
            numbers = list(connection.execute(
                select(t.versions.c.number).where(t.versions.c.name_id == name_id)
                .order_by(t.versions.c.number.desc()).offset(keep_last)).scalars())
            tagged = set(self._tags_by_version(connection, name_id))
            tagged |= _split.split_versions(connection, name_id)
            doomed = sorted(number for number in numbers if number not in tagged)
            if dry_run:
                return doomed
            for start in range(0, len(doomed), _CHUNK):
                connection.execute(delete(t.versions).where(
                    t.versions.c.name_id == name_id,
                    t.versions.c.number.in_(doomed[start:start + _CHUNK])))
            return doomed

        return write_transaction(self._engine, f"pruning {name!r}", work,
                                 lock_timeout=self.lock_timeout)

    def gc(self, *, vacuum: bool = False) -> GcResult:
        """Delete snapshots no version uses and values no snapshot uses.

        The database keeps the freed pages for later saves. ``vacuum=True``
        then gives space back: ``VACUUM`` on SQLite (the file shrinks; writers
        wait while it runs), plain ``VACUUM`` on PostgreSQL (space reusable at
        once, trailing pages returned; no lock against reads or writes), and
        the result carries the database size before and after; see
        :mod:`msgflux.store._space`.

        Raises:
            LockTimeout, DatabaseError.
        """
        if not isinstance(vacuum, bool):
            raise InvalidInputError(f"vacuum must be True or False, not {vacuum!r}")
        if vacuum:
            from msgflux.store import _space

            before = _space.database_size(self._engine)
            collected = self.gc()
            _space.vacuum(self._engine, lock_timeout=self.lock_timeout)
            return GcResult(collected.snapshots, collected.blobs, bytes_before=before,
                            bytes_after=_space.database_size(self._engine))

        def work(connection: Connection) -> GcResult:
            if connection.dialect.name == "postgresql":
                # Saves insert into these tables; let them finish and wait for us.
                connection.exec_driver_sql(
                    "LOCK TABLE snapshots, spans, keys, blobs IN SHARE ROW EXCLUSIVE MODE")
            snapshots, blobs = _spans.collect(connection)
            return GcResult(snapshots=snapshots, blobs=blobs)

        return write_transaction(self._engine, "collecting garbage", work,
                                 lock_timeout=self.lock_timeout)

    def verify(self, *, progress: Progress | None = None) -> VerifyReport:
        """Recompute every value and snapshot hash and run the database's integrity check.

        Returns a :class:`VerifyReport` listing every mismatch with the name,
        version and key affected (empty when the store is intact).
        ``progress(phase, done, total)`` is called as values and entries are checked.

        Raises:
            DatabaseError: the database could not be read.
        """
        from msgflux.store._verify import verify

        return read_transaction(self._engine, "verifying the store",
                                lambda connection: verify(connection, progress or _no_progress))

    # -- moving histories -----------------------------------------------------------------

    def export_bundle(self, path: str | os.PathLike[str], names: Iterable[str] | None = None,
                      *, progress: Progress | None = None) -> dict[str, int]:
        """Write whole histories (all names, or ``names``) to one bundle file.

        The bundle is JSON Lines (see :mod:`msgflux.store._bundle`), written as
        the history is read, in memory bounded by the largest version; a
        ``.toml`` path gets the older one-document format (built in memory).
        Numbers, hashes, messages, metadata, tags and tag history are kept.
        Returns ``{name: number of versions}``. ``progress(phase, done, total)``
        is called as versions are read.

        Raises:
            NameNotFound; msgflux.errors.SerializationError if the file can't be written.
        """
        wanted = self._wanted(names)
        report = progress or _no_progress
        return read_transaction(self._engine, "exporting", lambda connection: _bundle.write(
            path, _bundle.export(connection, wanted, self._name_not_found, report)))

    def import_bundle(self, path: str | os.PathLike[str], *,
                      progress: Progress | None = None) -> dict[str, list[int]]:
        """Import a bundle written by :meth:`export_bundle`; return ``{name: new version numbers}``.

        The file is read as a stream, in one transaction: every record is checked
        by the rules a save applies and every hash recomputed as it is read, and
        the first problem rolls everything back. Importing the same bundle twice
        is a no-op. Tags only move forward in time: a tag moved here after the
        bundle's last move of it stays where it is. ``progress(phase, done,
        total)`` is called as versions are written.

        Raises:
            InvalidInputError (malformed file or a value, metadata, number or tag
            a save would refuse; the message names the version and key),
            IntegrityError (wrong hashes), ConflictError (diverged history).
            Nothing is written then.
        """
        return self._import(_bundle.read(path), progress)

    def copy_to(self, other: StateStore, names: Iterable[str] | None = None) -> dict[str, list[int]]:
        """Publish histories to another store, fast-forward only (``push``; ``pull`` is the reverse).

        Copies the versions ``other`` lacks with their numbers and hashes and
        moves its tags forward to match, streaming as :meth:`import_bundle` does.
        Returns ``{name: copied version numbers}``.

        Raises:
            ConflictError: a history diverged between the stores; nothing is written.
            InvalidInputError, IntegrityError: as :meth:`import_bundle`.
        """
        wanted = self._wanted(names)
        return read_transaction(self._engine, "exporting", lambda connection: other._import(
            lambda: _bundle.export(connection, wanted, self._name_not_found, _no_progress)))

    @staticmethod
    def _wanted(names: Iterable[str] | None) -> list[str] | None:
        return None if names is None else [check_label("name", name) for name in names]

    def _import(self, records: _bundle.Records,
                progress: Progress | None = None) -> dict[str, list[int]]:
        report = progress or _no_progress
        return write_transaction(
            self._engine, "importing",
            lambda connection: _bundle.apply(connection, records, self, report),
            lock_timeout=self.lock_timeout)

    # -- row helpers ------------------------------------------------------------------------

    def _name_row(self, connection: Connection, name: str) -> tuple[int, int]:
        row = connection.execute(
            select(t.names.c.id, t.names.c.head).where(t.names.c.name == name)).first()
        if row is None:
            raise self._name_not_found(connection, name)
        return int(row.id), int(row.head)

    @staticmethod
    def _name_not_found(connection: Connection, name: str) -> NameNotFound:
        known = list(connection.execute(
            select(t.names.c.name).order_by(t.names.c.name).limit(10_001)).scalars())
        if not known:
            return NameNotFound(f"no history named {name!r}: the store is empty")
        hint = _annotate.did_you_mean(name, known) if isinstance(name, str) else ""
        more = "" if len(known) <= 10 else f" \u2026and {len(known) - 10:,} more" + (
            "" if len(known) <= 10_000 else " or so")
        listed = ", ".join(known[:10]) + more
        return NameNotFound(f"no history named {name!r}{hint}: the store has {listed}")

    def _missing_tag(self, name: str, tag: str) -> None:
        def work(connection: Connection) -> None:
            name_id, _head = self._name_row(connection, name)
            tags = list(connection.execute(select(t.tags.c.tag).where(
                t.tags.c.name_id == name_id)).scalars())
            raise VersionNotFound(f"tag {tag!r} of {name!r} not found"
                                  f"{_annotate.did_you_mean(tag, tags)}: "
                                  f"{self._describe(connection, name, name_id)}")

        read_transaction(self._engine, f"reading the tags of {name!r}", work)

    @staticmethod
    def _version_query(name_id: int) -> Any:
        return (select(t.versions, t.snapshots.c.hash.label("snapshot"))
                .join(t.snapshots, t.snapshots.c.id == t.versions.c.snapshot_id)
                .where(t.versions.c.name_id == name_id))

    def _version_rows(self, connection: Connection, name_id: int, *,
                      number: int) -> CursorResult[Any]:
        return connection.execute(self._version_query(name_id)
                                  .where(t.versions.c.number == number))

    @staticmethod
    def _tags_by_version(connection: Connection, name_id: int) -> dict[int, list[str]]:
        by_version: dict[int, list[str]] = {}
        for tag, version in connection.execute(
                select(t.tags.c.tag, t.tags.c.version).where(t.tags.c.name_id == name_id)
                .order_by(t.tags.c.tag)).tuples():
            by_version.setdefault(version, []).append(tag)
        return by_version

    @staticmethod
    def _tag_target(connection: Connection, name_id: int, tag: str) -> int | None:
        return connection.execute(select(t.tags.c.version).where(
            t.tags.c.name_id == name_id, t.tags.c.tag == tag)).scalar()

    def _version(self, connection: Connection, name: str, row: Any,
                 tags: tuple[str, ...] | None = None) -> Version:
        if tags is None:
            tags = tuple(connection.execute(select(t.tags.c.tag).where(
                t.tags.c.name_id == row.name_id, t.tags.c.version == row.number)
                .order_by(t.tags.c.tag)).scalars())
        return Version(name=name, number=row.number, snapshot=row.snapshot, parent=row.parent,
                       created_at=_utc(row.created_at), message=row.message, author=row.author,
                       metadata=decode_metadata(row.metadata, lambda: f"version {row.number} "
                                                f"of {name!r}"), tags=tags)

    def _describe(self, connection: Connection, name: str, name_id: int) -> str:
        numbers = list(connection.execute(select(t.versions.c.number).where(
            t.versions.c.name_id == name_id).order_by(t.versions.c.number)).scalars())
        tags = list(connection.execute(select(t.tags.c.tag).where(
            t.tags.c.name_id == name_id).order_by(t.tags.c.tag)).scalars())
        text = f"{name!r} has versions {format_ranges(numbers)}" if numbers else f"{name!r} has no versions"
        return text + (f" and tags {_annotate.cut_list(tags)}" if tags else " and no tags")

    def _resolve(self, connection: Connection, name: str, name_id: int, head: int,
                 ref: Any) -> Row[Any]:
        """Find the version row ``ref`` names (the rule is in :mod:`msgflux.store._refs`)."""
        from msgflux.store._refs import resolve

        return resolve(self, connection, name, name_id, head, ref)


def _aware(moment: Any, option: str) -> datetime:
    if not isinstance(moment, datetime):
        raise InvalidInputError(f"{option} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(
            f"{option}={moment.isoformat()} is a naive datetime: give an aware one, e.g. "
            "datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)")
    return moment.astimezone(UTC)


def _same(old: Any, new: Any) -> bool:
    # 1 == 1.0 == True in Python, but they are different stored values.
    return type(old) is type(new) and canonical_json(old) == canonical_json(new)
