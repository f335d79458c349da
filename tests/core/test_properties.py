"""Property tests: file round trips and state-dict round trips on random module trees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msgflux as mf
from msgflux.errors import StateValueError
from msgflux.nn import Module, ModuleDict, Parameter

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # tests write nothing outside tmp_path (no .hypothesis/ folder)
    suppress_health_check=[HealthCheck.too_slow],
)

_floats = st.floats(allow_nan=False, allow_infinity=False)


def _json_values(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        ),
        max_leaves=12,
    )


JSON_VALUES = _json_values(
    st.none() | st.booleans() | st.integers() | _floats | st.text(max_size=12)
)
TOML_VALUES = _json_values(
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | _floats | st.text(max_size=12)
)
KEYS = st.text(min_size=1, max_size=12)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roundtrip")


@SETTINGS
@given(state=st.dictionaries(KEYS, JSON_VALUES, max_size=6))
def test_json_round_trip(folder: Path, state: dict[str, Any]) -> None:
    path = folder / "state.json"
    mf.save(state, path)
    assert mf.load(path) == state


@SETTINGS
@given(state=st.dictionaries(KEYS, TOML_VALUES, max_size=6))
def test_toml_round_trip(folder: Path, state: dict[str, Any]) -> None:
    path = folder / "state.toml"
    mf.save(state, path)
    assert mf.load(path) == state


# -- random module trees --------------------------------------------------------------

_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,4}", fullmatch=True).filter(
    lambda name: not hasattr(Module, name) and name not in Module._internal_attributes
)
_DICT_KEYS = st.sampled_from(["train", "eval", "modules", "keys", "state_dict", "a", "b"])

_LEAF_ENTRIES = st.one_of(
    st.tuples(st.just("param"), JSON_VALUES, st.text(max_size=5)),
    st.tuples(st.just("buffer"), JSON_VALUES, st.booleans()),
)


def _with_children(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    entries = st.one_of(
        _LEAF_ENTRIES,
        st.tuples(st.just("module"), children),
        st.tuples(st.just("dict"), st.dictionaries(_DICT_KEYS, children, max_size=3)),
    )
    return st.dictionaries(_NAMES, entries, max_size=4)


TREES = st.recursive(
    st.dictionaries(_NAMES, _LEAF_ENTRIES, max_size=4), _with_children, max_leaves=8
)


def _build(spec: dict[str, Any]) -> Module:
    module = Module()
    for name, entry in spec.items():
        kind = entry[0]
        if kind == "param":
            setattr(module, name, Parameter(entry[1], entry[2]))
        elif kind == "buffer":
            module.register_buffer(name, entry[1], persistent=entry[2])
        elif kind == "module":
            setattr(module, name, _build(entry[1]))
        else:
            setattr(
                module, name, ModuleDict({key: _build(child) for key, child in entry[1].items()})
            )
    return module


def _expected_state(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The state dict the spec describes, in PyTorch order: params, buffers, children."""
    state: dict[str, Any] = {}
    for name, entry in spec.items():
        if entry[0] == "param":
            state[prefix + name] = entry[1]
    for name, entry in spec.items():
        if entry[0] == "buffer" and entry[2]:
            state[prefix + name] = entry[1]
    for name, entry in spec.items():
        if entry[0] == "module":
            state.update(_expected_state(entry[1], f"{prefix}{name}."))
        elif entry[0] == "dict":
            for key, child in entry[1].items():
                state.update(_expected_state(child, f"{prefix}{name}.{key}."))
    return state


@SETTINGS
@given(spec=TREES, data=st.data())
def test_state_dict_load_state_dict_on_random_trees(
    spec: dict[str, Any], data: st.DataObject
) -> None:
    module = _build(spec)
    expected = _expected_state(spec)
    state = module.state_dict()
    assert state == expected and list(state) == list(expected)

    params = {name: p for name, p in module.named_parameters(remove_duplicate=False)}
    new_state = {key: data.draw(JSON_VALUES, label=key) for key in state}
    result = module.load_state_dict(new_state, strict=True)
    assert repr(result) == "<All keys matched successfully>"
    assert module.state_dict() == new_state
    # Hot swap: the same Parameter objects, now holding the new data.
    for name, param in module.named_parameters(remove_duplicate=False):
        assert param is params[name] and param.data == new_state[name]

    # A partial load changes exactly the keys given.
    subset = {key: value for key, value in state.items() if data.draw(st.booleans(), label="keep")}
    result = module.load_state_dict(subset)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(set(state) - set(subset))
    assert module.state_dict() == {**new_state, **subset}


@SETTINGS
@given(spec=TREES, data=st.data())
def test_failed_load_on_random_trees_changes_nothing(
    spec: dict[str, Any], data: st.DataObject
) -> None:
    module = _build(spec)
    before = module.state_dict()
    if not before:
        return
    new_state = {key: data.draw(JSON_VALUES, label=key) for key in before}
    bad_key = data.draw(st.sampled_from(sorted(before)), label="bad key")
    new_state[bad_key] = data.draw(st.sampled_from([{1, 2}, float("nan"), object(), (1,)]))
    with pytest.raises(StateValueError):
        module.load_state_dict(new_state)
    assert module.state_dict() == before


@SETTINGS
@given(spec=TREES)
def test_random_trees_save_and_load_through_json(folder: Path, spec: dict[str, Any]) -> None:
    module = _build(spec)
    path = folder / "tree.json"
    mf.save(module, path)
    assert mf.load(path) == module.state_dict()
    assert repr(module.load_state_dict(mf.load(path), strict=True)) == (
        "<All keys matched successfully>"
    )
