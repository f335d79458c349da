"""``RemovableHandle`` (what every ``register_*`` returns) and the ``Hook`` base class."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msgflux.nn.modules.module import Module

__all__ = ["Hook", "RemovableHandle"]

_next_handle_id = itertools.count()

#: Held while a hook is stored or removed with its flags, and while a call takes
#: its snapshot of the hooks: a call in another thread then sees each hook with
#: exactly its own flags (``with_kwargs``, ``always_call``), never half of it.
HOOKS_LOCK = threading.Lock()


class RemovableHandle:
    """Returned by every ``register_*`` hook method; ``remove()`` unregisters the hook.

    ``hooks_dict`` is the table the hook lives in, keyed by ``handle.id``;
    ``extra_dict`` (a dict or a list of dicts) holds more tables whose entry
    under the same id is removed with it (e.g. a hook's flags). Removing twice
    is harmless. Also a context manager that removes the hook on exit.

    Example:
        >>> handle = pipeline.register_forward_hook(lambda m, args, kwargs, out: "hooked")
        >>> pipeline("hi")
        'hooked'
        >>> handle.remove()
        >>> pipeline("hi")
        'hi | Be helpful and concise'
    """

    id: int

    def __init__(
        self,
        hooks_dict: MutableMapping[int, Any],
        *extra: MutableMapping[int, Any],
        extra_dict: MutableMapping[int, Any] | list[MutableMapping[int, Any]] | None = None,
    ) -> None:
        self.id = next(_next_handle_id)
        self._hooks = hooks_dict
        tables = list(extra)
        if isinstance(extra_dict, list):
            tables.extend(extra_dict)
        elif extra_dict is not None:
            tables.append(extra_dict)
        self._extra = tuple(tables)

    def remove(self) -> None:
        """Unregister the hook; does nothing if it was already removed."""
        with HOOKS_LOCK:
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


class Hook:
    """Base class for a reusable forward hook, registered with :meth:`register`.

    ``on="pre"`` runs before ``forward`` as ``hook(module, args, kwargs)`` and
    may return ``(args, kwargs)``; ``on="post"`` runs after it as
    ``hook(module, args, kwargs, output)`` and may return a new output.
    ``target`` names the submodule a container registers the hook on (``None``:
    the module itself). Subclasses implement ``__call__``; ``acall`` is what
    ``Module.acall`` awaits, and by default runs ``__call__`` in a worker thread.

    Raises:
        ValueError: ``on`` is not ``"pre"`` or ``"post"``.

    Example:
        >>> class Shout(Hook):
        ...     def __init__(self):
        ...         super().__init__(on="post")
        ...     def __call__(self, module, args, kwargs, output=None):
        ...         return output.upper()
        >>> handle = Shout().register(pipeline)
        >>> pipeline("hi")
        'HI | BE HELPFUL AND CONCISE'
    """

    _VALID_ON = frozenset({"pre", "post"})

    def __init__(self, *, on: str, target: str | None = None) -> None:
        if on not in self._VALID_ON:
            raise ValueError(f"Hook 'on' must be 'pre' or 'post', got {on!r}")
        if target is not None and not isinstance(target, str):
            raise TypeError(f"Hook 'target' must be a str or None, got {type(target).__name__}")
        self.on = on
        self.target = target

    def __call__(
        self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any = None
    ) -> Any:
        """Run the hook; subclasses override it.

        Raises:
            NotImplementedError: the subclass did not define ``__call__``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    async def acall(
        self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any = None
    ) -> Any:
        """Async form awaited by ``Module.acall``; by default ``__call__`` in a worker thread."""
        if self.on == "pre":
            return await asyncio.to_thread(self, module, args, kwargs)
        return await asyncio.to_thread(self, module, args, kwargs, output)

    def register(self, module: Module) -> RemovableHandle:
        """Register this hook on ``module`` (a forward pre-hook or forward hook); return its handle."""
        if self.on == "pre":
            return module.register_forward_pre_hook(self)
        return module.register_forward_hook(self)

    @property
    def processor_key(self) -> str | None:
        """Key a module may use to hand this hook a processor; ``None`` here."""
        return None

    def __repr__(self) -> str:
        target = "" if self.target is None else f", target={self.target!r}"
        return f"{type(self).__name__}(on={self.on!r}{target})"
