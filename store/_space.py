"""Giving disk space back after ``prune`` + ``gc``: ``StateStore.gc(vacuum=True)``.

``gc()`` deletes rows; the database keeps the pages they used for later
rows, so the file does not shrink. ``vacuum=True`` then:

* SQLite: runs ``VACUUM`` (rewrites the whole database into the smallest
  file) and checkpoints the WAL with ``TRUNCATE``, so the file and its WAL
  shrink. It holds the write lock while it runs: writers wait for it (up to
  ``lock_timeout``, then ``LockTimeout``), readers go on. It needs free disk
  space up to twice the size of what remains. (``auto_vacuum=INCREMENTAL``
  would only return free pages without defragmenting, and must be chosen
  before the first table exists; one VACUUM gives the whole space back, so the
  store does not use it.)
* PostgreSQL: runs plain ``VACUUM (ANALYZE)`` on the store's tables. It does
  not block reads or writes (it takes ``SHARE UPDATE EXCLUSIVE``). The space
  of deleted rows becomes reusable at once, and empty pages at the end of a
  table are given back to the operating system; the rest stays allocated to
  the table and is reused by later saves. Only ``VACUUM FULL`` (an ``ACCESS
  EXCLUSIVE`` lock that stops every read and write of the table while it
  rewrites it) returns all of it; run it yourself in a maintenance window if
  you need to. Autovacuum does the same work as plain VACUUM on its own
  schedule, so on PostgreSQL ``vacuum=True`` only makes it happen now.

Both report the database's size before and after (SQLite: the file plus its
WAL; PostgreSQL: ``pg_total_relation_size`` of the store's tables).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine

from msgflux.store import schema as t
from msgflux.store.engine import translate_errors
from msgflux.store.errors import DatabaseError, LockTimeout


def database_size(engine: Engine) -> int:
    """Bytes the store occupies: the SQLite file and its WAL, or PostgreSQL's relation sizes."""
    if engine.url.get_backend_name() == "sqlite":
        path = str(engine.url.database)
        return sum(
            Path(f"{path}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if Path(f"{path}{suffix}").exists()
        )
    tables = sorted(t.metadata.tables)
    with translate_errors("measuring the database"), engine.connect() as connection:
        total = 0
        for table in tables:
            size = connection.exec_driver_sql(
                "SELECT pg_total_relation_size(to_regclass(%(table)s))",
                {"table": table},
            ).scalar()
            total += int(size or 0)
        connection.rollback()
    return total


def vacuum(engine: Engine, *, lock_timeout: float) -> None:
    """Give the space of deleted rows back, as the module docstring says for each backend.

    Raises:
        LockTimeout: another writer held the lock past ``lock_timeout``. DatabaseError.
    """
    if engine.url.get_backend_name() == "sqlite":
        _vacuum_sqlite(engine)
    else:
        _vacuum_postgres(engine, lock_timeout)


def _vacuum_sqlite(engine: Engine) -> None:
    with engine.connect() as connection:
        # VACUUM can't run inside a transaction, and SQLAlchemy would begin one
        # (the store's begin hook emits BEGIN): use the driver connection, which
        # is in autocommit mode (isolation_level=None, see engine.py). Its
        # busy_timeout is the store's lock_timeout.
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        try:
            raw.execute("VACUUM")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as error:
            text = str(error)
            if "locked" in text or "busy" in text:
                raise LockTimeout(
                    f"vacuuming: the database stayed locked by another writer "
                    f"longer than the lock timeout ({text})"
                ) from None
            raise DatabaseError(f"vacuuming: {text}") from None
        except sqlite3.Error as error:
            raise DatabaseError(f"vacuuming: {error}") from None


def _vacuum_postgres(engine: Engine, lock_timeout: float) -> None:
    tables = ", ".join(sorted(t.metadata.tables))
    with translate_errors("vacuuming"), engine.connect() as connection:
        # VACUUM can't run inside a transaction block.
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.exec_driver_sql(f"SET lock_timeout = {max(1, int(lock_timeout * 1000))}")
        try:
            autocommit.exec_driver_sql(f"VACUUM (ANALYZE) {tables}")
        finally:
            autocommit.exec_driver_sql("RESET lock_timeout")
