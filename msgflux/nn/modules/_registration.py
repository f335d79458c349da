"""Registration: what becomes state, under which name, and attribute access to it.

The rule, as in PyTorch: assigning a :class:`Parameter` or a ``Module`` as an
attribute registers it; buffers are registered explicitly with
``register_buffer`` and later assignments to that name update the buffer.
Registered things live in three ordered dicts (``_parameters``, ``_buffers``,
``_modules``) and are reached through ``__getattr__``.

A parameter or submodule slot may be empty (``None``), as in PyTorch and
msgflux: it keeps its name but contributes nothing to ``state_dict()`` or to
traversal. A buffer's ``None`` is a value (JSON ``null``): it is saved and
loaded like any other, as msgflux's ``state_dict`` does.

The global registration hooks (``register_module_*_registration_hook``) run
on every registration and may replace what is registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgflux._values import check_value
from msgflux.errors import ModuleRegistrationError
from msgflux.nn.modules._base import ModuleBase
from msgflux.nn.modules._hooks import (
    _global_buffer_registration_hooks,
    _global_module_registration_hooks,
    _global_parameter_registration_hooks,
    run_registration_hooks,
)
from msgflux.nn.parameter import Parameter

if TYPE_CHECKING:
    from msgflux.nn.modules.module import Module

__all__ = ["RegistrationMixin"]


def check_key_syntax(name: object, kind: str) -> str:
    """Return ``name`` if it is a non-empty ``str`` without ``"."``; raise otherwise.

    Raises:
        TypeError: ``name`` is not a ``str``.
        ModuleRegistrationError: ``name`` is empty or contains ``"."``.
    """
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if not name:
        raise ModuleRegistrationError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise ModuleRegistrationError(f'{kind} name can\'t contain ".", got: {name!r}')
    return name


#: What assigning as an attribute registers (a tuple: ``Parameter | Module`` would build
#: a union object on every assignment, and ``Module`` itself would need an import here).
_REGISTERED = (Parameter, ModuleBase)


class RegistrationMixin(ModuleBase):
    """Registering parameters, buffers and submodules, and reaching them by name."""

    # -- names ----------------------------------------------------------------

    def _check_name(self, name: object, kind: str, registry: dict[str, Any] | None) -> str:
        """Return ``name`` if it may be registered as ``kind``; raise otherwise.

        ``registry`` is the dict the name goes into: a name already there may be
        registered again (it is replaced). ``None`` skips the check against
        existing attributes (the caller has its own rule).
        """
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot register a {kind} before Module.__init__() call")
        checked = check_key_syntax(name, kind)
        if checked in self._internal_attributes:
            raise ModuleRegistrationError(
                f"{kind} name {checked!r} is reserved: it would hide Module's own state"
            )
        if registry is not None and checked not in registry and hasattr(self, checked):
            raise ModuleRegistrationError(
                f"attribute {checked!r} already exists on {type(self).__name__}; "
                f"choose another name for the {kind}"
            )
        return checked

    def _forget(self, name: str) -> None:
        """Remove ``name`` from every registry and from the instance ``__dict__``."""
        self.__dict__.pop(name, None)
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent_buffers.discard(name)
        self._modules.pop(name, None)

    # -- registering ----------------------------------------------------------

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` as parameter ``name``; same as ``self.name = param``.

        ``None`` registers an empty slot: the name is reserved for a parameter
        but nothing is saved or traversed until a ``Parameter`` is assigned.

        Raises:
            TypeError: ``name`` is not a ``str`` or ``param`` is neither a
                ``Parameter`` nor ``None`` (also when a registration hook
                returns something else).
            ModuleRegistrationError: (a ``KeyError``) ``name`` is empty, contains
                ``"."`` or is already an attribute that is not a parameter.
            AttributeError: called before ``Module.__init__()``.

        Example:
            >>> m = Module()
            >>> m.register_parameter("instructions", Parameter("Be brief", "system_prompt"))
            >>> m.state_dict()
            {'instructions': 'Be brief'}
        """
        self._check_name(name, "parameter", self.__dict__.get("_parameters"))
        self._store_parameter(name, param)

    def _store_parameter(self, name: str, param: Any) -> None:
        if param is not None:
            _check_parameter(name, param)
            param = run_registration_hooks(_global_parameter_registration_hooks, self, name, param)
            _check_parameter(name, param)
        self._parameters[name] = param

    def register_buffer(self, name: str, data: Any, persistent: bool = True) -> None:
        """Register a buffer: state that is saved but is not a ``Parameter``.

        ``data`` (msgflux's keyword name) must be JSON-compatible; ``None`` is a
        value. A non-persistent buffer
        (``persistent=False``) is kept out of ``state_dict()``. Registering an
        existing buffer name replaces its value and persistence.

        Raises:
            TypeError: ``name`` is not a ``str``.
            ModuleRegistrationError: (a ``KeyError``) bad or taken ``name``.
            StateValueError: ``data`` is not JSON-compatible.
            AttributeError: called before ``Module.__init__()``.

        Example:
            >>> m = Module()
            >>> m.register_buffer("expected_output", "JSON format")
            >>> m.expected_output
            'JSON format'
        """
        self._check_name(name, "buffer", self.__dict__.get("_buffers"))
        self._store_buffer(name, data)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def _store_buffer(self, name: str, value: Any) -> None:
        check_value(name, value)
        value = run_registration_hooks(_global_buffer_registration_hooks, self, name, value)
        check_value(name, value)
        self._buffers[name] = value

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as child ``name``; same as ``self.name = module``.

        ``None`` registers an empty slot (skipped by traversal and ``state_dict``).

        Raises:
            TypeError: ``name`` is not a ``str`` or ``module`` is neither a
                ``Module`` nor ``None``.
            ModuleRegistrationError: (a ``KeyError``) bad or taken ``name``.
            AttributeError: called before ``Module.__init__()``.
        """
        self._check_name(name, "module", self.__dict__.get("_modules"))
        self._set_child(name, module)

    def register_module(self, name: str, module: Module | None) -> None:
        """Alias of :meth:`add_module`."""
        self.add_module(name, module)

    def _set_child(self, name: str, module: Module | None) -> None:
        """Store ``module`` (or an empty slot) as child ``name``, through the global hooks."""
        _check_module(module)
        module = run_registration_hooks(_global_module_registration_hooks, self, name, module)
        _check_module(module)
        self._modules[name] = module

    # -- dotted paths -----------------------------------------------------------

    def get_submodule(self, target: str) -> Module:
        """Return the submodule at dotted path ``target`` (``""`` is ``self``).

        Raises:
            AttributeError: a step of the path names no submodule.

        Example:
            >>> pipeline.get_submodule("analyzer").instructions
            Parameter('Be helpful and concise', spec='system_prompt')
        """
        module = self._as_module()
        if target == "":
            return module
        walked: list[str] = []
        for step in target.split("."):
            children = module._modules
            child = children.get(step)
            if child is None:
                where = ".".join(walked) or "the root module"
                raise AttributeError(
                    f"{type(module).__name__} ({where}) has no submodule {step!r} "
                    f"(looking up {target!r}); its submodules are {list(children)}"
                )
            module = child
            walked.append(step)
        return module

    def set_submodule(self, target: str, module: Module, strict: bool = False) -> None:
        """Put ``module`` at dotted path ``target``, replacing what is there.

        With ``strict=True`` the submodule must already exist.

        Raises:
            ValueError: ``target`` is empty.
            AttributeError: the parent path does not exist, or ``strict`` and the
                last step names no existing submodule.
            TypeError, ModuleRegistrationError: as for :meth:`add_module`.
        """
        if target == "":
            raise ValueError("cannot set the submodule at path '': it is the module itself")
        parent_path, _, name = target.rpartition(".")
        parent = self.get_submodule(parent_path)
        if name in parent._modules:
            parent._set_child(name, module)
        elif strict:
            raise AttributeError(
                f"{type(parent).__name__} has no submodule {name!r} (strict=True, "
                f"setting {target!r})"
            )
        else:
            parent.add_module(name, module)

    def get_parameter(self, target: str) -> Parameter:
        """Return the parameter at dotted path ``target`` (``"analyzer.instructions"``).

        Raises:
            AttributeError: the path names no parameter.
        """
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        param = module._parameters.get(name)
        if param is None:
            state = "is an empty slot" if name in module._parameters else "does not exist"
            raise AttributeError(
                f"{type(module).__name__} has no parameter {name!r} (looking up {target!r}): "
                f"it {state}; its parameters are {list(module._parameters)}"
            )
        return param

    def get_buffer(self, target: str) -> Any:
        """Return the buffer value at dotted path ``target`` (not a copy).

        Raises:
            AttributeError: the path names no buffer.
        """
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if name not in module._buffers:
            raise AttributeError(
                f"{type(module).__name__} has no buffer {name!r} (looking up {target!r}); "
                f"its buffers are {list(module._buffers)}"
            )
        return module._buffers[name]

    # -- attribute protocol -----------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, so methods always win over
        # registered names (a ModuleDict key "train" never hides .train()).
        state = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            found = state.get(registry)
            if found is not None and name in found:
                return found[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        state = self.__dict__
        if isinstance(value, _REGISTERED):
            kind = "parameter" if isinstance(value, Parameter) else "module"
            if "_parameters" not in state:
                raise AttributeError(f"cannot assign a {kind} before Module.__init__() call")
            registry = self._parameters if kind == "parameter" else self._modules
            if name not in registry:
                # A plain attribute or another kind of state is replaced, as in
                # PyTorch; a method or Module's own state is never hidden.
                self._check_name(name, kind, None)
                if hasattr(type(self), name):
                    raise ModuleRegistrationError(
                        f"cannot register {kind} {name!r}: it would hide "
                        f"{type(self).__name__}.{name}"
                    )
                self._forget(name)
            if isinstance(value, Parameter):
                self._store_parameter(name, value)
            else:
                self._set_child(name, value._as_module())
        elif "_parameters" in state and name in self._parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r}: assign a "
                    f"msgflux.nn.Parameter (or None to empty the slot), set {name}.data to "
                    "change its value, or del it first"
                )
            self._parameters[name] = None
        elif "_modules" in state and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to submodule {name!r}: assign a "
                    "msgflux.nn.Module (or None to empty the slot), or del it first"
                )
            self._set_child(name, None)
        elif "_buffers" in state and name in self._buffers:
            self._store_buffer(name, value)
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._internal_attributes:
            raise AttributeError(f"cannot delete {name!r}: it is Module's own state")
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        for registry in (self._parameters, self._buffers, self._modules):
            names.update(key for key in registry if not key[0].isdigit())
        return sorted(names)


def _check_parameter(name: str, param: Any) -> None:
    if not isinstance(param, Parameter):
        raise TypeError(
            f"cannot assign {type(param).__name__} object to parameter {name!r} "
            "(msgflux.nn.Parameter or None required)"
        )


def _check_module(module: Any) -> None:
    # Every ModuleBase is a Module (the mixins are only assembled there); no import needed.
    if module is not None and not isinstance(module, ModuleBase):
        raise TypeError(f"{type(module).__name__} is not a msgflux.nn.Module subclass")
