"""Tags (moves, removals, history, compare-and-swap) and every way of naming a version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count as counter

import pytest
import sqlalchemy as sa
from store_testkit import dump, expected_snapshot

from msgflux.store import (
    ConflictError,
    InvalidInputError,
    NameNotFound,
    StateStore,
    TagEvent,
    VersionNotFound,
)


@pytest.fixture
def three(store: StateStore) -> StateStore:
    for prompt in ("one", "two", "three"):
        store.save("pipeline", {"prompt": prompt})
    return store


def test_tag_loads_and_moves(three: StateStore) -> None:
    assert three.tag("pipeline", 2, "production").number == 2
    assert three.load("pipeline", "production") == {"prompt": "two"}
    assert three.get("pipeline", "production").tags == ("production",)
    moved = three.tag("pipeline", 3, "production", author="ana")
    assert moved.number == 3 and moved.tags == ("production",)
    assert three.load("pipeline", "production") == {"prompt": "three"}
    assert three.get("pipeline", 2).tags == ()
    assert three.tags("pipeline") == {"production": 3}


def test_untag_returns_the_old_target_and_is_recorded(three: StateStore) -> None:
    three.tag("pipeline", 1, "staging")
    assert three.untag("pipeline", "staging", author="bo") == 1
    assert three.tags("pipeline") == {}
    with pytest.raises(VersionNotFound, match="version 'staging' of 'pipeline' not found"):
        three.load("pipeline", "staging")
    with pytest.raises(VersionNotFound, match="tag 'staging' of 'pipeline' not found"):
        three.untag("pipeline", "staging")


def test_tag_history_is_append_only_with_who_when_from_to(three: StateStore) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    three.tag("pipeline", 1, "production", author="ana")
    three.tag("pipeline", 1, "staging")
    three.tag("pipeline", 2, "production", author="bo")
    three.tag("pipeline", 2, "production", author="noop")  # already there: not an event
    three.untag("pipeline", "production", author="cy")
    three.tag("pipeline", 3, "production")
    history = three.tag_history("pipeline")
    assert [(e.tag, e.previous_version, e.version, e.author) for e in history] == [
        ("production", None, 1, "ana"),
        ("staging", None, 1, None),
        ("production", 1, 2, "bo"),
        ("production", 2, None, "cy"),
        ("production", None, 3, None),
    ]
    assert all(isinstance(event, TagEvent) and event.name == "pipeline" for event in history)
    moments = [event.moved_at for event in history]
    assert moments == sorted(moments)
    assert all(m.utcoffset() == timedelta(0) and m >= start for m in moments)
    assert [e.version for e in three.tag_history("pipeline", "production")] == [1, 2, None, 3]
    # Appending only: the earlier events are unchanged by later moves.
    three.tag("pipeline", 1, "production")
    assert three.tag_history("pipeline")[:5] == history


def test_tag_expected_is_a_compare_and_swap(three: StateStore, db: sa.Engine) -> None:
    three.tag("pipeline", 1, "production", expected=None)
    before = dump(db)
    with pytest.raises(ConflictError, match="points at version 1, not 2"):
        three.tag("pipeline", 3, "production", expected=2)
    with pytest.raises(ConflictError, match="points at version 1, not None"):
        three.tag("pipeline", 3, "production", expected=None)
    with pytest.raises(ConflictError, match="points at nothing"):
        three.tag("pipeline", 3, "staging", expected=1)
    with pytest.raises(ConflictError):
        three.untag("pipeline", "production", expected=3)
    assert dump(db) == before
    assert three.tag("pipeline", 3, "production", expected=1).number == 3
    assert three.untag("pipeline", "production", expected=3) == 3


@pytest.mark.parametrize("tag", ["latest", "head", "12", "", " padded", "a:b", "tab\there"])
def test_tags_that_would_be_ambiguous_are_refused(three: StateStore, tag: str) -> None:
    with pytest.raises(InvalidInputError):
        three.tag("pipeline", 1, tag)
    assert three.tags("pipeline") == {}


def test_references_number_latest_string_number_tag_and_hash_prefix(three: StateStore) -> None:
    three.tag("pipeline", 1, "production")
    second = expected_snapshot({"prompt": "two"})
    assert three.get("pipeline").number == 3
    assert three.get("pipeline", "latest").number == 3
    assert three.get("pipeline", 2).number == 2
    assert three.get("pipeline", "2").number == 2
    assert three.get("pipeline", "production").number == 1
    assert three.get("pipeline", second[:8]).number == 2
    assert three.get("pipeline", second).number == 2
    assert three.load("pipeline", second[:4]) == {"prompt": "two"}


def test_a_hash_prefix_of_two_snapshots_is_ambiguous(store: StateStore) -> None:
    by_prefix: dict[str, dict[str, int]] = {}
    for n in counter():
        state = {"n": n}
        prefix = expected_snapshot(state)[:4]
        if prefix in by_prefix:
            break
        by_prefix[prefix] = state
    store.save("p", by_prefix[prefix])
    store.save("p", state)
    with pytest.raises(InvalidInputError, match=f"prefix '{prefix}' of 'p' is ambiguous"):
        store.get("p", prefix)
    assert store.get("p", expected_snapshot(state)[:12]).number == 2


def test_an_unknown_hash_prefix_lists_what_exists(three: StateStore) -> None:
    used = {expected_snapshot({"prompt": p})[:6] for p in ("one", "two", "three")}
    unknown = next(p for p in ("abcdef", "012345", "fedcba") if p not in used)
    with pytest.raises(VersionNotFound) as caught:
        three.get("pipeline", unknown)
    assert str(caught.value) == (f"version {unknown!r} of 'pipeline' not found (no such tag or "
                                 "snapshot): 'pipeline' has versions 1..3 and no tags")


def test_not_found_messages_list_versions_and_tags(three: StateStore) -> None:
    three.tag("pipeline", 3, "production")
    three.tag("pipeline", 2, "staging")
    expected = "'pipeline' has versions 1..3 and tags production, staging"
    for ref in (9, "9", 0, -1, "canary"):
        with pytest.raises(VersionNotFound) as caught:
            three.get("pipeline", ref)
        assert str(caught.value).endswith(expected)
        assert repr(ref) in str(caught.value)
    with pytest.raises(VersionNotFound, match="version 9 of 'pipeline' not found: " + expected):
        three.load("pipeline", 9)
    three.prune("pipeline", keep_last=1)
    three.save("pipeline", {"prompt": "four"})
    three.save("pipeline", {"prompt": "five"})
    with pytest.raises(VersionNotFound,
                       match="'pipeline' has versions 2..5 and tags production, staging"):
        three.get("pipeline", 1)


def test_unknown_names_list_the_names_that_exist(three: StateStore) -> None:
    three.save("agent", {"x": 1})
    with pytest.raises(NameNotFound, match="no history named 'pipelin': the store has agent, "
                                           "pipeline"):
        three.load("pipelin")
    with pytest.raises(VersionNotFound):  # NameNotFound is a VersionNotFound
        three.get("nope", 1)


def test_malformed_references_are_refused(three: StateStore) -> None:
    for ref in (True, 1.5, None, ["1"]):
        with pytest.raises(InvalidInputError):
            three.get("pipeline", ref)  # type: ignore[arg-type]
