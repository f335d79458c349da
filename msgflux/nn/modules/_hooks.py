"""Hooks: ``RemovableHandle`` and the forward-call machinery of ``Module``.

A hook is stored in an ordered dict owned by the module, keyed by the id of
the handle returned to the caller; ``handle.remove()`` deletes that entry.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple

__all__ = ["RemovableHandle"]

_next_handle_id = itertools.count()


class RemovableHandle:
    """Returned by every ``register_*_hook`` method; ``remove()`` unregisters the hook.

    Removing twice is harmless. Also a context manager that removes the hook on
    exit.

    Example:
        >>> handle = module.register_forward_hook(lambda m, args, out: None)
        >>> handle.remove()
    """

    id: int

    def __init__(self, hooks: OrderedDict[int, Any], *extra: dict[int, Any]) -> None:
        self.id = next(_next_handle_id)
        self._hooks = hooks
        self._extra = extra

    def remove(self) -> None:
        """Unregister the hook; does nothing if it was already removed."""
        self._hooks.pop(self.id, None)
        for table in self._extra:
            table.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<RemovableHandle id={self.id} {'active' if self.id in self._hooks else 'removed'}>"


def add_hook(hooks: OrderedDict[int, Any], entry: Any, *, prepend: bool = False) -> RemovableHandle:
    """Store ``entry`` in ``hooks`` (first if ``prepend``) and return its handle."""
    handle = RemovableHandle(hooks)
    hooks[handle.id] = entry
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


class _ForwardHook(NamedTuple):
    function: Callable[..., Any]
    with_kwargs: bool


def _forward_unimplemented(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Compute the module's output; subclasses override it. Call the module, not this.

    Raises:
        NotImplementedError: the subclass did not define ``forward``.
    """
    raise NotImplementedError(
        f'Module [{type(self).__name__}] is missing the required "forward" function'
    )


class ForwardHooksMixin:
    """``__call__``: forward pre-hooks, ``forward``, then forward hooks."""

    _forward_pre_hooks: OrderedDict[int, _ForwardHook]
    _forward_hooks: OrderedDict[int, _ForwardHook]

    def _init_forward_hooks(self) -> None:
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # Declared as a Callable attribute, as PyTorch does, so that subclasses may
    # define forward with any signature without breaking type checkers.
    forward: Callable[..., Any] = _forward_unimplemented

    def register_forward_pre_hook(
        self,
        hook: Callable[..., Any],
        *,
        prepend: bool = False,
        with_kwargs: bool = False,
    ) -> RemovableHandle:
        """Call ``hook(module, args)`` before every ``forward``; return its handle.

        A hook returning ``None`` leaves the inputs as they are; any other value
        replaces ``args`` (a non-tuple is wrapped in a 1-tuple). With
        ``with_kwargs=True`` the hook is ``hook(module, args, kwargs)`` and must
        return ``None`` or a new ``(args, kwargs)`` pair. ``prepend=True`` runs it
        before the hooks already registered.

        Example:
            >>> handle = m.register_forward_pre_hook(lambda mod, args: (args[0].strip(),))
        """
        return add_hook(self._forward_pre_hooks, _ForwardHook(hook, with_kwargs), prepend=prepend)

    def register_forward_hook(
        self,
        hook: Callable[..., Any],
        *,
        prepend: bool = False,
        with_kwargs: bool = False,
    ) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every ``forward``; return its handle.

        A hook returning ``None`` keeps the output; any other value replaces it.
        With ``with_kwargs=True`` the hook is ``hook(module, args, kwargs, output)``.
        ``prepend=True`` runs it before the hooks already registered.

        Example:
            >>> handle = m.register_forward_hook(lambda mod, args, out: out.upper())
        """
        return add_hook(self._forward_hooks, _ForwardHook(hook, with_kwargs), prepend=prepend)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run forward pre-hooks, ``forward(*args, **kwargs)``, then forward hooks.

        Raises:
            RuntimeError: a ``with_kwargs`` pre-hook returned something other than
                ``None`` or an ``(args, kwargs)`` pair.
        """
        for hook in list(self._forward_pre_hooks.values()):
            if hook.with_kwargs:
                result = hook.function(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(
                            "a forward pre-hook registered with with_kwargs=True must return "
                            f"None or an (args, kwargs) tuple, got {result!r}"
                        )
                    args, kwargs = result
                    args = args if isinstance(args, tuple) else (args,)
            else:
                result = hook.function(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            if hook.with_kwargs:
                result = hook.function(self, args, kwargs, output)
            else:
                result = hook.function(self, args, output)
            if result is not None:
                output = result
        return output
