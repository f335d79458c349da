"""Containers: ``ModuleList``, ``ModuleDict`` and ``Sequential``.

Children live in ``_modules`` under their index (``"0"``, ``"1"``...) or key,
so they appear in the state dict as ``layers.0.instructions``. Items are
reached with ``[]``, never as attributes: a ``ModuleDict`` key ``"train"``
does not hide ``.train()``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, overload

from msgflux.errors import ModuleTypeError
from msgflux.nn.modules._hooks import _global_module_registration_hooks, run_registration_hooks
from msgflux.nn.modules._registration import check_key_syntax
from msgflux.nn.modules.module import Module

__all__ = ["ModuleDict", "ModuleList", "Sequential"]


def _absolute_index(index: int, length: int, kind: str) -> int:
    """``index`` as a position in ``range(length)``; negative counts from the end.

    Raises:
        TypeError: ``index`` is not an int.
        IndexError: out of range.
    """
    position = operator.index(index)
    if not -length <= position < length:
        raise IndexError(f"{kind} index {index} is out of range (length {length})")
    return position + length if position < 0 else position


def _check_item(module: Any) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"{type(module).__name__} is not a msgflux.nn.Module subclass")


class _IndexedContainer(Module):
    """Shared list behaviour of ``ModuleList`` and ``Sequential``."""

    # A list of modules has no empty slots: every item is a Module.
    _modules: dict[str, Module]  # type: ignore[assignment]

    def _renumber(self, modules: Iterable[Any]) -> None:
        """Replace the children by ``modules``, keyed ``"0"``, ``"1"``...

        Modules not already children pass through the global module
        registration hooks under their new index. Nothing changes if any item
        is not a ``Module``.
        """
        children = list(modules)
        for module in children:
            _check_item(module)
        current = {id(module) for module in self._modules.values()}
        for index, module in enumerate(children):
            if id(module) not in current:
                replaced = run_registration_hooks(
                    _global_module_registration_hooks, self, str(index), module
                )
                _check_item(replaced)
                children[index] = replaced
        self._modules.clear()
        for index, module in enumerate(children):
            self._modules[str(index)] = module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __delitem__(self, index: int | slice) -> None:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            del modules[index]
        else:
            del modules[_absolute_index(index, len(modules), type(self).__name__)]
        self._renumber(modules)

    def __setitem__(self, index: int, module: Module) -> None:
        position = _absolute_index(index, len(self), type(self).__name__)
        self._set_child(list(self._modules)[position], module)

    def append(self, module: Module) -> Any:
        """Add ``module`` at the end; return ``self``.

        Raises:
            TypeError: ``module`` is not a ``Module``.
        """
        self._renumber([*self._modules.values(), module])
        return self

    def extend(self, modules: Iterable[Module]) -> Any:
        """Add every module of ``modules`` at the end; return ``self``.

        Raises:
            TypeError: an item is not a ``Module`` (nothing is added).
        """
        self._renumber([*self._modules.values(), *modules])
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index`` (as ``list.insert``).

        Raises:
            TypeError: ``module`` is not a ``Module``.
        """
        modules = list(self._modules.values())
        modules.insert(operator.index(index), module)
        self._renumber(modules)

    def pop(self, index: int = -1) -> Module:
        """Remove and return the module at ``index`` (the last by default); renumber.

        Raises:
            IndexError: ``index`` is out of range.
        """
        modules = list(self._modules.values())
        module = modules.pop(_absolute_index(index, len(modules), type(self).__name__))
        self._renumber(modules)
        return module

    def __iadd__(self, modules: Iterable[Module]) -> Any:
        return self.extend(modules)


class ModuleList(_IndexedContainer):
    """A list of modules, registered as children ``"0"``, ``"1"``...

    Supports indexing (negative too), slicing (a new ``ModuleList`` of the same
    module objects), ``len``, iteration, ``append``, ``extend``, ``insert``,
    ``pop``, ``del`` (the rest is renumbered), ``+`` and ``+=``.

    Raises:
        TypeError: an item is not a ``Module``.

    Example:
        >>> layers = ModuleList([Analyzer(), Analyzer()])
        >>> list(layers.state_dict())[0]
        '0.instructions'
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> ModuleList: ...
    def __getitem__(self, index: int | slice) -> Module | ModuleList:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[_absolute_index(index, len(modules), "ModuleList")]

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])


class Sequential(_IndexedContainer):
    """Modules called in a chain: ``Sequential(a, b)(x)`` is ``b(a(x))``.

    Takes modules as arguments (named ``"0"``, ``"1"``...) or one mapping of
    names to modules. List operations are those of :class:`ModuleList`;
    slicing keeps the names, ``del``, ``insert`` and ``pop`` renumber all
    children as PyTorch does.

    Raises:
        TypeError: an argument is not a ``Module``.
        ModuleRegistrationError: a name in the mapping is empty or has a ``"."``.
    """

    def __init__(self, *args: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], Mapping):
            for name, module in args[0].items():
                check_key_syntax(name, "module")
                self._set_child(name, module)
        else:
            self._renumber(args)

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> Sequential: ...
    def __getitem__(self, index: int | slice) -> Module | Sequential:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(dict(items[index]))
        return items[_absolute_index(index, len(items), "Sequential")][1]

    def __add__(self, other: Iterable[Module]) -> Sequential:
        return Sequential(*self, *_modules_operand(other, "+"))

    def __iadd__(self, other: Iterable[Module]) -> Sequential:
        self.extend(_modules_operand(other, "+="))
        return self

    def insert(self, index: int, module: Module) -> Sequential:  # type: ignore[override]
        """Insert ``module`` before position ``index`` and renumber; return ``self``.

        ``index`` may be ``-n``..``n`` (``n`` appends), as in msgflux.

        Raises:
            IndexError: ``index`` is outside ``[-n, n]``.
            TypeError: ``module`` is not a ``Module``.
        """
        position = operator.index(index)
        length = len(self)
        if not -length <= position <= length:
            raise IndexError(
                f"Sequential.insert index {index} is out of range [-{length}, {length}]"
            )
        super().insert(position, module)
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the first child with all the arguments, then each next child on the output.

        An empty ``Sequential`` returns its single positional argument unchanged.

        Raises:
            TypeError: an empty ``Sequential`` was given anything but one positional argument.
        """
        modules = list(self._modules.values())
        if not modules:
            return _passthrough(args, kwargs)
        output = modules[0](*args, **kwargs)
        for module in modules[1:]:
            output = module(output)
        return output

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        """The async chain: ``await child.acall(...)`` for each child in order.

        Children may mix sync and async: a child without its own ``aforward``
        runs its synchronous call in a worker thread.

        Raises:
            TypeError: an empty ``Sequential`` was given anything but one positional argument.
        """
        modules = list(self._modules.values())
        if not modules:
            return _passthrough(args, kwargs)
        output = await modules[0].acall(*args, **kwargs)
        for module in modules[1:]:
            output = await module.acall(output)
        return output


def _passthrough(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) != 1 or kwargs:
        raise TypeError(
            "an empty Sequential returns its input unchanged and takes exactly one "
            f"positional argument, got {len(args)} positional and {len(kwargs)} keyword"
        )
    return args[0]


def _modules_operand(other: Any, operator_text: str) -> list[Module]:
    """The modules of the right operand of ``Sequential +`` / ``+=``."""
    if isinstance(other, Module) and not isinstance(other, _IndexedContainer):
        kind = f"a single {type(other).__name__} module"
    elif isinstance(other, _IndexedContainer | list | tuple):
        items = list(other)
        if all(isinstance(item, Module) for item in items):
            return items
        bad = next(item for item in items if not isinstance(item, Module))
        kind = f"a {type(other).__name__} holding a {type(bad).__name__}"
    else:
        kind = f"a {type(other).__name__}"
    raise ModuleTypeError(
        f"Sequential {operator_text} takes a Sequential, a ModuleList or a list of modules, "
        f"not {kind}"
    )


class ModuleDict(Module):
    """An ordered dict of modules, registered as children under their keys.

    Keys are non-empty strings without ``"."``; any such key works, even one
    named like a method (``"train"``), because items are reached with ``[]``.
    Supports ``[]``, ``del``, ``in``, ``len``, iteration over keys, ``keys``,
    ``values``, ``items``, ``get``, ``set``, ``update`` (from a mapping,
    another ``ModuleDict`` or ``(key, module)`` pairs), ``pop`` and ``clear``.
    A value may be ``None``: an empty slot, skipped by traversal and
    ``state_dict``. Hashed and compared by identity, like every module.

    Raises:
        TypeError: a key is not a ``str`` or a value is not a ``Module``.
        ModuleRegistrationError: a key is empty or contains ``"."``.

    Example:
        >>> experts = ModuleDict({"train": Analyzer()})
        >>> experts.train() is experts
        True
    """

    def __init__(
        self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
    ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module | None:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module | None) -> None:
        check_key_syntax(key, "ModuleDict key")
        self._set_child(key, module)

    def get(self, key: str, default: Module | None = None) -> Module | None:
        """The module under ``key``, or ``default`` if there is none."""
        return self._modules.get(key, default)

    def set(self, key: str, module: Module | None) -> None:
        """Same as ``self[key] = module``.

        Raises:
            TypeError, ModuleRegistrationError: as for ``self[key] = module``.
        """
        self[key] = module

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def add_module(self, name: str, module: Module | None) -> None:
        """Same as ``self[name] = module``: any non-empty key without ``"."``.

        Raises:
            TypeError: ``name`` is not a ``str`` or ``module`` is not a ``Module``.
            ModuleRegistrationError: ``name`` is empty or contains ``"."``.
        """
        self[name] = module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> list[str]:
        """The keys, in insertion order."""
        return list(self._modules.keys())

    def values(self) -> list[Module | None]:
        """The modules, in insertion order."""
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module | None]]:
        """The ``(key, module)`` pairs, in insertion order."""
        return list(self._modules.items())

    def pop(self, key: str) -> Module | None:
        """Remove the module under ``key`` and return it.

        Raises:
            KeyError: no such key.
        """
        return self._modules.pop(key)

    def clear(self) -> None:
        """Remove every module."""
        self._modules.clear()

    def update(
        self,
        modules: Mapping[str, Module | None] | ModuleDict | Iterable[tuple[str, Module | None]],
    ) -> None:
        """Add or replace modules from a mapping, another ``ModuleDict`` or ``(key, module)`` pairs.

        Everything is checked before anything is added.

        Raises:
            TypeError: ``modules`` is neither, a key is not a ``str`` or a value
                is not a ``Module``.
            ValueError: a pair does not have exactly two items.
            ModuleRegistrationError: a key is empty or contains ``"."``.
        """
        pairs: list[tuple[Any, Any]]
        if isinstance(modules, Mapping | ModuleDict):
            pairs = list(modules.items())
        elif isinstance(modules, Iterable) and not isinstance(modules, str | bytes):
            pairs = []
            for index, pair in enumerate(modules):
                if not isinstance(pair, Iterable) or isinstance(pair, str | bytes):
                    raise TypeError(
                        f"ModuleDict.update: item #{index} should be a (key, module) pair, "
                        f"got {type(pair).__name__}"
                    )
                items = tuple(pair)
                if len(items) != 2:
                    raise ValueError(
                        f"ModuleDict.update: item #{index} has length {len(items)}; 2 is required"
                    )
                pairs.append((items[0], items[1]))
        else:
            raise TypeError(
                "ModuleDict.update takes a mapping or an iterable of (key, module) pairs, "
                f"got {type(modules).__name__}"
            )
        for key, module in pairs:
            check_key_syntax(key, "ModuleDict key")
            if module is not None and not isinstance(module, Module):
                raise TypeError(
                    f"ModuleDict value for key {key!r} is a {type(module).__name__}, "
                    "not a msgflux.nn.Module"
                )
        for key, module in pairs:
            self._set_child(key, module)
