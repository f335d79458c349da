"""setuptools' build backend, plus a static path for type checkers in editable installs.

Why: ``store/`` and ``migrations/`` sit at the top level of the repository but
are installed as ``msgflux.store`` and ``msgflux.store.migrations``.
setuptools' editable install maps them with an import hook, which Python
follows but static type checkers (mypy, pyright) cannot, so a user's
``mypy --strict`` could not see ``msgflux.store``.

The checkout itself has the package's shape through two symlinks,
``msgflux/store -> ../store`` and ``store/migrations -> ../migrations``, so
``mypy`` and ``pyright`` run inside the checkout resolve everything. For runs
outside it, ``build_editable`` adds ``__editable__.msgflux_state_typing.pth``
to setuptools' editable wheel: one static path, ``build/__editable_typing__``,
a folder holding only a ``msgflux`` symlink to the checkout's ``msgflux/``.
Type checkers read static ``.pth`` paths; new files need no reinstall (the
links are to folders); nothing else of the checkout (tests, examples) becomes
importable. Python itself resolves the same files either way.

Everything else is setuptools' own backend, unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 -- the whole PEP 517/660 interface

__all__ = [name for name in dir(_setuptools) if not name.startswith("_")]

_PTH = "__editable__.msgflux_state_typing.pth"


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """PEP 660 ``build_editable``: setuptools' wheel plus the static typing path."""
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    root = Path(__file__).resolve().parent.parent
    typing_root = root / "build" / "__editable_typing__"
    typing_root.mkdir(parents=True, exist_ok=True)
    link = typing_root / "msgflux"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(root / "msgflux", link, target_is_directory=True)
    _add_to_wheel(Path(wheel_directory) / name, _PTH, f"{typing_root}\n".encode())
    return name


def _add_to_wheel(wheel: Path, member: str, data: bytes) -> None:
    """Add ``member`` to the wheel and to its RECORD (sha256, size), as the spec asks."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    temporary = wheel.with_suffix(".tmp")
    with (
        zipfile.ZipFile(wheel) as source,
        zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename.endswith(".dist-info/RECORD"):
                content += f"{member},sha256={digest},{len(data)}\n".encode()
            target.writestr(item, content)
        target.writestr(member, data)
    os.replace(temporary, wheel)
