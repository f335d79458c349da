"""Many processes saving to ONE name at once: the history they build must be a chain.

Six spawned writers, on SQLite and PostgreSQL, each round behind a barrier:

* a distinct save each: six new versions, and every version's parent is the
  version before it (on PostgreSQL the head lookup once joined ``versions`` onto
  ``names ... FOR UPDATE``; a writer that waited for the row lock re-read only
  the locked row under READ COMMITTED and got ``parent = NULL``);
* the same content from all six: exactly one new version, returned to all;
* a compare-and-swap race: one winner, and each loser's ``ConflictError``
  names the real version it lost to (once it said "at version None").
"""

from __future__ import annotations

import re

import pytest

from msgflux.store import ConflictError, StateStore

from . import _workers
from ._support import expected_snapshot, state_for
from .conftest import SPAWN, read_report, record, run_processes

WRITERS = 6
ROUNDS = 8


def test_concurrent_saves_to_one_name_form_a_parent_chain(store_url, reports, request):
    StateStore(store_url).close()  # create the schema once, outside the race
    barrier = SPAWN.Barrier(WRITERS)
    run_processes(
        [
            (
                _workers.one_name_writer,
                (store_url, writer, ROUNDS, barrier, str(reports(f"w{writer}"))),
            )
            for writer in range(WRITERS)
        ],
        timeout=240,
    )
    results = [read_report(reports(f"w{writer}")) for writer in range(WRITERS)]
    errors = [error for result in results for error in result["errors"]]
    assert not errors, f"{len(errors)} exception(s) escaped a writer, first:\n{errors[0]}"

    with StateStore(store_url) as store:
        log = store.log("one")[::-1]
        numbers = [version.number for version in log]
        assert numbers == list(range(1, len(log) + 1))
        # Every version's parent is the one before it, never NULL (the bug) nor skipped.
        assert [version.parent for version in log] == [None, *numbers[:-1]]
        by_number = {version.number: version for version in log}

        # Distinct saves: each got a version of its own holding exactly what it saved.
        distinct = [entry for result in results for entry in result["distinct"]]
        assert len(distinct) == WRITERS * ROUNDS
        assert len({entry[0] for entry in distinct}) == WRITERS * ROUNDS
        for number, parent, snapshot, writer, round_ in distinct:
            assert parent == (number - 1 or None)
            assert (
                snapshot
                == by_number[number].snapshot
                == expected_snapshot(state_for(writer, round_))
            )
            assert store.load("one", number) == state_for(writer, round_)

        # Identical saves: one version per round, the same one returned to every writer.
        identical = [entry for result in results for entry in result["identical"]]
        for round_ in range(ROUNDS):
            got = {(number, parent) for r, number, parent, _ in identical if r == round_}
            assert len(got) == 1, f"round {round_}: identical saves made versions {sorted(got)}"
            [(number, parent)] = got
            assert parent == (number - 1 or None)
            assert store.load("one", number) == {"round": round_, "same": True}
        same = [version for version in log if version.message == "same"]
        assert len(same) == ROUNDS

        # Compare-and-swap: one winner per round; each loser names the real head.
        conflicts = [entry for result in results for entry in result["conflicts"]]
        assert len(conflicts) == ROUNDS * (WRITERS - 1)
        for _round, head, message in conflicts:
            assert "None" not in message, message
            found = re.search(r"at version (\d+), not (\d+)", message)
            assert found, message
            assert int(found[1]) in by_number and int(found[1]) > head
            assert int(found[2]) == head
        assert store.verify().ok

    record(
        request,
        f"{WRITERS} writers x {ROUNDS} rounds on one name: {len(log)} versions, "
        f"every parent = number - 1; {WRITERS} identical saves gave 1 version each "
        f"round; {len(conflicts)} ConflictErrors each naming a real version",
    )


def test_conflict_on_a_name_without_versions_names_no_phantom_version(store_url):
    with StateStore(store_url) as store:
        with pytest.raises(ConflictError) as caught:
            store.save("new", {"a": 1}, expected_head=3)
        assert "None" not in str(caught.value)
        assert "'new' has no versions" in str(caught.value)
        assert store.names() == []
