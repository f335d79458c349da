"""Traversal: children, modules, parameters, buffers, train/eval."""

from __future__ import annotations

import msgflux.nn as nn
from msgflux.nn import Module, Parameter


def _tree():
    root = Module()
    root.a = Module()
    root.b = Module()
    root.a.deep = Module()
    root.p = Parameter("root", "s")
    root.a.p = Parameter("same", "s")
    root.b.p = Parameter("same", "s")  # equal value, distinct object
    root.register_buffer("x", 1)
    root.a.register_buffer("x", 1)  # equal small ints are one interned object
    root.b.register_buffer("x", 1)
    root.a.deep.register_buffer("tags", ["t"])
    root.a.deep.register_buffer("cfg", {"k": "v"}, persistent=False)
    return root


def test_children_and_modules() -> None:
    root = _tree()
    assert [name for name, _ in root.named_children()] == ["a", "b"]
    assert list(root.children()) == [root.a, root.b]
    assert [name for name, _ in root.named_modules()] == ["", "a", "a.deep", "b"]
    assert list(root.modules()) == [root, root.a, root.a.deep, root.b]
    assert [name for name, _ in root.named_modules(prefix="top")] == [
        "top",
        "top.a",
        "top.a.deep",
        "top.b",
    ]


def test_shared_module_listed_once_unless_asked() -> None:
    root = _tree()
    root.alias = root.a
    assert [n for n, _ in root.named_children()] == ["a", "b"]
    assert [n for n, _ in root.named_modules()] == ["", "a", "a.deep", "b"]
    assert [n for n, _ in root.named_modules(remove_duplicate=False)] == [
        "",
        "a",
        "a.deep",
        "b",
        "alias",
        "alias.deep",
    ]
    assert [n for n, _ in root.named_buffers()] == ["x", "a.x", "a.deep.tags", "a.deep.cfg", "b.x"]
    assert len(list(root.named_buffers(remove_duplicate=False))) == 8
    assert [n for n, _ in root.named_parameters(remove_duplicate=False)] == [
        "p",
        "a.p",
        "b.p",
        "alias.p",
    ]


def test_equal_values_are_all_listed() -> None:
    root = _tree()
    assert [n for n, _ in root.named_parameters()] == ["p", "a.p", "b.p"]
    assert [n for n, _ in root.named_buffers()] == ["x", "a.x", "a.deep.tags", "a.deep.cfg", "b.x"]
    assert list(root.buffers()) == [1, 1, ["t"], {"k": "v"}, 1]
    assert [p.data for p in root.parameters()] == ["root", "same", "same"]


def test_shared_parameter_object_listed_once() -> None:
    root = _tree()
    root.b.q = root.a.p
    assert [n for n, _ in root.named_parameters()] == ["p", "a.p", "b.p"]
    assert [n for n, _ in root.named_parameters(remove_duplicate=False)] == [
        "p",
        "a.p",
        "b.p",
        "b.q",
    ]


def test_recurse_false_and_prefix() -> None:
    root = _tree()
    assert [n for n, _ in root.named_parameters(recurse=False)] == ["p"]
    assert [n for n, _ in root.named_buffers(recurse=False)] == ["x"]
    assert list(root.parameters(recurse=False)) == [root.p]
    assert list(root.buffers(recurse=False)) == [1]
    assert [n for n, _ in root.a.named_parameters(prefix="a")] == ["a.p"]
    assert [n for n, _ in root.named_buffers(prefix="m", recurse=False)] == ["m.x"]


def test_buffers_are_the_values_themselves() -> None:
    root = _tree()
    dict(root.named_buffers())["a.deep.tags"].append("u")
    assert root.a.deep.tags == ["t", "u"]


def test_train_and_eval_reach_every_module() -> None:
    root = _tree()
    root.experts = nn.ModuleDict({"train": Module(), "eval": Module()})
    assert root.eval() is root
    assert all(m.training is False for m in root.modules())
    assert root.train() is root
    assert all(m.training is True for m in root.modules())
    assert root.train(False) is root and not root.experts["train"].training


def test_train_rejects_non_bool() -> None:
    import pytest

    with pytest.raises(ValueError, match="bool"):
        Module().train("yes")  # type: ignore[arg-type]
