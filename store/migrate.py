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

__all__ = ["SCHEMA_HEAD", "head_revision", "current_revision", "upgrade", "check_current",
           "alembic_config"]

#: The newest schema revision. Opening a store already at this revision needs
#: no alembic import (a tenth of a second per command-line call);
#: ``tests/store/test_migrations.py`` checks that it is alembic's single head.
SCHEMA_HEAD = "0004"

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
    before = read_transaction(engine, f"reading the schema revision of {where}",
                              current_revision)
    _check_known(before, where)
    if before == head:
        return before, head

    def work(connection: Connection) -> tuple[str | None, str]:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _PG_MIGRATION_LOCK})
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

    return write_transaction(engine, f"upgrading the schema of {where}", work,
                             lock_timeout=lock_timeout)


def _check_empty(connection: Connection, where: str) -> None:
    # No revision stamp: the store creates its tables here, unless tables of
    # the same names already belong to something else.
    from msgflux.store.schema import metadata

    inspector = inspect(connection)
    taken = sorted(set(metadata.tables) & {*inspector.get_table_names(),
                                           *inspector.get_view_names()})
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
