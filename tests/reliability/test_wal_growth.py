"""SQLite: a WAL that grew under a long-lived reader shrinks again once readers allow.

While a reader holds an old snapshot, SQLite cannot reset the WAL, so saves
grow it (205 MB was measured); without a truncating checkpoint it then stayed
that size for as long as the store was open. Saves must never wait for the
reader, and after it finishes the next save checkpoints and truncates the WAL.
"""

from __future__ import annotations

import os
import sqlite3

from msgflux.store import StateStore
from msgflux.store.engine import WAL_LIMIT_BYTES

from .conftest import record


def _state(index: int) -> dict[str, str]:
    return {"index": str(index), "weights": f"{index:08d}" * 125_000}  # 1 MB, distinct


def test_wal_shrinks_after_a_long_lived_reader_finishes(sqlite_path, request):
    store = StateStore(sqlite_path, lock_timeout=5)
    store.save("big", _state(0))
    wal = sqlite_path + "-wal"
    reader = sqlite3.connect(sqlite_path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM versions").fetchone() == (1,)  # holds a snapshot

    count = WAL_LIMIT_BYTES // 1_000_000 + 8
    for index in range(1, count):
        store.save("big", _state(index))  # never waits for the reader (lock_timeout=5)
    grown = os.path.getsize(wal)
    assert grown > WAL_LIMIT_BYTES
    # The reader still sees its snapshot: the checkpoint never pulled frames from under it.
    assert reader.execute("SELECT count(*) FROM versions").fetchone() == (1,)
    reader.rollback()
    reader.close()

    store.save("big", _state(count))
    shrunk = os.path.getsize(wal)
    assert shrunk < WAL_LIMIT_BYTES // 4, f"WAL still {shrunk} bytes after the reader finished"
    assert store.load("big", 1) == _state(0)
    assert store.load("big") == _state(count)
    assert store.verify().ok
    store.close()
    record(
        request,
        f"WAL under a long-lived reader: grew to {grown / 2**20:.0f} MiB, "
        f"{shrunk / 2**20:.1f} MiB after the next save once the reader finished",
    )
