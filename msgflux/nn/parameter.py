"""``Parameter``: one learnable piece of state, usually prompt text, plus its spec."""

from __future__ import annotations

import copy
from typing import Any

from msgflux._values import check_value

__all__ = ["Parameter"]

#: Longest value shown in a ``repr`` before it is cut with an ellipsis.
_REPR_LIMIT = 80


def _short_repr(value: Any) -> str:
    """``repr(value)``, cut to a readable length for nested module reprs."""
    text = repr(value)
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return text


class Parameter:
    """A value that an optimiser may change (usually prompt text) and its spec.

    ``data`` is any JSON-compatible value (``str``, ``int``, finite ``float``,
    ``bool``, ``None``, ``list``, ``dict`` with ``str`` keys); ``spec`` names
    what the value is for (``"system_prompt"``, ``"instructions"``...).
    Assigning a ``Parameter`` as an attribute of a :class:`~msgflux.nn.Module`
    registers it, and its ``data`` is what ``state_dict()`` saves.

    A ``Parameter`` is not a ``str``, but behaves like its data where that is
    natural: ``str(p)``, ``f"{p}"``, ``p + "x"`` and ``"x" + p`` use ``p.data``
    and return plain values.

    Equality and hashing use ``(data, spec)``; a ``Parameter`` never equals a
    plain value. ``hash()`` raises ``TypeError`` when ``data`` is unhashable
    (a ``list`` or ``dict``), exactly as ``hash([1])`` does: a canonical-JSON
    hash would break ``a == b  =>  hash(a) == hash(b)`` (``[1] == [1.0]`` and
    ``[1] == [True]`` but their JSON texts differ). Like any value-hashed
    mutable object, do not change ``data`` while the parameter is in a set.

    Raises:
        StateValueError: ``data`` is not JSON-compatible (also on later
            assignments to ``.data``).
        TypeError: ``spec`` is not a ``str``.

    Example:
        >>> p = Parameter("Be helpful", "system_prompt")
        >>> p
        Parameter('Be helpful', spec='system_prompt')
        >>> "Q: " + p
        'Q: Be helpful'
        >>> p.data = "Be brief"
        >>> str(p)
        'Be brief'
    """

    __slots__ = ("_data", "spec", "requires_grad", "grad")

    _data: Any
    spec: str
    requires_grad: bool
    #: Feedback an optimiser computed for this parameter (e.g. a textual
    #: critique); ``None`` until one is set. Not part of the state dict.
    grad: Any

    def __init__(self, data: Any, spec: str, requires_grad: bool = True) -> None:
        if not isinstance(spec, str):
            raise TypeError(f"Parameter spec must be a str, got {type(spec).__name__}")
        self.data = data
        self.spec = spec
        self.requires_grad = bool(requires_grad)
        self.grad = None

    # -- the value --------------------------------------------------------------

    @property
    def data(self) -> Any:
        """The parameter's value. Setting it checks the value is JSON-compatible.

        Raises:
            StateValueError: on assignment of a value that is not JSON-compatible.
        """
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        check_value("data", value)
        self._data = value

    def clone(self) -> Parameter:
        """Return a new ``Parameter`` with deep copies of ``data`` and ``grad``, same spec."""
        twin = Parameter(copy.deepcopy(self._data), self.spec, requires_grad=self.requires_grad)
        twin.grad = copy.deepcopy(self.grad)
        return twin

    def copy_(self, src: Parameter | Any) -> Parameter:
        """Set ``data`` to a deep copy of ``src`` (a ``Parameter`` or a value); return ``self``.

        The spec is kept, as ``torch.Tensor.copy_`` keeps everything but the data.
        ``copy_(None)`` changes nothing, as in msgflux.

        Raises:
            StateValueError: the new value is not JSON-compatible (``self`` is unchanged).
        """
        if src is None:
            return self
        value = src.data if isinstance(src, Parameter) else src
        self.data = copy.deepcopy(value)
        return self

    def copy_to_data(self, value: Any) -> None:
        """Set ``data`` to a deep copy of ``value`` (``None`` included), as msgflux does.

        Raises:
            StateValueError: ``value`` is not JSON-compatible (``self`` is unchanged).
        """
        self.data = copy.deepcopy(value)

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        """Set whether an optimiser may change this parameter; return ``self``."""
        self.requires_grad = bool(requires_grad)
        return self

    # -- behaving like the data -------------------------------------------------

    def __str__(self) -> str:
        return str(self._data)

    def __format__(self, format_spec: str) -> str:
        return format(self._data, format_spec)

    def __add__(self, other: Any) -> Any:
        if isinstance(other, Parameter):
            other = other.data
        return self._data + other

    def __radd__(self, other: Any) -> Any:
        return other + self._data

    # -- identity of the value ----------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parameter):
            return NotImplemented
        return self.spec == other.spec and self._data == other._data

    def __hash__(self) -> int:
        try:
            return hash((self._data, self.spec))
        except TypeError:
            raise TypeError(
                f"unhashable Parameter: its data is a {type(self._data).__name__}; "
                "only parameters whose data is a str, number, bool or None can be hashed"
            ) from None

    def __repr__(self) -> str:
        extra = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter({_short_repr(self._data)}, spec={self.spec!r}{extra})"
