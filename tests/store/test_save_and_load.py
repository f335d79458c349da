"""Saving: the README usage, the Version record, exact hashes and exact round trips."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from store_testkit import (
    Pipeline,
    dump_store,
    expected_snapshot,
    expected_value_hash,
    sql,
)

from msgflux.store import ChangeSummary, InvalidInputError, StateStore, Version


def test_readme_usage_versions_a_module(store: StateStore, pipeline: Pipeline) -> None:
    v1 = store.save("pipeline", pipeline, message="baseline", metadata={"score": 0.71})
    pipeline.analyzer.instructions.data = "Answer in one sentence."
    v2 = store.save("pipeline", pipeline, message="shorter", author="ana", metadata={"score": 0.78})
    pipeline.retriever.top_k = 8
    v3 = store.save("pipeline", pipeline.state_dict(), message="wider")

    assert [v1.number, v2.number, v3.number] == [1, 2, 3]
    assert [v1.parent, v2.parent, v3.parent] == [None, 1, 2]
    assert store.load("pipeline", 1)["analyzer.instructions"] == "Be helpful and concise"
    assert store.load("pipeline")["analyzer.instructions"] == "Answer in one sentence."
    assert store.load("pipeline") == pipeline.state_dict()
    assert list(store.load("pipeline")) == list(pipeline.state_dict())  # saved key order

    fresh = Pipeline()
    version = store.load_into(fresh, "pipeline", 2)
    assert version == store.get("pipeline", 2)
    assert fresh.analyzer.instructions.data == "Answer in one sentence."
    assert fresh.state_dict() == store.load("pipeline", 2)
    assert store.names() == ["pipeline"]


def test_a_plain_dict_can_be_saved(store: StateStore) -> None:
    version = store.save("config", {"model": "small", "temperature": 0.2})
    assert version.number == 1
    assert store.load("config") == {"model": "small", "temperature": 0.2}


def test_version_numbers_are_contiguous_per_name(store: StateStore) -> None:
    numbers = [store.save("a", {"step": step}).number for step in range(5)]
    other = [store.save("b", {"step": step}).number for step in range(3)]
    assert numbers == [1, 2, 3, 4, 5]
    assert other == [1, 2, 3]
    assert [version.number for version in store.log("a")] == [5, 4, 3, 2, 1]


def test_version_has_exactly_the_documented_attributes(store: StateStore) -> None:
    before = datetime.now(UTC)
    store.save("p", {"x": 1})
    version = store.save(
        "p", {"x": 2}, message="second", author="ana", metadata={"score": 0.5, "tags": ["a"]}
    )
    after = datetime.now(UTC)

    assert [field.name for field in dataclasses.fields(Version)] == [
        "name",
        "number",
        "snapshot",
        "parent",
        "created_at",
        "message",
        "author",
        "metadata",
        "tags",
        "created",
        "changes",
    ]
    assert version.created and version.changes == ChangeSummary(changed=("x",))
    assert version.name == "p"
    assert version.number == 2
    assert version.snapshot == expected_snapshot({"x": 2})
    assert version.parent == 1
    assert version.created_at.tzinfo is not None
    assert version.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= version.created_at <= after + timedelta(seconds=1)
    assert version.message == "second"
    assert version.author == "ana"
    assert type(version.metadata) is dict and version.metadata == {"score": 0.5, "tags": ["a"]}
    assert version.tags == ()
    store.tag("p", 2, "production")
    assert store.get("p", 2).tags == ("production",)
    assert isinstance(store.get("p", 2).tags, tuple)


def test_version_is_immutable(store: StateStore) -> None:
    version = store.save("p", {"x": 1}, metadata={"score": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.number = 7  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.message = "changed"  # type: ignore[misc]
    version.metadata["score"] = 2  # a copy: the store is unchanged
    assert store.get("p", 1).metadata == {"score": 1}


def test_created_at_is_utc_whatever_the_session_time_zone(postgres_url: str) -> None:
    # A PostgreSQL session in another time zone hands back local times.
    with StateStore(postgres_url + "%20-ctimezone%3DAsia/Kolkata") as store:
        version = store.save("p", {"x": 1})
        store.tag("p", 1, "prod")
        assert version.created_at.utcoffset() == timedelta(0)
        assert store.get("p", 1).created_at.utcoffset() == timedelta(0)
        assert store.log("p")[0].created_at.utcoffset() == timedelta(0)
        assert store.tag_history("p")[0].moved_at.utcoffset() == timedelta(0)


# -- hashes ------------------------------------------------------------------------------------

STATE: dict[str, Any] = {
    "prompt": "Be brief. ünïcødé ✓",
    "count": 3,
    "ratio": 0.25,
    "flag": False,
    "nothing": None,
    "items": [1, "two", 3.0, [True]],
    "config": {"b": 1, "a": {"nested": "yes"}},
}


def test_snapshot_hash_is_exactly_the_documented_rule(store: StateStore) -> None:
    version = store.save("p", STATE)
    assert version.snapshot == expected_snapshot(STATE)
    assert store.get("p", 1).snapshot == expected_snapshot(STATE)
    # Key order does not change the identity of a state dict.
    reordered = dict(reversed(list(STATE.items())))
    assert store.save("q", reordered).snapshot == version.snapshot


def test_value_hash_column_is_exactly_the_documented_rule(store: StateStore) -> None:
    store.save("p", STATE)
    rows = store.query(
        sql(store, "SELECT key, value_hash FROM state_values WHERE name = ?"), ("p",)
    )
    assert dict(rows) == {key: expected_value_hash(value) for key, value in STATE.items()}


def test_int_float_and_bool_hash_differently(store: StateStore) -> None:
    snapshots = {
        store.save(f"n{index}", {"x": value}).snapshot
        for index, value in enumerate([1, 1.0, True, "1"])
    }
    assert len(snapshots) == 4


# -- exact round trips --------------------------------------------------------------------------


def test_values_round_trip_with_their_types(store: StateStore) -> None:
    state = {
        "int": 1,
        "float": 1.0,
        "bool": True,
        "str": "1",
        "none": None,
        "big": 2**62,
        "negative_zero": -0.0,
        "tiny": 5e-324,
        "empty": "",
        "multi": "line one\nline two\n",
        "list": [1, 1.0, True, "1", None, [], {}],
        "dict": {"z": [1, {"y": 1.5}], "a": {"deep": [False]}},
        "unicode": "日本語 \u2028 🎉",
    }
    store.save("p", state)
    loaded = store.load("p")
    assert loaded == state
    assert list(loaded) == list(state)
    assert type(loaded["int"]) is int
    assert type(loaded["float"]) is float
    assert type(loaded["bool"]) is bool
    assert type(loaded["str"]) is str
    assert [type(item) for item in loaded["list"]] == [
        int,
        float,
        bool,
        str,
        type(None),
        list,
        dict,
    ]
    assert math.copysign(1, loaded["negative_zero"]) == -1
    assert type(loaded["dict"]["z"][1]["y"]) is float
    # The canonical JSON is identical too: no type was lost or changed anywhere.
    assert {k: expected_value_hash(v) for k, v in loaded.items()} == {
        k: expected_value_hash(v) for k, v in state.items()
    }


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("state", "named"),
    [
        ({"ok": 1, "obj": _Opaque()}, "obj"),
        ({"ok": 1, "when": datetime(2024, 1, 1)}, "when"),
        ({"ok": 1, "raw": b"bytes"}, "raw"),
        ({"ok": 1, "pair": (1, 2)}, "pair"),
        ({"ok": 1, "members": {1, 2}}, "members"),
        ({"ok": 1, "score": float("nan")}, "score"),
        ({"ok": 1, "limit": float("inf")}, "limit"),
        ({"ok": 1, "floor": -math.inf}, "floor"),
        ({"ok": 1, "cfg": {"inner": [1, float("nan")]}}, "cfg"),
        ({"ok": 1, "cfg": {1: "int key"}}, "cfg"),
        ({"ok": 1, 7: "x"}, "7"),
        ({"ok": 1, None: "x"}, "None"),
        ({"ok": 1, "": "x"}, "''"),
    ],
)
def test_unstorable_values_and_keys_are_refused_and_nothing_is_written(
    store: StateStore, state: dict[Any, Any], named: str
) -> None:
    store.save("p", {"ok": 0})
    before = dump_store(store)
    with pytest.raises(InvalidInputError) as caught:
        store.save("p", state)
    assert named in str(caught.value)
    with pytest.raises(InvalidInputError):
        store.save("brand-new", state)
    assert dump_store(store) == before
    assert store.names() == ["p"]


def test_an_empty_state_dict_is_a_version_like_any_other(store: StateStore) -> None:
    empty = store.save("p", {})
    assert empty.snapshot == expected_snapshot({})
    assert store.load("p") == {}
    store.save("p", {"x": 1})
    assert store.save("p", {}).snapshot == empty.snapshot
    assert store.diff("p", 2, 3).removed == {"x": 1}
    assert store.verify().ok
