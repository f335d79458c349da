"""Registration: what becomes state, which names are allowed, attribute access."""

from __future__ import annotations

import pytest

import msgflux.nn as nn
from msgflux.errors import MsgfluxError, StateValueError
from msgflux.nn import Module, ModuleRegistrationError, Parameter


def test_assignment_registers_parameters_and_modules() -> None:
    m = Module()
    p = Parameter("a", "s")
    child = Module()
    m.p = p
    m.child = child
    assert m._parameters == {"p": p} and m._modules == {"child": child}
    assert m.p is p and m.child is child
    assert "p" not in m.__dict__ and "child" not in m.__dict__


def test_plain_attributes_are_not_state() -> None:
    m = Module()
    m.note = "just an attribute"
    assert m.state_dict() == {}
    assert m.note == "just an attribute"


def test_register_methods() -> None:
    m = Module()
    p = Parameter("a", "s")
    m.register_parameter("p", p)
    m.register_buffer("b", [1, 2])
    m.add_module("c", Module())
    m.register_module("d", Module())
    assert m.p is p and m.b == [1, 2]
    assert list(m._modules) == ["c", "d"]


def test_buffer_assignment_updates_and_is_checked() -> None:
    m = Module()
    m.register_buffer("b", "old")
    m.b = "new"
    assert m._buffers["b"] == "new" and "b" not in m.__dict__
    with pytest.raises(StateValueError, match="'b'.*type set"):
        m.b = {1, 2}
    with pytest.raises(StateValueError):
        m.register_buffer("c", float("nan"))
    assert m.b == "new" and "c" not in m._buffers


def test_register_buffer_again_replaces_value_and_persistence() -> None:
    m = Module()
    m.register_buffer("b", 1, persistent=False)
    assert m.state_dict() == {}
    m.register_buffer("b", 2)
    assert m.state_dict() == {"b": 2}


def test_assigning_a_plain_value_to_a_parameter_name_is_refused() -> None:
    m = Module()
    m.p = Parameter("a", "s")
    with pytest.raises(TypeError, match="p.data"):
        m.p = "b"
    m.child = Module()
    with pytest.raises(TypeError, match="submodule 'child'"):
        m.child = "x"
    assert m.p.data == "a"


def test_assignment_replaces_other_kinds() -> None:
    m = Module()
    m.x = 5
    m.x = Parameter("a", "s")
    assert "x" not in m.__dict__ and "x" in m._parameters
    m.x = Module()
    assert "x" not in m._parameters and "x" in m._modules
    m.register_buffer("y", 1)
    m.y = Parameter("b", "s")
    assert "y" not in m._buffers and m.y.data == "b"


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("", ModuleRegistrationError, "empty"),
        ("a.b", ModuleRegistrationError, "can't contain"),
        (1, TypeError, "should be a string"),
        ("train", ModuleRegistrationError, "already exists"),
        ("forward", ModuleRegistrationError, "already exists"),
        ("training", ModuleRegistrationError, "reserved"),
        ("_modules", ModuleRegistrationError, "reserved"),
    ],
)
@pytest.mark.parametrize("kind", ["parameter", "buffer", "module"])
def test_bad_names_are_refused(name, error, message, kind) -> None:
    m = Module()
    with pytest.raises(error, match=message):
        if kind == "parameter":
            m.register_parameter(name, Parameter("a", "s"))
        elif kind == "buffer":
            m.register_buffer(name, "a")
        else:
            m.add_module(name, Module())
    assert m.state_dict() == {} and not m._modules
    assert m.training is True


def test_registration_errors_are_key_errors_and_msgflux_errors() -> None:
    m = Module()
    with pytest.raises(KeyError):
        m.register_buffer("a.b", 1)
    with pytest.raises(MsgfluxError):
        m.register_buffer("a.b", 1)
    try:
        m.register_buffer("", 1)
    except ModuleRegistrationError as error:
        assert str(error) == 'buffer name can\'t be empty string ""'


def test_names_taken_by_another_kind_or_attribute() -> None:
    m = Module()
    m.p = Parameter("a", "s")
    m.plain = 3
    with pytest.raises(ModuleRegistrationError, match="'p' already exists"):
        m.register_buffer("p", "x")
    with pytest.raises(ModuleRegistrationError, match="'plain' already exists"):
        m.add_module("plain", Module())
    with pytest.raises(ModuleRegistrationError, match="hide"):
        m.train = Module()
    with pytest.raises(ModuleRegistrationError, match="reserved"):
        m.training = Parameter("a", "s")
    assert m.training is True and callable(m.train)


def test_wrong_value_types() -> None:
    m = Module()
    with pytest.raises(TypeError, match="msgflux.nn.Parameter or None required"):
        m.register_parameter("p", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a msgflux.nn.Module"):
        m.add_module("c", "text")  # type: ignore[arg-type]


def test_registering_before_init_fails_clearly() -> None:
    class Early(Module):
        def __init__(self) -> None:
            self.p = Parameter("a", "s")
            super().__init__()

    class EarlyBuffer(Module):
        def __init__(self) -> None:
            self.register_buffer("b", 1)

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    with pytest.raises(AttributeError, match="before Module.__init__"):
        EarlyBuffer()


def test_delattr_unregisters() -> None:
    m = Module()
    m.p = Parameter("a", "s")
    m.register_buffer("b", 1, persistent=False)
    m.c = Module()
    m.plain = 1
    del m.p, m.b, m.c, m.plain
    assert not m._parameters and not m._buffers and not m._modules
    assert m._non_persistent_buffers == set()
    for name in ("p", "b", "c", "plain"):
        assert not hasattr(m, name)
    with pytest.raises(AttributeError):
        del m.missing
    with pytest.raises(AttributeError, match="own state"):
        del m.training
    m.register_buffer("b", 2)  # a deleted name can be registered again
    assert m.state_dict() == {"b": 2}


def test_getattr_error_names_class_and_attribute() -> None:
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
        Module().nope  # noqa: B018


def test_dir_lists_registered_names(pipeline) -> None:
    names = dir(pipeline)
    assert {"flux", "analyzer", "forward", "state_dict"} <= set(names)
    assert {"instructions", "expected_output"} <= set(dir(pipeline.analyzer))
    assert "0" not in dir(nn.ModuleList([Module()]))


def test_submodule_paths(pipeline) -> None:
    assert pipeline.get_submodule("") is pipeline
    assert pipeline.get_submodule("analyzer") is pipeline.analyzer
    assert pipeline.get_parameter("analyzer.instructions") is pipeline.analyzer.instructions
    assert pipeline.get_buffer("flux") == "preprocess -> analyze"
    assert pipeline.get_buffer("analyzer.expected_output") == "JSON format"
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        pipeline.get_submodule("analyzer.nope")
    with pytest.raises(AttributeError, match="no parameter 'expected_output'"):
        pipeline.get_parameter("analyzer.expected_output")
    with pytest.raises(AttributeError, match="no buffer 'instructions'"):
        pipeline.get_buffer("analyzer.instructions")
    with pytest.raises(AttributeError, match="no submodule 'flux'"):
        pipeline.get_submodule("flux")


def test_set_submodule(pipeline, analyzer_cls) -> None:
    replacement = analyzer_cls()
    pipeline.set_submodule("analyzer", replacement, strict=True)
    assert pipeline.analyzer is replacement
    extra = Module()
    pipeline.set_submodule("analyzer.extra", extra)
    assert pipeline.get_submodule("analyzer.extra") is extra
    with pytest.raises(AttributeError, match="strict=True"):
        pipeline.set_submodule("analyzer.other", Module(), strict=True)
    with pytest.raises(AttributeError):
        pipeline.set_submodule("missing.child", Module())
    with pytest.raises(ValueError):
        pipeline.set_submodule("", Module())
    with pytest.raises(TypeError):
        pipeline.set_submodule("analyzer", "x")  # type: ignore[arg-type]
    assert pipeline.analyzer is replacement


def test_set_and_get_submodule_inside_module_dict_with_method_names() -> None:
    root = Module()
    root.experts = nn.ModuleDict({"train": Module()})
    new = Module()
    root.set_submodule("experts.train", new)
    assert root.get_submodule("experts.train") is new
    root.set_submodule("experts.eval", Module())
    assert list(root.experts.keys()) == ["train", "eval"]
    assert callable(root.experts.train) and callable(root.experts.eval)


def test_nested_repr(pipeline) -> None:
    pipeline.register_buffer("cache", [1], persistent=False)
    assert repr(pipeline) == (
        "Pipeline(\n"
        "  (flux): Buffer('preprocess -> analyze')\n"
        "  (cache): Buffer([1], persistent=False)\n"
        "  (analyzer): Analyzer(\n"
        "    (instructions): Parameter('Be helpful and concise', spec='system_prompt')\n"
        "    (expected_output): Buffer('JSON format')\n"
        "  )\n"
        ")"
    )
    assert repr(Module()) == "Module()"

    class Tagged(Module):
        def extra_repr(self) -> str:
            return "tag=1"

    assert repr(Tagged()) == "Tagged(tag=1)"
    t = Tagged()
    t.register_buffer("b", 1)
    assert repr(t) == "Tagged(tag=1,\n  (b): Buffer(1)\n)"
