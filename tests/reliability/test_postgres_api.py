"""The whole StateStore API on PostgreSQL, end to end, with the PostgreSQL-specific guarantees.

The API suite runs per method on both backends; this is the one-pass tour a
user moving from SQLite to a shared PostgreSQL takes: views, the read-only
query (a READ ONLY transaction: writes, DDL, settings and stacked statements
refused), a query timeout, verify, and export/import across backends.
"""

from __future__ import annotations

import pytest

from msgflux.store import (
    InvalidInputError,
    QueryTimeout,
    ReadOnlyError,
    StateStore,
    VersionNotFound,
)

from ._support import dump, raw_engine
from .conftest import record

pytestmark = pytest.mark.postgres


def test_full_api_tour_on_postgresql(postgres_url, tmp_path, request):
    store = StateStore(postgres_url)
    assert store.dialect == "postgresql"
    v1 = store.save(
        "pipeline",
        {"prompt": "Be brief.", "k": 3},
        message="baseline",
        metadata={"score": 0.71},
        author="ana",
    )
    v2 = store.save("pipeline", {"prompt": "Be briefer.", "k": 3, "tools": ["search"]})
    assert (v1.number, v2.number, v2.parent) == (1, 2, 1)
    assert store.save("pipeline", {"prompt": "Be briefer.", "k": 3, "tools": ["search"]}) == v2
    store.tag("pipeline", 1, "production")
    assert store.get("pipeline", "production").number == 1
    assert store.get("pipeline", v2.snapshot[:8]).number == 2
    assert store.diff("pipeline", 1, 2).keys == ["prompt", "tools"]
    v3 = store.rollback("pipeline", "production")
    assert store.load("pipeline", v3.number) == store.load("pipeline", 1)
    assert [version.number for version in store.log("pipeline", key="tools")] == [3, 2]

    # views
    history = store.query("SELECT name, version, key_count FROM state_history ORDER BY version")
    assert history.columns == ["name", "version", "key_count"]
    assert list(history) == [("pipeline", 1, 2), ("pipeline", 2, 3), ("pipeline", 3, 2)]
    assert store.query(
        "SELECT value FROM state_values WHERE version = %s AND key = %s", [2, "prompt"]
    ) == [("Be briefer.",)]
    assert ("pipeline", 2, "tools", "added") in store.query(
        "SELECT name, version, key, change FROM state_changes"
    )
    assert store.query("SELECT tag, version FROM state_tags") == [("production", 1)]
    assert len(store.query("SELECT * FROM state_tag_history")) == 1

    # the read-only query: the database refuses, whatever the SQL tries
    engine = raw_engine(postgres_url)
    before = dump(engine)
    for sql in [
        "DELETE FROM names",
        "UPDATE versions SET message = 'x'",
        "CREATE TABLE evil (x int)",
        "DROP VIEW state_history",
        "WITH d AS (DELETE FROM tags RETURNING *) SELECT * FROM d",
        "SELECT set_config('default_transaction_read_only', 'off', false); DELETE FROM names",
    ]:
        with pytest.raises((ReadOnlyError, InvalidInputError)):
            store.query(sql)
    with pytest.raises(ReadOnlyError):
        store.query("SELECT nextval('names_id_seq')")
    with pytest.raises(QueryTimeout):
        store.query("SELECT pg_sleep(5)", timeout=0.3)
    assert dump(engine) == before

    # verify, prune, gc
    assert store.verify().ok
    assert store.prune("pipeline", keep_last=1) == [2]
    assert store.gc().snapshots == 1
    with pytest.raises(VersionNotFound):
        store.get("pipeline", 2)

    # export/import: PostgreSQL -> SQLite -> PostgreSQL, hashes kept
    bundle = tmp_path / "bundle.json"
    assert store.export_bundle(bundle) == {"pipeline": 2}
    with StateStore(tmp_path / "copy.db") as local:
        assert local.import_bundle(bundle) == {"pipeline": [1, 3]}
        assert local.get("pipeline", 3).snapshot == store.get("pipeline", 3).snapshot
        local.save("pipeline", {"prompt": "from the laptop"})
        local.copy_to(store)
    assert store.get("pipeline").number == 4
    assert store.load("pipeline") == {"prompt": "from the laptop"}
    assert store.import_bundle(bundle) == {"pipeline": []}
    assert store.verify().ok
    store.close()
    engine.dispose()
    record(
        request,
        "save/get/log/diff/tag/rollback/views/read-only query/timeout/prune/gc/"
        "verify/export/import/copy_to on PostgreSQL: ok",
    )
