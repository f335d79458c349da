"""Old stores meet new code: upgrade in place, concurrent openers, and a newer schema refused.

(Single head, models matching the DDL and up/down round trips are the API
suite's; these tests cover data surviving an upgrade and the races around it.)
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from msgflux.store import SchemaError, StateStore
from msgflux.store import schema as t
from msgflux.store.hashing import encode_value, value_hash
from msgflux.store.migrate import alembic_config, head_revision

from . import _workers
from ._support import dump, expected_snapshot, raw_engine, structure_problems
from .conftest import SPAWN, read_report, record, run_processes

FIRST = "0001"
# The content table of revisions 0001-0005 (0006 replaced it with key spans).
_ENTRIES = sa.table(
    "entries",
    sa.column("snapshot_id"),
    sa.column("key"),
    sa.column("position"),
    sa.column("blob_id"),
)


def _old_state(name_index: int, number: int) -> dict[str, Any]:
    return {
        "prompt": f"name {name_index} version {number}",
        "temperature": number / 10,
        "shared": "the same in every version",
        "tools": ["search", number],
    }


def _create_at_first_revision(
    url: str, names: int = 3, versions: int = 4
) -> dict[tuple[str, int], dict]:
    """Create the schema at revision 0001 and fill it by plain SQL, as a 0001 release would."""
    engine = raw_engine(url)
    when = datetime(2024, 1, 1, tzinfo=UTC)
    expected: dict[tuple[str, int], dict] = {}
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, FIRST)
        blob_ids: dict[str, int] = {}
        snapshot_ids: dict[str, int] = {}
        for name_index in range(names):
            name = f"old-{name_index}" if name_index else "old"
            name_id = connection.execute(
                sa.insert(t.names).values(name=name, head=versions, created_at=when)
            ).inserted_primary_key[0]
            for number in range(1, versions + 1):
                state = _old_state(name_index, number)
                expected[(name, number)] = state
                snapshot = expected_snapshot(state)
                if snapshot not in snapshot_ids:
                    snapshot_ids[snapshot] = connection.execute(
                        sa.insert(t.snapshots).values(
                            hash=snapshot, key_count=len(state), created_at=when
                        )
                    ).inserted_primary_key[0]
                    for position, (key, value) in enumerate(state.items()):
                        digest = value_hash(value)
                        if digest not in blob_ids:
                            kind, text = encode_value(value)
                            blob_ids[digest] = connection.execute(
                                sa.insert(t.blobs).values(hash=digest, value_type=kind, text=text)
                            ).inserted_primary_key[0]
                        connection.execute(
                            sa.insert(_ENTRIES).values(
                                snapshot_id=snapshot_ids[snapshot],
                                key=key,
                                position=position,
                                blob_id=blob_ids[digest],
                            )
                        )
                connection.execute(
                    sa.insert(t.versions).values(
                        name_id=name_id,
                        number=number,
                        snapshot_id=snapshot_ids[snapshot],
                        parent=number - 1 or None,
                        created_at=when,
                        message=f"v{number}",
                        author="old release",
                        metadata="{}",
                    )
                )
            connection.execute(
                sa.insert(t.tags).values(name_id=name_id, tag="production", version=2)
            )
            connection.execute(
                sa.insert(t.tag_events).values(
                    name_id=name_id,
                    tag="production",
                    version=2,
                    previous_version=None,
                    moved_at=when,
                    author="old release",
                )
            )
        assert (
            connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == FIRST
        )
    engine.dispose()
    return expected


def test_store_at_first_revision_is_upgraded_with_every_version_intact(store_url, request):
    expected = _create_at_first_revision(store_url)
    with StateStore(store_url) as store:
        for (name, number), state in expected.items():
            assert store.load(name, number) == state
            version = store.get(name, number)
            assert version.snapshot == expected_snapshot(state)
            assert version.author == "old release"
        assert store.tags("old") == {"production": 2}
        report = store.verify()
        assert report.ok, str(report)
        # the views that 0002 adds now answer over the old rows
        rows = store.query("SELECT COUNT(*) FROM state_history")
        assert rows == [(len(expected),)]
        store.save("old", {"prompt": "new code"})
        assert store.get("old").number == 5
    engine = raw_engine(store_url)
    with engine.connect() as connection:
        assert (
            connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            == head_revision()
        )
    assert structure_problems(engine) == []
    engine.dispose()
    record(
        request,
        f"0001 store with {len(expected)} versions upgraded to {head_revision()}: "
        "every version loads and hashes exactly",
    )


@pytest.mark.slow
def test_concurrent_openers_of_an_old_store_upgrade_exactly_once(store_url, reports, request):
    processes = 4
    _create_at_first_revision(store_url)
    barrier = SPAWN.Barrier(processes)
    run_processes(
        [
            (_workers.migrator, (store_url, barrier, str(reports(f"m{index}"))))
            for index in range(processes)
        ],
        timeout=120,
    )
    results = [read_report(reports(f"m{index}")) for index in range(processes)]
    assert not [result["error"] for result in results if "error" in result]
    befores = sorted(str(result["before"]) for result in results)
    assert befores.count(FIRST) == 1, befores
    assert befores.count(head_revision()) == processes - 1, befores
    assert all(result["after"] == head_revision() for result in results)
    assert all(result["numbers"] == [4, 3, 2, 1] for result in results)
    record(
        request,
        f"{processes} processes opened a 0001 store at once: befores {befores}, "
        f"all at {head_revision()}",
    )


def _fingerprint(url: str) -> Any:
    if "://" in url:
        engine = raw_engine(url)
        try:
            return dump(engine)
        finally:
            engine.dispose()
    folder = Path(url).parent
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in sorted(os.listdir(folder))
    }


def test_newer_unknown_revision_is_refused_and_not_modified(store_url, request):
    with StateStore(store_url) as store:
        store.save("pipeline", {"prompt": "Be brief."})
    engine = raw_engine(store_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_from_future'")
    engine.dispose()
    before = _fingerprint(store_url)
    for migrate in (True, False):
        with pytest.raises(SchemaError, match="'0099_from_future'.*newer release"):
            StateStore(store_url, migrate=migrate)
        assert _fingerprint(store_url) == before
    record(
        request,
        "stamped '0099_from_future': SchemaError on open (migrate=True and False), "
        "bytes/dump unchanged",
    )
