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
    assert str(caught.value) == (
        f"version {unknown!r} of 'pipeline' not found (no such tag or "
        "snapshot): 'pipeline' has versions 1..3 and no tags"
    )


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
    with pytest.raises(
        VersionNotFound, match="'pipeline' has versions 2..5 and tags production, staging"
    ):
        three.get("pipeline", 1)


def test_unknown_names_list_the_names_that_exist(three: StateStore) -> None:
    three.save("agent", {"x": 1})
    with pytest.raises(
        NameNotFound,
        match=r"no history named 'pipelin' \(did you mean "
        r"'pipeline'\?\): the store has agent, pipeline",
    ):
        three.load("pipelin")
    with pytest.raises(VersionNotFound):  # NameNotFound is a VersionNotFound
        three.get("nope", 1)


def test_malformed_references_are_refused(three: StateStore) -> None:
    for ref in (True, 1.5, None, ["1"]):
        with pytest.raises(InvalidInputError):
            three.get("pipeline", ref)  # type: ignore[arg-type]


# -- one rule for references (issue 8, item 8) ----------------------------------------------


def _state_whose_hash_starts(predicate: object, salt: str = "") -> dict[str, str]:
    for attempt in counter():
        state = {"prompt": f"{salt}{attempt}"}
        if predicate(expected_snapshot(state)):  # type: ignore[operator]
            return state
    raise AssertionError("unreachable")


@pytest.mark.parametrize("tag", ["cafe", "2463cae0", "DEADBEEF", "0" * 64, "abcd1234ef"])
def test_a_tag_that_looks_like_a_snapshot_hash_is_refused(three: StateStore, tag: str) -> None:
    before = three.tag_history("pipeline")
    with pytest.raises(InvalidInputError, match=f"tag '{tag}' is not allowed"):
        three.tag("pipeline", 1, tag)
    assert three.tags("pipeline") == {} and three.tag_history("pipeline") == before
    # the full hash of a stored snapshot too
    with pytest.raises(InvalidInputError, match="snapshot-hash prefix"):
        three.tag("pipeline", 1, three.get("pipeline", 2).snapshot)
    # short hex words and ordinary names stay allowed
    for allowed in ("abc", "release-1", "cafe-2", "prod"):
        assert three.tag("pipeline", 1, allowed).number == 1


def test_a_digit_string_is_a_version_if_it_exists_else_a_hash_prefix(store: StateStore) -> None:
    store.save("p", {"prompt": "first"})
    digits = _state_whose_hash_starts(lambda h: h[:6].isdigit())
    store.save("p", digits)
    prefix = expected_snapshot(digits)[:6]
    # no version has that number: the digits are a prefix of version 2's snapshot
    assert store.get("p", prefix).number == 2
    assert store.load("p", prefix) == digits
    # "1" and "2" are version numbers (too short to be prefixes)
    assert store.load("p", "1") == {"prompt": "first"} and store.get("p", "2").number == 2
    # an int is always a number
    with pytest.raises(VersionNotFound):
        store.get("p", int(prefix))


def test_a_digit_string_that_is_both_a_version_and_a_prefix_is_ambiguous(store: StateStore) -> None:
    store.save("p", {"prompt": "first"})
    other = _state_whose_hash_starts(lambda h: h.startswith("0001"))
    store.save("p", other)
    # "0001" is version 1 and a prefix of version 2's snapshot: refused, never a guess
    for call in (
        lambda: store.load("p", "0001"),
        lambda: store.get("p", "0001"),
        lambda: store.diff("p", "0001", 2),
        lambda: store.rollback("p", "0001"),
        lambda: store.tag("p", "0001", "prod"),
    ):
        with pytest.raises(InvalidInputError, match="'0001' of 'p' is ambiguous"):
            call()
    assert [v.number for v in store.log("p")] == [2, 1] and store.tags("p") == {}
    assert store.load("p", 1) == {"prompt": "first"}  # an int is unambiguous
    assert store.load("p", expected_snapshot(other)[:8]) == other  # a longer prefix


def test_the_same_version_by_number_and_by_prefix_is_not_ambiguous(store: StateStore) -> None:
    for index in range(1, 12):
        store.save("p", {"prompt": f"v{index}"})
    # a version whose own snapshot hash starts with its number written with zeros
    state = _state_whose_hash_starts(lambda h: h.startswith("0012"), salt="s")
    store.save("p", state)
    assert store.get("p", "0012").number == 12 and store.load("p", "0012") == state


def test_an_old_tag_that_looks_like_another_snapshot_is_ambiguous(
    store: StateStore, db: sa.Engine
) -> None:
    first = _state_whose_hash_starts(lambda h: h.startswith("beef"))
    store.save("p", first)
    store.save("p", {"prompt": "second"})
    with db.begin() as connection:  # a tag written by an older release, before the rule
        connection.execute(
            sa.text(
                "INSERT INTO tags (name_id, tag, version) "
                "SELECT id, 'beef', 2 FROM names WHERE name = 'p'"
            )
        )
    with pytest.raises(InvalidInputError, match="'beef' of 'p' is ambiguous"):
        store.load("p", "beef")


@pytest.mark.parametrize("ref", [[1], None, True, {"v": 1}, 1.0])
def test_tag_refuses_a_reference_that_is_not_a_number_or_a_string(
    store: StateStore, ref: object
) -> None:
    # Found by the hostile-input test: a list reached a dict key (raw TypeError).
    store.save("pipeline", {"a": "1"})
    with pytest.raises(InvalidInputError, match="a version is a number"):
        store.tag("pipeline", ref, "production")  # type: ignore[arg-type]
    assert store.tags("pipeline") == {}
