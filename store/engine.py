"""Engine and connection setup: the one place that knows SQLite from PostgreSQL.

Why SQLite is configured this way (every connection, in the ``connect`` event):

* ``journal_mode=WAL``: readers never block the writer and never see a
  half-written transaction; the writer never blocks readers.
* ``page_size=8192`` for a new file (set before WAL, which fixes it; an
  existing file keeps its own). Values are prompts of a few hundred bytes to a
  few KB, stored once each in ``blobs``: with SQLite's default 4 KiB pages a
  fifth of those pages was unused space at the end of each page (50 keys x
  10,000 versions: the file was 1.63x the distinct value bytes; 1.49x with
  8 KiB pages, 1.45x with 16 KiB; loads no slower, saves within noise). 16 KiB
  would double the smallest store (every table and index takes a page at
  least: about 250 KB at 8 KiB), for 3% on large ones.
* ``busy_timeout``: a writer that finds the lock taken waits (SQLite's own
  back-off) instead of failing at once.
* ``foreign_keys=ON``: SQLite leaves them off per connection by default.
* ``synchronous=NORMAL`` (default) survives any application crash; a power
  loss may drop the last commits. ``durability="full"`` selects ``FULL``.
* ``journal_size_limit`` and a checkpoint after writes once the WAL passes
  16 MiB (``_shrink_wal``): a WAL that grew under a long-lived reader shrinks
  again as soon as readers allow.
* Every write transaction starts with ``BEGIN IMMEDIATE``. With a plain
  (deferred) ``BEGIN`` a transaction that first reads and then writes must
  *upgrade* its lock, and SQLite refuses the upgrade at once with "database is
  locked" whatever the busy timeout (measured: 8 processes x 50 saves lost 350
  of 400 saves). Taking the write lock up front makes writers queue on the
  busy timeout instead. pysqlite's own BEGIN handling is switched off
  (``isolation_level=None``) so that SQLAlchemy's ``begin`` event emits ours.

PostgreSQL needs no pragmas: writers serialise on a row lock of the name
(``SELECT ... FOR UPDATE`` in the store), readers use MVCC snapshots.
Its connections get timeouts, keepalives and a bounded wait for
answers in ``_pg.py``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import QueuePool

from msgflux.store import _pg, _sql
from msgflux.store.errors import (
    DatabaseError,
    InvalidInputError,
    LockTimeout,
    QueryTimeout,
    ReadOnlyError,
)

__all__ = [
    "SQLITE_PAGE_SIZE",
    "STATEMENT_TIMEOUT",
    "WAL_LIMIT_BYTES",
    "resolve_url",
    "describe",
    "create_store_engine",
    "write_transaction",
    "read_transaction",
    "read_statement",
    "run_readonly_query",
    "translate_errors",
]

T = TypeVar("T")

_DURABILITY = {"normal": "NORMAL", "full": "FULL"}


def resolve_url(target: str | os.PathLike[str] | URL) -> URL:
    """Turn a file path or a SQLAlchemy URL into a URL; a bare path means SQLite.

    Raises :class:`InvalidInputError` for in-memory SQLite (the store needs a
    file that a second, read-only connection can open) and unsupported backends.
    """
    if isinstance(target, URL):
        url = target
    elif isinstance(target, os.PathLike) or "://" not in str(target):
        path = Path(os.fspath(target)).expanduser()
        if str(target) in ("", ":memory:"):
            raise InvalidInputError("in-memory SQLite is not supported: give a file path")
        url = URL.create("sqlite+pysqlite", database=str(path.absolute()))
    else:
        try:
            url = make_url(str(target))
        except exc.ArgumentError as error:
            raise InvalidInputError(f"not a database path or URL: {target!r} ({error})") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise InvalidInputError("in-memory SQLite is not supported: give a file path")
        if url.get_driver_name() != "pysqlite":
            url = url.set(drivername="sqlite+pysqlite")
    elif backend == "postgresql":
        if url.get_driver_name() in ("postgresql", "psycopg2", ""):
            url = url.set(drivername="postgresql+psycopg")
        elif url.get_driver_name() != "psycopg":
            raise InvalidInputError(
                f"PostgreSQL driver {url.get_driver_name()!r} is not supported: use "
                "postgresql+psycopg:// (pip install 'msgflux-state[postgres]')"
            )
    else:
        raise InvalidInputError(
            f"unsupported database {backend!r}: use a SQLite path or a postgresql:// URL"
        )
    return url


def describe(url: URL) -> str:
    """Where a store lives, for messages: the SQLite file path, or the URL without password."""
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=True)


#: Default seconds after which PostgreSQL cancels one statement of a store operation.
STATEMENT_TIMEOUT = 120.0


def create_store_engine(
    url: URL, *, lock_timeout: float, durability: str, statement_timeout: float = STATEMENT_TIMEOUT
) -> Engine:
    """Create the engine for ``url`` with the settings the module docstring explains.

    On PostgreSQL ``statement_timeout`` bounds each statement on the server and,
    with a margin, each wait for the server's answer (see ``_pg.py``).
    """
    if durability not in _DURABILITY:
        raise InvalidInputError(
            f"durability must be one of {', '.join(_DURABILITY)}, not {durability!r}"
        )
    if url.get_backend_name() == "sqlite":
        folder = Path(url.database or "").parent
        if not folder.is_dir():
            raise DatabaseError(f"cannot open {url.database}: folder {folder} does not exist")
        # Before the first connection (which switches the file to WAL): another
        # application's database must be refused untouched.
        from msgflux.store.migrate import check_sqlite_file

        check_sqlite_file(str(url.database))
        engine = create_engine(
            url,
            # Connections are kept open: closing the last connection to a WAL
            # database checkpoints it, which made every save ~3 ms slower.
            poolclass=QueuePool,
            pool_size=4,
            connect_args={"timeout": lock_timeout, "check_same_thread": False},
        )
        _configure_sqlite(engine, lock_timeout, _DURABILITY[durability])
    else:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=4,
            connect_args=_pg.connect_args(url),
        )
        _pg.guard(engine, statement_timeout=statement_timeout, lock_timeout=lock_timeout)
    _ENGINES.add(engine)
    return engine


# A forked child must not reuse its parent's open connections (SQLite file
# locks and PostgreSQL sockets are per process): it drops them and opens its own.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_pools_in_child() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_pools_in_child)


def _configure_sqlite(engine: Engine, lock_timeout: float, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see the docstring
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")  # a new file's only
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # On the driver's cursor, errors wrapped as SQLAlchemy's own execution wraps
        # them: exec_driver_sql cost about 40 us more, on every transaction.
        write = connection.get_execution_options().get("_write")
        _sql.run(connection, "BEGIN IMMEDIATE" if write else "BEGIN")


def _is_lock_error(error: exc.DBAPIError) -> bool:
    orig = error.orig
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return "locked" in text or "busy" in text
    sqlstate = getattr(orig, "sqlstate", None)
    # serialization_failure, deadlock_detected, lock_not_available
    return sqlstate in ("40001", "40P01", "55P03")


def _is_retryable_conflict(error: exc.DBAPIError) -> bool:
    # PostgreSQL only (SQLite writers are serialised by BEGIN IMMEDIATE): a
    # unique violation (another writer created the same name between our read
    # and our insert) or a foreign-key violation (a concurrent gc removed an
    # unreferenced value we found): retry the whole transaction, which then
    # sees the committed state.
    return getattr(error.orig, "sqlstate", None) in ("23505", "23503")


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn driver errors into :class:`StoreError` subclasses with ``action`` in the message."""
    try:
        yield
    except exc.DBAPIError as error:
        raise _translate(error, action) from error
    except _UNBINDABLE as error:
        raise _unbindable(error, action) from None


# Raised by the drivers while binding a parameter, before anything reaches the
# database: an integer beyond 64 bits (sqlite3) or text that is not valid
# Unicode (a lone surrogate). They are the caller's input, not a database fault.
_UNBINDABLE = (OverflowError, UnicodeEncodeError)


def _unbindable(error: Exception, action: str) -> InvalidInputError:
    return InvalidInputError(f"{action}: a value cannot be stored or looked up: {error}")


def _is_data_error(error: exc.DBAPIError) -> bool:
    # SQLSTATE class 22 (data exception): a number out of range, a NUL character
    # in text, a timestamp past year 9999...; 54000: a value too large for an
    # index (a state-dict key of several KB). The input is at fault, not the
    # database; psycopg raises DataError for NUL before sending anything.
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return sqlstate.startswith("22") or sqlstate == "54000" or isinstance(error, exc.DataError)


def _translate(error: exc.DBAPIError, action: str) -> Exception:
    detail = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
    if _is_lock_error(error):
        return LockTimeout(
            f"{action}: the database stayed locked by another writer longer "
            f"than the lock timeout ({detail})"
        )
    if _is_data_error(error):
        return InvalidInputError(f"{action}: the database refused a value: {detail}")
    return DatabaseError(f"{action}: {detail}")


_MAX_CONFLICT_RETRIES = 5


def write_transaction(
    engine: Engine, action: str, work: Callable[[Connection], T], *, lock_timeout: float
) -> T:
    """Run ``work(connection)`` in one write transaction and commit it.

    On SQLite the transaction begins with ``BEGIN IMMEDIATE``. Lock waits,
    serialisation failures and unique races are retried with a bounded
    exponential back-off until ``lock_timeout`` seconds have passed; then
    :class:`LockTimeout` is raised. Other driver errors become
    :class:`DatabaseError`. Nothing is committed unless ``work`` returns.
    """
    deadline = time.monotonic() + lock_timeout
    delay = 0.005
    conflicts = 0
    while True:
        try:
            with engine.connect() as connection:
                connection = connection.execution_options(_write=True)
                with connection.begin():
                    if connection.dialect.name == "postgresql":
                        # PostgreSQL waits for a row lock forever by default; bound each
                        # wait by the time left, so a stuck writer surfaces as LockTimeout.
                        left = _pg.milliseconds(deadline - time.monotonic())
                        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {left}")
                    result = work(connection)
                if connection.dialect.name == "sqlite":
                    _shrink_wal(connection, lock_timeout)
                return result
        except _UNBINDABLE as error:
            raise _unbindable(error, action) from None
        except exc.DBAPIError as error:
            conflict = _is_retryable_conflict(error)
            conflicts += conflict
            # A race resolves on the next attempt; a conflict that repeats is
            # not a race (e.g. a key the input itself violates): report it.
            retry = (
                _is_lock_error(error)
                or (conflict and conflicts <= _MAX_CONFLICT_RETRIES)
                or (error.connection_invalidated)
            )
            if not retry or time.monotonic() + delay > deadline:
                raise _translate(error, action) from error
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


#: The page size of a new SQLite store (an existing file keeps its own).
SQLITE_PAGE_SIZE = 8192

#: A WAL file past this size is checkpointed and truncated after a write, when
#: no reader still needs its frames; also SQLite's ``journal_size_limit``.
WAL_LIMIT_BYTES = 16 * 1024 * 1024


def _shrink_wal(connection: Connection, lock_timeout: float) -> None:
    """After a commit: if the WAL grew past :data:`WAL_LIMIT_BYTES`, checkpoint and truncate it.

    SQLite's automatic checkpoint cannot reset the WAL while a reader still
    uses old frames, so under a long-lived reader it grows (205 MB measured)
    and, without this, never shrinks while the store stays open. The
    checkpoint runs with no busy wait: with readers present it copies what
    it can and returns at once, so a save never waits for a reader; the
    first write after the readers finish truncates the file.
    """
    try:
        if os.path.getsize(f"{connection.engine.url.database}-wal") <= WAL_LIMIT_BYTES:
            return
        raw = cast(sqlite3.Connection, connection.connection.dbapi_connection)
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            raw.execute(f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")
    except (OSError, sqlite3.Error):
        pass  # best effort: the commit already happened


def read_transaction(engine: Engine, action: str, work: Callable[[Connection], T]) -> T:
    """Run ``work(connection)`` in one read transaction: every statement sees one snapshot.

    SQLite: a deferred ``BEGIN`` on a WAL database (the snapshot is taken at the
    first read and kept to the end). PostgreSQL: ``REPEATABLE READ READ ONLY``;
    under the default READ COMMITTED each statement would see the latest
    commits, so a ``prune`` + ``gc`` between two statements of one load showed
    a version whose content was already gone (``{}``), and verify or export saw
    half a state.
    """
    with translate_errors(action), engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with connection.begin():
            return work(connection)


def read_statement(engine: Engine, action: str, statement: str, params: Sequence[Any]) -> list[Any]:
    """Every row of the named statement ``statement`` (of :mod:`msgflux.store._sql`), one
    SELECT run with no explicit transaction (see :func:`~msgflux.store._sql.read_rows`).

    Raises:
        StoreError: the driver's error, translated as in every transaction.
    """
    with translate_errors(action):
        return _sql.read_rows(engine, statement, params)


# --- read-only queries ------------------------------------------------------------------

# SQLite authorizer action codes a read-only query may use; everything else
# (writes, DDL, PRAGMA, ATTACH, transactions, extensions) is denied.
_SQLITE_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}


def run_readonly_query(
    engine: Engine, sql: str, params: Sequence[Any] | dict[str, Any], *, timeout: float
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one user SQL statement that the *database* guarantees cannot write.

    SQLite: a separate ``mode=ro`` connection plus an authorizer that denies
    every action but reading (so ``PRAGMA query_only=0``, ``ATTACH`` or
    ``load_extension`` are refused too), interrupted by a progress handler
    after ``timeout`` seconds. PostgreSQL: a ``READ ONLY`` transaction with a
    ``statement_timeout``, the statement sent with the extended protocol so
    it cannot smuggle a second statement. Returns ``(columns, rows)``.

    Raises :class:`ReadOnlyError`, :class:`QueryTimeout`, or
    :class:`InvalidInputError` for SQL the database rejects.
    """
    if engine.url.get_backend_name() == "sqlite":
        return _sqlite_readonly(str(engine.url.database), sql, params, timeout)
    return _postgres_readonly(engine, sql, params, timeout)


#: Functions a read-only query may not call although SQLite files them under
#: SQLITE_FUNCTION: ``fts3_tokenizer`` reads (and with two arguments installs)
#: a tokenizer by raw pointer; ``load_extension`` loads native code.
_SQLITE_DENIED_FUNCTIONS = frozenset({"fts3_tokenizer", "load_extension"})

#: The longest string or blob one query may build or return (SQLITE_LIMIT_LENGTH):
#: ``randomblob(10**9)`` and friends fail at once instead of allocating gigabytes.
SQLITE_QUERY_MAX_LENGTH = 128 * 1024 * 1024


class _Watchdog:
    """Interrupt a SQLite connection from another thread once ``timeout`` seconds pass.

    A progress handler alone is not enough: it runs every N virtual-machine
    steps, and a statement can spend seconds inside one step (one call of
    ``hex(randomblob(20000000))``). ``sqlite3_interrupt`` stops the statement
    at its next check, inside long functions' loops too.
    """

    def __init__(self, connection: sqlite3.Connection, timeout: float) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._done = False
        # Past ~30 years a timer is the same as none, and the platform's clock
        # arithmetic overflows on larger numbers (the user may pass 1e300).
        self._timer = threading.Timer(min(timeout, _pg.LONGEST_WAIT), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if not self._done:
                self._connection.interrupt()

    def stop(self) -> None:
        """Disarm; after this returns the connection is never interrupted (safe to close)."""
        with self._lock:
            self._done = True
        self._timer.cancel()


def _sqlite_readonly(
    path: str, sql: str, params: Sequence[Any] | dict[str, Any], timeout: float
) -> tuple[list[str], list[tuple[Any, ...]]]:
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    except sqlite3.Error as error:
        raise DatabaseError(f"cannot open {path} read-only: {error}") from None
    denied: list[int] = []

    def authorizer(action: int, _arg1: Any, arg2: Any, *_rest: Any) -> int:
        if action in _SQLITE_READ_ACTIONS and not (
            action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in _SQLITE_DENIED_FUNCTIONS
        ):
            return sqlite3.SQLITE_OK
        denied.append(action)
        return sqlite3.SQLITE_DENY

    deadline = time.monotonic() + timeout
    watchdog: _Watchdog | None = None
    try:
        connection.execute("PRAGMA query_only = 1")
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, SQLITE_QUERY_MAX_LENGTH)
        connection.set_authorizer(authorizer)
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        watchdog = _Watchdog(connection, timeout)
        cursor = connection.execute(sql, params)
        rows = cursor.fetchall()
        columns = [column[0] for column in cursor.description or ()]
        return columns, rows
    except sqlite3.Warning as error:  # e.g. several statements at once
        raise InvalidInputError(f"query refused: {error}") from None
    except sqlite3.DatabaseError as error:
        text = str(error)
        if "interrupted" in text:
            raise QueryTimeout(f"query interrupted after {timeout:g} s: {sql[:80]!r}") from None
        if denied or "not authorized" in text or "readonly" in text:
            raise ReadOnlyError(f"query refused: the store's SQL is read-only ({text})") from None
        if "too big" in text:
            raise InvalidInputError(
                f"query failed: {text} (a query may build strings and blobs of at most "
                f"{SQLITE_QUERY_MAX_LENGTH // 2**20} MiB)"
            ) from None
        raise InvalidInputError(f"query failed: {text}") from None
    except (sqlite3.ProgrammingError, *_UNBINDABLE) as error:
        raise InvalidInputError(f"query failed: {error}") from None
    finally:
        if watchdog is not None:
            watchdog.stop()
        connection.close()


# A read-only transaction stops writes to tables, not a superuser's COPY to a
# server file or pg_read_file, and such a session can switch roles back from
# inside a query (set_config('role', ...)). So user SQL never runs in one.
_PG_POWERFUL_SESSION = """
    SELECT rolsuper
        OR pg_has_role(session_user, 'pg_read_server_files', 'MEMBER')
        OR pg_has_role(session_user, 'pg_write_server_files', 'MEMBER')
        OR pg_has_role(session_user, 'pg_execute_server_program', 'MEMBER')
    FROM pg_roles WHERE rolname = session_user"""


#: Functions a query may not call on PostgreSQL although a read-only transaction
#: allows them: signalling other sessions of the same role, and running SQL
#: given as text (which would hide such a call from the plan check).
_PG_DENIED_FUNCTIONS = re.compile(
    r"\b(pg_terminate_backend|pg_cancel_backend|query_to_xml\w*|query_to_xmlschema|"
    r"cursor_to_xml\w*|ts_stat|ts_rewrite|dblink\w*)\b",
    re.IGNORECASE,
)

# The user's statement runs as this cursor's query: DECLARE accepts only a query
# (SELECT, VALUES, TABLE, WITH ... SELECT), so the server refuses ANALYZE, COPY,
# SET, EXPLAIN... that a read-only transaction would still run (ANALYZE updates
# statistics in place, whatever the transaction does next).
_PG_CURSOR = "_msgflux_query"
_PG_DECLARE = f"DECLARE {_PG_CURSOR} NO SCROLL CURSOR FOR "


def _postgres_readonly(
    engine: Engine, sql: str, params: Sequence[Any] | dict[str, Any], timeout: float
) -> tuple[list[str], list[tuple[Any, ...]]]:
    import psycopg

    def refused(detail: str) -> ReadOnlyError:
        return ReadOnlyError(f"query refused: the store's SQL is read-only ({detail})")

    with translate_errors("running a query"), engine.connect() as connection:
        raw = cast("psycopg.Connection[Any]", connection.connection.dbapi_connection)
        if getattr(raw, "answer_timeout", None) is not None:
            # This connection is dropped afterwards; let it wait as long as the query may run.
            longest = min(timeout, _pg.LONGEST_WAIT) + 5
            raw.answer_timeout = max(raw.answer_timeout, longest)  # type: ignore[attr-defined]
        try:
            raw.rollback()
            with raw.cursor() as cursor:
                # psycopg has already begun a transaction; make it read-only
                # before it runs anything.
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute(_PG_POWERFUL_SESSION)
                row = cursor.fetchone()
                if row is None or row[0]:
                    raise ReadOnlyError(
                        "query refused: the store is connected to PostgreSQL as a superuser (or a "
                        "role that may read or write server files), which a read-only transaction "
                        "cannot contain (COPY ... TO a file, pg_read_file); connect the store "
                        "with an ordinary role that owns or can read its tables"
                    )
                cursor.execute(f"SET LOCAL statement_timeout = {_pg.milliseconds(timeout)}")
                # A server-side prepared statement holds exactly one statement, so
                # "SELECT 1; COMMIT; DELETE ..." is refused by the server (without
                # prepare=True psycopg sends parameterless SQL as a simple query,
                # which runs every statement in it).
                try:
                    cursor.execute(_PG_DECLARE + sql, params or None, prepare=True)
                except psycopg.errors.SyntaxError as error:
                    if _error_at_first_token(error, sql):
                        raise refused(
                            "only a query may run: SELECT, VALUES, TABLE or WITH ... SELECT"
                        ) from None
                    raise
                except psycopg.errors.FeatureNotSupported as error:  # WITH ... DELETE
                    raise refused(_first_line(error)) from None
                # Planned, not run: the plan names every function the query calls.
                cursor.execute(
                    "EXPLAIN (VERBOSE, FORMAT JSON) " + sql, params or None, prepare=True
                )
                plan = json.dumps(cursor.fetchall())
                denied = _PG_DENIED_FUNCTIONS.search(plan)
                if denied:
                    raise refused(f"{denied.group(1)}() may not be called from a query")
                cursor.execute(f"FETCH ALL FROM {_PG_CURSOR}")
                rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
                columns = [column.name for column in cursor.description or ()]
            raw.rollback()
            return columns, rows
        except psycopg.errors.QueryCanceled:
            _rollback_quietly(raw)
            raise QueryTimeout(f"query interrupted after {timeout:g} s: {sql[:80]!r}") from None
        except (
            psycopg.errors.ReadOnlySqlTransaction,
            psycopg.errors.InsufficientPrivilege,
        ) as error:
            _rollback_quietly(raw)
            raise refused(str(error)) from None
        except psycopg.errors.LockNotAvailable as error:
            _rollback_quietly(raw)
            raise LockTimeout(
                f"query waited longer than the lock timeout for a lock another "
                f"session holds ({_first_line(error)})"
            ) from None
        except psycopg.Error as error:
            lost = raw.closed or raw.broken
            _rollback_quietly(raw)
            if lost:
                raise DatabaseError(
                    f"query failed: the connection to the server was lost ({_first_line(error)})"
                ) from None
            raise InvalidInputError(f"query failed: {_first_line(error)}") from None
        except _UNBINDABLE as error:
            _rollback_quietly(raw)
            raise InvalidInputError(f"query failed: {error}") from None
        finally:
            # The user's SQL may have changed session settings (search_path,
            # set_config): this connection is never returned to the pool.
            connection.invalidate()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _rollback_quietly(raw: Any) -> None:
    # After a lost connection rollback() raises too; the connection is dropped anyway.
    try:
        raw.rollback()
    except Exception:  # noqa: BLE001 - any driver error here changes nothing
        pass


def _error_at_first_token(error: Any, sql: str) -> bool:
    """Whether a syntax error points at the first word of ``sql`` (after the DECLARE prefix)."""
    position = getattr(error.diag, "statement_position", None)
    if not position:
        return False
    first = len(sql) - len(sql.lstrip())
    return int(position) - 1 == len(_PG_DECLARE) + first
