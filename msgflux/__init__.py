"""msgflux: PyTorch-style state for LLM pipelines.

``msgflux.nn`` holds ``Module``, ``Parameter`` and the containers;
``save`` / ``load`` write and read state dicts as TOML or JSON;
``StateStore`` (imported on first use) keeps versioned state dicts in SQL.

The ``>>>`` examples in the docstrings of ``msgflux`` use ``mf`` (this package),
``nn``, ``Module``, ``Parameter``, the README Quickstart's ``Analyzer`` and
``Pipeline`` classes, and ``pipeline = Pipeline()``; file examples write to the
current folder. ``tests/core/test_docstring_examples.py`` runs every one of them.
"""

from typing import TYPE_CHECKING, Any

from msgflux import nn
from msgflux.errors import (
    ModuleRegistrationError,
    ModuleTypeError,
    MsgfluxError,
    SerializationError,
    StateDictError,
    StateFileNotFoundError,
    StateValueError,
)
from msgflux.serialization import load, save

if TYPE_CHECKING:
    from msgflux.store import StateStore

__all__ = [
    "ModuleRegistrationError",
    "ModuleTypeError",
    "MsgfluxError",
    "SerializationError",
    "StateDictError",
    "StateFileNotFoundError",
    "StateStore",
    "StateValueError",
    "load",
    "nn",
    "save",
]


def __getattr__(name: str) -> Any:
    # The store needs SQLAlchemy; import it only when someone asks for it.
    if name == "StateStore":
        from msgflux.store import StateStore

        return StateStore
    raise AttributeError(f"module 'msgflux' has no attribute {name!r}")
