"""``ModuleBase``: the fields every part of ``Module`` works on, declared once.

``Module`` is assembled from mixins (``_registration``, ``_traversal``,
``_state``, ``_hooks``, ``_identity``), all stacked on this one base. The
instance fields they share are declared here, with their types, and
:data:`_FIELDS` says how each starts; ``Module.__init__`` and
``Module.__setstate__`` create them from it, and the names no parameter,
buffer or submodule may take (``_internal_attributes``) are its keys.
``tests/core/test_module_base.py`` pins that list.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from msgflux.nn.parameter import Parameter

if TYPE_CHECKING:
    from msgflux.nn.modules._state import _IncompatibleKeys
    from msgflux.nn.modules.module import Module

__all__ = ["ModuleBase"]

StateDictPreHook = Callable[[Any, str, bool], None]
StateDictPostHook = Callable[[Any, MutableMapping[str, Any], str, dict[str, Any]], None]
LoadPreHook = Callable[..., None]
LoadPostHook = Callable[[Any, "_IncompatibleKeys"], None]

#: Every field ``Module`` keeps in its instance ``__dict__``, and what it starts as.
_FIELDS: dict[str, Callable[[], Any]] = {
    "training": lambda: True,
    # registration
    "_parameters": dict,
    "_buffers": dict,
    "_non_persistent_buffers": set,
    "_modules": dict,
    # calling: hooks keyed by their handle's id; the flags hold that id when set
    "_forward_pre_hooks": OrderedDict,
    "_forward_pre_hooks_with_kwargs": OrderedDict,
    "_forward_hooks": OrderedDict,
    "_forward_hooks_with_kwargs": OrderedDict,
    "_forward_hooks_always_called": OrderedDict,
    # state
    "_state_dict_pre_hooks": OrderedDict,
    "_state_dict_hooks": OrderedDict,
    "_load_state_dict_pre_hooks": OrderedDict,
    "_load_state_dict_post_hooks": OrderedDict,
}


class ModuleBase:
    """The instance fields of ``Module``, shared by all its mixins. Not used on its own."""

    #: Everything ``Module`` keeps in the instance ``__dict__``; no parameter,
    #: buffer or submodule may take one of these names.
    _internal_attributes: ClassVar[frozenset[str]] = frozenset(_FIELDS)

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Any]
    _non_persistent_buffers: set[str]
    _modules: dict[str, Module | None]
    _forward_pre_hooks: OrderedDict[int, Callable[..., Any]]
    _forward_pre_hooks_with_kwargs: OrderedDict[int, bool]
    _forward_hooks: OrderedDict[int, Callable[..., Any]]
    _forward_hooks_with_kwargs: OrderedDict[int, bool]
    _forward_hooks_always_called: OrderedDict[int, bool]
    _state_dict_pre_hooks: OrderedDict[int, StateDictPreHook]
    _state_dict_hooks: OrderedDict[int, StateDictPostHook]
    _load_state_dict_pre_hooks: OrderedDict[int, LoadPreHook]
    _load_state_dict_post_hooks: OrderedDict[int, LoadPostHook]

    def _init_fields(self, *, missing_only: bool = False) -> None:
        """Create every field (bypassing ``__setattr__``); only absent ones if ``missing_only``."""
        state = self.__dict__
        for name, start in _FIELDS.items():
            if not (missing_only and name in state):
                object.__setattr__(self, name, start())

    def _as_module(self) -> Module:
        """``self``, typed as the ``Module`` it is: the mixins exist only inside ``Module``."""
        return cast("Module", self)
