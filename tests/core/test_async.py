"""``aforward`` / ``acall``: the async call, its hooks, and ``Sequential``'s async chain."""

from __future__ import annotations

import asyncio
import threading

import pytest

import msgflux.nn as nn
from msgflux.nn import Module
from msgflux.nn.hooks import Hook


class SyncOnly(Module):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def forward(self, text: str, *, suffix: str = "") -> str:
        self.threads.append(threading.get_ident())
        return text.upper() + suffix


class AsyncUpper(Module):
    async def aforward(self, text: str, *, suffix: str = "") -> str:
        await asyncio.sleep(0)
        return text.upper() + suffix


class AsyncFailing(Module):
    async def aforward(self, text: str) -> str:
        raise ValueError(f"async cannot handle {text}")


def run(coroutine):  # one event loop per test, no plugin needed
    return asyncio.run(coroutine)


def test_default_aforward_raises_naming_the_module() -> None:
    class Plain(Module):
        pass

    with pytest.raises(
        NotImplementedError, match=r'Module \[Plain\] is missing the required "aforward"'
    ):
        run(Plain().aforward("x"))


def test_acall_without_aforward_falls_back_to_the_sync_call_with_its_hooks() -> None:
    m = SyncOnly()
    calls: list[str] = []
    m.register_forward_pre_hook(lambda mod, args, kwargs: calls.append("pre"))
    m.register_forward_hook(lambda mod, args, kwargs, out: out + "!")
    assert run(m.acall("a", suffix="?")) == "A?!"
    assert calls == ["pre"]
    # the blocking forward ran in a worker thread, not in the event loop's thread
    assert m.threads and m.threads[0] != threading.get_ident()


def test_acall_runs_pre_hooks_aforward_then_post_hooks() -> None:
    m = AsyncUpper()
    calls: list[str] = []

    def pre(mod, args, kwargs):
        calls.append("pre")
        return (args[0] + "b",), kwargs

    async def async_pre(mod, args, kwargs):
        await asyncio.sleep(0)
        calls.append("async pre")
        return args, {**kwargs, "suffix": "?"}

    async def async_post(mod, args, kwargs, out):
        calls.append(f"async post {args} {kwargs}")
        return out + "!"

    def post(mod, args, kwargs, out):
        calls.append(f"post {out}")

    m.register_forward_pre_hook(pre)
    m.register_forward_pre_hook(async_pre)
    m.register_forward_hook(async_post)
    m.register_forward_hook(post)
    assert run(m.acall("a")) == "AB?!"
    assert calls == ["pre", "async pre", "async post ('ab',) {'suffix': '?'}", "post AB?!"]


def test_a_hook_with_an_acall_method_is_awaited_through_it() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def __call__(self, mod, args, kwargs, out):
            self.seen.append("sync")
            return out + " (sync)"

        async def acall(self, mod, args, kwargs, out):
            self.seen.append("async")
            return out + " (async)"

    m = AsyncUpper()
    recorder = Recorder()
    m.register_forward_hook(recorder)
    assert run(m.acall("a")) == "A (async)"
    assert recorder.seen == ["async"]


def test_acall_bad_pre_hook_return_is_a_clear_error() -> None:
    m = AsyncUpper()

    async def bad(mod, args, kwargs):
        return "not a pair"

    m.register_forward_pre_hook(bad)
    with pytest.raises(RuntimeError, match="must return None or a tuple"):
        run(m.acall("a"))


def test_acall_pytorch_form_hooks() -> None:
    m = AsyncUpper()
    m.register_forward_pre_hook(lambda mod, args: "z", with_kwargs=False)
    m.register_forward_hook(lambda mod, args, out: f"{args}->{out}", with_kwargs=False)
    assert run(m.acall("a")) == "('z',)->Z"


def test_acall_always_call_hook_runs_when_aforward_raises() -> None:
    m = AsyncFailing()
    seen: list[object] = []

    async def always(mod, args, kwargs, out):
        seen.append(("always", out))

    m.register_forward_hook(lambda mod, args, kwargs, out: seen.append("plain"))
    m.register_forward_hook(always, always_call=True)
    with pytest.raises(ValueError, match="async cannot handle x"):
        run(m.acall("x"))
    assert seen == [("always", None)]


def test_acall_hooks_may_remove_themselves() -> None:
    m = AsyncUpper()
    handles = []

    async def once(mod, args, kwargs, out):
        handles[0].remove()
        return out + "!"

    handles.append(m.register_forward_hook(once))
    assert run(m.acall("a")) == "A!"
    assert run(m.acall("a")) == "A"


def test_hook_subclass_default_acall_runs_call_in_a_thread() -> None:
    class Exclaim(Hook):
        def __init__(self) -> None:
            super().__init__(on="post")
            self.threads: list[int] = []

        def __call__(self, module, args, kwargs, output=None):
            self.threads.append(threading.get_ident())
            return output + "!"

    hook = Exclaim()
    m = AsyncUpper()
    hook.register(m)
    assert run(m.acall("a")) == "A!"
    assert hook.threads and hook.threads[0] != threading.get_ident()


# -- Sequential -------------------------------------------------------------------------


class AddSync(Module):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self.register_buffer("tag", tag)

    def forward(self, x: str) -> str:
        return x + self.tag


class AddAsync(Module):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self.register_buffer("tag", tag)

    async def aforward(self, x: str) -> str:
        await asyncio.sleep(0)
        return x + self.tag


def test_sequential_acall_chains_sync_and_async_children_in_order() -> None:
    chain = nn.Sequential(AddSync("1"), AddAsync("2"), AddSync("3"), AddAsync("4"))
    assert run(chain.acall("x")) == "x1234"


def test_sequential_acall_passes_everything_to_the_first_child_and_runs_hooks() -> None:
    first = AsyncUpper()
    chain = nn.Sequential(first, AddSync("."))
    first.register_forward_hook(lambda mod, args, kwargs, out: out + "|")
    chain.register_forward_hook(lambda mod, args, kwargs, out: f"<{out}>")
    assert run(chain.acall("a", suffix="?")) == "<A?|.>"


def test_empty_sequential_acall_returns_its_input() -> None:
    assert run(nn.Sequential().acall("same")) == "same"
    with pytest.raises(TypeError, match="exactly one positional argument"):
        run(nn.Sequential().acall("a", "b"))


def test_concurrent_acalls_do_not_share_hook_state() -> None:
    m = AsyncUpper()

    async def pre(mod, args, kwargs):
        await asyncio.sleep(0)
        return (args[0] * 2,), kwargs

    m.register_forward_pre_hook(pre)

    async def many():
        return await asyncio.gather(*(m.acall(str(i)) for i in range(50)))

    assert run(many()) == [str(i) * 2 for i in range(50)]


def test_an_aforward_written_without_async_still_works() -> None:
    class Plain(Module):
        def aforward(self, text: str) -> str:  # type: ignore[override]
            return text + "?"

    assert run(Plain().acall("a")) == "a?"
