"""``StateStore.query`` on SQLite: the time limit holds for any statement, allocation is capped.

The progress handler that enforced ``timeout`` runs every 10,000 virtual-machine
steps; one call of ``hex(randomblob(20000000))`` is a single step that takes
a fifth of a second, so 100 of them ran 20 s under a 1 s limit. A watchdog
thread now interrupts the connection itself. Bounds here are generous (10 s
for a 1 s limit): the point is that the query is interrupted at all.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from msgflux.store import InvalidInputError, QueryTimeout, ReadOnlyError, StateStore

from ._support import dump, raw_engine
from .conftest import record

#: The issue's statement: 100 calls of one expensive function, ~20 s in all.
EXPENSIVE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<100) "
    "SELECT sum(length(hex(randomblob(20000000)))) FROM c"
)


@pytest.fixture
def seeded(sqlite_path: str) -> str:
    with StateStore(sqlite_path) as store:
        store.save("pipeline", {"prompt": "Be brief."})
    return sqlite_path


def test_one_expensive_function_call_is_interrupted_through_the_api(seeded, request):
    with StateStore(seeded) as store:
        started = time.monotonic()
        with pytest.raises(QueryTimeout, match="interrupted after 1 s"):
            store.query(EXPENSIVE, timeout=1)
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"a 1 s query limit took {elapsed:.1f} s"
        assert store.query("SELECT count(*) FROM state_history") == [(1,)]  # still usable
    record(
        request,
        f"100 x hex(randomblob(20 MB)) with timeout=1: QueryTimeout after "
        f"{elapsed:.2f} s (was 20 s, not interrupted)",
    )


def test_one_expensive_function_call_is_interrupted_from_the_command_line(seeded, request):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "msgflux.store", "--db", seeded, "sql", EXPENSIVE, "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert "interrupted after 1 s" in done.stderr
    assert elapsed < 10, f"sql --timeout 1 took {elapsed:.1f} s"
    record(
        request,
        f"sql --timeout 1 on the same statement: exit 3 after {elapsed:.2f} s "
        "(including interpreter start)",
    )


def test_a_query_cannot_build_a_huge_value(seeded):
    engine = raw_engine(seeded)
    before = dump(engine)
    with StateStore(seeded) as store:
        for sql in (
            "SELECT length(randomblob(1000000000))",
            "SELECT length(zeroblob(500000000))",
            "SELECT length(hex(zeroblob(100000000)))",
        ):
            with pytest.raises(InvalidInputError, match="at most 128 MiB"):
                store.query(sql, timeout=30)
        # Within the cap nothing changes.
        assert store.query("SELECT length(zeroblob(1000000))") == [(1000000,)]
    assert dump(engine) == before
    engine.dispose()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT fts3_tokenizer('simple')",
        "SELECT FTS3_Tokenizer('porter')",
        "SELECT hex(fts3_tokenizer('unicode61'))",
    ],
)
def test_fts3_tokenizer_is_not_callable(seeded, sql):
    # Plain SQLite returns the tokenizer's raw pointer (an address leak) and, with
    # two arguments, installs one from a pointer.
    with StateStore(seeded) as store, pytest.raises(ReadOnlyError, match="(?i)fts3_tokenizer"):
        store.query(sql)


@pytest.mark.parametrize("seconds", [1e12, 1e300])
def test_huge_timeouts_mean_no_limit(store_url, seconds, monkeypatch):
    # The watchdog's timer (and PostgreSQL's integer settings) overflowed on such numbers.
    import threading

    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    with StateStore(store_url, lock_timeout=seconds, statement_timeout=seconds) as store:
        store.save("pipeline", {"prompt": "Be brief."})
        assert store.query("SELECT count(*) FROM state_history", timeout=seconds) == [(1,)]
        assert store.load("pipeline") == {"prompt": "Be brief."}
    time.sleep(0.2)
    assert crashed == []
