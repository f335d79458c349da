"""Forward hooks and calling a module: msgflux's hook form by default, PyTorch's on request."""

from __future__ import annotations

import pytest

from msgflux.nn import Module, RemovableHandle


class Upper(Module):
    def forward(self, text: str, *, suffix: str = "") -> str:
        return text.upper() + suffix


class Failing(Module):
    def forward(self, text: str) -> str:
        raise ValueError(f"cannot handle {text}")


def test_call_runs_forward_with_args_and_kwargs() -> None:
    assert Upper()("hi", suffix="!") == "HI!"


def test_forward_missing_raises() -> None:
    with pytest.raises(NotImplementedError, match=r"Module \[Module\] is missing"):
        Module()("x")


# -- msgflux's form (the default) ---------------------------------------------------


def test_pre_hook_gets_args_and_kwargs_and_may_replace_both() -> None:
    m = Upper()
    seen: list[tuple] = []

    def pre(module, args, kwargs):
        seen.append((module, args, dict(kwargs)))
        return (args[0] + "a",), {**kwargs, "suffix": "?"}

    m.register_forward_pre_hook(pre)
    assert m("x", suffix="!") == "XA?"
    assert seen == [(m, ("x",), {"suffix": "!"})]


def test_pre_hook_returning_none_keeps_inputs_and_may_edit_kwargs_in_place() -> None:
    m = Upper()
    m.register_forward_pre_hook(lambda module, args, kwargs: None)
    assert m("x") == "X"

    def enrich(module, args, kwargs):
        kwargs["suffix"] = "+"

    m.register_forward_pre_hook(enrich)
    assert m("x") == "X+"


@pytest.mark.parametrize("bad", ["text", ("a",), ("a", "b"), (("a",), {"k": 1}, "extra"), 3])
def test_pre_hook_bad_return_is_a_clear_error(bad) -> None:
    m = Upper()
    m.register_forward_pre_hook(lambda module, args, kwargs: bad)
    with pytest.raises(RuntimeError, match=r"must return None or a tuple \(args: tuple, kwargs"):
        m("a")


def test_pre_hook_may_return_args_as_a_list() -> None:
    m = Upper()
    m.register_forward_pre_hook(lambda module, args, kwargs: (["b"], kwargs))
    assert m("a") == "B"


def test_forward_hook_gets_args_kwargs_and_output() -> None:
    m = Upper()
    calls: list[str] = []

    def post(module, args, kwargs, output):
        calls.append("post")
        assert (module, args, kwargs, output) == (m, ("x",), {"suffix": "!"}, "X!")
        return output + "?"

    def observe(module, args, kwargs, output):
        calls.append("observe")
        assert output == "X!?"

    m.register_forward_hook(post)
    m.register_forward_hook(observe)
    assert m("x", suffix="!") == "X!?"
    assert calls == ["post", "observe"]


def test_prepend_runs_first_for_both_kinds() -> None:
    m = Upper()
    calls: list[str] = []
    m.register_forward_pre_hook(lambda mod, args, kwargs: calls.append("pre second"))
    m.register_forward_pre_hook(lambda mod, args, kwargs: calls.append("pre first"), prepend=True)
    m.register_forward_hook(lambda mod, args, kwargs, out: calls.append("post second"))
    m.register_forward_hook(lambda mod, args, kwargs, out: calls.append("post first"), prepend=True)
    m("a")
    assert calls == ["pre first", "pre second", "post first", "post second"]


# -- always_call ---------------------------------------------------------------------


def test_always_call_hook_runs_when_forward_raises() -> None:
    m = Failing()
    seen: list[object] = []
    m.register_forward_hook(lambda mod, args, kwargs, out: seen.append(("plain", out)))
    m.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(("always", args, out)), always_call=True
    )
    with pytest.raises(ValueError, match="cannot handle x"):
        m("x")
    assert seen == [("always", ("x",), None)]


def test_always_call_hook_runs_when_an_earlier_hook_raises_and_runs_once() -> None:
    m = Upper()
    seen: list[str] = []

    def boom(mod, args, kwargs, out):
        raise KeyError("hook failed")

    m.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append("early always"), always_call=True
    )
    m.register_forward_hook(boom)
    m.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(f"late always {out}"), always_call=True
    )
    with pytest.raises(KeyError, match="hook failed"):
        m("x")
    assert seen == ["early always", "late always X"]


def test_always_call_hook_error_is_a_warning_and_the_original_error_wins() -> None:
    m = Failing()

    def broken(mod, args, kwargs, out):
        raise RuntimeError("hook broke too")

    m.register_forward_hook(broken, always_call=True)
    with pytest.warns(RuntimeWarning, match="hook broke too"), pytest.raises(ValueError):
        m("x")


def test_always_call_flag_goes_away_with_the_hook() -> None:
    m = Failing()
    handle = m.register_forward_hook(lambda *a: None, always_call=True)
    assert handle.id in m._forward_hooks_always_called
    handle.remove()
    assert handle.id not in m._forward_hooks_always_called
    assert handle.id not in m._forward_hooks_with_kwargs


# -- PyTorch's form, by explicit opt-in ----------------------------------------------


def test_pytorch_form_with_kwargs_false() -> None:
    m = Upper()
    calls: list[str] = []

    def pre(module, args):
        calls.append("pre")
        return (args[0] + "a",)

    def pre_not_tuple(module, args):
        calls.append("pre2")
        return args[0] + "b"

    def post(module, args, output):
        calls.append("post")
        assert args == ("xab",)
        return output + "!"

    m.register_forward_pre_hook(pre, with_kwargs=False)
    m.register_forward_pre_hook(pre_not_tuple, with_kwargs=False)
    m.register_forward_hook(post, with_kwargs=False)
    assert m("x", suffix="?") == "XAB?!"
    assert calls == ["pre", "pre2", "post"]


def test_both_forms_mix_on_one_module() -> None:
    m = Upper()
    m.register_forward_pre_hook(lambda mod, args: ("b",), with_kwargs=False)
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"suffix": "!"}))
    m.register_forward_hook(lambda mod, args, out: out + "1", with_kwargs=False)
    m.register_forward_hook(lambda mod, args, kwargs, out: out + str(kwargs))
    assert m("a") == "B!1{'suffix': '!'}"


# -- handles -----------------------------------------------------------------------


def test_handles_remove_hooks() -> None:
    m = Upper()
    calls: list[str] = []
    pre = m.register_forward_pre_hook(lambda mod, args, kwargs: calls.append("pre"))
    post = m.register_forward_hook(lambda mod, args, kwargs, out: calls.append("post"))
    assert isinstance(pre, RemovableHandle)
    m("a")
    pre.remove()
    m("a")
    post.remove()
    post.remove()  # harmless twice
    m("a")
    assert calls == ["pre", "post", "post"]
    assert "removed" in repr(pre)
    assert not m._forward_pre_hooks_with_kwargs and not m._forward_hooks_with_kwargs


def test_handle_as_context_manager() -> None:
    m = Upper()
    with m.register_forward_hook(lambda mod, args, kwargs, out: out + "!"):
        assert m("a") == "A!"
    assert m("a") == "A"


def test_hooks_on_children_run_when_parent_calls_them() -> None:
    class Outer(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Upper()

        def forward(self, text: str) -> str:
            return self.inner(text)

    outer = Outer()
    seen: list[str] = []
    outer.inner.register_forward_hook(lambda mod, args, kwargs, out: seen.append(out))
    assert outer("x") == "X" and seen == ["X"]


def test_async_hook_in_a_plain_call_is_refused_clearly() -> None:
    m = Upper()

    async def pre(mod, args, kwargs):
        return None

    m.register_forward_pre_hook(pre)
    with pytest.raises(TypeError, match=r"is async.*await module\.acall"):
        m("a")


def test_calls_from_many_threads_while_hooks_come_and_go() -> None:
    import threading

    m = Upper()
    errors: list[BaseException] = []
    outputs: set[str] = set()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            pre = m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] + "p",), kwargs))
            post = m.register_forward_hook(lambda mod, args, kwargs, out: out + "!")
            pre.remove()
            post.remove()

    def call() -> None:
        try:
            for _ in range(300):
                outputs.add(m("a"))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    churner = threading.Thread(target=churn)
    churner.start()
    callers = [threading.Thread(target=call) for _ in range(6)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    stop.set()
    churner.join()
    assert errors == []
    assert outputs <= {"A", "AP", "A!", "AP!"}
    assert not m._forward_pre_hooks and not m._forward_hooks
    assert not m._forward_pre_hooks_with_kwargs and not m._forward_hooks_with_kwargs


def test_modules_with_hooks_pickle_and_deepcopy() -> None:
    import copy
    import pickle

    m = Upper()
    m.register_buffer("fmt", "JSON")
    clone = pickle.loads(pickle.dumps(m))
    assert clone("a") == "A" and clone.fmt == "JSON"
    m.register_forward_hook(lambda mod, args, kwargs, out: out + "!")
    twin = copy.deepcopy(m)
    assert twin("a") == "A!" and len(twin._forward_hooks) == 1
    # an old pickle without some hook tables still works
    state = m.__getstate__()
    for name in ("_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs"):
        del state[name]
    revived = Upper.__new__(Upper)
    revived.__setstate__(state)
    assert revived("b") == "B!" and revived._forward_hooks_always_called == {}
