"""``StateStore``: the versioned, content-addressed store of state dicts.

Reading guide: :class:`StateStore` is the table of contents: each public
method checks its arguments and calls the room that does the work, in one
short transaction (:func:`~msgflux.store.engine.write_transaction`, or one
read transaction):

* content (save, rollback, the rows content lives in): :mod:`msgflux.store._content`
* history (get, log, load, diff, blame, as of a moment): :mod:`msgflux.store._history`
* tags (reads and the tag rows): :mod:`msgflux.store._tags`; guarded moves
  :mod:`msgflux.store._guard`; splits :mod:`msgflux.store._split`
* annotations, delete, rename: :mod:`msgflux.store._annotate`
* maintenance (prune, gc, verify): :mod:`msgflux.store._maintenance`
* transfer (bundles, copy_to): :mod:`msgflux.store._transfer`
* row helpers shared by all of them: :mod:`msgflux.store._rows`

Content identity is defined in :mod:`msgflux.store.hashing`, the tables in
:mod:`msgflux.store.schema`. No room imports this module: each takes the
store as a :class:`~msgflux.store._rows.Backend` (its engine and lock timeout).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from msgflux.store import (
    _annotate,
    _bundle,
    _content,
    _guard,
    _history,
    _log,
    _maintenance,
    _refs,
    _rows,
    _split,
    _tags,
    _transfer,
    _where,
)
from msgflux.store._follow import Follower
from msgflux.store._open import check_seconds, open_engine
from msgflux.store.engine import (
    STATEMENT_TIMEOUT,
    describe,
    read_transaction,
    run_readonly_query,
    write_transaction,
)
from msgflux.store.errors import InvalidInputError
from msgflux.store.types import (
    BlameLine,
    GcResult,
    Progress,
    QueryResult,
    StateDiff,
    TagEvent,
    VerifyReport,
    Version,
)
from msgflux.store.validation import (
    check_label,
    check_tag,
    check_text,
    metadata_text,
)

if TYPE_CHECKING:
    from msgflux.nn import Module

__all__ = ["StateStore", "VersionRef"]

#: A version reference: a number, ``"latest"``, a tag, or a snapshot-hash prefix (>= 4 hex digits).
VersionRef = int | str

_Unset = _content.Unset
_UNSET: Final = _content.UNSET


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
        for option, seconds in (
            ("lock_timeout", lock_timeout),
            ("query_timeout", query_timeout),
            ("statement_timeout", statement_timeout),
        ):
            check_seconds(option, seconds)
        self.lock_timeout = float(lock_timeout)
        self.query_timeout = float(query_timeout)
        self.url: URL
        self.url, self._engine = open_engine(
            target,
            migrate=migrate,
            lock_timeout=self.lock_timeout,
            durability=durability,
            statement_timeout=float(statement_timeout),
        )
        # Per-process caches that make a one-key change cost one value (see _content.Caches).
        self._caches = _content.Caches()

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
    def engine(self) -> Engine:
        """The SQLAlchemy ``Engine`` the store reads and writes through.

        The store's own modules take it (and ``lock_timeout``) from here; use it
        for event hooks or diagnostics, not to write: the store's invariants are
        kept by its methods.
        """
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

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
        _content.check_expected(expected_head, "expected_head")
        return _content.save(
            self,
            self._caches,
            name,
            state,
            message=message,
            author=author,
            metadata=metadata,
            meta=meta,
            expected_head=expected_head,
            same_keys=same_keys,
        )

    def annotate(
        self, name: str, ref: VersionRef, *, metadata: Mapping[str, Any], author: str | None = None
    ) -> Version:
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
        return write_transaction(
            self._engine,
            f"annotating {name!r}",
            lambda connection: _annotate.annotate(connection, name, ref, wanted, author),
            lock_timeout=self.lock_timeout,
        )

    def delete_name(self, name: str, *, force: bool = False, author: str | None = None) -> int:
        """Delete the whole history of ``name`` (versions, tags, their records); return the
        number of versions deleted. Content is reclaimed by :meth:`gc`.

        The deletion is recorded (the ``state_name_events`` view).

        Raises:
            NameNotFound; ConflictError while ``name`` has tags, unless ``force``.
        """
        check_label("name", name)
        check_text("author", author, optional=True)
        return write_transaction(
            self._engine,
            f"deleting {name!r}",
            lambda connection: _annotate.delete_name(connection, name, force=force, author=author),
            lock_timeout=self.lock_timeout,
        )

    def rename(self, name: str, new: str, *, author: str | None = None) -> int:
        """Rename the history ``name`` to ``new`` (versions, tags and records follow);
        return its number of versions. The rename is recorded (``state_name_events``).

        Raises:
            NameNotFound; ConflictError if ``new`` exists; InvalidInputError (bad name).
        """
        check_label("name", name)
        check_label("name", new)
        check_text("author", author, optional=True)
        return write_transaction(
            self._engine,
            f"renaming {name!r}",
            lambda connection: _annotate.rename(connection, name, new, author=author),
            lock_timeout=self.lock_timeout,
        )

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
        _content.check_expected(expected_head, "expected_head")
        return _content.rollback(
            self,
            self._caches,
            name,
            ref,
            message=message,
            author=author,
            meta=meta,
            expected_head=expected_head,
        )

    def names(self) -> list[str]:
        """Every name with a history, sorted."""
        return read_transaction(self._engine, "listing names", _rows.names)

    def get(self, name: str, ref: VersionRef = "latest", *, at: datetime | None = None) -> Version:
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
        return _history.get(self, name, ref, at)

    def log(
        self,
        name: str,
        *,
        key: str | None = None,
        limit: int | None = None,
        author: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        grep: str | None = None,
        tag: str | None = None,
        where: str | None = None,
    ) -> list[Version]:
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
        _history.check_limit(limit)
        log_filter = _log.make_filter(
            author=author, since=since, until=until, grep=grep, where=where
        )
        tagged = None
        if tag is not None:
            check_label("tag", tag)
            events = self.tag_history(name, tag)
            if not events:
                _tags.raise_missing(self, name, tag)
            tagged = [event.version for event in events]
        return _history.log(self, name, key=key, limit=limit, log_filter=log_filter, tagged=tagged)

    def load(
        self,
        name: str,
        ref: VersionRef = "latest",
        *,
        prefix: str | None = None,
        route_key: str | int | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
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
                raise InvalidInputError("give a version reference (or route_key) or at=, not both")
            return _history.load_version(self, name, ref, prefix, at=at)[1]
        if route_key is not None:
            ref = _split.route(self, name, ref, route_key)
        return _history.load(self, name, ref, prefix)

    def load_into(
        self,
        module: Module,
        name: str,
        ref: VersionRef = "latest",
        *,
        prefix: str | None = None,
        strict: bool = True,
        at: datetime | None = None,
    ) -> Version:
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
        return _history.load_into(self, module, name, ref, prefix=prefix, strict=strict, at=at)

    def diff(
        self,
        name: str,
        a: VersionRef | tuple[str, VersionRef],
        b: VersionRef | tuple[str, VersionRef] | None = None,
        *,
        prefix: str | None = None,
    ) -> StateDiff:
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
        return _history.diff(self, name, a, b, prefix=prefix)

    def blame(
        self,
        name: str,
        ref: VersionRef = "latest",
        *,
        key: str | None = None,
        prefix: str | None = None,
    ) -> list[BlameLine]:
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
        return _history.blame(self, name, ref, key=key, prefix=prefix)

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
        return _tags.tag_at(self, name, tag, _history.aware(at, "at"))

    def tag(
        self,
        name: str,
        ref: VersionRef,
        tag: str,
        *,
        author: str | None = None,
        expected: int | None | _Unset = _UNSET,
    ) -> Version:
        """Point ``tag`` at version ``ref`` of ``name`` (creating or moving it); return that version.

        Every move is recorded in the append-only tag history. ``expected`` is a
        compare-and-swap: move only if the tag still points at that version
        (``None``: the tag must not exist yet; a ``{version: weight}`` dict: that
        split). Moving a split tag to one version ends the split. A protected tag
        (:meth:`protect`) needs ``expected`` and its condition.

        Raises:
            VersionNotFound, InvalidInputError (bad tag or reference), ConflictError (``expected``),
            ProtectedTagError (a guard refused; the refusal is audited).

        Example::

            store.tag("pipeline", 2, "production")
        """
        check_label("name", name)
        _refs.check_ref(ref)
        check_tag(tag)
        check_text("author", author, optional=True)
        if expected is not _UNSET:
            _guard.check_expected(expected)
        return _guard.guarded_write(
            self,
            f"tagging {name!r}",
            lambda connection: _guard.move(
                connection,
                name,
                tag,
                {ref: 1.0},
                expected=expected,
                has_expected=expected is not _UNSET,
                author=author,
            ),
        )

    def untag(
        self,
        name: str,
        tag: str,
        *,
        author: str | None = None,
        expected: int | None | _Unset = _UNSET,
        force: bool = False,
    ) -> int:
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
        return _guard.guarded_write(
            self,
            f"untagging {name!r}",
            lambda connection: _guard.remove(
                connection,
                name,
                tag,
                expected=expected,
                has_expected=expected is not _UNSET,
                force=bool(force),
                author=author,
            ),
        )

    def split(
        self,
        name: str,
        tag: str,
        weights: Mapping[VersionRef, float],
        *,
        author: str | None = None,
        expected: int | Mapping[int, float] | None | _Unset = _UNSET,
    ) -> dict[int, float]:
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
        return _guard.guarded_write(
            self,
            f"splitting {name!r}",
            lambda connection: (
                _guard.move(
                    connection,
                    name,
                    tag,
                    targets,
                    expected=expected,
                    has_expected=expected is not _UNSET,
                    author=author,
                ),
                _tags.weights(connection, name, tag),
            )[1],
        )

    def tag_weights(self, name: str, tag: str) -> dict[int, float]:
        """What ``tag`` points at: ``{version: 1.0}``, or ``{version: weight}`` for a split.

        Raises:
            NameNotFound; VersionNotFound if the tag does not exist.
        """
        check_label("name", name)
        check_label("tag", tag)
        return read_transaction(
            self._engine,
            f"reading tag {tag!r} of {name!r}",
            lambda connection: _tags.weights(connection, name, tag),
        )

    def protect(
        self,
        name: str,
        tag: str,
        *,
        require_expected: bool = True,
        where: str | None = None,
        author: str | None = None,
    ) -> None:
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
        _guard.guarded_write(
            self,
            f"protecting tag {tag!r} of {name!r}",
            lambda connection: _guard.protect(
                connection,
                name,
                tag,
                require_expected=bool(require_expected),
                where=condition,
                author=author,
            ),
        )

    def unprotect(self, name: str, tag: str, *, author: str | None = None) -> None:
        """Remove the guard of ``tag`` (audited).

        Raises:
            NameNotFound; VersionNotFound if the tag is not protected.
        """
        check_label("name", name)
        check_label("tag", tag)
        check_text("author", author, optional=True)
        _guard.guarded_write(
            self,
            f"unprotecting tag {tag!r} of {name!r}",
            lambda connection: _guard.unprotect(connection, name, tag, author=author),
        )

    def follow(
        self,
        module: Module,
        name: str,
        ref: VersionRef = "latest",
        *,
        cache: str | os.PathLike[str] | None = None,
        on_change: Callable[[Version | None, Version], None] | None = None,
        route_key: str | int | None = None,
    ) -> Follower:
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
        return Follower(
            self, module, name, ref, cache=cache, on_change=on_change, route_key=route_key
        )

    def tags(self, name: str) -> dict[str, int]:
        """The tags of ``name`` and the version each points at, sorted by tag.

        Raises:
            NameNotFound.
        """
        check_label("name", name)
        return _tags.tags(self, name)

    def tag_history(self, name: str, tag: str | None = None) -> list[TagEvent]:
        """Every move and removal of the tags of ``name`` (or of one tag), oldest first.

        Answers "what was production last Tuesday?": the last event before then.

        Raises:
            NameNotFound.
        """
        check_label("name", name)
        return _tags.history(self, name, tag)

    def query(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] = (),
        *,
        timeout: float | None = None,
    ) -> QueryResult:
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
        return _maintenance.prune(self, name, keep_last=keep_last, dry_run=dry_run)

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
        return _maintenance.gc(self, vacuum=vacuum)

    def verify(self, *, progress: Progress | None = None) -> VerifyReport:
        """Recompute every value and snapshot hash and run the database's integrity check.

        Returns a :class:`VerifyReport` listing every mismatch with the name,
        version and key affected (empty when the store is intact).
        ``progress(phase, done, total)`` is called as values and entries are checked.

        Raises:
            DatabaseError: the database could not be read.
        """
        return _maintenance.verify(self, progress)

    def export_bundle(
        self,
        path: str | os.PathLike[str],
        names: Iterable[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> dict[str, int]:
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
        return _transfer.export_bundle(self, path, names, progress)

    def import_bundle(
        self, path: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> dict[str, list[int]]:
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
        return _transfer.import_records(self, _bundle.read(path), progress)

    def copy_to(
        self, other: StateStore, names: Iterable[str] | None = None
    ) -> dict[str, list[int]]:
        """Publish histories to another store, fast-forward only (``push``; ``pull`` is the reverse).

        Copies the versions ``other`` lacks with their numbers and hashes and
        moves its tags forward to match, streaming as :meth:`import_bundle` does.
        Returns ``{name: copied version numbers}``.

        Raises:
            ConflictError: a history diverged between the stores; nothing is written.
            InvalidInputError, IntegrityError: as :meth:`import_bundle`.
        """
        return _transfer.copy_to(self, other, names)
