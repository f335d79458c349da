"""``load_state_dict``'s fast path gives what the general path gives, and runs only when it may.

The fast path (``_plain_load_slots`` / ``_load_plain`` in
``msgflux/nn/modules/_state.py``) serves trees without extension points. These
tests run the same load through both paths (the general one forced by
patching ``_plain_load_slots`` to decline) and compare everything a caller can
see: the result or the error (type, message, key lists) and the whole tree
afterwards, type-exactly. A spy on ``StateMixin._load_tree``, the general
path's walk, shows which path ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from core_testkit import JSON_VALUES, SETTINGS, TREES, assert_same, build_tree
from hypothesis import given
from hypothesis import strategies as st

from msgflux._values import check_value
from msgflux.errors import StateDictError
from msgflux.nn import Module, Parameter
from msgflux.nn.modules import _state
from msgflux.nn.modules._state import StateMixin, state_keys

_BAD_VALUES = [float("nan"), float("inf"), {1, 2}, (1,), b"x", {1: "int key"}]


@contextmanager
def general_path() -> Iterator[None]:
    """Force the general path: the fast path declines every tree."""
    with mock.patch.object(_state, "_plain_load_slots", return_value=None):
        yield


@contextmanager
def count_general_walks() -> Iterator[list[int]]:
    """Count calls of the general path's walk (``_load_tree``) while the block runs."""
    calls = [0]
    original = StateMixin._load_tree

    def spy(self: Any, *args: Any) -> bool:
        calls[0] += 1
        return original(self, *args)

    with mock.patch.object(StateMixin, "_load_tree", spy):
        yield calls


def outcome(module: Module, state: Any, strict: bool) -> tuple[Any, ...]:
    """What a caller sees of one load: the result, or the error in full."""
    try:
        result = module.load_state_dict(state, strict=strict)
    except StateDictError as error:
        return ("StateDictError", str(error), error.missing_keys, error.unexpected_keys)
    except Exception as error:  # noqa: BLE001 -- compared between the two paths
        return (type(error).__name__, str(error))
    return ("ok", repr(result), list(result.missing_keys), list(result.unexpected_keys))


def tree_contents(module: Module) -> list[Any]:
    """Every parameter (object and data) and buffer (persistent or not) of the tree, in order."""
    contents: list[Any] = []
    for prefix, each in module.named_modules(remove_duplicate=False):
        for name, param in each._parameters.items():
            contents.append((prefix, name, None if param is None else (id(param), param.data)))
        for name, value in each._buffers.items():
            contents.append((prefix, name, value, name in each._non_persistent_buffers))
    return contents


def assert_both_paths_agree(make: Any, state: Any, strict: bool) -> tuple[Any, ...]:
    """Load ``state`` into two trees from ``make()``, one per path; assert they agree."""
    fast_tree, general_tree = make(), make()
    with count_general_walks() as walks:
        fast = outcome(fast_tree, state, strict)
    with general_path():
        general = outcome(general_tree, state, strict)
    assert fast == general
    fast_contents, general_contents = tree_contents(fast_tree), tree_contents(general_tree)
    # Parameter ids differ between the two trees; compare them by position instead.
    assert_same(_without_ids(fast_contents), _without_ids(general_contents))
    assert_same(fast_tree.state_dict(), general_tree.state_dict())
    assert list(fast_tree.state_dict()) == list(general_tree.state_dict())
    if all(isinstance(key, str) for key in state):
        assert walks[0] == 0, "a plain tree must take the fast path"
    return fast


def _without_ids(contents: list[Any]) -> list[Any]:
    return [
        list(entry[:2])
        + [entry[2][1] if isinstance(entry[2], tuple) else entry[2]]
        + list(entry[3:])
        for entry in contents
    ]


# -- random trees, random loads -----------------------------------------------------------


@st.composite
def _loads(draw: st.DrawFn, keys: list[str]) -> dict[Any, Any]:
    """A state for a tree with ``keys``: some of them, values good, bad or Parameters, and
    keys it does not have (near misses of its own, dotted paths into it, other types)."""
    state: dict[Any, Any] = {}
    for key in keys:
        if draw(st.integers(0, 4)) == 0:
            continue  # missing
        kind = draw(st.integers(0, 9))
        if kind == 0:
            state[key] = draw(st.sampled_from(_BAD_VALUES))
        elif kind == 1:
            state[key] = Parameter(draw(JSON_VALUES), "given")
        else:
            state[key] = draw(JSON_VALUES)
    near = sorted(
        {key.rpartition(".")[0] for key in keys if "." in key}
        | {key + suffix for key in keys for suffix in ("x", ".x")}
        | {"x", "x.y"}
    )
    for extra in draw(st.lists(st.one_of(st.sampled_from(near), st.text(max_size=4)), max_size=3)):
        state[extra] = draw(JSON_VALUES)
    if draw(st.integers(0, 9)) == 0:
        state[draw(st.sampled_from([1, None, ("a",)]))] = "not a str key"
    items = draw(st.permutations(list(state.items())))
    return dict(items)


@SETTINGS
@given(spec=TREES, data=st.data(), strict=st.booleans())
def test_both_paths_agree_on_random_trees_and_loads(
    spec: dict[str, Any], data: st.DataObject, strict: bool
) -> None:
    keys = list(build_tree(spec).state_dict())
    state = data.draw(_loads(keys), label="state")
    assert_both_paths_agree(lambda: build_tree(spec), state, strict)


# -- the cases the random trees do not build ---------------------------------------------


def _shared() -> Module:
    root = Module()
    root.a = Module()
    root.a.p = Parameter("p", "s")
    root.a.register_buffer("b", [1])
    root.b = root.a  # one module under two paths
    root.c = Module()
    root.c.p = root.a.p  # one Parameter in two modules
    root.register_buffer("cache", {"k": 1}, persistent=False)
    root.register_parameter("empty", None)
    return root


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    "state",
    [
        {"a.p": "1", "a.b": [2], "b.p": "2", "b.b": [3], "c.p": "3"},
        {"a.p": "1", "b.b": [True]},
        {"a.p": "1", "b.b": float("nan"), "c.p": "3"},
        {"a.p": "1", "cache": {}, "empty": "x", "a": 1, "b.c.d": 2},
        {"c.p": Parameter([1.0], "other"), "b.p": 1, "a.p": True},
        {},
        {"a.p": "1", 7: "x"},
    ],
    ids=["all", "some", "bad-value", "unexpected", "parameters", "empty", "int-key"],
)
def test_both_paths_agree_on_shared_modules_and_parameters(
    state: dict[Any, Any], strict: bool
) -> None:
    assert_both_paths_agree(_shared, state, strict)


def test_a_strict_mismatch_reports_every_key_in_order_on_the_fast_path() -> None:
    module = _shared()
    before = module.state_dict()
    with count_general_walks() as walks, pytest.raises(StateDictError) as caught:
        module.load_state_dict({"z": 1, "a.p": "new", "y": 2}, strict=True)
    assert walks[0] == 0
    assert caught.value.missing_keys == ["a.b", "b.p", "b.b", "c.p"]
    assert caught.value.unexpected_keys == ["z", "y"]
    assert str(caught.value) == (
        "Error(s) in loading state_dict for Module (strict=True, nothing was loaded):\n"
        "  missing keys (4): 'a.b', 'b.p', 'b.b', 'c.p'\n"
        "  unexpected keys (2): 'z', 'y'"
    )
    assert_same(module.state_dict(), before)


def test_the_fast_path_copies_values_and_keeps_parameter_objects() -> None:
    module = _shared()
    param = module.a.p
    given = {"a.b": [[1], {"x": 2}], "c.p": Parameter({"deep": [1]}, "given")}
    with count_general_walks() as walks:
        module.load_state_dict(given)
    assert walks[0] == 0
    given["a.b"][0].append(9)
    given["c.p"].data["deep"].append(9)
    assert module.a.p is param and module.c.p is param
    assert_same(module.a.b, [[1], {"x": 2}])
    assert_same(param.data, {"deep": [1]})


class _Exploding(dict[str, Any]):
    """A buffer registry whose second assignment is interrupted (Ctrl-C half-way)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.assignments = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.assignments += 1
        if self.assignments == 2:
            raise KeyboardInterrupt
        super().__setitem__(key, value)


@pytest.mark.parametrize("path", ["fast", "general"])
def test_an_interrupted_load_is_undone(path: str) -> None:
    module = Module()
    module.p = Parameter("old p", "s")
    module.child = Module()
    module.child.register_buffer("one", "old one")
    module.child.register_buffer("two", "old two")
    object.__setattr__(module.child, "_buffers", _Exploding(module.child._buffers))
    before = module.state_dict()
    loading = general_path() if path == "general" else count_general_walks()
    with loading, pytest.raises(KeyboardInterrupt):
        module.load_state_dict({"p": "new p", "child.one": "new one", "child.two": "new two"})
    assert_same(module.state_dict(), before)


# -- extension points take the general path ---------------------------------------------


class _Migrating(Module):
    """Renames an old key in an override (PyTorch's form), as a versioned module would."""

    def __init__(self) -> None:
        super().__init__()
        self.prompt = Parameter("p", "s")

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str = "", *args: Any
    ) -> None:
        if prefix + "old_prompt" in state_dict:
            state_dict[prefix + "prompt"] = state_dict.pop(prefix + "old_prompt")
        super()._load_from_state_dict(state_dict, prefix, *args)


class _ShortForm(Module):
    """An override in msgflux's short form: ``_load_from_state_dict(state_dict, prefix)``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seen", 0)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str = "") -> None:
        self._buffers["seen"] = len(state_dict)


class _LoudParameter(Parameter):
    """A ``Parameter`` subclass whose ``data`` setter does more than store."""

    __slots__ = ()
    sets = 0

    @property
    def data(self) -> Any:
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        _LoudParameter.sets += 1
        check_value("data", value)
        self._data = value


def _with_override() -> tuple[Module, dict[str, Any], Any]:
    root = Module()
    root.leaf = Module()
    root.leaf.inner = _Migrating()
    return (
        root,
        {"leaf.inner.old_prompt": "migrated"},
        (lambda: root.leaf.inner.prompt.data == "migrated"),
    )


def _with_short_form() -> tuple[Module, dict[str, Any], Any]:
    root = Module()
    root.counter = _ShortForm()
    return root, {"counter.seen": 5}, lambda: root.counter.seen == 1  # it counted


def _with_pre_hook() -> tuple[Module, dict[str, Any], Any]:
    root = Module()
    root.leaf = Module()
    root.leaf.register_buffer("b", "old")

    def rename(module: Module, state: dict[str, Any], prefix: str, *rest: Any) -> None:
        if prefix + "legacy" in state:
            state[prefix + "b"] = state.pop(prefix + "legacy")

    root.leaf.register_load_state_dict_pre_hook(rename)
    return root, {"leaf.legacy": "renamed"}, lambda: root.leaf.b == "renamed"


def _with_post_hook() -> tuple[Module, dict[str, Any], Any]:
    root = Module()
    root.register_buffer("a", 1)
    root.register_buffer("b", 2)

    def forgive(module: Module, keys: Any) -> None:
        keys.missing_keys.clear()

    root.register_load_state_dict_post_hook(forgive)
    return root, {"a": 10}, lambda: (root.a, root.b) == (10, 2)


def _with_parameter_subclass() -> tuple[Module, dict[str, Any], Any]:
    root = Module()
    root.leaf = Module()
    root.leaf.p = _LoudParameter("p", "s")
    _LoudParameter.sets = 0
    return root, {"leaf.p": "new"}, lambda: (root.leaf.p.data, _LoudParameter.sets) == ("new", 1)


@pytest.mark.parametrize(
    "make",
    [_with_override, _with_short_form, _with_pre_hook, _with_post_hook, _with_parameter_subclass],
    ids=["override", "short-form-override", "pre-hook", "post-hook", "parameter-subclass"],
)
def test_an_extension_point_anywhere_in_the_tree_takes_the_general_path(make: Any) -> None:
    root, state, extension_ran = make()
    assert _state._plain_load_slots(root) is None
    with count_general_walks() as walks:
        root.load_state_dict(state, strict=True)
    assert walks[0] >= 1
    assert extension_ran()


def test_removing_the_last_hook_brings_the_fast_path_back() -> None:
    root = Module()
    root.leaf = Module()
    root.leaf.register_buffer("b", "old")
    handle = root.leaf.register_load_state_dict_post_hook(lambda module, keys: None)
    with count_general_walks() as walks:
        root.load_state_dict({"leaf.b": "one"})
    assert walks[0] == 2  # root and leaf
    handle.remove()
    with count_general_walks() as walks:
        root.load_state_dict({"leaf.b": "two"})
    assert walks[0] == 0 and root.leaf.b == "two"


# -- state_keys: state_dict's keys without its copies -------------------------------------


@SETTINGS
@given(spec=TREES)
def test_state_keys_are_the_state_dict_keys_on_random_trees(spec: dict[str, Any]) -> None:
    module = build_tree(spec)
    assert state_keys(module) == list(module.state_dict())


def test_state_keys_follow_a_state_dict_hook_that_renames() -> None:
    module = _shared()

    def rename(module: Module, state: dict[str, Any], prefix: str, metadata: Any) -> None:
        state["renamed"] = state.pop(prefix + "p")

    module.a.register_state_dict_post_hook(rename)
    assert state_keys(module) == list(module.state_dict())
    assert "renamed" in state_keys(module)
