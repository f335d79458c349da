"""``blame`` and ``show --at`` from the command line (both backends).

History (``build_history``): pipeline 1 (ana), 2 (ana, instructions changed,
retriever.k added), 3 (bo, instructions changed, temperature removed);
production -> 2.
"""

from __future__ import annotations

import json
from datetime import timedelta

from msgflux.store import StateStore


def test_blame_names_who_set_each_key(history, cli_all) -> None:  # noqa: ANN001
    latest, production, one, piped, missing, bad_ref = cli_all(
        [
            ("blame", "pipeline", "--json"),
            ("blame", "pipeline", "production", "--json"),
            ("blame", "pipeline", "--key", "retriever.k", "--json"),
            ("blame", "pipeline"),
            ("blame", "pipeline", "--key", "retriever.kk"),
            ("blame", "pipeline", "9"),
        ],
        db=history,
    )
    assert latest.code == production.code == one.code == piped.code == 0, latest.err
    rows = json.loads(latest.out)
    assert [(row["key"], row["version"], row["author"], row["message"]) for row in rows] == [
        ("analyzer.instructions", 3, "bo", "drop temperature"),
        ("retriever.k", 2, "ana", "shorter prompt"),
    ]
    assert {row["key"]: row["version"] for row in json.loads(production.out)} == {
        "analyzer.instructions": 2,
        "analyzer.temperature": 1,
        "retriever.k": 2,
    }
    assert [row["key"] for row in json.loads(one.out)] == ["retriever.k"]
    # piped: one tab-separated line per key, version first
    assert [line.split("\t")[0::3] for line in piped.out.splitlines()] == [
        ["3", "analyzer.instructions"],
        ["2", "retriever.k"],
    ]
    assert (
        missing.code == 3
        and "has no key 'retriever.kk' (did you mean 'retriever.k'?)" in missing.err
        and missing.out == ""
    )
    assert bad_ref.code == 3 and "version '9' of 'pipeline' not found" in bad_ref.err


def test_show_at_a_time_prints_the_version_latest_then(history, cli) -> None:  # noqa: ANN001
    with StateStore(history) as store:
        second = store.get("pipeline", 2).created_at
        first = store.get("pipeline", 1).created_at
    between = (second + timedelta(microseconds=1)).isoformat()
    shown = cli("show", "pipeline", "--at", between, "--json", db=history)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["version"]["number"] == 2
    # no offset means UTC
    naive = (second.replace(tzinfo=None) + timedelta(microseconds=1)).isoformat()
    assert (
        json.loads(cli("show", "pipeline", "--at", naive, "--json", db=history).out)["version"][
            "number"
        ]
        == 2
    )
    early = cli("show", "pipeline", "--at", (first - timedelta(days=1)).isoformat(), db=history)
    assert early.code == 3 and "had no versions at" in early.err and early.out == ""
    both = cli("show", "pipeline", "2", "--at", between, db=history)
    assert both.code == 2 and "give VERSION or --at, not both" in both.err
    garbled = cli("show", "pipeline", "--at", "last tuesday", db=history)
    assert garbled.code == 2 and "is not an ISO time" in garbled.err
