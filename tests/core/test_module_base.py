"""``ModuleBase``: the fields of ``Module`` are declared once, created once, and reserved.

The list of internal attributes is pinned here: adding a field to ``Module``
means adding it to ``_base.py`` (declaration and start value) and to this list.
"""

from __future__ import annotations

import builtins
import copy
import pickle
from collections import OrderedDict
from typing import Any
from unittest import mock

import pytest

from msgflux.errors import ModuleRegistrationError
from msgflux.nn import Module, Parameter
from msgflux.nn.modules._base import _FIELDS, ModuleBase
from msgflux.nn.modules._hooks import ForwardHooksMixin
from msgflux.nn.modules._identity import IdentityMixin
from msgflux.nn.modules._registration import RegistrationMixin
from msgflux.nn.modules._state import StateMixin
from msgflux.nn.modules._traversal import TraversalMixin

INTERNAL = {
    "training",
    "_parameters",
    "_buffers",
    "_non_persistent_buffers",
    "_modules",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_state_dict_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
}
MIXINS = [RegistrationMixin, TraversalMixin, StateMixin, ForwardHooksMixin, IdentityMixin]


def test_the_internal_attributes_are_pinned() -> None:
    assert Module._internal_attributes == INTERNAL
    assert set(_FIELDS) == INTERNAL


def test_every_field_is_declared_on_the_base_and_nowhere_else() -> None:
    declared = {
        name
        for name, hint in ModuleBase.__annotations__.items()
        if not str(hint).startswith("ClassVar")
    }
    assert declared == INTERNAL
    for mixin in MIXINS:
        assert issubclass(mixin, ModuleBase)
        assert not INTERNAL & set(vars(mixin).get("__annotations__", {})), mixin.__name__
    assert not INTERNAL & set(vars(Module).get("__annotations__", {}))


class _Sub(Module):
    def __init__(self) -> None:
        super().__init__()
        self.p = Parameter("p", "s")
        self.register_buffer("b", 1)
        self.plain = "attribute"


def test_a_module_holds_exactly_the_internal_attributes_and_what_was_assigned() -> None:
    empty = Module()
    assert set(vars(empty)) == INTERNAL
    assert empty.training is True
    assert type(empty._non_persistent_buffers) is set and not empty._non_persistent_buffers
    for name in INTERNAL - {"training", "_non_persistent_buffers"}:
        assert getattr(empty, name) == {}, name
    module = _Sub()
    assert set(vars(module)) == INTERNAL | {"plain"}
    assert module._parameters == {"p": module.p} and module._buffers == {"b": 1}
    # Each module gets its own tables.
    assert all(
        getattr(module, name) is not getattr(Module(), name) for name in INTERNAL - {"training"}
    )


@pytest.mark.parametrize("name", sorted(INTERNAL))
def test_no_state_may_take_an_internal_name(name: str) -> None:
    module = Module()
    with pytest.raises(ModuleRegistrationError, match="reserved"):
        module.register_buffer(name, 1)
    with pytest.raises(ModuleRegistrationError, match="reserved"):
        module.register_parameter(name, Parameter("p", "s"))
    with pytest.raises(ModuleRegistrationError, match="reserved"):
        module.add_module(name, Module())
    with pytest.raises(AttributeError, match="Module's own state"):
        delattr(module, name)
    assert set(vars(module)) == INTERNAL


def test_setstate_creates_the_fields_an_old_pickle_lacks() -> None:
    module = _Sub()
    module.register_forward_hook(lambda *args: None)
    state = {
        key: value
        for key, value in module.__getstate__().items()
        if key
        not in {
            "training",
            "_non_persistent_buffers",
            "_forward_hooks",
            "_load_state_dict_post_hooks",
        }
    }
    restored = _Sub.__new__(_Sub)
    restored.__setstate__(state)
    assert set(vars(restored)) == INTERNAL | {"plain"}
    assert restored.training is True and restored._non_persistent_buffers == set()
    assert type(restored._forward_hooks) is OrderedDict and not restored._forward_hooks
    assert restored._forward_hooks_with_kwargs == module._forward_hooks_with_kwargs
    assert restored.state_dict() == module.state_dict()
    for twin in (copy.deepcopy(module), pickle.loads(pickle.dumps(_Sub()))):
        assert set(vars(twin)) == INTERNAL | {"plain"}


def test_assigning_an_attribute_imports_nothing() -> None:
    module = _Sub()
    child = Module()
    real_import = builtins.__import__
    calls: list[str] = []

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real_import(name, *args, **kwargs)

    with mock.patch.object(builtins, "__import__", counting):
        module.x = 1
        module.b = 2
        module.p = Parameter("q", "s")
        module.child = child
        module.child = None
        module.add_module("other", child)
    assert calls == []
    assert (module.x, module.b, module.p.data, module.child, module.other) == (
        1,
        2,
        "q",
        None,
        child,
    )
