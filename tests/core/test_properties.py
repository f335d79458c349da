"""Property tests: file round trips and state-dict round trips on random module trees.

Values are compared type-exactly (``core_testkit.assert_same``): ``1``, ``True``
and ``1.0`` are equal in Python but are different state values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from core_testkit import (
    JSON_VALUES,
    KEYS,
    SETTINGS,
    TOML_VALUES,
    TREES,
    assert_same,
    build_tree,
    expected_state,
)
from hypothesis import given
from hypothesis import strategies as st

import msgflux as mf
from msgflux.errors import StateValueError


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roundtrip")


@SETTINGS
@given(state=st.dictionaries(KEYS, JSON_VALUES, max_size=6))
def test_json_round_trip(folder: Path, state: dict[str, Any]) -> None:
    path = folder / "state.json"
    mf.save(state, path)
    loaded = mf.load(path)
    assert_same(loaded, state)
    assert list(loaded) == list(state)


@SETTINGS
@given(state=st.dictionaries(KEYS, TOML_VALUES, max_size=6))
def test_toml_round_trip(folder: Path, state: dict[str, Any]) -> None:
    path = folder / "state.toml"
    mf.save(state, path)
    assert_same(mf.load(path), state)  # TOML writes tables after values: order may change


@SETTINGS
@given(spec=TREES, data=st.data())
def test_state_dict_load_state_dict_on_random_trees(
    spec: dict[str, Any], data: st.DataObject
) -> None:
    module = build_tree(spec)
    expected = expected_state(spec)
    state = module.state_dict()
    assert_same(state, expected)
    assert list(state) == list(expected)

    params = {name: p for name, p in module.named_parameters(remove_duplicate=False)}
    new_state = {key: data.draw(JSON_VALUES, label=key) for key in state}
    result = module.load_state_dict(new_state, strict=True)
    assert repr(result) == "<All keys matched successfully>"
    assert_same(module.state_dict(), new_state)
    # Hot swap: the same Parameter objects, now holding the new data.
    for name, param in module.named_parameters(remove_duplicate=False):
        assert param is params[name]
        assert_same(param.data, new_state[name])

    # A partial load changes exactly the keys given.
    subset = {key: value for key, value in state.items() if data.draw(st.booleans(), label="keep")}
    result = module.load_state_dict(subset)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(set(state) - set(subset))
    assert_same(module.state_dict(), {**new_state, **subset})


@SETTINGS
@given(spec=TREES, data=st.data())
def test_failed_load_on_random_trees_changes_nothing(
    spec: dict[str, Any], data: st.DataObject
) -> None:
    module = build_tree(spec)
    before = module.state_dict()
    if not before:
        return
    new_state = {key: data.draw(JSON_VALUES, label=key) for key in before}
    bad_key = data.draw(st.sampled_from(sorted(before)), label="bad key")
    new_state[bad_key] = data.draw(st.sampled_from([{1, 2}, float("nan"), object(), (1,)]))
    with pytest.raises(StateValueError):
        module.load_state_dict(new_state)
    assert_same(module.state_dict(), before)


@SETTINGS
@given(spec=TREES)
def test_random_trees_save_and_load_through_json(folder: Path, spec: dict[str, Any]) -> None:
    module = build_tree(spec)
    path = folder / "tree.json"
    mf.save(module, path)
    assert_same(mf.load(path), module.state_dict())
    assert repr(module.load_state_dict(mf.load(path), strict=True)) == (
        "<All keys matched successfully>"
    )


def test_the_shared_comparison_tells_one_true_and_one_point_zero_apart() -> None:
    assert 1 == True == 1.0  # noqa: E712 -- what plain == cannot see
    for left, right in (
        (1, True),
        (1, 1.0),
        (True, 1.0),
        (0.0, -0.0),
        ([1], [True]),
        ({"a": 1}, {"a": 1.0}),
        ({"a": None}, {"b": None}),
        ([1], [1, 1]),
    ):
        with pytest.raises(AssertionError):
            assert_same(left, right)
    assert_same({"a": [1, 2.5, None, "x"]}, {"a": [1, 2.5, None, "x"]})
