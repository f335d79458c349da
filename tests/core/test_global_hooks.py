"""The global hooks of ``msgflux.nn.modules.module``: registered once, invoked for every module.

Upstream stores the global forward hooks but never calls them; here they run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import msgflux.nn as nn
from msgflux.errors import StateValueError
from msgflux.nn import Module, Parameter
from msgflux.nn.modules import _hooks
from msgflux.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_forward_hook,
    register_module_forward_pre_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)


class Upper(Module):
    def forward(self, text: str, *, suffix: str = "") -> str:
        return text.upper() + suffix


class AsyncUpper(Module):
    async def aforward(self, text: str) -> str:
        return text.upper()


class Failing(Module):
    def forward(self, text: str) -> str:
        raise ValueError("forward failed")


@pytest.fixture(autouse=True)
def no_leftover_global_hooks() -> Iterator[None]:
    yield
    tables = (
        _hooks._global_forward_pre_hooks,
        _hooks._global_forward_hooks,
        _hooks._global_buffer_registration_hooks,
        _hooks._global_module_registration_hooks,
        _hooks._global_parameter_registration_hooks,
        _hooks._global_forward_pre_hooks_with_kwargs,
        _hooks._global_forward_hooks_with_kwargs,
        _hooks._global_forward_hooks_always_called,
    )
    leftovers = [table for table in tables if table]
    for table in tables:
        table.clear()
    assert not leftovers, "a test left a global hook registered"


def test_global_forward_hooks_run_for_every_module_before_its_own() -> None:
    calls: list[str] = []
    m = Upper()
    m.register_forward_pre_hook(lambda mod, args, kwargs: calls.append("own pre"))
    m.register_forward_hook(lambda mod, args, kwargs, out: calls.append(f"own post {out}"))

    def global_pre(module, args):
        calls.append(f"global pre {type(module).__name__} {args}")
        return (args[0] + "b",)

    def global_post(module, args, output):
        calls.append(f"global post {output}")
        return output + "!"

    pre = register_module_forward_pre_hook(global_pre)
    post = register_module_forward_hook(global_post)
    assert m("a") == "AB!"
    assert Upper()("z") == "ZB!"  # a module created later too
    assert calls[:4] == [
        "global pre Upper ('a',)",
        "own pre",
        "global post AB",
        "own post AB!",
    ]
    pre.remove()
    post.remove()
    assert m("a") == "A"


def test_global_hooks_with_kwargs_and_always_call() -> None:
    seen: list[object] = []

    def pre(module, args, kwargs):
        return (args, {**kwargs, "suffix": "?"}) if isinstance(module, Upper) else None

    def post(module, args, kwargs, output):
        seen.append(("post", kwargs, output))

    handles = [
        register_module_forward_pre_hook(pre, with_kwargs=True),
        register_module_forward_hook(post, with_kwargs=True, always_call=True),
    ]
    assert Upper()("a") == "A?"
    with pytest.raises(ValueError, match="forward failed"):
        Failing()("x")
    assert seen == [("post", {"suffix": "?"}, "A?"), ("post", {}, None)]
    for handle in handles:
        handle.remove()
    assert not _hooks._global_forward_hooks_always_called


def test_global_forward_hooks_run_in_acall_too() -> None:
    seen: list[str] = []
    handle = register_module_forward_hook(lambda module, args, output: seen.append(output))
    assert asyncio.run(AsyncUpper().acall("a")) == "A"
    assert seen == ["A"]
    handle.remove()


def test_buffer_registration_hook_sees_and_may_replace_values() -> None:
    seen: list[tuple] = []

    def hook(module, name, value):
        seen.append((type(module).__name__, name, value))
        return value.strip() if isinstance(value, str) else None

    handle = register_module_buffer_registration_hook(hook)
    m = Module()
    m.register_buffer("fmt", "  JSON  ")
    m.fmt = " YAML "  # assigning a registered buffer registers the new value
    assert m.fmt == "YAML" and m.state_dict() == {"fmt": "YAML"}
    assert seen == [("Module", "fmt", "  JSON  "), ("Module", "fmt", " YAML ")]
    handle.remove()


def test_buffer_registration_hook_cannot_smuggle_in_a_bad_value() -> None:
    handle = register_module_buffer_registration_hook(lambda module, name, value: {1, 2})
    m = Module()
    with pytest.raises(StateValueError, match="'fmt' has type set"):
        m.register_buffer("fmt", "JSON")
    assert "fmt" not in m._buffers
    handle.remove()


def test_parameter_registration_hook_by_method_and_by_assignment() -> None:
    seen: list[str] = []
    replacement = Parameter("replaced", "spec")

    def hook(module, name, param):
        seen.append(name)
        return replacement if name == "swap" else None

    handle = register_module_parameter_registration_hook(hook)
    m = Module()
    m.register_parameter("kept", Parameter("kept", "spec"))
    m.swap = Parameter("original", "spec")
    m.register_parameter("empty", None)  # an empty slot registers nothing
    assert seen == ["kept", "swap"]
    assert m.swap is replacement and m.state_dict() == {"kept": "kept", "swap": "replaced"}
    handle.remove()


def test_parameter_registration_hook_must_return_a_parameter() -> None:
    handle = register_module_parameter_registration_hook(lambda module, name, param: "text")
    m = Module()
    with pytest.raises(TypeError, match="Parameter or None required"):
        m.p = Parameter("a", "s")
    assert "p" not in m._parameters
    handle.remove()


def test_module_registration_hook_covers_attributes_and_containers() -> None:
    seen: list[tuple[str, str]] = []

    def hook(module, name, submodule):
        seen.append((type(module).__name__, name))

    handle = register_module_module_registration_hook(hook)
    root = Module()
    root.child = Upper()
    root.add_module("other", Upper())
    layers = nn.ModuleList([Upper()])
    layers.append(Upper())  # only the new module is announced, under its index
    experts = nn.ModuleDict({"a": Upper()})
    experts["b"] = None
    seq = nn.Sequential(Upper())
    assert seen == [
        ("Module", "child"),
        ("Module", "other"),
        ("ModuleList", "0"),
        ("ModuleList", "1"),
        ("ModuleDict", "a"),
        ("ModuleDict", "b"),
        ("Sequential", "0"),
    ]
    assert len(layers) == 2 and len(seq) == 1
    handle.remove()


def test_module_registration_hook_may_replace_the_submodule() -> None:
    stand_in = Upper()
    handle = register_module_module_registration_hook(
        lambda module, name, submodule: stand_in if name == "child" else None
    )
    root = Module()
    root.child = Module()
    assert root.child is stand_in
    layers = nn.ModuleList([Module()])
    assert layers[0] is not stand_in
    handle.remove()
