"""setuptools' build backend, with editable installs in "strict" mode.

Why: ``store/`` and ``migrations/`` sit at the top level of the repository but
are installed as ``msgflux.store`` and ``msgflux.store.migrations``. setuptools'
default ("lenient") editable install maps them with an import hook, which
Python follows but static type checkers (mypy, pyright) cannot, so a user's
``mypy --strict`` could not see ``msgflux.store``. Strict mode instead builds a
tree of links (``build/__editable__.*``) laid out as the installed package and
puts its path in a plain ``.pth`` file, which both checkers read. The cost:
a NEW module file appears only after ``pip install -e .`` is run again
(edits to existing files show at once, the links point at them).

Everything else is setuptools' own backend, unchanged.
"""

from __future__ import annotations

from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 -- the whole PEP 517/660 interface

__all__ = [name for name in dir(_setuptools) if not name.startswith("_")]


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    """PEP 660 ``build_editable`` with ``editable_mode=strict`` unless the caller chose one."""
    settings = dict(config_settings or {})
    settings.setdefault("editable_mode", "strict")
    return _setuptools.build_editable(wheel_directory, settings, metadata_directory)
