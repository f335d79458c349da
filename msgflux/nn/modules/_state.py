"""State: ``state_dict``, ``load_state_dict``, their hooks and extension points.

The state of a module tree is a flat dict: each parameter's data and each
persistent buffer, keyed by dotted path. As in PyTorch, each module writes its
own entries in ``_save_to_state_dict`` and reads them in
``_load_from_state_dict``; a subclass may override either (e.g. to rename the
keys of an old version). msgflux's shorter signatures (``destination, prefix``
and ``state_dict, prefix``) are accepted for overrides too.

``load_state_dict`` is all or nothing: whatever fails (a bad value, a strict
mismatch, a hook or an override raising) restores every parameter and buffer
of the tree to what it was before the call. A tree that uses none of the load
extension points takes a fast path with the same results and errors (see
"the fast path" below; ``tests/core/test_load_fast_path.py`` compares the two).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar, NamedTuple

from msgflux._values import check_value
from msgflux.errors import StateDictError
from msgflux.nn.modules._base import (
    LoadPostHook,
    LoadPreHook,
    ModuleBase,
    StateDictPostHook,
    StateDictPreHook,
)
from msgflux.nn.modules._hooks import RemovableHandle, add_hook
from msgflux.nn.parameter import Parameter

__all__ = ["StateMixin"]


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
    return copy.deepcopy(value) if type(value) in (list, dict) else value


def _check_no_return(result: Any, hook: Callable[..., Any], kind: str) -> None:
    if result is not None:
        raise RuntimeError(f"{kind} hook {hook!r} must return None (edit its arguments in place)")


@functools.lru_cache(maxsize=256)
def _takes_full_signature(function: Callable[..., Any], needed: int) -> bool:
    """Whether an override accepts ``needed`` positional arguments (PyTorch's form)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = 0
    for parameter in parameters[1:]:  # skip self
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    return positional >= needed


class StateMixin(ModuleBase):
    """``state_dict`` / ``load_state_dict``, their four hooks and two extension points."""

    #: Version of this module's state layout, given to the hooks and extension
    #: points as ``local_metadata["version"]`` when saving; bump it and compare
    #: in ``_load_from_state_dict`` to migrate old state dicts.
    _version: ClassVar[int] = 1

    # -- saving -----------------------------------------------------------------

    def state_dict(
        self,
        destination: MutableMapping[str, Any] | None = None,
        prefix: str = "",
        keep_vars: bool = False,
    ) -> dict[str, Any]:
        """Return the module tree's state as a flat dict with dotted keys.

        For each module, in registration order: its parameters' data, then its
        persistent buffers (both written by ``_save_to_state_dict``), then its
        submodules' state under ``"name."``. Empty slots are skipped. Values
        are copies (lists and dicts deep-copied), so changing the result never
        changes the module; ``keep_vars=True`` returns the ``Parameter``
        objects and the buffer values themselves instead. ``destination``, if
        given, is filled and returned; ``prefix`` is put before every key.

        State-dict pre-hooks run first as ``hook(module, prefix, keep_vars)``;
        post-hooks run last as ``hook(module, state_dict, prefix,
        local_metadata)`` and may edit the dict in place.

        Raises:
            RuntimeError: a hook returned something other than ``None``.

        Example:
            >>> list(Pipeline().state_dict())
            ['flux', 'analyzer.instructions', 'analyzer.expected_output']
        """
        if destination is None:
            destination = {}
        local_metadata = {"version": self._version}
        for pre_hook in list(self._state_dict_pre_hooks.values()):
            _check_no_return(pre_hook(self, prefix, keep_vars), pre_hook, "state_dict pre-")
        save = self._save_to_state_dict
        if type(self)._save_to_state_dict is StateMixin._save_to_state_dict or (
            _takes_full_signature(type(self)._save_to_state_dict, 3)
        ):
            save(destination, prefix, keep_vars)
        else:  # msgflux's form: _save_to_state_dict(destination, prefix)
            save(destination, prefix)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(
                    destination=destination, prefix=f"{prefix}{name}.", keep_vars=keep_vars
                )
        for post_hook in list(self._state_dict_hooks.values()):
            result = post_hook(self, destination, prefix, local_metadata)
            _check_no_return(result, post_hook, "state_dict post-")
        return destination  # type: ignore[return-value]

    def _save_to_state_dict(
        self, destination: MutableMapping[str, Any], prefix: str, keep_vars: bool = False
    ) -> None:
        """Write this module's own parameters and persistent buffers into ``destination``.

        Not its submodules: ``state_dict`` recurses. Override it to change what
        this module saves; call ``super()._save_to_state_dict(...)`` for the rest.
        """
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else _copy_value(param.data)
        for name, value in self._buffers.items():
            if name not in self._non_persistent_buffers:
                destination[prefix + name] = value if keep_vars else _copy_value(value)

    # -- loading ----------------------------------------------------------------

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = False
    ) -> _IncompatibleKeys:
        """Set parameters' data and buffers from ``state_dict``, at runtime, in place.

        Non-strict (the default, msgflux's hot swap): every key the module has
        is loaded, the rest is reported in the returned ``_IncompatibleKeys``.
        ``strict=True`` refuses any mismatch. Loading a parameter sets its
        ``.data`` (the ``Parameter`` object and its spec stay); loading a
        buffer replaces its value; values are copied in, so the caller's dict
        is never changed. A ``Parameter`` given as a value loads its data.

        Each module's ``_load_from_state_dict`` runs in pre-order; the default
        one first calls the module's load pre-hooks as ``hook(module,
        state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs)``, which may edit the (copied)
        ``state_dict`` in place, e.g. to rename old keys. Then the post-hooks
        run, children first, as ``hook(module, incompatible_keys)`` and may
        edit the two lists in place; ``strict`` is checked after them, as in
        PyTorch.

        All or nothing: if anything fails (a bad value, a strict mismatch, a
        message in ``error_msgs``, a hook raising), every parameter and buffer
        is left exactly as it was.

        Raises:
            TypeError: ``state_dict`` is not a mapping.
            StateDictError: ``strict=True`` and keys are missing or unexpected
                (lists every one), or an override reported ``error_msgs``.
            StateValueError: a value is not JSON-compatible.
            RuntimeError: a hook returned something other than ``None``.

        Example:
            >>> pipeline.load_state_dict({"analyzer.instructions": "Answer in one sentence."})
            _IncompatibleKeys(missing_keys=['flux', 'analyzer.expected_output'], unexpected_keys=[])
            >>> pipeline("hi")
            'hi | Answer in one sentence.'
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"expected state_dict to be a mapping, got {type(state_dict).__name__}")
        metadata = getattr(state_dict, "_metadata", None)
        incoming = dict(state_dict)
        slots = _plain_load_slots(self)
        if slots is not None:
            loaded = _load_plain(type(self).__name__, slots, incoming, strict)
            if loaded is not None:
                return loaded
        missing: list[str] = []
        unexpected: list[str] = []
        error_msgs: list[str] = []
        snapshot = self._snapshot_state()
        try:
            custom = self._load_tree(
                incoming, "", metadata, strict, missing, unexpected, error_msgs
            )
            if custom:
                _check_loaded_values(self)
            if len(unexpected) > 1:  # report them in the caller's order
                position = {key: index for index, key in enumerate(incoming)}
                unexpected.sort(key=lambda key: position.get(key, len(position)))
            result = _IncompatibleKeys(missing, unexpected)
            self._run_load_post_hooks(result)
            if strict and (missing or unexpected) or error_msgs:
                raise StateDictError(
                    _load_error_message(
                        type(self).__name__, strict, missing, unexpected, error_msgs
                    ),
                    list(missing),
                    list(unexpected),
                )
        except BaseException:
            _restore_state(snapshot)
            raise
        return result

    def _load_tree(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        metadata: Any,
        strict: bool,
        missing: list[str],
        unexpected: list[str],
        error_msgs: list[str],
    ) -> bool:
        """Call ``_load_from_state_dict`` on this module, then on each child.

        Returns whether any user code ran (an override or a load pre-hook), which
        may have written state without the usual checks.

        ``state_dict`` holds only this subtree's keys; each child gets the keys
        under its own prefix, split off in one pass (as PyTorch does), so a
        load costs time proportional to the keys times the depth.
        """
        local_metadata: dict[str, Any] = {}
        if metadata is not None and isinstance(metadata, Mapping):
            found = metadata.get(prefix[:-1], {})
            local_metadata = dict(found) if isinstance(found, Mapping) else {}
        method = type(self)._load_from_state_dict
        default = method is StateMixin._load_from_state_dict
        custom = not default or bool(self._load_state_dict_pre_hooks)
        if default:
            # Inlined default: unexpected keys are found in the same pass that splits
            # the keys between the children.
            self._load_own(
                state_dict, prefix, local_metadata, strict, missing, unexpected, error_msgs
            )
        elif _takes_full_signature(method, 7):
            self._load_from_state_dict(
                state_dict, prefix, local_metadata, strict, missing, unexpected, error_msgs
            )
        else:
            # msgflux's form: _load_from_state_dict(state_dict, prefix="") sees its own keys
            # without the prefix, as upstream passes them; report for it afterwards.
            size = len(prefix)
            local = {
                key[size:]: value for key, value in state_dict.items() if key.startswith(prefix)
            }
            self._load_from_state_dict(local, "")
            local_missing: list[str] = []
            local_unexpected: list[str] = []
            self._report_incompatible(local, "", local_missing, local_unexpected)
            missing.extend(prefix + key for key in local_missing)
            unexpected.extend(prefix + key for key in local_unexpected)
            state_dict = {prefix + key: value for key, value in local.items()}
        own = self._own_keys() if default else frozenset()
        size = len(prefix)
        if default and not self._modules:  # a leaf: whatever it does not own is unexpected
            unexpected.extend(
                key for key in state_dict if key.startswith(prefix) and key[size:] not in own
            )
            return custom
        groups: dict[str, dict[str, Any]] = {}
        for key, value in state_dict.items():
            if not key.startswith(prefix):
                continue
            rest = key[size:]
            if rest in own:
                continue
            head, dot, _ = rest.partition(".")
            if dot and self._modules.get(head) is not None:
                groups.setdefault(head, {})[key] = value
            elif default:
                unexpected.append(key)
        for name, module in self._modules.items():
            if module is not None:
                custom = (
                    module._load_tree(
                        groups.get(name, {}),
                        f"{prefix}{name}.",
                        metadata,
                        strict,
                        missing,
                        unexpected,
                        error_msgs,
                    )
                    or custom
                )
        return custom

    def _own_keys(self) -> set[str]:
        """Names of this module's state entries: non-empty parameters, persistent buffers."""
        own = {name for name, param in self._parameters.items() if param is not None}
        own.update(name for name in self._buffers if name not in self._non_persistent_buffers)
        return own

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str = "",
        local_metadata: dict[str, Any] | None = None,
        strict: bool = False,
        missing_keys: list[str] | None = None,
        unexpected_keys: list[str] | None = None,
        error_msgs: list[str] | None = None,
    ) -> None:
        """Load this module's own parameters and persistent buffers from ``state_dict``.

        Not its submodules: ``load_state_dict`` recurses. Runs the module's load
        pre-hooks first, then copies in every value found under ``prefix``,
        appending this module's missing and unexpected keys to the given lists.
        Override it to migrate old keys (``local_metadata`` is the state's
        metadata for this module, ``{}`` for a plain dict) and call ``super()``;
        append to ``error_msgs`` to refuse the load. It always runs inside
        ``load_state_dict``'s all-or-nothing rule.

        Raises:
            StateValueError: a value is not JSON-compatible.
            RuntimeError: a pre-hook returned something other than ``None``.
        """
        self._load_own(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if unexpected_keys is not None:
            self._report_unexpected(state_dict, prefix, unexpected_keys)

    def _load_own(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any] | None,
        strict: bool,
        missing_keys: list[str] | None,
        unexpected_keys: list[str] | None,
        error_msgs: list[str] | None,
    ) -> None:
        """The default ``_load_from_state_dict`` but for reporting unexpected keys."""
        if local_metadata is None:
            local_metadata = {}
        for hook in list(self._load_state_dict_pre_hooks.values()):
            result = hook(
                self,
                state_dict,
                prefix,
                local_metadata,
                strict,
                missing_keys,
                unexpected_keys,
                error_msgs,
            )
            _check_no_return(result, hook, "load_state_dict pre-")
        for name, param in self._parameters.items():
            if param is None:
                continue
            key = prefix + name
            if key in state_dict:
                param.data = _incoming_value(key, state_dict[key])
            elif missing_keys is not None:
                missing_keys.append(key)
        for name in list(self._buffers):
            if name in self._non_persistent_buffers:
                continue
            key = prefix + name
            if key in state_dict:
                self._buffers[name] = _incoming_value(key, state_dict[key])
            elif missing_keys is not None:
                missing_keys.append(key)

    def _report_incompatible(
        self, state_dict: dict[str, Any], prefix: str, missing: list[str], unexpected: list[str]
    ) -> None:
        """Missing and unexpected keys of this module, for overrides that do not report them."""
        for name, param in self._parameters.items():
            if param is not None and prefix + name not in state_dict:
                missing.append(prefix + name)
        for name in self._buffers:
            if name not in self._non_persistent_buffers and prefix + name not in state_dict:
                missing.append(prefix + name)
        self._report_unexpected(state_dict, prefix, unexpected)

    def _report_unexpected(
        self, state_dict: dict[str, Any], prefix: str, unexpected: list[str]
    ) -> None:
        """Keys under ``prefix`` that name nothing here and no child to pass them to."""
        own = self._own_keys()
        size = len(prefix)
        for key in state_dict:
            if not key.startswith(prefix):
                continue
            rest = key[size:]
            if rest in own:
                continue
            head, dot, _ = rest.partition(".")
            if not (dot and self._modules.get(head) is not None):
                unexpected.append(key)

    def _state_slots(self, prefix: str) -> Iterator[_Slot]:
        """Every key the default ``state_dict`` would produce and where its value lives."""
        for name, param in self._parameters.items():
            if param is not None:
                yield _Slot(prefix + name, self, name, True)
        for name in self._buffers:
            if name not in self._non_persistent_buffers:
                yield _Slot(prefix + name, self, name, False)
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_slots(f"{prefix}{name}.")

    def _run_load_post_hooks(self, result: _IncompatibleKeys) -> None:
        for module in self._modules.values():
            if module is not None:
                module._run_load_post_hooks(result)
        for hook in list(self._load_state_dict_post_hooks.values()):
            _check_no_return(hook(self, result), hook, "load_state_dict post-")

    def _snapshot_state(self) -> list[_ModuleSnapshot]:
        """What ``load_state_dict`` may change, per module, to undo a failed load."""
        snapshot = []
        seen: set[int] = set()
        stack: list[Any] = [self]
        while stack:
            module = stack.pop()
            if module is None or id(module) in seen:
                continue
            seen.add(id(module))
            params = dict(module._parameters)
            datas = [(p, p._data) for p in params.values() if p is not None]
            snapshot.append(
                _ModuleSnapshot(
                    module,
                    params,
                    dict(module._buffers),
                    set(module._non_persistent_buffers),
                    datas,
                )
            )
            stack.extend(module._modules.values())
        return snapshot

    # -- hook registration ------------------------------------------------------

    def register_state_dict_pre_hook(self, hook: StateDictPreHook) -> RemovableHandle:
        """Call ``hook(module, prefix, keep_vars)`` before this module's ``state_dict``.

        The hook must return ``None``. Returns the hook's :class:`RemovableHandle`.
        """
        return add_hook(self._state_dict_pre_hooks, hook)

    def register_state_dict_post_hook(self, hook: StateDictPostHook) -> RemovableHandle:
        """Call ``hook(module, state_dict, prefix, local_metadata)`` after ``state_dict``.

        ``local_metadata`` is ``{"version": module._version}``. The hook may
        edit ``state_dict`` in place and must return ``None``. Returns the
        hook's :class:`RemovableHandle`.
        """
        return add_hook(self._state_dict_hooks, hook)

    def register_load_state_dict_pre_hook(self, hook: LoadPreHook) -> RemovableHandle:
        """Call a hook before this module's part of ``load_state_dict``.

        It is called as ``hook(module, state_dict, prefix, local_metadata,
        strict, missing_keys, unexpected_keys, error_msgs)`` and may edit
        ``state_dict`` (a copy of the caller's) and the three lists in place;
        it must return ``None``. Returns the hook's :class:`RemovableHandle`.
        """
        return add_hook(self._load_state_dict_pre_hooks, hook)

    def register_load_state_dict_post_hook(self, hook: LoadPostHook) -> RemovableHandle:
        """Call ``hook(module, incompatible_keys)`` after loading, before ``strict`` is checked.

        The hook may edit ``incompatible_keys.missing_keys`` and
        ``.unexpected_keys`` in place (clearing them lets a strict load pass);
        if it raises, the load is undone. Returns the hook's
        :class:`RemovableHandle`.
        """
        return add_hook(self._load_state_dict_post_hooks, hook)


# -- the fast path ------------------------------------------------------------------
#
# A hot swap (``Follower.refresh()``, ``load_into``) loads a whole state into a tree
# whose modules use none of the extension points. For such a tree the general path
# above (a snapshot of every registry, keys split per prefix at each level, the
# post-hook walk) does nothing that a flat list of slots cannot: match each slot's
# key, check and copy every value, check ``strict``, and only then assign. Nothing
# is assigned before everything passed, so there is nothing to undo but an
# interruption half-way through the assignments, which is undone too. 50 keys: see
# ``benchmarks/serving.py``.


#: One slot of the fast path: its key, and a ``Parameter`` (name ``None``) or the
#: owning module's ``_buffers`` dict and the buffer's name.
_PlainSlot = tuple[str, Any, "str | None"]

#: Values that pass ``check_value`` and that ``_copy_value`` returns as they are.
_AS_IS = frozenset({str, int, bool, type(None)})


def _plain_load_slots(root: Any) -> list[_PlainSlot] | None:
    """The tree's slots in load order, or ``None`` if the general path must run.

    The general path is needed when any module of the tree overrides
    ``_load_from_state_dict``, has a load pre- or post-hook, or holds a
    ``Parameter`` subclass (whose ``data`` setter may do more than store).
    """
    slots: list[_PlainSlot] = []
    stack: list[tuple[str, Any]] = [("", root)]
    default = StateMixin._load_from_state_dict
    while stack:
        prefix, module = stack.pop()
        if (
            type(module)._load_from_state_dict is not default
            or module._load_state_dict_pre_hooks
            or module._load_state_dict_post_hooks
        ):
            return None
        for name, param in module._parameters.items():
            if param is not None:
                if type(param) is not Parameter:
                    return None
                slots.append((prefix + name, param, None))
        buffers = module._buffers
        if buffers:
            skip = module._non_persistent_buffers
            slots.extend((prefix + name, buffers, name) for name in buffers if name not in skip)
        if module._modules:
            children = [
                (f"{prefix}{name}.", child)
                for name, child in module._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))  # pre-order, children in registration order
    return slots


def _load_plain(
    owner: str, slots: list[_PlainSlot], incoming: dict[str, Any], strict: bool
) -> _IncompatibleKeys | None:
    """``load_state_dict`` for a tree without extension points (see above).

    Returns ``None``, having changed nothing, when the general path must decide
    (a key that is not a ``str``, which it refuses its own way).
    """
    found: list[tuple[_PlainSlot, Any]] = []
    missing: list[str] = []
    for slot in slots:
        key = slot[0]
        if key in incoming:
            found.append((slot, incoming[key]))
        else:
            missing.append(key)
    unexpected: list[str] = []
    if len(found) != len(incoming):  # slot keys are distinct: equal counts mean all matched
        wanted = {slot[0] for slot in slots}
        unexpected = [key for key in incoming if key not in wanted]
        if any(not isinstance(key, str) for key in unexpected):
            return None
    # Checked and copied in the general path's order, so the first bad value is the same.
    values = [
        value if type(value) in _AS_IS else _incoming_value(slot[0], value) for slot, value in found
    ]
    if strict and (missing or unexpected):
        raise StateDictError(
            _load_error_message(owner, strict, missing, unexpected, []),
            list(missing),
            list(unexpected),
        )
    undo: list[tuple[_PlainSlot, Any]] = []
    try:
        for (slot, _), value in zip(found, values, strict=True):
            _, target, name = slot
            if name is None:
                undo.append((slot, target._data))
                target._data = value  # checked above, as the data setter would
            else:
                undo.append((slot, target[name]))
                target[name] = value
    except BaseException:
        for (_, target, name), old in reversed(undo):
            if name is None:
                target._data = old
            else:
                target[name] = old
        raise
    return _IncompatibleKeys(missing, unexpected)


def state_keys(module: Any) -> list[str]:
    """The keys ``module.state_dict()`` returns, in order, without copying any value.

    Walks the tree's registries when no module overrides ``state_dict`` or
    ``_save_to_state_dict`` or has a state-dict hook; otherwise calls
    ``state_dict()`` (a hook may rename keys).

    Raises:
        whatever ``state_dict()`` raises, in the second case.
    """
    keys: list[str] = []
    stack: list[tuple[str, Any]] = [("", module)]
    while stack:
        prefix, each = stack.pop()
        kind = type(each)
        if (
            kind.state_dict is not StateMixin.state_dict
            or kind._save_to_state_dict is not StateMixin._save_to_state_dict
            or each._state_dict_pre_hooks
            or each._state_dict_hooks
        ):
            return list(module.state_dict())
        keys.extend(prefix + name for name, param in each._parameters.items() if param is not None)
        skip = each._non_persistent_buffers
        keys.extend(prefix + name for name in each._buffers if name not in skip)
        children = [
            (f"{prefix}{name}.", child)
            for name, child in each._modules.items()
            if child is not None
        ]
        stack.extend(reversed(children))
    return keys


class _ModuleSnapshot(NamedTuple):
    module: Any
    parameters: dict[str, Parameter | None]
    buffers: dict[str, Any]
    non_persistent: set[str]
    datas: list[tuple[Parameter, Any]]


def _incoming_value(key: str, value: Any) -> Any:
    """A loaded value: a ``Parameter``'s data, checked and copied."""
    if isinstance(value, Parameter):
        value = value.data
    check_value(key, value)
    return _copy_value(value)


def _check_loaded_values(root: Any) -> None:
    """Every buffer after a load, whatever an override wrote into ``_buffers``, must be a
    state value (a parameter's ``data`` is checked by its setter)."""
    for slot in root._state_slots(""):
        if not slot.is_parameter:
            check_value(slot.key, slot.module._buffers[slot.name])


def _restore_state(snapshot: list[_ModuleSnapshot]) -> None:
    for entry in snapshot:
        module = entry.module
        module._parameters.clear()
        module._parameters.update(entry.parameters)
        module._buffers.clear()
        module._buffers.update(entry.buffers)
        module._non_persistent_buffers.clear()
        module._non_persistent_buffers.update(entry.non_persistent)
        for param, data in entry.datas:
            param._data = data


def check_key_set(owner: str, wanted: list[str], state: Mapping[str, Any]) -> None:
    """The strict key-set check: ``state``'s keys must be exactly ``wanted``.

    The one rule and message for every strict load that does not go through
    :meth:`~msgflux.nn.Module.load_state_dict` itself (the store's
    ``load_into`` and followers check before they load with ``strict=False``).
    ``owner`` names what was loaded, e.g. ``"version 3 of 'pipeline'"``.

    Raises:
        StateDictError: keys of ``wanted`` are missing from ``state`` (listed in
            ``wanted``'s order) or ``state`` has others (in its order).
    """
    missing = [key for key in wanted if key not in state]
    unexpected: list[str] = []
    if len(wanted) - len(missing) != len(state):  # keys are distinct: all matched otherwise
        known = set(wanted)
        unexpected = [key for key in state if key not in known]
    if missing or unexpected:
        raise StateDictError(
            _load_error_message(owner, True, missing, unexpected, []), missing, unexpected
        )


def _load_error_message(
    owner: str, strict: bool, missing: list[str], unexpected: list[str], error_msgs: list[str]
) -> str:
    mode = "strict=True, " if strict else ""
    lines = [f"Error(s) in loading state_dict for {owner} ({mode}nothing was loaded):"]
    if strict and missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(map(repr, missing))}")
    if strict and unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(map(repr, unexpected))}")
    lines.extend(f"  {message}" for message in error_msgs)
    return "\n".join(lines)
