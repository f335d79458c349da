"""Reads during prune + gc see one whole state: each multi-statement read is one snapshot.

A writer process loops save -> move ``production`` -> ``prune(keep_last=1)`` ->
``gc()`` on one name while reader processes load by tag and by "latest",
diff against the parent, verify, and export bundles that a fresh SQLite store
must import. On PostgreSQL, under READ COMMITTED, a load could resolve the tag,
then find the version's content already collected (``{}``); verify reported
corruption that was not there; an exported bundle failed to import. Reads now
run in one REPEATABLE READ READ ONLY transaction (SQLite: one WAL snapshot).
"""

from __future__ import annotations

import pytest

from msgflux.store import StateStore

from . import _workers
from .conftest import SPAWN, read_report, record, run_processes

SECONDS = 10


@pytest.mark.slow
def test_reads_during_prune_and_gc_see_whole_states(store_url, reports, tmp_path, request):
    with StateStore(store_url) as store:
        store.save("p", _workers.round_state(0))
        store.tag("p", 1, "production")
    ready = SPAWN.Barrier(4)
    folder = tmp_path / "bundles"
    folder.mkdir()
    run_processes(
        [
            (_workers.prune_gc_writer, (store_url, SECONDS, ready, str(reports("writer")))),
            *[
                (
                    _workers.snapshot_reader,
                    (store_url, "load", SECONDS, ready, str(folder), str(reports(f"load{index}"))),
                )
                for index in range(2)
            ],
            (
                _workers.snapshot_reader,
                (store_url, "verify", SECONDS, ready, str(folder), str(reports("verify"))),
            ),
        ],
        timeout=SECONDS + 120,
    )
    writer = read_report(reports("writer"))
    assert not writer["errors"], writer["errors"][0]
    assert writer["rounds"] > 10
    results = {label: read_report(reports(label)) for label in ("load0", "load1", "verify")}
    for label, result in results.items():
        assert not result["problems"], (
            f"{label}: {len(result['problems'])} problems, first:\n{result['problems'][0]}"
        )
        assert result["reads"] > 0, label
    with StateStore(store_url) as store:
        assert store.verify().ok
        head = store.get("p")
        assert store.load("p") == _workers.round_state(writer["rounds"] - 1)
        assert store.tags("p") == {"production": head.number}
    loads = results["load0"]["reads"] + results["load1"]["reads"]
    record(
        request,
        f"{writer['rounds']} rounds of save + tag + prune + gc while 2 readers made "
        f"{loads} rounds of load-by-tag, load-latest and diff, and 1 made "
        f"{results['verify']['reads']} verify + export + import rounds: "
        "never an empty or partial state, verify clean, every bundle imported",
    )
