"""State: ``state_dict``, ``load_state_dict`` and their hooks.

The state of a module tree is a flat dict: each parameter's data and each
persistent buffer, keyed by dotted path. ``load_state_dict`` is all or
nothing: it runs the pre-hooks, decides every key and checks every value
before changing anything, and restores the previous values if anything after
that (a post-hook) raises.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, NamedTuple

from msgflux._values import check_value
from msgflux.errors import StateDictError
from msgflux.nn.modules._hooks import RemovableHandle, add_hook
from msgflux.nn.parameter import Parameter

if TYPE_CHECKING:
    from msgflux.nn.modules.module import Module

__all__ = ["StateMixin"]

StateDictPreHook = Callable[[Any, str, bool], None]
StateDictPostHook = Callable[[Any, MutableMapping[str, Any], str], None]
LoadPreHook = Callable[[Any, dict[str, Any], str, bool], None]
LoadPostHook = Callable[[Any, "_IncompatibleKeys"], None]


class _IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` could not match: keys the module has that the
    state dict lacks (``missing_keys``) and keys of the state dict the module
    does not have (``unexpected_keys``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (
            f"_IncompatibleKeys(missing_keys={self.missing_keys!r}, "
            f"unexpected_keys={self.unexpected_keys!r})"
        )

    def __str__(self) -> str:
        return self.__repr__()


class _Slot(NamedTuple):
    """One entry of the state: where a state-dict key is stored."""

    key: str
    module: Any
    name: str
    is_parameter: bool


def _copy_value(value: Any) -> Any:
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


def _check_no_return(result: Any, hook: Callable[..., Any], kind: str) -> None:
    if result is not None:
        raise RuntimeError(f"{kind} hook {hook!r} must return None (edit its arguments in place)")


class StateMixin:
    """``state_dict`` / ``load_state_dict`` and the four state hooks."""

    _parameters: dict[str, Parameter]
    _buffers: dict[str, Any]
    _non_persistent_buffers: set[str]
    _modules: dict[str, Module]
    _state_dict_pre_hooks: OrderedDict[int, StateDictPreHook]
    _state_dict_hooks: OrderedDict[int, StateDictPostHook]
    _load_state_dict_pre_hooks: OrderedDict[int, LoadPreHook]
    _load_state_dict_post_hooks: OrderedDict[int, LoadPostHook]

    def _init_state_hooks(self) -> None:
        for name in (
            "_state_dict_pre_hooks",
            "_state_dict_hooks",
            "_load_state_dict_pre_hooks",
            "_load_state_dict_post_hooks",
        ):
            object.__setattr__(self, name, OrderedDict())

    # -- saving -----------------------------------------------------------------

    def state_dict(
        self,
        destination: MutableMapping[str, Any] | None = None,
        prefix: str = "",
        keep_vars: bool = False,
    ) -> dict[str, Any]:
        """Return the module tree's state as a flat dict with dotted keys.

        For each module, in registration order: its parameters' data, then its
        persistent buffers, then its submodules' state under ``"name."``.
        Values are copies (lists and dicts deep-copied), so changing the result
        never changes the module; ``keep_vars=True`` returns the ``Parameter``
        objects and the buffer values themselves instead. ``destination``, if
        given, is filled and returned; ``prefix`` is put before every key.

        State-dict pre-hooks run first as ``hook(module, prefix, keep_vars)``;
        post-hooks run last as ``hook(module, state_dict, prefix)`` and may edit
        the dict in place.

        Raises:
            RuntimeError: a hook returned something other than ``None``.

        Example:
            >>> list(Pipeline().state_dict())
            ['flux', 'analyzer.instructions', 'analyzer.expected_output']
        """
        if destination is None:
            destination = {}
        for pre_hook in list(self._state_dict_pre_hooks.values()):
            _check_no_return(pre_hook(self, prefix, keep_vars), pre_hook, "state_dict pre-")
        for name, param in self._parameters.items():
            destination[prefix + name] = param if keep_vars else _copy_value(param.data)
        for name, value in self._buffers.items():
            if name not in self._non_persistent_buffers:
                destination[prefix + name] = value if keep_vars else _copy_value(value)
        for name, module in self._modules.items():
            module.state_dict(
                destination=destination, prefix=f"{prefix}{name}.", keep_vars=keep_vars
            )
        for post_hook in list(self._state_dict_hooks.values()):
            _check_no_return(post_hook(self, destination, prefix), post_hook, "state_dict post-")
        return destination  # type: ignore[return-value]

    # -- loading ----------------------------------------------------------------

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = False
    ) -> _IncompatibleKeys:
        """Set parameters' data and buffers from ``state_dict``, at runtime, in place.

        Non-strict (the default, msgflux's hot swap): every key the module has
        is loaded, the rest is reported in the returned ``_IncompatibleKeys``.
        ``strict=True`` refuses any mismatch. Loading a parameter sets its
        ``.data`` (the ``Parameter`` object and its spec stay); loading a
        buffer replaces its value; values are copied in. A ``Parameter`` given
        as a value loads its data.

        All or nothing: if anything fails (a bad value, a strict mismatch, a
        hook raising), the module is left exactly as it was.

        Load pre-hooks run first, for each module, as
        ``hook(module, state_dict, prefix, strict)`` and may edit the (copied)
        ``state_dict`` in place, e.g. to rename old keys. Post-hooks run after
        loading, children first, as ``hook(module, incompatible_keys)`` and may
        edit the two lists in place (this changes the result, not ``strict``).

        Raises:
            TypeError: ``state_dict`` is not a mapping.
            StateDictError: ``strict=True`` and keys are missing or unexpected;
                lists every one of them.
            StateValueError: a value is not JSON-compatible.
            RuntimeError: a hook returned something other than ``None``.

        Example:
            >>> p.load_state_dict({"analyzer.instructions": "Answer in one sentence."})
            _IncompatibleKeys(missing_keys=['flux', 'analyzer.expected_output'], unexpected_keys=[])
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"expected state_dict to be a mapping, got {type(state_dict).__name__}")
        incoming = dict(state_dict)
        snapshot = self._snapshot_state()
        try:
            self._run_load_pre_hooks(incoming, "", strict)
            slots = list(self._state_slots(""))
            expected = {slot.key for slot in slots}
            missing = [slot.key for slot in slots if slot.key not in incoming]
            unexpected = [key for key in incoming if key not in expected]
            if strict and (missing or unexpected):
                raise StateDictError(
                    _strict_message(type(self).__name__, missing, unexpected), missing, unexpected
                )
            plan = []
            for slot in slots:
                if slot.key in incoming:
                    value = incoming[slot.key]
                    if isinstance(value, Parameter):
                        value = value.data
                    check_value(slot.key, value)
                    plan.append((slot, copy.deepcopy(value)))
            for slot, value in plan:
                if slot.is_parameter:
                    slot.module._parameters[slot.name].data = value
                else:
                    slot.module._buffers[slot.name] = value
            result = _IncompatibleKeys(missing, unexpected)
            self._run_load_post_hooks(result)
        except BaseException:
            _restore_state(snapshot)
            raise
        return result

    def _state_slots(self, prefix: str) -> Iterator[_Slot]:
        """Every key ``state_dict`` would produce and where its value lives."""
        for name in self._parameters:
            yield _Slot(prefix + name, self, name, True)
        for name in self._buffers:
            if name not in self._non_persistent_buffers:
                yield _Slot(prefix + name, self, name, False)
        for name, module in self._modules.items():
            yield from module._state_slots(f"{prefix}{name}.")

    def _run_load_pre_hooks(self, state_dict: dict[str, Any], prefix: str, strict: bool) -> None:
        for hook in list(self._load_state_dict_pre_hooks.values()):
            _check_no_return(hook(self, state_dict, prefix, strict), hook, "load_state_dict pre-")
        for name, module in self._modules.items():
            module._run_load_pre_hooks(state_dict, f"{prefix}{name}.", strict)

    def _run_load_post_hooks(self, result: _IncompatibleKeys) -> None:
        for module in self._modules.values():
            module._run_load_post_hooks(result)
        for hook in list(self._load_state_dict_post_hooks.values()):
            _check_no_return(hook(self, result), hook, "load_state_dict post-")

    def _snapshot_state(self) -> list[tuple[Any, dict[str, Parameter], dict[str, Any], list[Any]]]:
        """What ``load_state_dict`` may change, per module, to undo a failed load."""
        snapshot = []
        seen: set[int] = set()
        stack: list[Any] = [self]
        while stack:
            module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            params = dict(module._parameters)
            snapshot.append(
                (module, params, dict(module._buffers), [p.data for p in params.values()])
            )
            stack.extend(module._modules.values())
        return snapshot

    # -- hook registration ------------------------------------------------------

    def register_state_dict_pre_hook(self, hook: StateDictPreHook) -> RemovableHandle:
        """Call ``hook(module, prefix, keep_vars)`` before this module's ``state_dict``.

        Returns the hook's :class:`RemovableHandle`.
        """
        return add_hook(self._state_dict_pre_hooks, hook)

    def register_state_dict_post_hook(self, hook: StateDictPostHook) -> RemovableHandle:
        """Call ``hook(module, state_dict, prefix)`` after this module's ``state_dict``.

        The hook may edit ``state_dict`` in place and must return ``None``.
        Returns the hook's :class:`RemovableHandle`.
        """
        return add_hook(self._state_dict_hooks, hook)

    def register_load_state_dict_pre_hook(self, hook: LoadPreHook) -> RemovableHandle:
        """Call ``hook(module, state_dict, prefix, strict)`` before loading.

        The hook may edit ``state_dict`` (a copy of the caller's) in place.
        Returns the hook's :class:`RemovableHandle`.
        """
        return add_hook(self._load_state_dict_pre_hooks, hook)

    def register_load_state_dict_post_hook(self, hook: LoadPostHook) -> RemovableHandle:
        """Call ``hook(module, incompatible_keys)`` after a successful load.

        The hook may edit ``incompatible_keys.missing_keys`` and
        ``.unexpected_keys`` in place; if it raises, the load is undone.
        Returns the hook's :class:`RemovableHandle`.
        """
        return add_hook(self._load_state_dict_post_hooks, hook)


def _restore_state(
    snapshot: list[tuple[Any, dict[str, Parameter], dict[str, Any], list[Any]]],
) -> None:
    for module, params, buffers, datas in snapshot:
        module._parameters.clear()
        module._parameters.update(params)
        module._buffers.clear()
        module._buffers.update(buffers)
        for param, data in zip(params.values(), datas, strict=True):
            param._data = data


def _strict_message(owner: str, missing: list[str], unexpected: list[str]) -> str:
    lines = [f"Error(s) in loading state_dict for {owner} (strict=True, nothing was loaded):"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(map(repr, missing))}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(map(repr, unexpected))}")
    return "\n".join(lines)
