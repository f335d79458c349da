"""Forward hooks and calling a module."""

from __future__ import annotations

import pytest

from msgflux.nn import Module, RemovableHandle


class Upper(Module):
    def forward(self, text: str, *, suffix: str = "") -> str:
        return text.upper() + suffix


def test_call_runs_forward_with_args_and_kwargs() -> None:
    assert Upper()("hi", suffix="!") == "HI!"


def test_forward_missing_raises() -> None:
    with pytest.raises(NotImplementedError, match=r"Module \[Module\] is missing"):
        Module()("x")


def test_hooks_run_in_order_and_can_replace_values() -> None:
    m = Upper()
    calls: list[str] = []

    def pre(module, args):
        calls.append("pre")
        assert module is m
        return (args[0] + "a",)

    def pre_not_tuple(module, args):
        calls.append("pre2")
        return args[0] + "b"

    def post(module, args, output):
        calls.append("post")
        assert args == ("xab",)
        return output + "!"

    def observe(module, args, output):
        calls.append("observe")
        assert output == "XAB!"

    m.register_forward_pre_hook(pre)
    m.register_forward_pre_hook(pre_not_tuple)
    m.register_forward_hook(post)
    m.register_forward_hook(observe)
    assert m("x") == "XAB!"
    assert calls == ["pre", "pre2", "post", "observe"]


def test_prepend_and_with_kwargs() -> None:
    m = Upper()
    calls: list[str] = []
    m.register_forward_pre_hook(lambda mod, args: calls.append("second"))
    m.register_forward_pre_hook(lambda mod, args: calls.append("first"), prepend=True)

    def pre_kwargs(module, args, kwargs):
        return args, {**kwargs, "suffix": "?"}

    def post_kwargs(module, args, kwargs, output):
        calls.append(f"post {kwargs}")

    m.register_forward_pre_hook(pre_kwargs, with_kwargs=True)
    m.register_forward_hook(post_kwargs, with_kwargs=True)
    assert m("a") == "A?"
    assert calls == ["first", "second", "post {'suffix': '?'}"]


def test_with_kwargs_pre_hook_bad_return() -> None:
    m = Upper()
    m.register_forward_pre_hook(lambda mod, args, kwargs: "bad", with_kwargs=True)
    with pytest.raises(RuntimeError, match=r"\(args, kwargs\)"):
        m("a")


def test_handles_remove_hooks() -> None:
    m = Upper()
    calls: list[str] = []
    pre = m.register_forward_pre_hook(lambda mod, args: calls.append("pre"))
    post = m.register_forward_hook(lambda mod, args, out: calls.append("post"))
    assert isinstance(pre, RemovableHandle)
    m("a")
    pre.remove()
    m("a")
    post.remove()
    post.remove()  # harmless twice
    m("a")
    assert calls == ["pre", "post", "post"]
    assert "removed" in repr(pre)


def test_handle_as_context_manager() -> None:
    m = Upper()
    with m.register_forward_hook(lambda mod, args, out: out + "!"):
        assert m("a") == "A!"
    assert m("a") == "A"


def test_hooks_on_children_run_when_parent_calls_them(pipeline) -> None:
    class Outer(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Upper()

        def forward(self, text: str) -> str:
            return self.inner(text)

    outer = Outer()
    seen: list[str] = []
    outer.inner.register_forward_hook(lambda mod, args, out: seen.append(out))
    assert outer("x") == "X" and seen == ["X"]
