"""Identity: a module's name, description and annotations, as msgflux sets them.

The name and the description are buffers (``name``, ``description``), so they
are part of the state dict, as in msgflux; annotations map names to Python
types, which are not state values, so they are a plain attribute.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from msgflux.nn.modules._base import ModuleBase

__all__ = ["IdentityMixin"]


class IdentityMixin(ModuleBase):
    """``set_name`` / ``set_description`` / ``set_annotations`` and their getters."""

    if TYPE_CHECKING:  # provided by RegistrationMixin

        def register_buffer(self, name: str, data: Any, persistent: bool = True) -> None: ...

    def set_name(self, name: str) -> None:
        """Name this module (a buffer ``name``); tools and traces use it.

        Raises:
            TypeError: ``name`` is not a ``str``.
            ValueError: ``name`` is empty.

        Example:
            >>> pipeline.get_module_name()
            'Pipeline'
            >>> pipeline.set_name("my-agent")
            >>> pipeline.get_module_name()
            'my-agent'
        """
        if not isinstance(name, str):
            raise TypeError(f"module name must be a str, got {type(name).__name__}")
        if name == "":
            raise ValueError("module name must be a non-empty string")
        self.register_buffer("name", name)

    def set_description(self, description: str | None = None) -> None:
        """Describe this module (a buffer ``description``, indentation cleaned); ``None`` clears it.

        Raises:
            ValueError: ``description`` is neither a ``str`` nor ``None`` (as in msgflux).
        """
        if description is not None and not isinstance(description, str):
            raise ValueError(
                f"module description must be a str or None, got {type(description).__name__}"
            )
        if isinstance(description, str):
            description = inspect.cleandoc(description)
        self.register_buffer("description", description)

    def set_annotations(self, annotations: dict[str, Any]) -> None:
        """Set the module's input annotations (``{"x": int}``), e.g. for use as a tool.

        Raises:
            TypeError: ``annotations`` is not a ``dict``.
        """
        if not isinstance(annotations, dict):
            raise TypeError(f"annotations must be a dict, got {type(annotations).__name__}")
        object.__setattr__(self, "annotations", annotations)

    def _get_name(self) -> str:
        return type(self).__name__

    def get_module_name(self) -> str:
        """The name given by :meth:`set_name`, else the class name."""
        name = self._buffers.get("name")
        return name if isinstance(name, str) else self._get_name()

    def get_module_description(self) -> str | None:
        """The description given by :meth:`set_description`, else the class docstring."""
        description = self._buffers.get("description")
        return description if isinstance(description, str) else type(self).__doc__

    def get_module_annotations(self) -> dict[str, Any]:
        """The annotations given by :meth:`set_annotations`, else the class's own annotations."""
        annotations = self.__dict__.get("annotations")
        if isinstance(annotations, dict):
            return annotations
        return dict(inspect.get_annotations(type(self)))
