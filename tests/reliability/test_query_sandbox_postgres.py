"""``StateStore.query`` on PostgreSQL: only a query runs, it cannot reach other sessions, and
every failure is a ``StoreError``.

A READ ONLY transaction still lets ``ANALYZE`` rewrite a table's statistics
(in place: the rollback does not undo it), ``pg_terminate_backend`` end other
sessions of the same role, and ``COPY ... TO STDOUT`` confuse the driver. The
statement now runs as a cursor's query (the server refuses anything but a
query) after its plan is checked for functions that reach other sessions.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from msgflux.store import DatabaseError, ReadOnlyError, StateStore, StoreError

from ._support import dump, raw_engine
from .conftest import record

pytestmark = pytest.mark.postgres


@pytest.fixture
def seeded(postgres_url: str) -> StateStore:
    store = StateStore(postgres_url)
    for number in range(5):
        store.save("pipeline", {"prompt": f"version {number}"})
    return store


def _reltuples(engine: sa.Engine) -> float:
    with engine.connect() as connection:
        return float(
            connection.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE oid = 'versions'::regclass"
            ).scalar_one()
        )


NOT_QUERIES = [
    "ANALYZE versions",
    "ANALYZE",
    "analyze verbose versions",
    "  ANALYZE versions (number)",
    "VACUUM versions",
    "COPY (SELECT 1) TO STDOUT",
    "COPY versions TO STDOUT",
    "SET search_path = public",
    "SHOW search_path",
    "LISTEN evil",
    "NOTIFY evil",
    "CHECKPOINT",
    "DISCARD ALL",
    "LOAD 'plugin'",
]


def test_statements_that_are_not_queries_are_refused(seeded):
    engine = raw_engine(seeded.url.render_as_string(hide_password=False))
    before, statistics = dump(engine), _reltuples(engine)
    for sql in NOT_QUERIES:
        with pytest.raises(ReadOnlyError, match="only a query may run"):
            seeded.query(sql)
    assert dump(engine) == before
    assert _reltuples(engine) == statistics  # -1: versions was never analysed
    engine.dispose()
    assert seeded.query("SELECT count(*) FROM state_history") == [(5,)]
    seeded.close()


SIGNALS = [
    "SELECT pg_terminate_backend(%s)",
    "SELECT pg_cancel_backend(%s)",
    "SELECT * FROM pg_catalog.PG_TERMINATE_BACKEND(%s)",
    'SELECT "pg_terminate_backend"(pid) FROM pg_stat_activity WHERE pid = %s',
    "SELECT (SELECT pg_cancel_backend(%s)) AS x",
    "SELECT query_to_xml('SELECT pg_terminate_backend(' || %s || ')', true, false, '')",
    "SELECT count(*) FROM state_history WHERE version > 0 OR pg_terminate_backend(%s)",
]


def test_a_query_cannot_signal_other_sessions(seeded, postgres_url):
    other = raw_engine(postgres_url)  # the store's own role: signalling it is allowed by default
    with other.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        for sql in SIGNALS:
            with pytest.raises(ReadOnlyError, match="may not be called"):
                seeded.query(sql, [pid])
        assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1  # still alive
    other.dispose()
    seeded.close()


def test_copy_and_a_lost_connection_raise_store_errors(seeded, postgres_url, request):
    with pytest.raises(StoreError):
        seeded.query("COPY (SELECT 1) TO STDOUT")
    # The query's own connection is terminated by another session while it runs.
    killer = raw_engine(postgres_url)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            seeded.query("SELECT pg_sleep(30), count(*) FROM state_history", timeout=60)
        except BaseException as error:  # noqa: BLE001 - checked below
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    terminated = 0
    with killer.connect() as connection:
        for _ in range(200):
            # Only this test's query: it holds a lock on this schema's versions table.
            terminated = connection.exec_driver_sql(
                "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a "
                "WHERE a.wait_event = 'PgSleep' AND a.pid IN (SELECT l.pid FROM pg_locks l "
                "WHERE l.relation = 'versions'::regclass)"
            ).scalar_one()
            if terminated:
                break
            time.sleep(0.05)
    killer.dispose()
    thread.join(60)
    assert terminated == 1, outcome
    assert len(outcome) == 1 and isinstance(outcome[0], DatabaseError), outcome
    assert "connection" in str(outcome[0])
    assert seeded.query("SELECT count(*) FROM state_history") == [(5,)]  # the store recovers
    seeded.close()
    record(
        request,
        "query() on PostgreSQL: ANALYZE, COPY, SET and other non-queries refused "
        "with statistics unchanged; pg_terminate_backend/pg_cancel_backend (also "
        "via query_to_xml) refused with the target alive; a terminated query "
        "raises DatabaseError",
    )
