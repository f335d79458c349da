"""``Module``: the base class of every msgflux component, with PyTorch's semantics.

``Module`` is assembled from five concerns, each in its own file, all stacked on
``ModuleBase`` (``_base.py``), which declares the instance fields they share:

- registration (``_registration.py``): what becomes state, names, attribute access;
- traversal (``_traversal.py``): children, modules, parameters, buffers, train/eval;
- state (``_state.py``): ``state_dict`` / ``load_state_dict`` and their hooks;
- calling (``_hooks.py``): ``__call__`` / ``acall`` with forward hooks, global hooks;
- identity (``_identity.py``): ``set_name`` / ``set_description`` / ``set_annotations``.

This file puts them together and adds the nested ``repr``.
"""

from __future__ import annotations

from typing import Any

from msgflux.errors import ModuleRegistrationError
from msgflux.nn.modules._hooks import (
    ForwardHooksMixin,
    RemovableHandle,
    register_module_buffer_registration_hook,
    register_module_forward_hook,
    register_module_forward_pre_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)
from msgflux.nn.modules._identity import IdentityMixin
from msgflux.nn.modules._registration import RegistrationMixin
from msgflux.nn.modules._state import StateMixin, _IncompatibleKeys
from msgflux.nn.modules._traversal import TraversalMixin
from msgflux.nn.parameter import _short_repr

__all__ = [
    "Module",
    "ModuleRegistrationError",
    "RemovableHandle",
    "_IncompatibleKeys",
    "register_module_buffer_registration_hook",
    "register_module_forward_hook",
    "register_module_forward_pre_hook",
    "register_module_module_registration_hook",
    "register_module_parameter_registration_hook",
]


class Module(RegistrationMixin, TraversalMixin, StateMixin, ForwardHooksMixin, IdentityMixin):
    """Base class for msgflux components; subclass it and define ``forward``.

    Assigning a :class:`~msgflux.nn.Parameter` or a ``Module`` as an attribute
    registers it; ``register_buffer`` registers other state. Calling the module
    runs ``forward`` between its hooks (``await module.acall(...)`` runs
    ``aforward``), and ``state_dict`` / ``load_state_dict`` save and hot-swap
    the whole tree's state.

    Example:
        >>> class Analyzer(Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.instructions = Parameter("Be helpful and concise", "system_prompt")
        ...         self.register_buffer("expected_output", "JSON format")
        >>> Analyzer().state_dict()
        {'instructions': 'Be helpful and concise', 'expected_output': 'JSON format'}
    """

    def __init__(self) -> None:
        """Create the empty registries; subclasses must call ``super().__init__()`` first."""
        self._init_fields()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore from ``__getstate__()`` (pickling, copying); missing hook tables are created."""
        self.__dict__.update(state)
        self._init_fields(missing_only=True)

    # -- repr -------------------------------------------------------------------

    def extra_repr(self) -> str:
        """Extra text for this module's ``repr`` line; override to add some."""
        return ""

    def __repr__(self) -> str:
        lines: list[str] = []
        for name, param in self._parameters.items():
            lines.append(f"({name}): {param!r}")
        for name, value in self._buffers.items():
            flag = ", persistent=False" if name in self._non_persistent_buffers else ""
            lines.append(f"({name}): Buffer({_short_repr(value)}{flag})")
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        extra = self.extra_repr()
        head = f"{type(self).__name__}({extra}"
        if not lines:
            return head + ")"
        if extra:
            head += ","
        return head + "\n  " + "\n  ".join(lines) + "\n)"
