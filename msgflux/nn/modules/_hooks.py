"""Calling a module: forward hooks, global hooks, ``__call__``, ``aforward`` and ``acall``.

Hooks take msgflux's form by default: a pre-hook is ``hook(module, args,
kwargs)`` and a forward hook ``hook(module, args, kwargs, output)``.
``with_kwargs=False`` opts into PyTorch's form (``hook(module, args)`` and
``hook(module, args, output)``). A hook is stored in an ordered dict keyed by
its handle's id, as in PyTorch: ``_forward_hooks_with_kwargs`` and
``_forward_hooks_always_called`` hold that id when the flag is set.

Global hooks (``register_module_*``) apply to every module. The forward ones
run before each module's own hooks and take the form their docstrings give.
Every call iterates over a snapshot of the hooks, so a hook may remove itself.
"""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections import OrderedDict
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, NamedTuple

from msgflux.nn.hooks.hook import HOOKS_LOCK, RemovableHandle
from msgflux.nn.modules._base import ModuleBase

__all__ = [
    "RemovableHandle",
    "register_module_buffer_registration_hook",
    "register_module_forward_hook",
    "register_module_forward_pre_hook",
    "register_module_module_registration_hook",
    "register_module_parameter_registration_hook",
]


def add_hook(
    hooks: OrderedDict[int, Any],
    entry: Any,
    *,
    prepend: bool = False,
    extra: list[MutableMapping[int, Any]] | None = None,
    flags: Sequence[MutableMapping[int, bool]] | None = None,
) -> RemovableHandle:
    """Store ``entry`` in ``hooks`` (first if ``prepend``) and return its handle.

    Each of ``flags`` (some of ``extra``) marks the hook before it is stored: a
    call running in another thread never sees the hook without its flags (it
    would call a ``with_kwargs`` hook in the wrong form).
    """
    handle = RemovableHandle(hooks, extra_dict=extra)
    with HOOKS_LOCK:
        for flag in flags or ():
            flag[handle.id] = True
        hooks[handle.id] = entry
        if prepend:
            hooks.move_to_end(handle.id, last=False)
    return handle


# -- global hooks -------------------------------------------------------------------

_global_buffer_registration_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
_global_module_registration_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
_global_parameter_registration_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
_global_forward_pre_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
_global_forward_pre_hooks_with_kwargs: OrderedDict[int, bool] = OrderedDict()
_global_forward_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
_global_forward_hooks_with_kwargs: OrderedDict[int, bool] = OrderedDict()
_global_forward_hooks_always_called: OrderedDict[int, bool] = OrderedDict()


def register_module_buffer_registration_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """Call ``hook(module, name, value)`` whenever any module registers or assigns a buffer.

    A non-``None`` return replaces the value (it must still be a state value).
    Global state: meant for debugging and instrumentation.
    """
    return add_hook(_global_buffer_registration_hooks, hook)


def register_module_module_registration_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """Call ``hook(module, name, submodule)`` whenever any module registers a submodule.

    A non-``None`` return replaces the submodule. Global state.
    """
    return add_hook(_global_module_registration_hooks, hook)


def register_module_parameter_registration_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """Call ``hook(module, name, param)`` whenever any module registers a ``Parameter``.

    A non-``None`` return replaces the parameter. Global state.
    """
    return add_hook(_global_parameter_registration_hooks, hook)


def register_module_forward_pre_hook(
    hook: Callable[..., Any], *, with_kwargs: bool = False
) -> RemovableHandle:
    """Call ``hook(module, args)`` before every module's ``forward``, before its own pre-hooks.

    As documented upstream, the global pre-hook takes PyTorch's form: a
    non-``None`` return replaces ``args`` (a non-tuple is wrapped). With
    ``with_kwargs=True`` it is ``hook(module, args, kwargs)`` returning ``None``
    or ``(args, kwargs)``. Global state: meant for debugging and profiling.
    """
    extra: list[MutableMapping[int, Any]] = [_global_forward_pre_hooks_with_kwargs]
    return add_hook(
        _global_forward_pre_hooks,
        hook,
        extra=extra,
        flags=[_global_forward_pre_hooks_with_kwargs] if with_kwargs else None,
    )


def register_module_forward_hook(
    hook: Callable[..., Any], *, with_kwargs: bool = False, always_call: bool = False
) -> RemovableHandle:
    """Call ``hook(module, args, output)`` after every module's ``forward``, before its own hooks.

    A non-``None`` return replaces the output. ``with_kwargs=True``: the hook is
    ``hook(module, args, kwargs, output)``. ``always_call=True``: it also runs
    when the call raises (with the output so far, ``None`` if ``forward``
    raised). Global state: meant for debugging and profiling.
    """
    extra: list[MutableMapping[int, Any]] = [
        _global_forward_hooks_with_kwargs,
        _global_forward_hooks_always_called,
    ]
    flags = [_global_forward_hooks_with_kwargs] if with_kwargs else []
    if always_call:
        flags.append(_global_forward_hooks_always_called)
    return add_hook(_global_forward_hooks, hook, extra=extra, flags=flags)


def run_registration_hooks(
    hooks: OrderedDict[int, Callable[..., Any]], module: Any, name: str, value: Any
) -> Any:
    """Pass ``value`` through the global registration ``hooks``; return the final value."""
    for hook in list(hooks.values()):
        result = hook(module, name, value)
        if result is not None:
            value = result
    return value


# -- one call -----------------------------------------------------------------------


class _Entry(NamedTuple):
    """A hook as one call sees it."""

    id: int
    function: Callable[..., Any]
    with_kwargs: bool
    always_call: bool


def _hook_name(hook: Callable[..., Any]) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__name__


def _apply_pre_result(
    hook: _Entry, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The inputs after a pre-hook returned ``result``."""
    if result is None:
        return args, kwargs
    if not hook.with_kwargs:
        return (result if isinstance(result, tuple) else (result,)), kwargs
    if (
        isinstance(result, tuple)
        and len(result) == 2
        and isinstance(result[0], tuple | list)
        and isinstance(result[1], dict)
    ):
        return tuple(result[0]), result[1]
    raise RuntimeError(
        f"forward pre-hook {_hook_name(hook.function)} must return None or a tuple "
        f"(args: tuple, kwargs: dict), got {type(result).__name__}: {result!r:.200}"
    )


def _refuse_awaitable(result: Any, hook: _Entry) -> None:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(
            f"hook {_hook_name(hook.function)} is async; a plain call cannot await it. "
            "Call the module with `await module.acall(...)` instead"
        )


async def _await_hook(hook: _Entry, *arguments: Any) -> Any:
    """Run a hook in an async call: its ``acall`` or a coroutine is awaited."""
    function = hook.function
    acall = getattr(function, "acall", None)
    if acall is not None and callable(acall):
        result = acall(*arguments)
    else:
        result = function(*arguments)
    if inspect.isawaitable(result):
        result = await result
    return result


def _forward_unimplemented(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Compute the module's output; subclasses override it. Call the module, not this.

    Raises:
        NotImplementedError: the subclass did not define ``forward``.
    """
    raise NotImplementedError(
        f'Module [{type(self).__name__}] is missing the required "forward" function'
    )


async def _aforward_unimplemented(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Compute the module's output asynchronously; subclasses may override it.

    Use ``await module.acall(...)``, which runs the hooks; when ``aforward`` is
    not overridden, ``acall`` falls back to the synchronous call.

    Raises:
        NotImplementedError: the subclass did not define ``aforward``.
    """
    raise NotImplementedError(
        f'Module [{type(self).__name__}] is missing the required "aforward" function'
    )


class ForwardHooksMixin(ModuleBase):
    """``__call__`` / ``acall``: pre-hooks, ``forward`` / ``aforward``, then forward hooks."""

    # Declared as Callable attributes, as PyTorch does, so that subclasses may
    # define them with any signature without breaking type checkers.
    forward: Callable[..., Any] = _forward_unimplemented
    aforward: Callable[..., Any] = _aforward_unimplemented

    # -- registering ------------------------------------------------------------

    def register_forward_pre_hook(
        self,
        hook: Callable[..., Any],
        *,
        prepend: bool = False,
        with_kwargs: bool = True,
    ) -> RemovableHandle:
        """Call ``hook(module, args, kwargs)`` before every ``forward``; return its handle.

        The hook returns ``None`` (inputs unchanged) or a new ``(args, kwargs)``
        pair; anything else raises ``RuntimeError`` when the module is called.
        ``prepend=True`` runs it before the hooks already registered.
        ``with_kwargs=False`` selects PyTorch's form ``hook(module, args)``,
        whose non-``None`` return replaces ``args`` (a non-tuple is wrapped).
        A coroutine function, or an object with an async ``acall``, is awaited
        by ``acall``; a plain call refuses it with ``TypeError``.

        Example:
            >>> def pre_hook(module, args, kwargs):
            ...     return (args[0].upper(),), kwargs
            >>> handle = pipeline.register_forward_pre_hook(pre_hook)
            >>> pipeline("hi")
            'HI | Be helpful and concise'
        """
        return add_hook(
            self._forward_pre_hooks,
            hook,
            prepend=prepend,
            extra=[self._forward_pre_hooks_with_kwargs],
            flags=[self._forward_pre_hooks_with_kwargs] if with_kwargs else None,
        )

    def register_forward_hook(
        self,
        hook: Callable[..., Any],
        *,
        prepend: bool = False,
        with_kwargs: bool = True,
        always_call: bool = False,
    ) -> RemovableHandle:
        """Call ``hook(module, args, kwargs, output)`` after every ``forward``; return its handle.

        A hook returning ``None`` keeps the output; any other value replaces it.
        ``prepend=True`` runs it before the hooks already registered.
        ``always_call=True`` runs it even when the call raises (the output is
        then ``None`` if ``forward`` raised; an error inside the hook is turned
        into a warning so the original error propagates).
        ``with_kwargs=False`` selects PyTorch's form ``hook(module, args, output)``.

        Example:
            >>> handle = pipeline.register_forward_hook(lambda m, args, kwargs, out: out.upper())
            >>> pipeline("hi")
            'HI | BE HELPFUL AND CONCISE'
        """
        flags = [self._forward_hooks_with_kwargs] if with_kwargs else []
        if always_call:
            flags.append(self._forward_hooks_always_called)
        return add_hook(
            self._forward_hooks,
            hook,
            prepend=prepend,
            extra=[self._forward_hooks_with_kwargs, self._forward_hooks_always_called],
            flags=flags,
        )

    # -- calling ------------------------------------------------------------------

    def _hooks_snapshot(self) -> tuple[list[_Entry], list[_Entry]]:
        """The pre-hooks and the hooks of one call, each with its flags (one lock)."""
        with HOOKS_LOCK:
            return self._pre_hooks_entries(), self._post_hooks_entries()

    def _pre_hooks_entries(self) -> list[_Entry]:
        entries = [
            _Entry(i, f, i in _global_forward_pre_hooks_with_kwargs, False)
            for i, f in list(_global_forward_pre_hooks.items())
        ]
        entries.extend(
            _Entry(i, f, i in self._forward_pre_hooks_with_kwargs, False)
            for i, f in list(self._forward_pre_hooks.items())
        )
        return entries

    def _post_hooks_entries(self) -> list[_Entry]:
        entries = [
            _Entry(
                i,
                f,
                i in _global_forward_hooks_with_kwargs,
                i in _global_forward_hooks_always_called,
            )
            for i, f in list(_global_forward_hooks.items())
        ]
        entries.extend(
            _Entry(
                i, f, i in self._forward_hooks_with_kwargs, i in self._forward_hooks_always_called
            )
            for i, f in list(self._forward_hooks.items())
        )
        return entries

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the forward pre-hooks, ``forward(*args, **kwargs)``, then the forward hooks.

        Raises:
            RuntimeError: a pre-hook returned something other than ``None`` or
                an ``(args, kwargs)`` pair.
            TypeError: a hook is async (use ``await module.acall(...)``).
        """
        pre_hooks, post_hooks = self._hooks_snapshot()
        if not pre_hooks and not post_hooks:
            return self.forward(*args, **kwargs)
        output: Any = None
        called: set[int] = set()
        try:
            for hook in pre_hooks:
                if hook.with_kwargs:
                    result = hook.function(self, args, kwargs)
                else:
                    result = hook.function(self, args)
                _refuse_awaitable(result, hook)
                args, kwargs = _apply_pre_result(hook, result, args, kwargs)
            output = self.forward(*args, **kwargs)
            for hook in post_hooks:
                called.add(hook.id)
                if hook.with_kwargs:
                    result = hook.function(self, args, kwargs, output)
                else:
                    result = hook.function(self, args, output)
                _refuse_awaitable(result, hook)
                if result is not None:
                    output = result
            return output
        except Exception:
            for hook in post_hooks:
                if hook.always_call and hook.id not in called:
                    try:
                        if hook.with_kwargs:
                            result = hook.function(self, args, kwargs, output)
                        else:
                            result = hook.function(self, args, output)
                        _refuse_awaitable(result, hook)
                        if result is not None:
                            output = result
                    except Exception as error:
                        _warn_silenced(hook, error)
            raise

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Await the module: pre-hooks, ``aforward(*args, **kwargs)``, then forward hooks.

        When the class does not override ``aforward``, this is the synchronous
        call (``module(*args, **kwargs)`` with its hooks) run in a worker thread
        so the event loop is not blocked. Otherwise hooks run in the event loop:
        a hook with an ``acall`` method, or a coroutine function, is awaited.

        Raises:
            RuntimeError: a pre-hook returned something other than ``None`` or
                an ``(args, kwargs)`` pair.

        Example:
            >>> import asyncio
            >>> asyncio.run(pipeline.acall("You did the work?"))  # or: await pipeline.acall(...)
            'You did the work? | Be helpful and concise'
        """
        if getattr(type(self), "aforward", None) is _aforward_unimplemented:
            return await asyncio.to_thread(self.__call__, *args, **kwargs)
        pre_hooks, post_hooks = self._hooks_snapshot()
        output: Any = None
        called: set[int] = set()
        try:
            for hook in pre_hooks:
                if hook.with_kwargs:
                    result = await _await_hook(hook, self, args, kwargs)
                else:
                    result = await _await_hook(hook, self, args)
                args, kwargs = _apply_pre_result(hook, result, args, kwargs)
            produced = self.aforward(*args, **kwargs)
            if inspect.isawaitable(produced):  # tolerate an aforward written without async
                produced = await produced
            output = produced
            for hook in post_hooks:
                called.add(hook.id)
                if hook.with_kwargs:
                    result = await _await_hook(hook, self, args, kwargs, output)
                else:
                    result = await _await_hook(hook, self, args, output)
                if result is not None:
                    output = result
            return output
        except Exception:
            for hook in post_hooks:
                if hook.always_call and hook.id not in called:
                    try:
                        if hook.with_kwargs:
                            result = await _await_hook(hook, self, args, kwargs, output)
                        else:
                            result = await _await_hook(hook, self, args, output)
                        if result is not None:
                            output = result
                    except Exception as error:
                        _warn_silenced(hook, error)
            raise


def _warn_silenced(hook: _Entry, error: Exception) -> None:
    warnings.warn(
        f"forward hook {_hook_name(hook.function)} (always_call=True) raised "
        f"{type(error).__name__}: {error}; silenced because the call had already failed",
        RuntimeWarning,
        stacklevel=3,
    )
