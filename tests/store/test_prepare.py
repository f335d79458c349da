"""The save path's incremental hashing (``store/_prepare.py``, ``hashing.SnapshotHasher``).

A save of the same keys looks only at values that are not the very objects
of the last save, and rehashes the snapshot from the first changed block.
Whatever a caller does between saves (new strings equal to old ones, values
that stop being strings, lists changed in place, keys reordered, added or
removed, states that cross block boundaries), every hash must be exactly what
the documented rule gives from scratch.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msgflux.store import InvalidInputError, StateStore
from msgflux.store._prepare import Preparer
from msgflux.store.hashing import SnapshotHasher, snapshot_hash, value_hash

BLOCK = SnapshotHasher.BLOCK

# Keys that need JSON escaping sort and hash like any other.
_KEYS = [f"k{index:04d}" for index in range(3 * BLOCK)] + ['q"uote', "back\\slash", "é.ü", "\x7f"]


def _expected(state: dict[str, Any]) -> tuple[list[str], str]:
    hashes = {key: value_hash(value) for key, value in state.items()}
    return list(hashes.values()), snapshot_hash(hashes)


# Storable text: no NUL (refused, a test below) and no lone surrogates (not UTF-8).
_CHARS = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))

_step = st.one_of(
    st.tuples(st.just("new string"), st.integers(0, 10**6), st.text(_CHARS, max_size=8)),
    st.tuples(st.just("equal copy"), st.integers(0, 10**6)),  # same text, another object
    st.tuples(st.just("int"), st.integers(0, 10**6), st.integers(-5, 5)),
    st.tuples(st.just("list"), st.integers(0, 10**6)),
    st.tuples(st.just("mutate list"), st.integers(0, 10**6)),
    st.tuples(st.just("reorder"), st.randoms(use_true_random=False)),
    st.tuples(st.just("remove"), st.integers(0, 10**6)),
    st.tuples(st.just("add"), st.integers(0, len(_KEYS) - 1)),
    st.tuples(
        st.just("same"),
    ),
)


def _apply(state: dict[str, Any], step: tuple[Any, ...]) -> dict[str, Any]:
    """The next state (a new dict whose unchanged values are the same objects)."""
    state = dict(state)
    kind, keys = step[0], list(state)
    if kind == "add":
        state.setdefault(_KEYS[step[1]], f"added {step[1]}")
        return state
    if kind == "same" or not keys:
        return state
    if kind == "reorder":
        step[1].shuffle(keys)
        return {key: state[key] for key in keys}
    key = keys[step[1] % len(keys)]
    if kind == "new string":
        state[key] = step[2]
    elif kind == "equal copy" and isinstance(state[key], str):
        state[key] = "".join(list(state[key]))  # equal, never the same object for len > 1
    elif kind == "int":
        state[key] = step[2]
    elif kind == "list":
        state[key] = ["a", 1]
    elif kind == "mutate list" and isinstance(state[key], list):
        state[key].append(len(state[key]))  # the same object, changed in place
    elif kind == "remove":
        del state[key]
    return state


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    size=st.sampled_from([0, 1, 5, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 7]),
    steps=st.lists(_step, max_size=12),
)
def test_every_prepared_hash_is_the_rule_from_scratch(size: int, steps: list[Any]) -> None:
    preparer = Preparer()
    state: dict[str, Any] = {key: f"value of {key}" for key in _KEYS[:size]}
    previous: list[str] | None = None
    for step in [("same",), *steps]:
        state = _apply(state, step)
        prepared = preparer.prepare("pipeline", state)
        hashes, snapshot = _expected(state)
        assert prepared.keys == list(state)
        assert prepared.hashes == hashes
        assert prepared.snapshot == snapshot
        if prepared.changed is not None:
            # The indices it reports are exactly those whose hash differs.
            assert prepared.base == previous
            assert sorted(prepared.changed) == [
                index for index, digest in enumerate(hashes) if digest != previous[index]
            ]
        previous = hashes


def test_two_names_keep_their_own_last_state() -> None:
    preparer = Preparer()
    one = {key: f"one {key}" for key in _KEYS[:300]}
    two = {key: f"two {key}" for key in _KEYS[:300]}
    for _ in range(3):
        for name, state in (("one", one), ("two", two)):
            prepared = preparer.prepare(name, state)
            assert prepared.snapshot == _expected(state)[1]
        one = {**one, _KEYS[7]: one[_KEYS[7]] + "!"}
        two = {**two, _KEYS[250]: two[_KEYS[250]] + "?"}


def test_a_bad_string_on_the_fast_path_is_refused_and_forgets_nothing() -> None:
    preparer = Preparer()
    state = {key: f"value {key}" for key in _KEYS[:200]}
    preparer.prepare("pipeline", state)
    with pytest.raises(InvalidInputError, match=r"k0150.*NUL"):
        preparer.prepare("pipeline", {**state, _KEYS[150]: "bad\x00"})
    with pytest.raises(InvalidInputError, match=r"k0150.*surrogate"):
        preparer.prepare("pipeline", {**state, _KEYS[150]: "bad\udc80"})
    fine = {**state, _KEYS[150]: "fine"}
    prepared = preparer.prepare("pipeline", fine)
    assert prepared.snapshot == _expected(fine)[1]
    assert prepared.changed == [150]


def test_saves_across_blocks_load_back_and_verify(store: StateStore) -> None:
    # One key per block changed in turn, an equal copy, a list changed in place:
    # each version's content and snapshot hash are the rule's, and verify agrees.
    state: dict[str, Any] = {key: f"value of {key}" for key in _KEYS[: 2 * BLOCK + 7]}
    state[_KEYS[3]] = ["a"]
    saved = [deepcopy(state)]
    store.save("pipeline", state)
    for index in (0, BLOCK - 1, BLOCK, 2 * BLOCK + 6, 5):
        state = {**state, _KEYS[index]: f"changed {index}"}
        store.save("pipeline", state)
        saved.append(deepcopy(state))
    state = {**state, _KEYS[5]: "".join(list(state[_KEYS[5]]))}  # equal: no new version
    assert not store.save("pipeline", state).created
    state[_KEYS[3]].append("b")  # in place: a new version
    version = store.save("pipeline", state)
    assert version.created
    saved.append(deepcopy(state))
    for number, expected in enumerate(saved, start=1):
        assert store.load("pipeline", number) == expected
        assert store.get("pipeline", number).snapshot == _expected(expected)[1]
    assert store.verify().ok
