"""PyTorch-style state for LLM pipelines: ``Module``, ``Parameter`` and containers."""

from msgflux.errors import ModuleRegistrationError
from msgflux.nn.modules._hooks import RemovableHandle
from msgflux.nn.modules.container import ModuleDict, ModuleList, Sequential
from msgflux.nn.modules.module import Module
from msgflux.nn.parameter import Parameter

__all__ = [
    "Module",
    "ModuleDict",
    "ModuleList",
    "ModuleRegistrationError",
    "Parameter",
    "RemovableHandle",
    "Sequential",
]
