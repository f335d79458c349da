"""``StateStore.query`` is read-only, enforced by the database, and time-limited."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_testkit import dump

from msgflux.store import (
    InvalidInputError,
    QueryTimeout,
    ReadOnlyError,
    StateStore,
)

WRITES = [
    "INSERT INTO names (name, head, created_at) VALUES ('x', 0, '2024-01-01')",
    "UPDATE blobs SET text = 'evil'",
    "DELETE FROM versions",
    "DROP TABLE tag_events",
    "DROP VIEW state_values",
    "CREATE TABLE evil (x INTEGER)",
    "CREATE VIEW evil AS SELECT 1",
    "CREATE INDEX evil ON blobs (text)",
    "ALTER TABLE blobs ADD COLUMN evil TEXT",
    "ALTER TABLE blobs RENAME TO evil",
]

SQLITE_ONLY = [
    "PRAGMA query_only = 0",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA writable_schema = ON",
    "ATTACH DATABASE '{tmp}/evil.db' AS evil",
    "SELECT load_extension('{tmp}/evil')",
    "WITH d AS (SELECT 1) DELETE FROM versions",
    (
        "WITH d AS (SELECT 1) INSERT INTO tag_events (name_id, tag, moved_at) "
        "SELECT 1, 'x', '2024-01-01' FROM d"
    ),
    "REPLACE INTO tags (name_id, tag, version) VALUES (1, 'x', 1)",
    "VACUUM",
    "REINDEX",
    "BEGIN",
    "SAVEPOINT x",
]

POSTGRES_ONLY = [
    "WITH d AS (DELETE FROM versions RETURNING id) SELECT count(*) FROM d",
    "WITH u AS (UPDATE blobs SET text = 'evil' RETURNING id) SELECT count(*) FROM u",
    "SELECT count(*) FROM (SELECT 1) x; DELETE FROM versions",
    "CREATE TEMP TABLE evil (x int)",
    "SELECT nextval('versions_id_seq')",
    "TRUNCATE blobs",
    "COMMENT ON TABLE blobs IS 'evil'",
]


@pytest.fixture
def full(store: StateStore) -> StateStore:
    store.save("p", {"prompt": "one", "k": 1})
    store.save("p", {"prompt": "two", "k": 2})
    store.tag("p", 1, "production")
    return store


def _refused(
    store: StateStore,
    db: sa.Engine,
    statement: str,
    errors: tuple[type[Exception], ...] = (ReadOnlyError,),
) -> None:
    before = dump(db)
    with pytest.raises(errors):
        store.query(statement)
    assert dump(db) == before
    assert store.verify().ok


def test_reads_work(full: StateStore) -> None:
    rows = full.query("SELECT count(*) FROM state_values")
    assert rows == [(4,)] and rows.columns[0]
    assert full.query(
        "WITH x AS (SELECT version FROM state_history) SELECT max(version) FROM x"
    ) == [(2,)]


@pytest.mark.parametrize("statement", WRITES)
def test_writes_and_schema_changes_are_refused(
    full: StateStore, db: sa.Engine, statement: str
) -> None:
    _refused(full, db, statement)


@pytest.mark.parametrize("statement", SQLITE_ONLY)
def test_sqlite_settings_attach_extensions_and_cte_writes_are_refused(
    tmp_path: Path, statement: str
) -> None:
    with StateStore(tmp_path / "s.db") as store:
        store.save("p", {"x": 1})
        engine = sa.create_engine(store.url)
        try:
            _refused(store, engine, statement.format(tmp=tmp_path))
        finally:
            engine.dispose()
        assert not (tmp_path / "evil.db").exists()


@pytest.mark.parametrize("statement", POSTGRES_ONLY)
def test_postgresql_cte_writes_and_side_effects_are_refused(
    postgres_url: str, statement: str
) -> None:
    with StateStore(postgres_url) as store:
        store.save("p", {"x": 1})
        engine = sa.create_engine(store.url)
        try:
            _refused(store, engine, statement, (ReadOnlyError, InvalidInputError))
        finally:
            engine.dispose()


def test_query_only_off_then_a_write_is_refused(full: StateStore, db: sa.Engine) -> None:
    # Two statements in one call are refused outright (no "; COMMIT; DROP ...").
    _refused(
        full, db, "PRAGMA query_only = 0; DELETE FROM versions", (InvalidInputError, ReadOnlyError)
    )
    if full.dialect == "sqlite":
        _refused(full, db, "PRAGMA query_only = 0")
    _refused(full, db, "DELETE FROM versions")  # and the next call is refused as well


@pytest.mark.parametrize(
    ("statement", "first_is_refused"),
    [
        ("SELECT 1; SELECT 2", False),
        ("SELECT 1 FROM state_tags; COMMIT; DELETE FROM tags", False),
        ("COMMIT; DELETE FROM tag_events", False),
        ("SELECT 1; DELETE FROM versions", False),
        ("DELETE FROM versions; SELECT 1", True),
    ],
)
def test_multiple_statements_are_refused(
    full: StateStore, db: sa.Engine, statement: str, first_is_refused: bool
) -> None:
    # On PostgreSQL the statement is prepared server-side, which holds one statement only:
    # "COMMIT; DELETE ..." can never end the read-only transaction.
    before = dump(db)
    # A write (or COMMIT) first may be refused as such before the second statement is seen.
    refusals = (
        (InvalidInputError, ReadOnlyError)
        if not statement.startswith("SELECT")
        else (InvalidInputError,)
    )
    with pytest.raises(refusals):
        full.query(statement)
    assert dump(db) == before
    assert full.tags("p") == {"production": 1}


def test_a_runaway_query_is_interrupted(full: StateStore) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        full.query(
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
            "WHERE n < 1000000000) SELECT count(*) FROM c",
            timeout=0.5,
        )
    assert time.monotonic() - started < 5
    assert full.query("SELECT count(*) FROM state_history") == [(2,)]  # still usable


def test_sql_the_database_rejects_is_invalid_input(full: StateStore) -> None:
    with pytest.raises(InvalidInputError):
        full.query("SELECT * FROM no_such_view")
    with pytest.raises(InvalidInputError):
        full.query("")
    with pytest.raises(InvalidInputError):
        full.query("SELECT 1", timeout=0)


# -- PostgreSQL: nothing outside the database either ----------------------------------------

SERVER_FILE_ACCESS = [
    "COPY (SELECT 1) TO '{tmp}/escaped.txt'",
    "COPY (SELECT 1) TO PROGRAM 'touch {tmp}/escaped.txt'",
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT lo_export(0, '{tmp}/escaped.txt')",
    "SELECT set_config('role', 'postgres', true), pg_read_file('/etc/hostname')",
]


@pytest.mark.parametrize("statement", SERVER_FILE_ACCESS)
def test_postgres_query_cannot_touch_server_files(
    postgres_url: str, tmp_path: Path, statement: str
) -> None:
    with StateStore(postgres_url) as store:
        store.save("pipeline", {"prompt": "x"})
        with pytest.raises((ReadOnlyError, InvalidInputError)):
            store.query(statement.format(tmp=tmp_path))
    assert not (tmp_path / "escaped.txt").exists()


def test_postgres_query_refuses_a_superuser_session(postgres_url: str) -> None:
    # The same schema, reached as the server's superuser (MSGFLUX_TEST_POSTGRES_URL's role):
    # a read-only transaction cannot contain such a session, so no user SQL runs in it.
    import os

    from sqlalchemy.engine import make_url

    schema_options = make_url(postgres_url).query["options"]
    superuser = make_url(os.environ["MSGFLUX_TEST_POSTGRES_URL"]).update_query_dict(
        {"options": schema_options}
    )
    with StateStore(postgres_url) as store:
        store.save("pipeline", {"prompt": "x"})
    with StateStore(superuser) as store:
        assert store.load("pipeline") == {"prompt": "x"}  # the rest of the API works
        with pytest.raises(ReadOnlyError, match="superuser"):
            store.query("SELECT count(*) FROM state_values")
