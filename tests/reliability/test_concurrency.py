"""Many processes writing one store at once: numbering, content, compare-and-swap, readers.

8 spawned processes x 200 distinct state dicts each, on SQLite and PostgreSQL,
first all to one name, then spread over 8 names, while a reader process
checks every version it sees. Lock waits are retried inside the store; no
exception may reach a writer.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from msgflux.store import StateStore

from . import _workers
from ._support import expected_snapshot, raw_engine, state_for, structure_problems
from .conftest import SPAWN, read_report, record, run_processes

WRITERS = 8
SAVES = 200


@pytest.mark.slow
@pytest.mark.parametrize("names", [1, 8], ids=["one-name", "eight-names"])
def test_writers_get_gapless_numbers_and_exact_content(store_url, names, reports, request):
    """8 writers x 200 saves: 1,600 versions, numbered without gap, each loading what was saved."""
    StateStore(store_url).close()  # create the schema once, outside the race
    barrier = SPAWN.Barrier(WRITERS)
    stop = SPAWN.Event()
    reader = SPAWN.Process(target=_workers.reader, args=(store_url, stop, str(reports("reader"))))
    reader.start()
    started = time.monotonic()
    run_processes(
        [
            (
                _workers.stress_writer,
                (store_url, writer, SAVES, names, barrier, str(reports(f"w{writer}"))),
            )
            for writer in range(WRITERS)
        ],
        timeout=300,
    )
    elapsed = time.monotonic() - started
    stop.set()
    reader.join(60)
    assert reader.exitcode == 0

    results = [read_report(reports(f"w{writer}")) for writer in range(WRITERS)]
    errors = [error for result in results for error in result["errors"]]
    assert not errors, f"{len(errors)} exception(s) escaped a writer, first:\n{errors[0]}"
    saved = [tuple(entry) for result in results for entry in result["saved"]]
    assert len(saved) == WRITERS * SAVES

    with StateStore(store_url) as store:
        by_name = defaultdict(list)
        for name, number, snapshot, writer, index in saved:
            by_name[name].append(number)
            assert snapshot == expected_snapshot(state_for(writer, index))
        for name, numbers in by_name.items():
            assert sorted(numbers) == list(range(1, len(numbers) + 1)), (
                f"gap or duplicate in {name}"
            )
            assert [version.number for version in store.log(name)] == sorted(numbers, reverse=True)
        assert sum(len(numbers) for numbers in by_name.values()) == WRITERS * SAVES
        for name, number, snapshot, writer, index in saved:
            version = store.get(name, number)
            assert version.snapshot == snapshot
            assert store.load(name, number) == state_for(writer, index)
        report = store.verify()
        assert report.ok, str(report)
    engine = raw_engine(store_url)
    assert structure_problems(engine) == []
    engine.dispose()

    seen = read_report(reports("reader"))
    assert not seen["errors"], seen["errors"][:3]
    assert seen["checked"] > 0
    slowest_save = max(result["slowest"] for result in results)
    record(
        request,
        f"{WRITERS} writers x {SAVES} saves into {names} name(s): "
        f"{len(saved)} versions in {elapsed:.1f} s ({len(saved) / elapsed:.0f}/s), "
        f"slowest save {slowest_save:.2f} s; reader checked {seen['checked']} "
        f"versions, slowest read {seen['slowest']:.2f} s; 0 errors",
    )
    # Readers never wait for the write lock: a read is never as slow as the
    # longest lock queue the writers saw.
    assert seen["slowest"] < 5.0


@pytest.mark.slow
def test_expected_head_lets_exactly_one_racer_win(store_url, reports, request):
    """N writers read head H, then all save with expected_head=H at once: one wins per round."""
    racers, rounds = 8, 10
    with StateStore(store_url) as store:
        store.save("cas", {"writer": -1, "round": -1})
    barrier = SPAWN.Barrier(racers)
    run_processes(
        [
            (
                _workers.cas_writer,
                (store_url, writer, rounds, barrier, str(reports(f"cas{writer}"))),
            )
            for writer in range(racers)
        ],
        timeout=180,
    )
    results = [read_report(reports(f"cas{writer}")) for writer in range(racers)]
    assert not [error for result in results for error in result["errors"]]
    winners = {}
    for writer, result in enumerate(results):
        for round_, head, outcome, number in result["outcomes"]:
            assert head == round_ + 1, "racers read the head after the previous round finished"
            if outcome == "ok":
                assert round_ not in winners, f"two winners in round {round_}"
                winners[round_] = (writer, number)
    assert sorted(winners) == list(range(rounds)), "a round without a winner"
    with StateStore(store_url) as store:
        assert store.get("cas").number == rounds + 1
        for round_, (writer, number) in winners.items():
            assert number == round_ + 2
            assert store.load("cas", number) == {"writer": writer, "round": round_}
    record(
        request,
        f"{racers} racers x {rounds} rounds: exactly 1 winner and "
        f"{racers - 1} ConflictError per round",
    )
