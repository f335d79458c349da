"""Faults from outside the store: each gives a clear StoreError and changes nothing.

* a read-only database (really read-only: ``chattr +i`` on the file and its
  folder, which stops root too; ``chmod`` when not running as root), and the
  driver's "attempt to write a readonly database" injected mid-save;
* a missing folder;
* a full disk: a real 1 MB tmpfs when this machine lets us mount one, and the
  driver's SQLITE_FULL error injected at the insert of the spans;
* a lock held longer than ``lock_timeout`` (SQLite ``BEGIN IMMEDIATE``,
  PostgreSQL ``SELECT ... FOR UPDATE``);
* a PostgreSQL connection terminated (``pg_terminate_backend``) mid-save.

"Changes nothing" is checked by comparing a dump of every table before and after.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from msgflux.store import DatabaseError, LockTimeout, StateStore, StoreError

from ._support import dump, raw_engine, structure_problems
from .conftest import record


def _seeded(url: str) -> None:
    with StateStore(url) as store:
        store.save("pipeline", {"prompt": "Be brief.", "temperature": 0.2})
        store.save("pipeline", {"prompt": "Be brief.", "temperature": 0.3})
        store.tag("pipeline", 1, "production")


def _fail_at_spans(store: StateStore, make_error) -> list[int]:
    """Make the store's next inserts into ``spans`` raise ``make_error()``; count them.

    The error is raised by the driver itself: the store's connections are
    reopened with a ``sqlite3.Connection`` subclass whose cursors raise it, so
    it takes exactly the path a real one takes, whichever way the store runs
    the statement.
    """
    fired: list[int] = []

    class FaultyCursor(sqlite3.Cursor):
        def _check(self, sql: str) -> None:
            if sql.lstrip().upper().startswith("INSERT INTO SPANS"):
                fired.append(1)
                raise make_error()

        def execute(self, sql, *args):  # noqa: ANN001, ANN202
            self._check(sql)
            return super().execute(sql, *args)

        def executemany(self, sql, *args):  # noqa: ANN001, ANN202
            self._check(sql)
            return super().executemany(sql, *args)

    class FaultyConnection(sqlite3.Connection):
        def cursor(self, factory=FaultyCursor):  # noqa: ANN001, ANN202
            return super().cursor(factory)

    def _connect_faulty(dialect, record, cargs, cparams):  # noqa: ANN001, ANN202
        cparams["factory"] = FaultyConnection

    event.listen(store._engine, "do_connect", _connect_faulty)
    store._engine.dispose()  # pooled connections predate the fault
    return fired


# -- read-only database ----------------------------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder holding a seeded store that nobody, root included, can write to."""
    folder = tmp_path / "ro"
    folder.mkdir()
    _seeded(str(folder / "store.db"))
    assert sorted(os.listdir(folder)) == ["store.db"], "WAL files left after close"
    paths = [folder / "store.db", folder]
    if os.geteuid() == 0:
        if (
            not shutil.which("chattr")
            or subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True).returncode
            != 0
        ):
            pytest.skip("running as root without chattr +i: cannot make a file read-only")
        undo = ["chattr", "-i", *map(str, paths)]
    else:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        undo = None
    try:
        with pytest.raises(OSError):
            (folder / "store.db").open("ab").close()
        yield folder
    finally:
        if undo:
            subprocess.run(undo, check=True)
        else:
            folder.chmod(0o755)
            (folder / "store.db").chmod(0o644)


def test_read_only_database_is_refused_clearly(read_only_folder, request):
    path = read_only_folder / "store.db"
    before = path.read_bytes()
    outcomes = []
    try:
        store = StateStore(path)
    except StoreError as error:  # WAL needs its -shm file next to the database
        assert isinstance(error, DatabaseError)
        assert str(path) in str(error) and "read" in str(error).lower()
        outcomes.append(f"open: {type(error).__name__}")
    else:
        with store:
            with pytest.raises(DatabaseError, match="readonly|read-only|read only"):
                store.save("pipeline", {"prompt": "changed"})
            outcomes.append("save: DatabaseError")
    assert path.read_bytes() == before
    record(request, f"chattr +i / chmod: {', '.join(outcomes)}; file bytes unchanged")


def test_readonly_error_injected_mid_save_changes_nothing(sqlite_path, request):
    _seeded(sqlite_path)
    engine = raw_engine(sqlite_path)
    before = dump(engine)
    with StateStore(sqlite_path) as store:
        fired = _fail_at_spans(
            store, lambda: sqlite3.OperationalError("attempt to write a readonly database")
        )
        with pytest.raises(DatabaseError, match="saving 'pipeline': attempt to write a readonly"):
            store.save("pipeline", {"prompt": "new", "temperature": 1.0})
        assert fired == [1], "a read-only error is not retried"
        assert store.verify().ok
    assert dump(engine) == before
    engine.dispose()
    record(
        request,
        "injected 'attempt to write a readonly database' at the spans insert: "
        "DatabaseError, dump unchanged",
    )


# -- missing folder --------------------------------------------------------------------


def test_missing_folder_is_refused_and_not_created(tmp_path):
    target = tmp_path / "no" / "such" / "folder" / "store.db"
    with pytest.raises(DatabaseError, match="folder .* does not exist"):
        StateStore(target)
    assert not (tmp_path / "no").exists()


# -- full disk -------------------------------------------------------------------------


def test_disk_full_injected_mid_save_changes_nothing(sqlite_path, request):
    _seeded(sqlite_path)
    engine = raw_engine(sqlite_path)
    before = dump(engine)
    with StateStore(sqlite_path) as store:
        _fail_at_spans(store, lambda: sqlite3.OperationalError("database or disk is full"))
        with pytest.raises(DatabaseError, match="saving 'pipeline': database or disk is full"):
            store.save("pipeline", {"prompt": "new", "temperature": 1.0})
        assert store.load("pipeline") == {"prompt": "Be brief.", "temperature": 0.3}
    assert dump(engine) == before
    engine.dispose()
    record(request, "injected SQLITE_FULL at the spans insert: DatabaseError, dump unchanged")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, when this machine allows mounting one (root in a privileged container)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({result.stderr.strip()}); the injected "
            "SQLITE_FULL test covers this path"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_real_full_disk_gives_a_clear_error_and_keeps_every_committed_version(tiny_disk, request):
    path = tiny_disk / "store.db"
    engine = raw_engine(str(path))
    committed = 0
    with StateStore(path) as store:
        error = None
        for _index in range(200):
            state = {f"chunk.{key}": os.urandom(8_000).hex() for key in range(4)}
            before = dump(engine)
            try:
                store.save("big", state)
            except StoreError as caught:
                error = caught
                break
            committed += 1
        assert error is not None, "1 MB never filled up"
        assert isinstance(error, DatabaseError) and "full" in str(error), repr(error)
        assert dump(engine) == before
        report = store.verify()
        assert report.ok, str(report)
        assert [version.number for version in store.log("big")] == list(range(committed, 0, -1))
    assert structure_problems(engine) == []
    engine.dispose()
    record(
        request,
        f"1 MB tmpfs: {committed} saves committed, then {type(error).__name__}: "
        f"{str(error)[:60]}...; dump unchanged, verify ok",
    )


# -- lock held too long ------------------------------------------------------------------


def test_lock_held_past_the_timeout_raises_lock_timeout(store_url, request):
    _seeded(store_url)
    engine = raw_engine(store_url)
    before = dump(engine)
    with StateStore(store_url, lock_timeout=0.5) as store, engine.connect() as holder:
        if store.dialect == "sqlite":
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            holder.begin()
            holder.exec_driver_sql("SELECT * FROM names WHERE name = 'pipeline' FOR UPDATE")
        # Opening (schema already at head) and reading do not wait for the writer's lock:
        # the lock is held throughout, so a reader that waited would raise LockTimeout.
        with StateStore(store_url, lock_timeout=0.5) as reader:
            assert reader.load("pipeline", 1)["temperature"] == 0.2
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="saving 'pipeline'.*locked by another writer"):
            store.save("pipeline", {"prompt": "waits", "temperature": 9.0})
        waited = time.monotonic() - started
        # It waited for the lock (a lower bound holds however loaded the machine is), and
        # gave up: the upper bound is an order of magnitude above the 0.5 s timeout.
        assert 0.4 <= waited < 5.0, waited
        holder.rollback()
        store.save("pipeline", {"prompt": "after", "temperature": 9.0})  # works once released
    after = dump(engine)
    engine.dispose()
    assert after["versions"][: len(before["versions"])] == before["versions"]
    assert len(after["versions"]) == len(before["versions"]) + 1
    record(
        request,
        f"lock held by another connection: LockTimeout after {waited:.2f} s "
        "(lock_timeout=0.5); reads and opening did not wait",
    )


def test_an_identical_save_does_not_take_the_write_lock(store_url, request):
    """While another writer holds the lock, saving the head's content again returns at once
    (``created=False``), from a fresh process's store and from the one that saved it; a
    real change still waits and times out."""
    _seeded(store_url)
    engine = raw_engine(store_url)
    head = {"prompt": "Be brief.", "temperature": 0.3}
    before = dump(engine)
    with StateStore(store_url, lock_timeout=0.5) as store, engine.connect() as holder:
        if store.dialect == "sqlite":
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            holder.begin()
            holder.exec_driver_sql("SELECT * FROM names WHERE name = 'pipeline' FOR UPDATE")
        for attempt in range(2):  # a store that never saved it, then again
            same = store.save("pipeline", dict(head))
            assert same.number == 2 and not same.created and not same.changes, attempt
        with pytest.raises(LockTimeout):
            store.save("pipeline", {"prompt": "Be brief.", "temperature": 0.4})
        with pytest.raises(LockTimeout):  # metadata is recorded: that needs the lock
            store.save("pipeline", dict(head), metadata={"score": 1})
        holder.rollback()
    assert dump(engine) == before
    engine.dispose()
    record(
        request,
        "identical save while another writer holds the lock: answered from a "
        "read, no wait; a real change waits and times out",
    )


# -- dropped PostgreSQL connection -----------------------------------------------------


def _terminate_mid_save(store: StateStore, admin: sa.Engine, times: int) -> list[int]:
    """Kill the store's own backend mid-save, ``times`` times: after it locked the name and
    before it writes any content (at the follower notification, the first statement
    that goes through SQLAlchemy's execution events; the content is written on the
    driver's cursor)."""
    killed: list[int] = []

    @event.listens_for(store._engine, "before_cursor_execute")
    def _terminate(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("SELECT PG_NOTIFY") and len(killed) < times:
            pid = conn.connection.dbapi_connection.info.backend_pid
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killed.append(pid)

    return killed


@pytest.mark.postgres
def test_postgres_connection_dropped_mid_save_is_retried(postgres_url, request):
    _seeded(postgres_url)
    engine = raw_engine(postgres_url)
    admin = sa.create_engine(postgres_url.split("?")[0], isolation_level="AUTOCOMMIT")
    before = dump(engine)
    with StateStore(postgres_url, lock_timeout=10) as store:
        killed = _terminate_mid_save(store, admin, times=1)
        version = store.save("pipeline", {"prompt": "survives", "temperature": 0.5})
        assert len(killed) == 1
        assert version.number == 3
        assert store.load("pipeline") == {"prompt": "survives", "temperature": 0.5}
        assert store.verify().ok
    after = dump(engine)
    assert after["versions"][:2] == before["versions"]
    assert len(after["versions"]) == 3 and structure_problems(engine) == []
    engine.dispose()
    admin.dispose()
    record(
        request,
        "pg_terminate_backend mid-save (name locked): retried transparently, "
        "exactly one new version",
    )


@pytest.mark.postgres
def test_postgres_connection_dropped_every_time_gives_a_clear_error(postgres_url, request):
    _seeded(postgres_url)
    engine = raw_engine(postgres_url)
    admin = sa.create_engine(postgres_url.split("?")[0], isolation_level="AUTOCOMMIT")
    before = dump(engine)
    with StateStore(postgres_url, lock_timeout=1) as store:
        killed = _terminate_mid_save(store, admin, times=1_000)
        with pytest.raises(DatabaseError, match="saving 'pipeline'") as caught:
            store.save("pipeline", {"prompt": "never", "temperature": 0.5})
        assert len(killed) >= 2, "a dropped connection is retried"
    assert dump(engine) == before
    engine.dispose()
    admin.dispose()
    record(
        request,
        f"backend killed on each of {len(killed)} attempts: "
        f"{type(caught.value).__name__} ({str(caught.value)[:70]}...), dump unchanged",
    )
