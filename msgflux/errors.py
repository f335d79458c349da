"""The errors raised by the msgflux core.

Every error about state, names and files is a :class:`MsgfluxError`, so
callers can catch the whole family at once (the store's ``StoreError`` is one
too). Each also derives from the built-in exception a Python user would expect
(``ValueError``, ``KeyError``...), so ``except ValueError`` keeps working.
Calling the API with arguments of the wrong Python type raises plain
``TypeError``, as Python itself does.
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "MsgfluxError",
    "StateValueError",
    "StateDictError",
    "SerializationError",
    "ModuleRegistrationError",
    "ModuleTypeError",
    "StateFileNotFoundError",
]


class MsgfluxError(Exception):
    """Base class of every error raised by msgflux (core and store)."""


class StateValueError(MsgfluxError, ValueError):
    """A state-dict value or key that is not allowed.

    State values must be JSON-compatible: ``str``, ``int``, ``float`` (finite),
    ``bool``, ``None``, ``list`` and ``dict`` with ``str`` keys, nested. The
    message names the offending key and the type found.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class StateDictError(MsgfluxError, KeyError):
    """``load_state_dict(strict=True)`` found missing or unexpected keys.

    ``missing_keys`` and ``unexpected_keys`` list every offending key.
    """

    def __init__(self, message: str, missing_keys: list[str], unexpected_keys: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.missing_keys = missing_keys
        self.unexpected_keys = unexpected_keys

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class SerializationError(MsgfluxError, ValueError):
    """``msgflux.save`` / ``msgflux.load`` could not write or read a file."""


class StateFileNotFoundError(SerializationError, FileNotFoundError):
    """``msgflux.load`` found no such file, or ``msgflux.save`` no such folder.

    Both a :class:`SerializationError` and a ``FileNotFoundError``, so
    ``except FileNotFoundError`` works as it does with ``open``, ``json`` and
    ``torch.load``. ``filename`` is the missing path and ``errno`` is ``ENOENT``.
    """

    def __init__(self, message: str, filename: str) -> None:
        super().__init__(message)
        self.errno = _errno.ENOENT
        self.filename = filename

    def __str__(self) -> str:  # OSError would format errno and filename
        return str(self.args[0]) if self.args else ""


class ModuleRegistrationError(MsgfluxError, KeyError):
    """A name cannot be registered on a module.

    Raised (as ``KeyError``, like PyTorch) for an empty name, a name containing
    ``"."``, or a name that would hide a method, ``Module``'s own state or an
    attribute of another kind.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ModuleTypeError(MsgfluxError, TypeError, ValueError):
    """An operand that must be modules is something else (e.g. ``Sequential + 3``).

    Both a ``TypeError`` (what Python raises for a wrong operand) and a
    ``ValueError`` (what msgflux and PyTorch raise there), so code catching
    either keeps working.
    """
