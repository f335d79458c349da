"""Schema migrations at open: bring a database to the package's alembic head.

Run by :class:`~msgflux.store.StateStore` on open and by ``msgflux-store db
upgrade``. Several processes may open the same old database at once: the
upgrade runs inside one write transaction (``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL), so exactly one process
upgrades and the others find the schema at head when they get the lock.
A database stamped with a revision this package does not know (written by a
newer release) is refused with :class:`SchemaError` and never modified.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from msgflux.store.engine import describe, read_transaction, write_transaction
from msgflux.store.errors import SchemaError

if TYPE_CHECKING:  # alembic is imported only when a migration is needed
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "SCHEMA_HEAD",
    "head_revision",
    "current_revision",
    "upgrade",
    "check_current",
    "alembic_config",
    "check_sqlite_file",
]

#: The newest schema revision. Opening a store already at this revision needs
#: no alembic import (a tenth of a second per command-line call);
#: ``tests/store/test_migrations.py`` checks that it is alembic's single head.
SCHEMA_HEAD = "0007"

# Any 64-bit constant: the advisory lock that serialises migrations on PostgreSQL.
_PG_MIGRATION_LOCK = 0x6D7367666C7578


def alembic_config() -> Config:
    """Return an alembic ``Config`` pointing at the migrations shipped in the package."""
    from alembic.config import Config

    config = Config()
    location = resources.files("msgflux.store.migrations")
    config.set_main_option("script_location", str(location))
    return config


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest schema revision this package's migrations define."""
    head = _script().get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is stamped with, or ``None`` for an empty database."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _check_known(revision: str | None, where: str) -> None:
    if revision is None:
        return
    if revision == SCHEMA_HEAD:
        return
    try:
        _script().get_revision(revision)
    except Exception:
        raise SchemaError(
            f"{where} has schema revision {revision!r}, which this msgflux-state release does not "
            f"know (its newest is {head_revision()!r}): it was written by a newer release; "
            "upgrade msgflux-state to open it"
        ) from None


def upgrade(engine: Engine, *, lock_timeout: float) -> tuple[str | None, str]:
    """Upgrade the database to head; return ``(revision before, revision after)``.

    Raises :class:`SchemaError` for an unknown (newer) revision.
    """
    where = describe(engine.url)
    head = SCHEMA_HEAD

    # Fast path, taking no write lock: opening a store that is already at head
    # (every open but the first after an upgrade) must not queue behind a
    # long-running writer, and an unknown revision is refused without ever
    # starting a write transaction.
    before = read_transaction(engine, f"reading the schema revision of {where}", current_revision)
    _check_known(before, where)
    if before == head:
        return before, head

    def work(connection: Connection) -> tuple[str | None, str]:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        before = current_revision(connection)  # again: another process may have upgraded
        _check_known(before, where)
        if before is None:
            _check_empty(connection, where)
        if before != head:
            from alembic import command

            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return before, head

    return write_transaction(
        engine, f"upgrading the schema of {where}", work, lock_timeout=lock_timeout
    )


def _check_empty(connection: Connection, where: str) -> None:
    # No revision stamp: the store creates its tables here, unless tables of
    # the same names already belong to something else.
    from msgflux.store.schema import metadata

    inspector = inspect(connection)
    taken = sorted(
        set(metadata.tables) & {*inspector.get_table_names(), *inspector.get_view_names()}
    )
    if taken:
        raise SchemaError(
            f"{where} is not a msgflux store: it has no schema revision but already has "
            f"tables named {', '.join(taken)}; use an empty database (or PostgreSQL schema)"
        )


def check_current(engine: Engine, connection: Connection) -> None:
    """Raise :class:`SchemaError` unless the database is at this package's head."""
    where = describe(engine.url)
    revision = current_revision(connection)
    _check_known(revision, where)
    if revision != SCHEMA_HEAD:
        raise SchemaError(
            f"{where} is at schema revision {revision!r}, not {SCHEMA_HEAD!r}: run "
            f"`msgflux-store --db {where} db upgrade` or open it with migrate=True"
        )


def check_sqlite_file(path: str) -> None:
    """Refuse a SQLite file that is not empty and is not a store, before anything touches it.

    Called before the store's engine exists, on a ``mode=ro`` connection: the
    engine's first connection switches the file to WAL, which would already
    modify another application's database. A missing or zero-byte file, or a
    database without any table, becomes a store; a database with an
    ``alembic_version`` row this package knows and the store's tables is
    opened; anything else is refused and left byte for byte as it was.

    Raises:
        SchemaError: the file is not a SQLite database, or is another
            application's database, or was written by a newer release.
        DatabaseError: the file cannot be read.
    """
    import sqlite3
    from pathlib import Path

    from msgflux.store.errors import DatabaseError

    file = Path(path)
    try:
        if not file.is_file() or file.stat().st_size == 0:
            return
    except OSError as error:
        raise DatabaseError(f"cannot open {path}: {error.strerror or error}") from None
    # With no -wal or -journal file beside it the file holds everything committed:
    # read it as immutable, which creates no -wal/-shm files (a plain read-only
    # open of a WAL database would leave both behind).
    settled = not any(Path(f"{file}{suffix}").exists() for suffix in ("-wal", "-journal"))
    try:
        connection = sqlite3.connect(
            file.absolute().as_uri() + ("?mode=ro&immutable=1" if settled else "?mode=ro"), uri=True
        )
    except sqlite3.Error as error:
        raise DatabaseError(f"cannot open {path} read-only: {error}") from None
    try:
        objects = {
            name: kind
            for kind, name in connection.execute(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        }
        revisions: list[str] = []
        if objects.get("alembic_version") == "table":
            revisions = [
                row[0] for row in connection.execute("SELECT version_num FROM alembic_version")
            ]
    except sqlite3.DatabaseError as error:
        text = str(error)
        if "not a database" in text:
            raise SchemaError(
                f"{path} is not a msgflux store: it is not a SQLite database "
                f"({text}); the file was left untouched"
            ) from None
        raise DatabaseError(f"cannot read {path}: {text}") from None
    finally:
        connection.close()
    if not objects:
        return  # an empty database: it becomes a store
    if len(revisions) == 1 and {"names", "versions"} <= objects.keys():
        _check_known(revisions[0], path)
        return
    listed = ", ".join(sorted(objects)[:8]) + (", ..." if len(objects) > 8 else "")
    raise SchemaError(
        f"{path} is not a msgflux store: it is a SQLite database with other content ({listed}) "
        "and no msgflux-state schema revision; it was left untouched. Give the store a new "
        "or empty file"
    )
