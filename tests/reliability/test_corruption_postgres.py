"""Tampering with a PostgreSQL store is found by ``verify()`` with the name, version and key.

(The API suite covers the SQLite basics.) Each tamper is undone afterwards and
the store verifies clean again, so the report is about that one change.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from msgflux.store import StateStore
from msgflux.store.hashing import value_hash

from ._support import raw_engine
from .conftest import record

pytestmark = pytest.mark.postgres

STATES = [
    {"prompt": "alpha", "tools": ["search"], "temperature": 0.1},
    {"prompt": "alpha two", "tools": ["search"], "temperature": 0.2},
    {"prompt": "alpha three", "tools": ["search"], "temperature": 0.3},
]


def _problems(store: StateStore) -> set[tuple[str, str | None, int | None, str | None]]:
    return {
        (problem.kind, problem.name, problem.version, problem.key)
        for problem in store.verify().problems
    }


def test_tampering_is_reported_with_name_version_and_key(postgres_url, request):
    store = StateStore(postgres_url)
    for state in STATES:
        store.save("pipeline", state)
    snapshot_2 = store.get("pipeline", 2).snapshot
    engine = raw_engine(postgres_url)
    assert store.verify().ok

    def run(sql: str, **params: object) -> None:
        with engine.begin() as connection:
            connection.execute(sa.text(sql), params)

    # 1. one byte of a stored value flipped
    digest = value_hash("alpha two")
    run("UPDATE blobs SET text = 'alphA two' WHERE hash = :h", h=digest)
    assert _problems(store) == {("value", "pipeline", 2, "prompt")}
    run("UPDATE blobs SET text = 'alpha two' WHERE hash = :h", h=digest)
    assert store.verify().ok

    # 2. a span deleted: version 2 loses its prompt (the neighbours name the lost key)
    with engine.connect() as connection:
        saved = (
            connection.execute(
                sa.text(
                    "SELECT s.* FROM spans s JOIN keys k ON k.id = s.key_id "
                    "WHERE k.key = 'prompt' AND s.since = 2"
                )
            )
            .one()
            ._asdict()
        )
    run("DELETE FROM spans WHERE key_id = :k AND since = 2", k=saved["key_id"])
    assert _problems(store) == {("snapshot", "pipeline", 2, "prompt")}
    run(
        "INSERT INTO spans (name_id, key_id, since, until, position, blob_id, origin) "
        "VALUES (:name_id, :key_id, :since, :until, :position, :blob_id, :origin)",
        **saved,
    )
    assert store.verify().ok

    # 3. a snapshot hash changed
    run("UPDATE snapshots SET hash = :bad WHERE hash = :s", bad="0" * 64, s=snapshot_2)
    problems = store.verify().problems
    assert {(problem.kind, problem.name, problem.version) for problem in problems} == {
        ("snapshot", "pipeline", 2)
    }
    assert "snapshot hash mismatch" in problems[0].message
    run("UPDATE snapshots SET hash = :s WHERE hash = :bad", bad="0" * 64, s=snapshot_2)
    assert store.verify().ok
    store.close()
    engine.dispose()
    record(
        request,
        "PostgreSQL: flipped value byte, deleted entry, edited snapshot hash: "
        "each reported with name, version (and key)",
    )
