"""``msgflux.nn.hooks``: the ``Hook`` base class and ``RemovableHandle``."""

from __future__ import annotations

from collections import OrderedDict

import pytest

import msgflux.nn as nn
from msgflux.nn.hooks import Hook, RemovableHandle


class Upper(nn.Module):
    def forward(self, text: str, **kwargs: str) -> str:
        return text.upper() + "".join(kwargs.values())


def test_removable_handle_accepts_extra_dict() -> None:
    hooks: OrderedDict[int, object] = OrderedDict()
    flags: dict[int, bool] = {}
    more: dict[int, bool] = {}
    single = RemovableHandle(hooks, extra_dict=flags)
    several = RemovableHandle(hooks, extra_dict=[flags, more])
    assert several.id != single.id
    for handle in (single, several):
        hooks[handle.id] = "hook"
        flags[handle.id] = True
    more[several.id] = True
    single.remove()
    assert list(hooks) == [several.id] and list(flags) == [several.id]
    several.remove()
    several.remove()
    assert not hooks and not flags and not more
    assert nn.RemovableHandle is RemovableHandle


def test_hook_pre_and_post_register_on_a_module() -> None:
    calls: list[str] = []

    class Tag(Hook):
        def __init__(self) -> None:
            super().__init__(on="pre", target=None)

        def __call__(self, module, args, kwargs, output=None):
            calls.append(f"pre {args} {kwargs} {output}")
            kwargs["tag"] = "+"
            return args, kwargs

    class Exclaim(Hook):
        def __init__(self) -> None:
            super().__init__(on="post")

        def __call__(self, module, args, kwargs, output=None):
            calls.append(f"post {output}")
            return output + "!"

    m = Upper()
    pre = Tag().register(m)
    post = Exclaim().register(m)
    assert isinstance(pre, RemovableHandle) and isinstance(post, RemovableHandle)
    assert m("a") == "A+!"
    assert calls == ["pre ('a',) {} None", "post A+"]
    pre.remove()
    post.remove()
    assert m("a") == "A"


def test_hook_validates_on_and_target() -> None:
    with pytest.raises(ValueError, match="'pre' or 'post'"):
        Hook(on="during")
    with pytest.raises(TypeError, match="target"):
        Hook(on="pre", target=3)  # type: ignore[arg-type]
    hook = Hook(on="post", target="generator")
    assert (hook.on, hook.target, hook.processor_key) == ("post", "generator", None)
    assert repr(hook) == "Hook(on='post', target='generator')"


def test_a_hook_without_call_says_so() -> None:
    m = Upper()
    Hook(on="post").register(m)
    with pytest.raises(NotImplementedError, match="must implement __call__"):
        m("a")
