"""Empty slots: a parameter or submodule name registered with ``None``.

As in msgflux and PyTorch, the slot keeps its name but is skipped by
``state_dict()`` and traversal until something is assigned to it. A buffer's
``None`` is different: it is a value (JSON ``null``), saved and loaded, as
msgflux's ``state_dict`` does.
"""

from __future__ import annotations

import pytest

from msgflux.errors import StateDictError
from msgflux.nn import Module, Parameter


def _leaf() -> Module:
    m = Module()
    m.p = Parameter("leaf", "s")
    return m


def test_register_parameter_none_is_an_empty_slot() -> None:
    m = Module()
    m.register_parameter("instructions", None)
    assert m.instructions is None and m._parameters == {"instructions": None}
    assert m.state_dict() == {}
    assert list(m.named_parameters()) == [] and list(m.parameters()) == []
    with pytest.raises(AttributeError, match="empty slot"):
        m.get_parameter("instructions")
    assert "(instructions): None" in repr(m)
    m.instructions = Parameter("now set", "s")
    assert m.state_dict() == {"instructions": "now set"}


def test_assigning_none_to_a_registered_parameter_empties_it() -> None:
    m = Module()
    m.p = Parameter("x", "s")
    m.p = None
    assert m.p is None and m.state_dict() == {}
    assert m.load_state_dict({"p": "y"}).unexpected_keys == ["p"]
    with pytest.raises(TypeError, match="assign a msgflux.nn.Parameter"):
        m.p = "text"


def test_add_module_none_and_assigning_none_to_a_submodule() -> None:
    root = Module()
    root.add_module("later", None)
    root.child = _leaf()
    assert root.later is None
    assert root.state_dict() == {"child.p": "leaf"}
    root.child = None
    assert root.child is None and root._modules == {"later": None, "child": None}
    assert root.state_dict() == {}
    assert [name for name, _ in root.named_modules()] == [""]
    assert list(root.children()) == [] and list(root.named_parameters()) == []
    with pytest.raises(AttributeError, match="no submodule 'child'"):
        root.get_submodule("child")
    with pytest.raises(TypeError, match="assign a msgflux.nn.Module"):
        root.child = "text"
    assert root.train(False) is root and root.training is False
    assert "(child): None" in repr(root)


def test_loading_skips_empty_slots_and_reports_their_keys_as_unexpected() -> None:
    root = Module()
    root.register_parameter("p", None)
    root.add_module("sub", None)
    root.register_buffer("b", 1)
    result = root.load_state_dict({"b": 2, "p": "x", "sub.q": "y"})
    assert result.unexpected_keys == ["p", "sub.q"] and result.missing_keys == []
    assert root.b == 2
    with pytest.raises(StateDictError, match="unexpected keys"):
        root.load_state_dict({"b": 3, "p": "x"}, strict=True)
    assert root.b == 2


def test_a_none_buffer_is_a_value_not_an_empty_slot() -> None:
    m = Module()
    m.register_buffer("prompt", None)
    assert m.state_dict() == {"prompt": None}
    assert dict(m.named_buffers()) == {"prompt": None}
    m.load_state_dict({"prompt": "Be brief"}, strict=True)
    assert m.prompt == "Be brief"
    m.prompt = None
    assert m.state_dict() == {"prompt": None}


def test_a_failed_load_restores_empty_slots() -> None:
    root = Module()
    root.p = Parameter("x", "s")

    def empty_then_fail(module, state_dict, prefix, *rest):
        module.p = None
        raise RuntimeError("hook failed")

    root.register_load_state_dict_pre_hook(empty_then_fail)
    with pytest.raises(RuntimeError, match="hook failed"):
        root.load_state_dict({"p": "y"})
    assert root.p.data == "x"
