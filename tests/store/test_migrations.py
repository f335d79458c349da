"""Schema migrations: one head, the migrated schema equals ``schema.metadata``, round trips,
unknown revisions refused untouched, older databases refused or upgraded with data intact."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool
from store_testkit import TABLES, VIEWS, dump, expected_snapshot, expected_value_hash

from msgflux.store import SchemaError, StateStore
from msgflux.store.migrate import SCHEMA_HEAD, alembic_config, head_revision
from msgflux.store.schema import metadata


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """A plain engine on an empty database of each backend (no store opened yet)."""
    from msgflux.store.engine import resolve_url

    created = sa.create_engine(resolve_url(store_url), poolclass=NullPool)
    try:
        yield created
    finally:
        created.dispose()


def _alembic(engine: sa.Engine, action: str, revision: str) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _relations(engine: sa.Engine) -> set[str]:
    inspector = sa.inspect(engine)
    return set(inspector.get_table_names()) | set(inspector.get_view_names())


def test_the_migrations_have_a_single_head_which_the_package_names() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head_revision()] == [SCHEMA_HEAD]
    assert [r.revision for r in script.walk_revisions()][-1] == "0001"


def test_a_fresh_store_is_at_head(store: StateStore, engine: sa.Engine) -> None:
    assert _revision(engine) == head_revision()
    assert _relations(engine) >= {*TABLES, *VIEWS, "alembic_version"}


def test_the_migrated_schema_matches_the_metadata(store: StateStore, engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_downgrade_to_base_then_upgrade_to_head(store: StateStore, engine: sa.Engine) -> None:
    store.close()
    _alembic(engine, "downgrade", "base")
    assert _revision(engine) is None
    assert _relations(engine) <= {"alembic_version"}
    _alembic(engine, "upgrade", "head")
    assert _revision(engine) == head_revision()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    with StateStore(engine.url, migrate=False) as reopened:
        reopened.save("p", {"x": 1})
        assert reopened.query("SELECT name, version FROM state_history") == [("p", 1)]


def test_an_unknown_revision_is_refused_and_left_untouched(
    store: StateStore, engine: sa.Engine
) -> None:
    store.save("p", {"x": 1})
    store.close()
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    before = dump(engine)
    for migrate in (True, False):
        with pytest.raises(SchemaError, match="'9999'.*newer release"):
            StateStore(engine.url, migrate=migrate)
    assert dump(engine) == before
    assert _revision(engine) == "9999"


def _database_at_0001_with_data(engine: sa.Engine) -> dict[str, object]:
    _alembic(engine, "upgrade", "0001")
    state = {"prompt": "Be brief.", "k": 3}
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as connection:

        def run(statement: str, **params: object) -> None:
            query = sa.text(statement)
            if "w" in params:  # written as the store writes times on each backend
                query = query.bindparams(sa.bindparam("w", type_=sa.DateTime(timezone=True)))
            connection.execute(query, params)

        # No explicit ids: the database hands them out, as for any SQL-written data.
        for value in state.values():
            run(
                "INSERT INTO blobs (hash, value_type, text) VALUES (:h, :t, :x)",
                h=expected_value_hash(value),
                t=type(value).__name__,
                x=value if isinstance(value, str) else str(value),
            )
        run(
            "INSERT INTO snapshots (hash, key_count, created_at) VALUES (:h, 2, :w)",
            h=expected_snapshot(state),
            w=now,
        )
        for position, (key, value) in enumerate(state.items()):
            run(
                "INSERT INTO entries (snapshot_id, key, position, blob_id) SELECT s.id, :k, :p, "
                "b.id FROM snapshots s, blobs b WHERE b.hash = :h",
                k=key,
                p=position,
                h=expected_value_hash(value),
            )
        run("INSERT INTO names (name, head, created_at) VALUES ('legacy', 1, :w)", w=now)
        run(
            "INSERT INTO versions (name_id, number, snapshot_id, parent, created_at, message, "
            "author, metadata) SELECT n.id, 1, s.id, NULL, :w, 'old', 'ana', :m "
            "FROM names n, snapshots s",
            w=now,
            m='{"score":0.5}',
        )
        run("INSERT INTO tags (name_id, tag, version) SELECT id, 'production', 1 FROM names")
        run(
            "INSERT INTO tag_events (name_id, tag, version, previous_version, moved_at, author) "
            "SELECT id, 'production', 1, NULL, :w, 'ana' FROM names",
            w=now,
        )
    return state


def test_an_older_database_with_migrate_false_is_refused(engine: sa.Engine) -> None:
    _database_at_0001_with_data(engine)
    before = dump_tables(engine)
    with pytest.raises(SchemaError, match="db upgrade") as caught:
        StateStore(engine.url, migrate=False)
    assert "'0001'" in str(caught.value)
    assert _revision(engine) == "0001"
    assert dump_tables(engine) == before


def test_opening_an_older_database_upgrades_it_with_data_intact(engine: sa.Engine) -> None:
    state = _database_at_0001_with_data(engine)
    before = dump_tables(engine)
    with StateStore(engine.url) as store:
        assert _revision(engine) == head_revision()
        assert dump_tables(engine, like=before) == before
        version = store.get("legacy", "production")
        assert (version.number, version.message, version.author, version.metadata) == (
            1,
            "old",
            "ana",
            {"score": 0.5},
        )
        assert version.created_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        assert store.load("legacy") == state and list(store.load("legacy")) == ["prompt", "k"]
        assert store.verify().ok
        assert store.query("SELECT name, version, key_count FROM state_history") == [
            ("legacy", 1, 2)
        ]
        assert store.save("legacy", {"prompt": "Be briefer.", "k": 3}).number == 2


def dump_tables(engine: sa.Engine, like: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every row of every table present; with ``like``, only its tables and columns
    (later revisions add tables and columns, which the old rows don't have)."""
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        present = set(inspector.get_table_names())
        result: dict[str, Any] = {}
        for table in TABLES:
            if table not in present or (like is not None and table not in like):
                continue
            columns = [column["name"] for column in inspector.get_columns(table)]
            if like is not None:
                columns = [column for column in columns if column in like[table][0]]
            rows = connection.execute(sa.text(f"SELECT {', '.join(columns)} FROM {table}"))
            result[table] = (columns, sorted(repr(tuple(row)) for row in rows))
        return result
