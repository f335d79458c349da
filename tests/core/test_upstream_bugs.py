"""Bugs of upstream msgflux's ``nn`` that this package fixes, one test each.

Each docstring states the upstream bug; the test shows the behaviour we keep.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import msgflux as mf
import msgflux.nn as nn
from msgflux.errors import ModuleRegistrationError, StateValueError
from msgflux.nn import Module, ModuleDict, ModuleList, Parameter, RemovableHandle


def _leaf(tag: str) -> Module:
    m = Module()
    m.tag = Parameter(tag, "tag")
    return m


def test_module_dict_anywhere_in_the_tree_is_traversable() -> None:
    """Upstream bug: ``ModuleDict`` inherits ``collections.abc.Mapping``, which makes it
    unhashable, so ``named_modules`` (which puts modules in a memo ``set``) raises
    ``TypeError: unhashable type`` as soon as a ModuleDict is anywhere in the tree."""
    root = Module()
    root.experts = ModuleDict({"sales": _leaf("s"), "support": _leaf("t")})
    names = [name for name, _ in root.named_modules()]
    assert names == ["", "experts", "experts.sales", "experts.support"]
    assert root.state_dict() == {"experts.sales.tag": "s", "experts.support.tag": "t"}
    assert len(list(root.parameters())) == 2 and root.train(False) is root
    assert {root.experts} == {root.experts}


def test_equal_parameters_are_not_deduplicated_and_list_values_work() -> None:
    """Upstream bug: ``_named_members`` de-duplicates by value (``v in memo`` on a set), so
    two distinct parameters (or buffers) with equal values are listed once, and a
    parameter holding a list raises ``TypeError: unhashable type: 'list'``."""
    root = Module()
    root.a = _leaf("same")
    root.b = _leaf("same")
    root.a.register_buffer("fmt", "JSON")
    root.b.register_buffer("fmt", "JSON")
    root.examples = Parameter(["q1", "q2"], "examples")
    assert [name for name, _ in root.named_parameters()] == ["examples", "a.tag", "b.tag"]
    assert [name for name, _ in root.named_buffers()] == ["a.fmt", "b.fmt"]
    shared = root.a.tag
    root.c = Module()
    root.c.tag = shared  # the same object twice is still listed once
    assert sum(p is shared for p in root.parameters()) == 1


def test_assigning_a_registered_buffer_updates_it() -> None:
    """Upstream bug: ``m.buf = x`` on a registered buffer goes to the instance ``__dict__``
    while attribute lookup still returns the old ``_buffers`` value, so the assignment
    is silently lost (and never reaches ``state_dict``)."""
    m = Module()
    m.register_buffer("fmt", "JSON")
    m.fmt = "YAML"
    assert m.fmt == "YAML" and m.state_dict() == {"fmt": "YAML"}
    assert "fmt" not in m.__dict__


def test_registered_names_cannot_shadow_methods() -> None:
    """Upstream bug: ``__getattribute__`` returns registered names before class
    attributes, so a ModuleDict key ``"train"`` or a buffer named ``"state_dict"``
    hides the method of the same name."""
    experts = ModuleDict({"train": _leaf("t"), "state_dict": _leaf("s")})
    assert experts.train() is experts
    assert experts.state_dict() == {"train.tag": "t", "state_dict.tag": "s"}
    m = Module()
    with pytest.raises(ModuleRegistrationError, match="already exists"):
        m.register_buffer("state_dict", "x")
    with pytest.raises(ModuleRegistrationError, match="would hide"):
        m.forward = Module()  # type: ignore[method-assign]
    assert callable(m.state_dict)


def test_nested_loads_do_not_corrupt_keys_that_repeat_the_prefix() -> None:
    """Upstream bug: loading strips a child's prefix with ``str.replace``, which removes
    *every* occurrence, so ``sub.sub.x`` becomes ``x`` and loads into the wrong slot."""
    root = Module()
    root.sub = Module()
    root.sub.register_buffer("x", "outer")
    root.sub.sub = Module()
    root.sub.sub.register_buffer("x", "inner")
    result = root.load_state_dict({"sub.x": "A", "sub.sub.x": "B"}, strict=True)
    assert (root.sub.x, root.sub.sub.x) == ("A", "B")
    assert repr(result) == "<All keys matched successfully>"


def test_loading_never_mutates_the_callers_dict() -> None:
    """Upstream bug: loading a buffer whose value is a dict with ``msgflux_type`` pops that
    key out of the caller's dict; values are also shared, so later edits to the
    module's state changed the caller's data."""
    m = Module()
    m.register_buffer("cfg", {})
    m.p = Parameter([], "examples")
    state = {"cfg": {"msgflux_type": "model", "k": [1]}, "p": ["a"]}
    original = copy.deepcopy(state)
    m.load_state_dict(state, strict=True)
    assert state == original
    m.cfg["k"].append(2)
    m.p.data.append("b")
    assert state == original


def test_unserialisable_buffers_are_refused_not_turned_into_none() -> None:
    """Upstream bug: ``state_dict`` passes buffers through ``_get_serializable_value``,
    which silently returns ``None`` for anything it cannot serialise, so the value is
    lost without an error."""
    m = Module()
    for bad in (object(), {1, 2}, b"bytes", float("nan")):
        with pytest.raises(StateValueError, match="'thing'"):
            m.register_buffer("thing", bad)
    m.register_buffer("thing", "ok")
    with pytest.raises(StateValueError, match="'thing' has type set"):
        m.thing = {1, 2}
    assert m.state_dict() == {"thing": "ok"}


def test_state_dict_and_load_hooks_run() -> None:
    """Upstream bug: ``register_state_dict_pre_hook`` / ``_post_hook`` and
    ``register_load_state_dict_pre_hook`` / ``_post_hook`` store their hooks, but
    ``state_dict`` and ``load_state_dict`` never call them."""
    m = Module()
    m.register_buffer("b", 1)
    calls: list[str] = []
    m.register_state_dict_pre_hook(lambda *a: calls.append("save pre"))
    m.register_state_dict_post_hook(lambda *a: calls.append("save post"))
    m.register_load_state_dict_pre_hook(lambda *a: calls.append("load pre"))
    m.register_load_state_dict_post_hook(lambda *a: calls.append("load post"))
    m.load_state_dict(m.state_dict())
    assert calls == ["save pre", "save post", "load pre", "load post"]


def test_a_hook_may_remove_itself_during_the_call() -> None:
    """Upstream bug: hooks iterate over the live dict, so a hook that removes itself
    raises "dictionary changed size during iteration" and crashes the call."""

    class Upper(Module):
        def forward(self, text: str) -> str:
            return text.upper()

    m = Upper()
    calls: list[str] = []
    handles: dict[str, RemovableHandle] = {}

    def once_pre(mod, args, kwargs):
        calls.append("pre")
        handles["pre"].remove()

    def once_post(mod, args, kwargs, out):
        calls.append("post")
        handles["post"].remove()

    handles["pre"] = m.register_forward_pre_hook(once_pre)
    handles["post"] = m.register_forward_hook(once_post)
    m.register_forward_hook(lambda mod, args, kwargs, out: calls.append("stays"))
    assert m("a") == "A" and m("b") == "B"
    assert calls == ["pre", "post", "stays", "stays"]


@pytest.mark.parametrize("index", [0, 1, 2, -1, -2, 10, -10])
def test_module_list_insert_keeps_indices_contiguous(index: int) -> None:
    """Upstream bug: ``ModuleList.insert`` shifts keys with ``range(len, index, -1)``, so
    a negative index writes a key like ``"-1"`` and an index past the end leaves a gap
    (``"0", "1", "5"``); the state dict then has keys no list position matches."""
    layers = ModuleList([_leaf("a"), _leaf("b")])
    expected = ["a", "b"]
    layers.insert(index, _leaf("new"))
    expected.insert(index, "new")
    assert [m.tag.data for m in layers] == expected
    assert list(layers._modules) == ["0", "1", "2"]
    assert list(layers.state_dict()) == ["0.tag", "1.tag", "2.tag"]


@pytest.mark.parametrize("name", ["state.toml", "state.json"])
def test_save_accepts_a_path_and_toml(tmp_path: Path, name: str) -> None:
    """Upstream bug: ``mf.save`` checks the suffix with string methods, so a
    ``pathlib.Path`` fails, and it refuses ``.toml`` although the docs save to
    ``state_dict.toml``."""
    m = nn.Sequential(_leaf("a"))
    mf.save(m.state_dict(), tmp_path / name)
    assert mf.load(tmp_path / name) == {"0.tag": "a"}
    mf.save(m, str(tmp_path / name))
    assert mf.load(str(tmp_path / name)) == {"0.tag": "a"}
