"""Random sequences of store operations against an in-memory model (SQLite, for speed).

After every step: each surviving version loads to the model's content, its
snapshot is the independently computed hash, tags match, blame names the
model's setter of every key, the ``state_values``, ``state_changes`` and
``state_blame`` views hold exactly the model's rows and ``verify()`` finds
nothing wrong. An ``import`` rule copies the whole store through a bundle into
a fresh one, which must then match the model too.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from store_testkit import expected_snapshot, expected_value_hash

from msgflux.store import StateStore

NAMES = st.sampled_from(["pipeline", "agent"])
TAGS = st.sampled_from(["production", "staging", "canary"])
KEYS = st.sampled_from(["prompt", "analyzer.instructions", "retriever.top_k", "cfg"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.sampled_from(["", "a", "Be brief.", "line\nline", "1", "é"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
    ),
    max_leaves=4,
)
STATES = st.dictionaries(KEYS, VALUES, max_size=4)


def _stored_text(value: Any) -> str:
    if type(value) is str:
        return value
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="msgflux-sm-"))
        self.store = StateStore(self.folder / "store.db")
        # name -> {number: state}; name -> last number handed out; name -> {tag: number}
        self.versions: dict[str, dict[int, dict[str, Any]]] = {}
        self.heads: dict[str, int] = {}
        self.tags: dict[str, dict[str, int]] = {}
        self.imports = 0
        self.every: dict[str, dict[int, dict[str, Any]]] = {}  # pruned versions too

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize(state=STATES)
    def first_save(self, state: dict[str, Any]) -> None:
        self.save("pipeline", state)

    def _expected_changes_and_blame(self) -> tuple[list[Any], list[Any]]:
        return _model_changes_and_blame(self.versions, self.every)

    def _latest(self, name: str) -> dict[str, Any] | None:
        if name not in self.versions:
            return None
        return self.versions[name][self.heads[name]]

    def _append(self, name: str, state: dict[str, Any], returned: Any) -> None:
        latest = self._latest(name)
        if latest is not None and expected_snapshot(latest) == expected_snapshot(state):
            assert returned.number == self.heads[name]  # nothing written
            return
        number = self.heads.get(name, 0) + 1
        assert returned.number == number
        assert returned.parent == self.heads.get(name)
        self.versions.setdefault(name, {})[number] = dict(state)
        self.every.setdefault(name, {})[number] = dict(state)
        self.heads[name] = number
        self.tags.setdefault(name, {})

    @rule(name=NAMES, state=STATES)
    def save(self, name: str, state: dict[str, Any]) -> None:
        self._append(name, state, self.store.save(name, state))

    @precondition(lambda self: self.versions)
    @rule(data=st.data())
    def rollback(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.versions)))
        number = data.draw(st.sampled_from(sorted(self.versions[name])))
        self._append(name, self.versions[name][number], self.store.rollback(name, number))

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), tag=TAGS)
    def tag(self, data: st.DataObject, tag: str) -> None:
        name = data.draw(st.sampled_from(sorted(self.versions)))
        number = data.draw(st.sampled_from(sorted(self.versions[name])))
        assert self.store.tag(name, number, tag).number == number
        self.tags[name][tag] = number

    @precondition(lambda self: any(self.tags.values()))
    @rule(data=st.data())
    def untag(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(n for n, t in self.tags.items() if t)))
        tag = data.draw(st.sampled_from(sorted(self.tags[name])))
        assert self.store.untag(name, tag) == self.tags[name].pop(tag)

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), keep_last=st.integers(1, 3))
    def prune(self, data: st.DataObject, keep_last: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.versions)))
        numbers = sorted(self.versions[name], reverse=True)
        tagged = set(self.tags[name].values())
        doomed = sorted(n for n in numbers[keep_last:] if n not in tagged)
        assert self.store.prune(name, keep_last=keep_last) == doomed
        for number in doomed:
            del self.versions[name][number]

    @rule()
    def gc(self) -> None:
        self.store.gc()

    @precondition(lambda self: self.versions)
    @rule()
    def export_and_import(self) -> None:
        """The whole store through a bundle into a fresh store, which replaces it."""
        self.imports += 1
        bundle = self.folder / f"b{self.imports}.jsonl"
        self.store.export_bundle(bundle)
        fresh = StateStore(self.folder / f"import{self.imports}.db")
        copied = fresh.import_bundle(bundle)
        assert {name: sorted(numbers) for name, numbers in copied.items()} == {
            name: sorted(versions) for name, versions in self.versions.items()
        }
        self.store.close()
        self.store = fresh

    @invariant()
    def store_matches_the_model(self) -> None:
        store = self.store
        assert store.names() == sorted(self.versions)
        expected_rows = []
        for name, versions in self.versions.items():
            log = store.log(name)
            assert [v.number for v in log] == sorted(versions, reverse=True)
            assert store.tags(name) == dict(sorted(self.tags[name].items()))
            for version in log:
                state = versions[version.number]
                assert version.snapshot == expected_snapshot(state)
                assert sorted(version.tags) == sorted(
                    tag for tag, number in self.tags[name].items() if number == version.number
                )
                loaded = store.load(name, version.number)
                assert list(loaded) == list(state)
                assert {k: expected_value_hash(v) for k, v in loaded.items()} == {
                    k: expected_value_hash(v) for k, v in state.items()
                }
                expected_rows += [
                    (name, version.number, key, _stored_text(value), expected_value_hash(value))
                    for key, value in state.items()
                ]
        rows = store.query("SELECT name, version, key, value, value_hash FROM state_values")
        assert sorted(rows) == sorted(expected_rows)
        changes, blame = self._expected_changes_and_blame()
        assert (
            sorted(
                store.query(
                    "SELECT name, version, key, change, old_value, new_value FROM state_changes"
                )
            )
            == changes
        )
        assert (
            sorted(store.query("SELECT name, version, key, since_version FROM state_blame"))
            == blame
        )
        for name, versions in self.versions.items():
            head = max(versions)
            assert sorted((line.key, line.version) for line in store.blame(name)) == sorted(
                (key, since) for (n, number, key, since) in blame if n == name and number == head
            )
        report = store.verify()
        assert report.ok, str(report)


def _changes_between(
    name: str, number: int, old: dict[str, Any] | None, new: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """The documented ``state_changes`` rows of a version against an earlier version's content."""
    old = old or {}
    rows = []
    for key, value in new.items():
        if key not in old:
            rows.append((name, number, key, "added", None, _stored_text(value)))
        elif expected_value_hash(old[key]) != expected_value_hash(value):
            rows.append((name, number, key, "changed", _stored_text(old[key]), _stored_text(value)))
    rows += [
        (name, number, key, "removed", _stored_text(value), None)
        for key, value in old.items()
        if key not in new
    ]
    return rows


def _model_changes_and_blame(
    versions_of: dict[str, dict[int, dict[str, Any]]], every: dict[str, dict[int, dict[str, Any]]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    changes: list[tuple[Any, ...]] = []
    blame: list[tuple[Any, ...]] = []
    for name, versions in versions_of.items():
        history = every[name]  # every version ever saved, pruned ones included
        for number, state in versions.items():
            # against the parent, or the nearest surviving ancestor if it was pruned
            earlier = [n for n in versions if n < number]
            against = max(earlier) if earlier else None
            changes += _changes_between(name, number, versions[against] if against else None, state)
            for key, value in state.items():
                since = number  # walk back while the key held this very value
                while (
                    since - 1 in history
                    and key in history[since - 1]
                    and expected_value_hash(history[since - 1][key]) == expected_value_hash(value)
                ):
                    since -= 1
                blame.append((name, number, key, min(n for n in versions if n >= since)))
    return sorted(changes), sorted(blame)


StoreMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_store_state_machine = StoreMachine.TestCase
