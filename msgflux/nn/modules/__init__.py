"""The building blocks: ``Module`` and its containers."""

from msgflux.nn.modules.container import ModuleDict, ModuleList, Sequential
from msgflux.nn.modules.module import Module

__all__ = ["Module", "ModuleDict", "ModuleList", "Sequential"]
