"""``Follower``: keep a running module on whatever a tag (or ``"latest"``) points at.

How a refresh stays cheap when nothing changed (it never reads the store's tables):

* SQLite: a dedicated read-only connection, never written through, asks
  ``PRAGMA data_version``: SQLite bumps that per-connection counter whenever
  *another* connection commits, and answering it reads no table. Only when it
  moved does the follower read the tag (one short read transaction).
* PostgreSQL: a listener thread holds its own autocommit connection with
  ``LISTEN msgflux_store``; every save and tag move sends ``pg_notify`` inside
  its transaction, so the notification arrives on commit. The thread sets a
  flag; ``refresh()`` reads the flag (no round trip) and reads the tag only
  when it is set. A reconnect sets it too (notifications may have been missed).

A swap is all or nothing: the new version is read and checked against the
module's keys first, then applied with ``load_state_dict``, which changes
every key or none. With a ``cache`` file every loaded version is also written
there atomically, with its version and snapshot hash, so that a follower
started while the database is away can serve the last version it saw.

What a swap costs (issue 12 wants a tag move seen and swapped in within 1 ms on
SQLite): one read transaction of three statements (the tag, the version row with
its tags, its content), the key check, and the load. The version statement is
built once with bound parameters: building a ``select()`` per call, as the
store's general helpers do, cost about 250 µs a statement, and a swap made four
of them (1.5 ms of a 2.4 ms move-to-swap; ``benchmarks/serving.py``). The key
check reads the module's keys without copying its values, and ``load_state_dict``
takes its fast path for a module without load hooks or overrides
(``msgflux/nn/modules/_state.py``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Connection, Engine, Row, and_, bindparam, select
from sqlalchemy.engine import URL

from msgflux.errors import MsgfluxError
from msgflux.nn.modules._state import check_key_set, state_keys
from msgflux.store import _refs, _rows, _split, _sql
from msgflux.store import schema as t
from msgflux.store._as_json import version_json
from msgflux.store._decode import decode_state
from msgflux.store._guard import CHANNEL
from msgflux.store._open import Opened
from msgflux.store._time import parse_iso
from msgflux.store.errors import (
    DatabaseError,
    IntegrityError,
    InvalidInputError,
    LockTimeout,
    VersionNotFound,
)
from msgflux.store.hashing import snapshot_hash, value_hash
from msgflux.store.types import TagEvent, Version

if TYPE_CHECKING:
    from msgflux.nn import Module

__all__ = ["Follower"]

logger = logging.getLogger("msgflux.store.follow")


class _Store(Protocol):
    """What a follower needs of a :class:`~msgflux.store.StateStore`."""

    @property
    def url(self) -> URL: ...

    @property
    def lock_timeout(self) -> float: ...

    @property
    def engine(self) -> Engine: ...

    def close(self) -> None: ...


class _Watched(Protocol):
    """What :func:`watch_moves` needs of a :class:`~msgflux.store.StateStore`."""

    @property
    def url(self) -> URL: ...

    @property
    def lock_timeout(self) -> float: ...

    def tag_history(self, name: str, tag: str | None = None) -> list[TagEvent]: ...


_CACHE_FORMAT = "msgflux-follower-cache/1"
# What a name's tag points at, with the name's id and head, in one statement ("" for no tag).
_TARGET = """
    SELECT n.id, n.head, t.version, s.version, s.weight FROM names n
    LEFT JOIN tags t ON t.name_id = n.id AND t.tag = ?
    LEFT JOIN tag_splits s ON s.name_id = t.name_id AND s.tag = t.tag
    WHERE n.name = ?"""
_TARGET_SQL = {"sqlite": _TARGET, "postgresql": _TARGET.replace("?", "%s")}
# The version row a number names (the columns StateStore._version reads), once per tag
# on it (one row with tag NULL when it has none); built once, run with bound parameters
# (see the module docstring).
_VERSION_ROWS = (
    select(t.versions, t.snapshots.c.hash.label("snapshot"), t.tags.c.tag.label("tag"))
    .join(t.snapshots, t.snapshots.c.id == t.versions.c.snapshot_id)
    .outerjoin(
        t.tags,
        and_(t.tags.c.name_id == t.versions.c.name_id, t.tags.c.version == t.versions.c.number),
    )
    .where(t.versions.c.name_id == bindparam("name_id"), t.versions.c.number == bindparam("number"))
    .order_by(t.tags.c.tag)
)

#: Errors that mean "the database is away": keep serving, retry later.
_AWAY = (DatabaseError, LockTimeout)


# -- change detection ------------------------------------------------------------------------


class _SqliteWatch:
    """``PRAGMA data_version`` on a connection of its own (see the module docstring)."""

    def __init__(self, path: str) -> None:
        uri = Path(path).absolute().as_uri() + "?mode=ro"
        self._connection = sqlite3.connect(
            uri, uri=True, check_same_thread=False, isolation_level=None
        )
        self._cursor = self._connection.cursor()
        self._seen = self._read()

    def _read(self) -> int:
        return int(self._cursor.execute("PRAGMA data_version").fetchone()[0])

    def changed(self) -> bool:
        current = self._read()
        if current == self._seen:
            return False
        self._seen = current
        return True

    def close(self) -> None:
        self._connection.close()


class _PostgresWatch:
    """A daemon thread listening for the store's notifications about one name."""

    def __init__(self, url: URL, name: str, connect_timeout: float) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._name = name
        self._connect_timeout = max(1, int(connect_timeout))
        self._dirty = False
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"msgflux-listen-{name}", daemon=True
        )
        self._thread.start()
        # The first LISTEN must be in place before the follower's first read, or a
        # move committed between the two would go unnoticed.
        self._listening.wait(self._connect_timeout + 1)

    def changed(self) -> bool:
        if not self._dirty:
            return False
        self._dirty = False  # before the read: a notification during it sets it again
        return True

    def _run(self) -> None:
        import psycopg

        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
                ) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    if not first:
                        self._dirty = True  # moves may have happened while we were away
                    first = False
                    self._listening.set()
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=0.2):
                            if notice.payload == self._name:
                                self._dirty = True
            except psycopg.Error:
                self._dirty = True
                self._listening.set()  # don't hold up a follower starting while away
                self._stop.wait(0.2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


# -- the pin/swap lock ------------------------------------------------------------------------


class _SwapLock:
    """Many requests may hold a pin at once; a swap waits for none to hold one.

    A waiting swap stops new pins from starting (so requests can't starve it),
    except in a thread that already holds a pin (re-entrant, never deadlocks).
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0
        self._local = threading.local()

    def depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    def acquire_read(self) -> None:
        depth = self.depth()
        with self._condition:
            while self._writing or (self._waiting and depth == 0):
                self._condition.wait()
            self._readers += 1
        self._local.depth = depth + 1

    def release_read(self) -> None:
        self._local.depth = self.depth() - 1
        with self._condition:
            self._readers -= 1
            if not self._readers:
                self._condition.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._condition:
            self._waiting += 1
            while self._writing or self._readers:
                self._condition.wait()
            self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


# -- the cache file ---------------------------------------------------------------------------


def _write_cache(
    path: Path, identity: dict[str, Any], version: Version, state: Mapping[str, Any]
) -> None:
    from msgflux import save

    save(
        {
            "format": _CACHE_FORMAT,
            **identity,
            "version": version_json(version),
            "snapshot": version.snapshot,
            "state": dict(state),
        },
        path,
    )


def _read_cache(path: Path, identity: dict[str, Any]) -> tuple[Version, dict[str, Any]]:
    """Load a cache file; refuse it unless it is for this follower and its hash matches."""
    from msgflux import load

    try:
        data = load(path)
    except (MsgfluxError, OSError) as error:
        raise InvalidInputError(f"cannot read the follower cache {path}: {error}") from None
    try:
        if data.get("format") != _CACHE_FORMAT:
            raise ValueError(f"not a follower cache (format {data.get('format')!r})")
        for key, wanted in identity.items():
            if data.get(key) != wanted:
                raise ValueError(f"it was written for {key} {data.get(key)!r}, not {wanted!r}")
        state, meta = data["state"], data["version"]
        if not isinstance(state, dict) or not isinstance(meta, dict):
            raise ValueError("its state or version is not an object")
        version = Version(
            name=meta["name"],
            number=int(meta["number"]),
            snapshot=meta["snapshot"],
            parent=meta["parent"],
            created_at=parse_iso(meta["created_at"]),
            message=meta["message"],
            author=meta["author"],
            metadata=dict(meta["metadata"]),
            tags=tuple(meta["tags"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidInputError(f"follower cache {path} refused: {error}") from None
    try:
        actual = snapshot_hash({key: value_hash(value) for key, value in state.items()})
    except (TypeError, ValueError) as error:
        raise IntegrityError(f"follower cache {path} refused: {error}") from None
    if not actual == data["snapshot"] == version.snapshot:
        raise IntegrityError(
            f"follower cache {path} refused: its content hashes to {actual[:12]}, but it "
            f"claims snapshot {str(data['snapshot'])[:12]} ({version.name}@{version.number})"
        )
    return version, state


# -- the follower -----------------------------------------------------------------------------


class Follower:
    """A module kept on the version a tag (or ``"latest"``) points at; made by ``store.follow``.

    ``refresh()`` is cheap when nothing changed (no table is read; on
    PostgreSQL no round trip) and swaps the new version in, all keys or none,
    when the tag moved. ``start(interval)`` refreshes in a daemon thread.

    **A swap while a request runs.** Without threads, call ``refresh()`` between
    requests and a forward always sees one version. With ``start()``, the
    swap happens in another thread: a forward running at that moment may read
    some values of the old version and some of the new one. Wrap each request
    in ``with follower.pinned():`` to prevent that: a swap waits until no
    request holds a pin (and new pins wait for a pending swap).

    **When the database is away**, the follower keeps the version it has, logs
    one warning, retries every ``retry_interval`` seconds from ``refresh()``
    and recovers by itself. With ``cache=path`` (a ``.json`` file) it also
    writes every version it loads there, atomically; a follower started while
    the database is away loads that file, refusing it if its content does not
    match its snapshot hash.

    On PostgreSQL each follower holds one extra connection (its listener).
    ``store`` may be a :class:`~msgflux.store.StateStore` or its path or URL;
    a follower given a path or URL opens (and closes) its own store, so it can
    start before the database is reachable.

    Raises (on creation):
        VersionNotFound, StateDictError (the version does not fit the module),
        DatabaseError when the database is away and no usable cache exists,
        IntegrityError when the cache does not match its hash.

    Example::

        follower = store.follow(pipeline, "pipeline", "production", cache="prod.json")
        follower.start(interval=0.5)
        with follower.pinned() as version:
            answer = pipeline(question)
    """

    def __init__(
        self,
        store: _Store | str | os.PathLike[str] | URL,
        module: Module,
        name: str,
        ref: Any = "latest",
        *,
        cache: str | os.PathLike[str] | None = None,
        on_change: Callable[[Version | None, Version], None] | None = None,
        route_key: str | int | None = None,
        retry_interval: float = 1.0,
    ) -> None:
        from msgflux.store.validation import check_label

        check_label("name", name)
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise InvalidInputError(
                f"a version is a number, 'latest', a tag or a snapshot-hash prefix, not {ref!r}"
            )
        if route_key is not None and (
            isinstance(route_key, bool) or not isinstance(route_key, str | int)
        ):
            raise InvalidInputError(f"route_key must be a str or an int, not {route_key!r}")
        if cache is not None and Path(cache).suffix.lower() != ".json":
            raise InvalidInputError(f"the follower cache must be a .json file, not {cache}")
        if (
            isinstance(retry_interval, bool)
            or not isinstance(retry_interval, int | float)
            or (retry_interval <= 0)
        ):
            raise InvalidInputError("retry_interval must be a positive number of seconds")
        self.module = module
        self.name = name
        self.ref = ref
        self.route_key = route_key
        self.cache = None if cache is None else Path(cache)
        self.on_change = on_change
        self.retry_interval = float(retry_interval)
        # A store (anything with its engine, URL and lock timeout), or a target to open.
        self._owns_store = not all(
            hasattr(store, attribute) for attribute in ("engine", "url", "lock_timeout")
        )
        self._target: Any = None
        self._store: _Store | None = None
        if self._owns_store:
            self._target = store
        else:
            self._store = cast("_Store", store)
        self._kind: str | None = None  # "tag", "latest" or "pinned", known after a first read
        self._number: int | None = None  # the pinned number
        self._watch: _SqliteWatch | _PostgresWatch | None = None
        self._version: Version | None = None
        self._away = False
        self._next_try = 0.0
        self._refreshing = threading.Lock()
        self._lock = _SwapLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        try:
            self._connect()
            self._load()
        except _AWAY as error:
            self._start_from_cache(error)
        except BaseException:
            self.close()
            raise

    # -- public ---------------------------------------------------------------------------

    @property
    def version(self) -> Version:
        """The :class:`Version` now loaded into the module."""
        assert self._version is not None
        return self._version

    @property
    def serving_from_cache(self) -> bool:
        """``True`` while the database is away and the follower serves what it last loaded."""
        return self._away

    def refresh(self) -> bool:
        """Swap in the version the tag points at now; ``True`` if the module changed version.

        Cheap when nothing changed. Never raises when the database is away (the
        follower keeps its version and retries); a new version that does not fit
        the module raises :class:`~msgflux.errors.StateDictError` and nothing changes.
        A call from a thread holding :meth:`pinned` does nothing and returns ``False``.
        """
        if self._closed or self._kind == "pinned" or self._lock.depth():
            return False
        # One refresh at a time (the watch's connection is not shared); a thread that
        # finds another one refreshing leaves the work to it.
        if not self._refreshing.acquire(blocking=False):
            return False
        try:
            if self._away or self._watch is None:
                if time.monotonic() < self._next_try:
                    return False
            elif not self._watch.changed():
                return False
            if self._watch is None:
                self._connect()
            swapped = self._load()
        except _AWAY as error:
            self._went_away(error)
            return False
        except VersionNotFound as error:
            # e.g. the tag was removed: keep serving what we have.
            logger.warning(
                "following %s: %s; keeping %s@%s", self.name, error, self.name, self.version.number
            )
            return False
        finally:
            self._refreshing.release()
        if self._away:
            self._away = False
            logger.info(
                "following %s: the database is back; serving %s@%s",
                self.name,
                self.name,
                self.version.number,
            )
        return swapped

    def start(self, interval: float = 1.0) -> Follower:
        """Refresh every ``interval`` seconds in a daemon thread (see :meth:`pinned`).

        Errors of a refresh are logged, not raised. Returns the follower.

        Raises:
            InvalidInputError: ``interval`` is not positive, or the thread already runs.
        """
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise InvalidInputError("interval must be a positive number of seconds")
        if self._thread is not None or self._closed:
            raise InvalidInputError("this follower's thread is already running or closed")

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 -- a serving thread must survive one bad version
                    logger.exception("following %s: refresh failed", self.name)

        self._thread = threading.Thread(target=run, name=f"msgflux-follow-{self.name}", daemon=True)
        self._thread.start()
        return self

    @contextmanager
    def pinned(self) -> Iterator[Version]:
        """Hold the current version for one request: no swap happens until the block exits.

        Yields the :class:`Version` the module holds. Pins may nest and many
        threads may hold one at once.
        """
        self._lock.acquire_read()
        try:
            yield self.version
        finally:
            self._lock.release_read()

    def close(self) -> None:
        """Stop the thread and the change watch; close the store if the follower opened it."""
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        at = f"{self.name}@{self._version.number}" if self._version else "nothing"
        return f"Follower({self.name!r}, {self.ref!r}, at {at})"

    # -- internals ------------------------------------------------------------------------

    def _connect(self) -> None:
        """Open the store (if ours) and the change watch; raises a DatabaseError when away."""
        if self._store is None:
            assert self._target is not None
            self._store = Opened(self._target)
        if self._watch is None:
            url = self._store.url
            if url.get_backend_name() == "sqlite":
                try:
                    self._watch = _SqliteWatch(str(url.database))
                except sqlite3.Error as error:
                    raise DatabaseError(f"cannot watch {url.database}: {error}") from None
            else:
                self._watch = _PostgresWatch(url, self.name, self._store.lock_timeout)

    def _identity(self) -> dict[str, Any]:
        return {"name": self.name, "ref": self.ref, "route_key": self.route_key}

    def _load(self) -> bool:
        """Read what the reference names now and swap it in if it is another version."""
        store = self._store
        assert store is not None
        current = None if self._version is None else self._version.number
        from msgflux.store.engine import read_transaction

        found = read_transaction(
            store.engine,
            f"following {self.name!r}",
            lambda connection: self._read(connection, current),
        )
        if found is None:
            return False
        version, state = found
        self._swap(version, state)
        return True

    def _read(
        self, connection: Connection, current: int | None
    ) -> tuple[Version, dict[str, Any]] | None:
        """One read transaction: what the reference names now, and its content if it moved."""
        ref = self.ref
        rows = connection.exec_driver_sql(
            _TARGET_SQL[connection.dialect.name], (ref if isinstance(ref, str) else "", self.name)
        ).all()
        if not rows:
            raise _rows.name_not_found(connection, self.name)
        name_id, head, tagged = int(rows[0][0]), int(rows[0][1]), rows[0][2]
        weights = (
            None
            if tagged is None
            else _split.valid_split(
                int(tagged), {int(row[3]): float(row[4]) for row in rows if row[3] is not None}
            )
        )
        if self._kind is None:
            if isinstance(ref, int) or ref.isdigit():
                self._kind = "pinned"
            elif ref in ("latest", "head"):
                self._kind = "latest"
            elif weights is not None:
                self._kind = "tag"
            else:  # a snapshot-hash prefix (or nothing: _resolve says what exists)
                found = _refs.resolve(connection, self.name, name_id, head, ref)
                self._kind, self._number = "pinned", int(found.number)
        if self._kind == "latest":
            number: Any = head
        elif self._kind == "tag":
            if weights is None:
                raise VersionNotFound(f"tag {ref!r} of {self.name!r} was removed")
            number = (
                _split.Router(self.name, str(ref), weights).pick(self.route_key)
                if self.route_key is not None
                else _split.primary(weights)
            )
        else:
            number = self._number if self._number is not None else ref
        if number == current:
            return None
        version_rows: Sequence[Row[Any]] = ()
        if self._kind != "pinned" or self._number is not None:  # a number, of a version
            version_rows = connection.execute(
                _VERSION_ROWS, {"name_id": name_id, "number": number}
            ).all()
        if not version_rows:  # a pinned reference's first read, or gone: the resolver says why
            resolved = _refs.resolve(connection, self.name, name_id, head, number)
            if self._kind == "pinned":
                self._number = int(resolved.number)
            if resolved.number == current:
                return None
            version_rows = connection.execute(
                _VERSION_ROWS, {"name_id": name_id, "number": resolved.number}
            ).all()
        row = version_rows[0]
        tags = tuple(each.tag for each in version_rows if each.tag is not None)
        # The statement and the decoder StateStore.load uses, in this read transaction.
        state = decode_state(
            _sql.fetch_all(
                connection, "content_of_number", (row.number, row.number, row.number, self.name)
            ),
            lambda: f"version {row.number!r} of {self.name!r}",
        )
        return _rows.version(connection, self.name, row, tags), state

    def _check_fits(self, version: Version, state: Mapping[str, Any]) -> None:
        check_key_set(
            f"version {version.number} of {version.name!r}", state_keys(self.module), state
        )

    def _swap(self, version: Version, state: dict[str, Any]) -> None:
        self._check_fits(version, state)
        old = self._version
        with self._lock.write():
            if old is None or old.snapshot != version.snapshot:
                self.module.load_state_dict(state, strict=False)
            self._version = version
        if self.cache is not None:
            try:
                _write_cache(self.cache, self._identity(), version, state)
            except (MsgfluxError, OSError) as error:
                logger.warning(
                    "following %s: cannot write the cache %s: %s", self.name, self.cache, error
                )
        if self.on_change is not None and old is not None:
            self.on_change(old, version)

    def _start_from_cache(self, error: Exception) -> None:
        if self.cache is None or not self.cache.exists():
            self.close()
            raise error
        try:
            version, state = _read_cache(self.cache, self._identity())
            self._check_fits(version, state)
            self.module.load_state_dict(state, strict=False)
        except BaseException:
            self.close()
            raise
        self._closed = False
        self._stop.clear()
        self._version = version
        self._went_away(error)

    def _went_away(self, error: Exception) -> None:
        self._next_try = time.monotonic() + self.retry_interval
        if not self._away:
            self._away = True
            logger.warning(
                "following %s: the database is away (%s); serving %s@%s%s until it returns",
                self.name,
                error,
                self.name,
                self.version.number,
                f" from the cache {self.cache}"
                if self._version is not None and self.cache is not None
                else "",
            )


def watch_moves(
    store: _Watched,
    name: str,
    tag: str,
    *,
    poll: float = 0.05,
    ready: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """Yield each :class:`~msgflux.store.TagEvent` of ``tag`` committed from now on (forever).

    Uses the same change detection as :class:`Follower`, so it reads the tag
    history only after something changed. ``ready()`` is called once watching.

    Raises:
        NameNotFound; DatabaseError if the database cannot be watched.
    """
    url = store.url
    watch: _SqliteWatch | _PostgresWatch
    if url.get_backend_name() == "sqlite":
        watch = _SqliteWatch(str(url.database))
    else:
        watch = _PostgresWatch(url, name, store.lock_timeout)
    try:
        seen = len(store.tag_history(name, tag))
        if ready is not None:
            ready()
        while True:
            if watch.changed():
                events = store.tag_history(name, tag)
                yield from events[seen:]
                seen = len(events)
            time.sleep(poll)
    finally:
        watch.close()
