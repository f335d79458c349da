"""State-dict extension points: ``_save_to_state_dict`` / ``_load_from_state_dict``
overrides and the documented hook arguments, inside the all-or-nothing rule."""

from __future__ import annotations

import pytest

from msgflux.errors import StateDictError, StateValueError
from msgflux.nn import Module, Parameter


class Renamed(Module):
    """Version 2 renamed ``prompt`` to ``instructions``; migrates old state dicts (PyTorch form)."""

    _version = 2

    def __init__(self) -> None:
        super().__init__()
        self.instructions = Parameter("Be brief", "system_prompt")

    def _load_from_state_dict(
        self,
        state_dict,
        prefix,
        local_metadata,
        strict,
        missing_keys,
        unexpected_keys,
        error_msgs,
    ):
        old = prefix + "prompt"
        if old in state_dict:
            state_dict[prefix + "instructions"] = state_dict.pop(old)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class Root(Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("flux", "a -> b")
        self.agent = Renamed()


def test_load_override_migrates_old_keys_and_the_callers_dict_is_untouched() -> None:
    root = Root()
    old = {"flux": "x", "agent.prompt": "Old prompt"}
    result = root.load_state_dict(old, strict=True)
    assert repr(result) == "<All keys matched successfully>"
    assert root.agent.instructions.data == "Old prompt"
    assert old == {"flux": "x", "agent.prompt": "Old prompt"}


def test_save_override_pytorch_form_is_called_with_keep_vars() -> None:
    calls: list[tuple] = []

    class Upper(Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("fmt", "json")

        def _save_to_state_dict(self, destination, prefix, keep_vars):
            calls.append((prefix, keep_vars))
            super()._save_to_state_dict(destination, prefix, keep_vars)
            destination[prefix + "fmt"] = destination[prefix + "fmt"].upper()

    root = Module()
    root.child = Upper()
    assert root.state_dict() == {"child.fmt": "JSON"}
    root.state_dict(keep_vars=True)
    assert calls == [("child.", False), ("child.", True)]


def test_msgflux_form_overrides_with_two_arguments() -> None:
    seen: list[tuple] = []

    class Legacy(Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("a", 1)
            self.register_buffer("b", 2)

        def _save_to_state_dict(self, destination, prefix):
            destination[prefix + "a"] = self.a * 10

        def _load_from_state_dict(self, state_dict, prefix=""):
            # as upstream calls it: this module's keys without their prefix
            seen.append((prefix, sorted(state_dict)))
            if "a" in state_dict:
                self.a = state_dict["a"] // 10

    root = Module()
    root.legacy = Legacy()
    assert root.state_dict() == {"legacy.a": 10}
    result = root.load_state_dict({"legacy.a": 70, "legacy.zzz": 0, "other": 1})
    assert root.legacy.a == 7
    assert seen == [("", ["a", "zzz"])]
    # keys are still reported for an override that cannot report them itself
    assert result.missing_keys == ["legacy.b"]
    assert result.unexpected_keys == ["legacy.zzz", "other"]


def test_a_failing_override_leaves_everything_unchanged() -> None:
    class Fails(Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = Parameter("orig", "s")
            self.register_buffer("b", [1])

        def _load_from_state_dict(self, state_dict, prefix, *rest):
            super()._load_from_state_dict(state_dict, prefix, *rest)
            raise RuntimeError("override failed after loading")

    root = Root()
    root.last = Fails()
    before = root.state_dict()
    with pytest.raises(RuntimeError, match="override failed"):
        root.load_state_dict(
            {"flux": "new", "agent.instructions": "new", "last.p": "new", "last.b": [2]}
        )
    assert root.state_dict() == before


def test_an_override_writing_a_bad_value_is_refused_and_undone() -> None:
    class Sneaky(Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("b", "ok")

        def _load_from_state_dict(self, state_dict, prefix, *rest):
            self._buffers["b"] = {1, 2}  # bypasses the checks a normal assignment has

    m = Sneaky()
    with pytest.raises(StateValueError, match="'b' has type set"):
        m.load_state_dict({"b": "x"})
    assert m.b == "ok"


def test_error_msgs_refuse_the_load() -> None:
    class Picky(Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("n", 1)

        def _load_from_state_dict(
            self,
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        ):
            super()._load_from_state_dict(
                state_dict,
                prefix,
                local_metadata,
                strict,
                missing_keys,
                unexpected_keys,
                error_msgs,
            )
            if self.n < 0:
                error_msgs.append(f"{prefix}n must not be negative")

    m = Picky()
    with pytest.raises(StateDictError, match="n must not be negative"):
        m.load_state_dict({"n": -1})
    assert m.n == 1
    m.load_state_dict({"n": 5})
    assert m.n == 5


def test_load_pre_hook_receives_the_documented_arguments() -> None:
    root = Root()
    calls: list[tuple] = []

    def hook(
        module,
        state_dict,
        prefix,
        local_metadata,
        strict,
        missing_keys,
        unexpected_keys,
        error_msgs,
    ):
        calls.append(
            (
                module,
                dict(state_dict),
                prefix,
                local_metadata,
                strict,
                list(missing_keys),
                list(unexpected_keys),
                list(error_msgs),
            )
        )

    root.agent.register_load_state_dict_pre_hook(hook)
    root.load_state_dict({"agent.instructions": "x", "extra": 1})
    # the child sees its own subtree's keys, as in PyTorch
    assert calls == [
        (root.agent, {"agent.instructions": "x"}, "agent.", {}, False, ["flux"], ["extra"], [])
    ]


def test_load_passes_metadata_from_a_mapping_that_carries_it() -> None:
    from collections import OrderedDict

    seen: list[dict] = []
    root = Root()
    root.agent.register_load_state_dict_pre_hook(
        lambda module, sd, prefix, local_metadata, *rest: seen.append(local_metadata)
    )
    state = OrderedDict({"agent.instructions": "x"})
    state._metadata = {"agent": {"version": 1}}  # type: ignore[attr-defined]
    root.load_state_dict(state)
    assert seen == [{"version": 1}]


def test_state_dict_post_hook_gets_local_metadata_with_the_version() -> None:
    seen: list[tuple] = []
    root = Root()
    root.agent.register_state_dict_post_hook(
        lambda module, sd, prefix, local_metadata: seen.append((prefix, local_metadata))
    )
    root.state_dict()
    assert seen == [("agent.", {"version": 2})]


def test_strict_is_checked_after_post_hooks_as_in_pytorch() -> None:
    root = Root()

    def forgive(module, incompatible_keys):
        incompatible_keys.missing_keys.clear()

    handle = root.register_load_state_dict_post_hook(forgive)
    assert root.load_state_dict({"flux": "y"}, strict=True).missing_keys == []
    assert root.flux == "y"
    handle.remove()

    def add(module, incompatible_keys):
        incompatible_keys.unexpected_keys.append("invented")

    root.register_load_state_dict_post_hook(add)
    with pytest.raises(StateDictError, match="invented"):
        root.load_state_dict({"flux": "z", "agent.instructions": "z"}, strict=True)
    assert root.flux == "y"


def test_register_buffer_accepts_the_data_keyword() -> None:
    m = Module()
    m.register_buffer("context", data={"domain": "finance"})
    m.register_buffer(name="cache", data=[], persistent=False)
    assert m.state_dict() == {"context": {"domain": "finance"}}
    assert m.cache == []
