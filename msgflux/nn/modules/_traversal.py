"""Traversal: walking the module tree, its parameters and buffers, and train/eval.

Duplicates are removed by identity, never by value: two submodules holding
equal strings both list them. A parameter is the same one when it is the same
``Parameter`` object; a buffer is the same one when it is the same name on the
same module object (equal small ints and strs may be one interned object, so
the identity of a buffer's *value* means nothing). Empty parameter and
submodule slots (``None``) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

from msgflux.nn.modules._base import ModuleBase
from msgflux.nn.parameter import Parameter

if TYPE_CHECKING:
    from msgflux.nn.modules.module import Module

__all__ = ["TraversalMixin"]


class TraversalMixin(ModuleBase):
    """``children``, ``modules``, ``parameters``, ``buffers`` (and ``named_*``), ``train``."""

    # -- modules ----------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Yield ``(name, module)`` for each direct child, once per module object."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        """Yield each direct child module, once per module object."""
        for _, module in self.named_children():
            yield module

    def named_modules(
        self,
        memo: set[int] | None = None,
        prefix: str = "",
        remove_duplicate: bool = True,
    ) -> Iterator[tuple[str, Module]]:
        """Yield ``(dotted_name, module)`` for this module and every descendant, pre-order.

        The module itself comes first with name ``prefix``. With
        ``remove_duplicate=True`` a module reachable by several paths is yielded
        once (``memo`` holds the ``id`` of modules already seen).

        Example:
            >>> [name for name, _ in pipeline.named_modules()]
            ['', 'analyzer']
        """
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self._as_module()
        for name, module in self._modules.items():
            if module is None:
                continue
            child_prefix = f"{prefix}.{name}" if prefix else name
            yield from module.named_modules(memo, child_prefix, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """Yield this module and every descendant once, pre-order."""
        for _, module in self.named_modules():
            yield module

    # -- parameters and buffers ---------------------------------------------------

    def _owners(
        self, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        if recurse:
            yield from self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
        else:
            yield prefix, self

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, parameter)`` for this module's parameters.

        With ``recurse`` (the default) descendants' parameters follow, dotted by
        path. With ``remove_duplicate`` a ``Parameter`` object shared by several
        modules is yielded once; equal but distinct parameters are all yielded.

        Example:
            >>> dict(pipeline.named_parameters())
            {'analyzer.instructions': Parameter('Be helpful and concise', spec='system_prompt')}
        """
        seen: set[int] = set()
        for module_prefix, module in self._owners(prefix, recurse, remove_duplicate):
            for name, param in module._parameters.items():
                if param is None:
                    continue
                if remove_duplicate:
                    if id(param) in seen:
                        continue
                    seen.add(id(param))
                yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Yield every parameter (see :meth:`named_parameters`)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Any]]:
        """Yield ``(dotted_name, value)`` for every buffer, persistent or not.

        Values are the buffers themselves, not copies. With ``remove_duplicate``
        a module reachable by several paths contributes its buffers once.

        Example:
            >>> dict(pipeline.named_buffers())
            {'flux': 'preprocess -> analyze', 'analyzer.expected_output': 'JSON format'}
        """
        for module_prefix, module in self._owners(prefix, recurse, remove_duplicate):
            for name, value in module._buffers.items():
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def buffers(self, recurse: bool = True) -> Iterator[Any]:
        """Yield every buffer value (see :meth:`named_buffers`)."""
        for _, value in self.named_buffers(recurse=recurse):
            yield value

    # -- mode ---------------------------------------------------------------------

    def train(self, mode: bool = True) -> Self:
        """Set ``training`` to ``mode`` on this module and every descendant; return ``self``.

        Raises:
            ValueError: ``mode`` is not a ``bool``.
        """
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be a bool, got {type(mode).__name__}")
        object.__setattr__(self, "training", mode)
        for module in self.children():
            module.train(mode)
        return self

    # -- optimisation ---------------------------------------------------------------

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        """Set ``requires_grad`` on every parameter of the tree; return ``self``.

        Use ``requires_grad_(False)`` to freeze a branch so that an optimiser
        leaves its prompts alone.
        """
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the ``grad`` (textual feedback) of every parameter of the tree.

        Text has no zero, so ``grad`` becomes ``None`` whatever ``set_to_none`` says;
        the argument is accepted for PyTorch compatibility.
        """
        for param in self.parameters():
            param.grad = None

    def eval(self) -> Self:
        """Same as ``train(False)``; return ``self``."""
        return self.train(False)
