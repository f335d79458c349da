"""state_dict / load_state_dict: keys, copies, strictness, all-or-nothing, hooks."""

from __future__ import annotations

import pytest

import msgflux.nn as nn
from msgflux.errors import StateDictError, StateValueError
from msgflux.nn import Module, Parameter
from msgflux.nn.modules.module import _IncompatibleKeys


def _snapshot(module: Module):
    return (
        module.state_dict(),
        [(name, p.data, p.spec, id(p)) for name, p in module.named_parameters()],
        list(module.named_buffers()),
    )


# -- state_dict ---------------------------------------------------------------


def test_order_params_then_buffers_then_children() -> None:
    m = Module()
    m.register_buffer("b1", 1)
    m.child = Module()
    m.p1 = Parameter("a", "s")
    m.child.deeper = Module()
    m.child.deeper.p = Parameter("d", "s")
    m.register_buffer("b2", 2)
    assert list(m.state_dict()) == ["p1", "b1", "b2", "child.deeper.p"]


def test_non_persistent_buffers_are_left_out(pipeline) -> None:
    pipeline.register_buffer("cache", {"k": 1}, persistent=False)
    assert "cache" not in pipeline.state_dict()
    assert dict(pipeline.named_buffers())["cache"] == {"k": 1}


def test_returned_values_are_copies() -> None:
    m = Module()
    m.p = Parameter({"tags": ["a"]}, "cfg")
    m.register_buffer("b", [1, [2]])
    sd = m.state_dict()
    sd["p"]["tags"].append("b")
    sd["b"][1].append(3)
    sd["new"] = 1
    assert m.state_dict() == {"p": {"tags": ["a"]}, "b": [1, [2]]}


def test_keep_vars_returns_parameter_objects(pipeline) -> None:
    sd = pipeline.state_dict(keep_vars=True)
    assert sd["analyzer.instructions"] is pipeline.analyzer.instructions
    assert sd["flux"] == "preprocess -> analyze"


def test_destination_and_prefix(pipeline) -> None:
    destination = {"existing": 0}
    result = pipeline.state_dict(destination, "root.")
    assert result is destination
    assert list(result) == [
        "existing",
        "root.flux",
        "root.analyzer.instructions",
        "root.analyzer.expected_output",
    ]


def test_state_dict_hooks_called_and_removable(pipeline) -> None:
    calls: list[tuple] = []
    pre = pipeline.analyzer.register_state_dict_pre_hook(
        lambda module, prefix, keep_vars: calls.append(("pre", module, prefix, keep_vars))
    )

    def post(module, state_dict, prefix, local_metadata):
        calls.append(("post", prefix, local_metadata))
        state_dict[prefix + "added"] = "by hook"

    handle = pipeline.analyzer.register_state_dict_post_hook(post)
    sd = pipeline.state_dict()
    assert calls == [
        ("pre", pipeline.analyzer, "analyzer.", False),
        ("post", "analyzer.", {"version": 1}),
    ]
    assert sd["analyzer.added"] == "by hook"
    pre.remove()
    handle.remove()
    assert "analyzer.added" not in pipeline.state_dict()
    assert len(calls) == 2


def test_state_dict_post_hook_must_return_none(pipeline) -> None:
    pipeline.register_state_dict_post_hook(lambda module, sd, prefix, meta: {})
    with pytest.raises(RuntimeError, match="must return None"):
        pipeline.state_dict()


# -- load_state_dict ------------------------------------------------------------


def test_load_hot_swaps_in_place(pipeline) -> None:
    param = pipeline.analyzer.instructions
    result = pipeline.load_state_dict(
        {"analyzer.instructions": "New", "flux": "a -> b", "analyzer.expected_output": "YAML"}
    )
    assert result == ([], [])
    assert isinstance(result, _IncompatibleKeys)
    assert repr(result) == str(result) == "<All keys matched successfully>"
    assert pipeline.analyzer.instructions is param
    assert param.data == "New" and param.spec == "system_prompt"
    assert pipeline.flux == "a -> b" and pipeline.analyzer.expected_output == "YAML"


def test_non_strict_applies_known_keys_and_reports_the_rest(pipeline) -> None:
    result = pipeline.load_state_dict({"analyzer.instructions": "New", "ghost": 1})
    assert result.missing_keys == ["flux", "analyzer.expected_output"]
    assert result.unexpected_keys == ["ghost"]
    assert repr(result) == (
        "_IncompatibleKeys(missing_keys=['flux', 'analyzer.expected_output'], "
        "unexpected_keys=['ghost'])"
    )
    assert pipeline.analyzer.instructions.data == "New"


def test_strict_lists_every_key_and_changes_nothing(pipeline) -> None:
    before = _snapshot(pipeline)
    with pytest.raises(StateDictError) as info:
        pipeline.load_state_dict(
            {"analyzer.instructions": "New", "ghost": 1, "analyzer.ghost": 2}, strict=True
        )
    error = info.value
    assert error.missing_keys == ["flux", "analyzer.expected_output"]
    assert error.unexpected_keys == ["ghost", "analyzer.ghost"]
    message = str(error)
    for key in ("'flux'", "'analyzer.expected_output'", "'ghost'", "'analyzer.ghost'"):
        assert key in message
    assert "Pipeline" in message and "nothing was loaded" in message
    assert isinstance(error, KeyError)
    assert _snapshot(pipeline) == before


def test_strict_success(pipeline) -> None:
    sd = pipeline.state_dict()
    sd["flux"] = "x"
    assert repr(pipeline.load_state_dict(sd, strict=True)) == "<All keys matched successfully>"
    assert pipeline.flux == "x"


def test_bad_value_changes_nothing(pipeline) -> None:
    before = _snapshot(pipeline)
    with pytest.raises(StateValueError, match="analyzer.expected_output"):
        pipeline.load_state_dict({"flux": "changed", "analyzer.expected_output": {1, 2}})
    with pytest.raises(StateValueError, match="NaN"):
        pipeline.load_state_dict({"flux": "changed", "analyzer.instructions": float("nan")})
    assert _snapshot(pipeline) == before


def test_not_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        Module().load_state_dict([("a", 1)])  # type: ignore[arg-type]


def test_prefix_matching_is_exact() -> None:
    root = Module()
    root.sub = Module()
    root.sub.register_buffer("x", "sub.x")
    root.xsub = Module()
    root.xsub.register_buffer("y", "xsub.y")
    root.sub.register_buffer("xsub", "not a child")
    sd = {"sub.xsub.y": "wrong", "sub.x": "A", "xsub.y": "B", "subx": 1}
    result = root.load_state_dict(sd)
    assert root.sub.x == "A" and root.xsub.y == "B"
    assert root.sub.xsub == "not a child"
    assert result.unexpected_keys == ["sub.xsub.y", "subx"]
    assert result.missing_keys == ["sub.xsub"]


def test_loaded_values_are_copies() -> None:
    m = Module()
    m.p = Parameter([], "examples")
    m.register_buffer("cfg", {})
    sd = {"p": ["a"], "cfg": {"k": ["v"]}}
    m.load_state_dict(sd)
    sd["p"].append("b")
    sd["cfg"]["k"].append("w")
    assert m.state_dict() == {"p": ["a"], "cfg": {"k": ["v"]}}


def test_load_accepts_parameter_values(pipeline, pipeline_cls) -> None:
    other = pipeline_cls()
    other.analyzer.instructions.data = "Other"
    pipeline.load_state_dict(other.state_dict(keep_vars=True))
    assert pipeline.analyzer.instructions.data == "Other"
    assert pipeline.analyzer.instructions is not other.analyzer.instructions
    assert pipeline.state_dict() == other.state_dict()


def test_buffer_value_type_may_change(pipeline) -> None:
    pipeline.load_state_dict({"flux": ["preprocess", "analyze"]})
    assert pipeline.flux == ["preprocess", "analyze"]


def test_non_persistent_buffer_keys_are_unexpected(pipeline) -> None:
    pipeline.register_buffer("cache", 0, persistent=False)
    assert pipeline.load_state_dict({"cache": 5}).unexpected_keys == ["cache"]
    assert pipeline.cache == 0


def test_load_pre_hook_can_rename_keys_and_does_not_touch_callers_dict(pipeline) -> None:
    calls: list[tuple] = []

    def rename(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        calls.append((type(module).__name__, prefix, strict))
        if prefix + "prompt" in state_dict:
            state_dict[prefix + "instructions"] = state_dict.pop(prefix + "prompt")

    handle = pipeline.analyzer.register_load_state_dict_pre_hook(rename)
    sd = {"flux": "f", "analyzer.prompt": "Renamed", "analyzer.expected_output": "o"}
    assert repr(pipeline.load_state_dict(sd, strict=True)) == "<All keys matched successfully>"
    assert pipeline.analyzer.instructions.data == "Renamed"
    assert "analyzer.prompt" in sd
    assert calls == [("Analyzer", "analyzer.", True)]
    handle.remove()
    assert pipeline.load_state_dict(sd).unexpected_keys == ["analyzer.prompt"]


def test_load_post_hooks_called_children_first_and_may_edit_result(pipeline) -> None:
    calls: list[str] = []

    def root_hook(module, keys):
        calls.append("root")
        keys.missing_keys.clear()

    pipeline.register_load_state_dict_post_hook(root_hook)
    child = pipeline.analyzer.register_load_state_dict_post_hook(
        lambda module, keys: calls.append(f"child missing={keys.missing_keys}")
    )
    result = pipeline.load_state_dict({"flux": "x"})
    assert calls == ["child missing=['analyzer.instructions', 'analyzer.expected_output']", "root"]
    assert result.missing_keys == []
    child.remove()
    pipeline.load_state_dict({})
    assert calls[-1] == "root" and len(calls) == 3


@pytest.mark.parametrize("where", ["pre", "post"])
def test_failing_hook_leaves_module_unchanged(pipeline, where) -> None:
    before = _snapshot(pipeline)

    def boom(*args):
        raise RuntimeError("hook failed")

    if where == "pre":
        pipeline.analyzer.register_load_state_dict_pre_hook(boom)
    else:
        pipeline.register_load_state_dict_post_hook(boom)
    with pytest.raises(RuntimeError, match="hook failed"):
        pipeline.load_state_dict(
            {"flux": "x", "analyzer.instructions": "y", "analyzer.expected_output": ["z"]}
        )
    assert _snapshot(pipeline) == before


def test_hook_that_mutates_then_fails_is_undone(pipeline) -> None:
    before = _snapshot(pipeline)

    def meddle(module, state_dict, prefix, *rest):
        module.analyzer.instructions.data = "meddled"
        module.register_buffer("flux", "meddled")
        raise ValueError("then fails")

    pipeline.register_load_state_dict_pre_hook(meddle)
    with pytest.raises(ValueError, match="then fails"):
        pipeline.load_state_dict({})
    assert _snapshot(pipeline) == before


def test_load_hook_return_value_is_refused(pipeline) -> None:
    pipeline.register_load_state_dict_post_hook(lambda module, keys: keys)
    before = _snapshot(pipeline)
    with pytest.raises(RuntimeError, match="must return None"):
        pipeline.load_state_dict({"flux": "x"})
    assert _snapshot(pipeline) == before


def test_shared_submodule_loads_under_both_paths() -> None:
    root = Module()
    root.a = Module()
    root.a.register_buffer("x", 0)
    root.b = root.a
    assert root.state_dict() == {"a.x": 0, "b.x": 0}
    assert root.load_state_dict({"a.x": 1, "b.x": 1}, strict=True) == ([], [])
    assert root.a.x == 1


def test_module_dict_tree_state_roundtrip() -> None:
    root = Module()
    root.experts = nn.ModuleDict({"train": Module(), "modules": Module()})
    root.experts["train"].p = Parameter("t", "s")
    root.experts["modules"].register_buffer("b", [1])
    assert root.state_dict() == {"experts.train.p": "t", "experts.modules.b": [1]}
    root.load_state_dict({"experts.train.p": "T", "experts.modules.b": [2]}, strict=True)
    assert root.experts["train"].p.data == "T" and root.experts["modules"].b == [2]
    assert len(list(root.modules())) == 4
