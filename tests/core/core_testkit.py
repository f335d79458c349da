"""Helpers shared by the core tests: the README's modules, random module trees, and
type-exact comparison.

Python says ``1 == True == 1.0`` and ``0.0 == -0.0``, but a state value that
comes back as another type (or sign) has not round-tripped: compare with
:func:`assert_same`, never with ``==`` alone.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import msgflux.nn as nn
from msgflux.nn import Module, ModuleDict, Parameter

__all__ = [
    "JSON_VALUES",
    "KEYS",
    "SETTINGS",
    "TOML_VALUES",
    "TREES",
    "Analyzer",
    "Echo",
    "Pipeline",
    "assert_same",
    "build_tree",
    "difference",
    "expected_state",
]


# -- the README Quickstart's modules ----------------------------------------------------


class Analyzer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.instructions = nn.Parameter("Be helpful and concise", "system_prompt")
        self.register_buffer("expected_output", "JSON format")


class Pipeline(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("flux", "preprocess -> analyze")
        self.analyzer = Analyzer()

    def forward(self, x: Any, **kwargs: Any) -> Any:
        return x + " | " + self.analyzer.instructions


class Echo(nn.Module):
    """Returns its input with its tag appended."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = nn.Parameter(tag, "tag")

    def forward(self, x: str) -> str:
        return x + self.tag


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # tests write nothing outside tmp_path (no .hypothesis/ folder)
    suppress_health_check=[HealthCheck.too_slow],
)


# -- comparing values -------------------------------------------------------------------


def difference(actual: Any, expected: Any, where: str = "value") -> str | None:
    """Where ``actual`` and ``expected`` differ, in value, type or float sign; ``None`` if nowhere.

    Lists compare item by item; dicts compare their key sets (not their order:
    check ``list(keys)`` where the order is part of the contract) and each value.
    """
    if type(actual) is not type(expected):
        return (
            f"{where}: {type(actual).__name__} {actual!r} is not "
            f"{type(expected).__name__} {expected!r}"
        )
    if isinstance(actual, dict):
        if set(actual) != set(expected):
            return f"{where}: keys {sorted(map(repr, actual))} != {sorted(map(repr, expected))}"
        for key in expected:
            found = difference(actual[key], expected[key], f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(actual, list):
        if len(actual) != len(expected):
            return f"{where}: {len(actual)} items != {len(expected)} items"
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            found = difference(left, right, f"{where}[{index}]")
            if found:
                return found
        return None
    if isinstance(actual, float) and actual == expected:
        if math.copysign(1.0, actual) != math.copysign(1.0, expected):
            return f"{where}: {actual!r} != {expected!r} (sign)"
        return None
    if actual != expected:
        return f"{where}: {actual!r} != {expected!r}"
    return None


def assert_same(actual: Any, expected: Any) -> None:
    """Assert ``actual`` equals ``expected`` type-exactly (see :func:`difference`)."""
    found = difference(actual, expected)
    assert found is None, found


# -- values and random module trees ------------------------------------------------------

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


#: A module tree as data: ``{name: ("param", data, spec) | ("buffer", value, persistent)
#: | ("module", tree) | ("dict", {key: tree})}``; :func:`build_tree` makes it.
TREES = st.recursive(
    st.dictionaries(_NAMES, _LEAF_ENTRIES, max_size=4), _with_children, max_leaves=8
)


def build_tree(spec: dict[str, Any]) -> Module:
    """The module a :data:`TREES` spec describes (a fresh one each call)."""
    module = Module()
    for name, entry in spec.items():
        kind = entry[0]
        if kind == "param":
            setattr(module, name, Parameter(entry[1], entry[2]))
        elif kind == "buffer":
            module.register_buffer(name, entry[1], persistent=entry[2])
        elif kind == "module":
            setattr(module, name, build_tree(entry[1]))
        else:
            setattr(
                module,
                name,
                ModuleDict({key: build_tree(child) for key, child in entry[1].items()}),
            )
    return module


def expected_state(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
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
            state.update(expected_state(entry[1], f"{prefix}{name}."))
        elif entry[0] == "dict":
            for key, child in entry[1].items():
                state.update(expected_state(child, f"{prefix}{name}.{key}."))
    return state
