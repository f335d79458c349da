"""Hook machinery shared by every module: ``Hook`` and ``RemovableHandle``.

``from msgflux.nn.hooks import Hook, RemovableHandle`` works as in msgflux.
"""

from msgflux.nn.hooks.hook import Hook, RemovableHandle

__all__ = ["Hook", "RemovableHandle"]
