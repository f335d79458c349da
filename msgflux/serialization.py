"""``save`` and ``load``: a state dict to and from a ``.toml`` or ``.json`` file.

The rules, written once:

- the format is chosen by the file suffix (``.toml`` or ``.json``, any case);
- the top level is always a mapping (a state dict); values are JSON-compatible
  (see :mod:`msgflux._values`), checked before anything is written;
- TOML cannot hold ``None`` (anywhere, nested too) nor integers outside the
  signed 64-bit range: saving one is an error that suggests ``.json``;
- dotted keys stay flat: ``"analyzer.instructions" = "..."`` is written quoted;
- a string with a line break is written as a TOML multi-line string (triple quotes),
  so a prompt reads and diffs in an editor exactly as it will be sent; the text
  is parsed back before writing and any string that would not come back
  exactly (a carriage return, for one) makes the whole file use one-line
  escaped strings instead, so every file round-trips exactly;
- writes are atomic: a temporary file in the target's folder is written,
  fsynced and moved over the target with ``os.replace``, then the folder is
  fsynced. A failed save leaves no temporary file and the old file intact;
- only parsers of data are used (``tomllib``, ``json``): never pickle or eval.

Every failure is a :class:`~msgflux.errors.SerializationError` whose message
names the file, except a bad value passed to ``save``, which is the
:class:`~msgflux.errors.StateValueError` naming the key and the type.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from msgflux._values import check_state_dict
from msgflux.errors import SerializationError, StateFileNotFoundError, StateValueError

if TYPE_CHECKING:
    from msgflux.nn.modules.module import Module

__all__ = ["SUPPORTED_SUFFIXES", "dumps", "load", "loads", "save"]

#: File suffixes ``save`` and ``load`` understand.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".json", ".toml")

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

#: Mode of a newly created file (an existing file keeps its own).
_NEW_FILE_MODE = 0o644


def save(obj: Mapping[str, Any] | Module, path: str | os.PathLike[str]) -> None:
    """Write a state dict (or a module's ``state_dict()``) to ``path``, atomically.

    The suffix of ``path`` picks the format: ``.toml`` or ``.json``.

    Raises:
        StateFileNotFoundError: the folder does not exist (a
            ``SerializationError`` and a ``FileNotFoundError``).
        SerializationError: unknown suffix, ``obj``
            is neither a mapping nor a ``Module``, TOML cannot hold a value
            (``None``, an integer beyond 64 bits), text that is not valid
            Unicode, or the file cannot be written. Nothing is written then.
        StateValueError: a key or value is not allowed in a state dict (the
            message names the key and the type).

    Example:
        >>> mf.save(pipeline.state_dict(), "state.toml")  # or mf.save(pipeline, ...)
    """
    from msgflux.nn.modules.module import Module

    target = Path(path)
    suffix = _suffix(target)
    if isinstance(obj, Module):
        state: Any = obj.state_dict()
    elif isinstance(obj, Mapping):
        state = dict(obj)
    else:
        raise SerializationError(
            f"cannot save a {type(obj).__name__} to {target}: the top level of a state file "
            "must be a mapping of str keys to values (a state dict) or a msgflux.nn.Module"
        )
    check_state_dict(state)
    if suffix == ".toml":
        payload = _encode_toml(state, target)
    else:
        payload = _encode_json(state, target)
    _atomic_write(target, payload)


def dumps(state: Mapping[str, Any], fmt: str) -> str:
    """Return the text ``save`` would write for a state dict, as ``"toml"`` or ``"json"``.

    Raises:
        SerializationError: an unknown format, or a value TOML cannot hold
            (``None``, an integer beyond 64 bits); the message names the key.
        StateValueError: a key or value is not allowed in a state dict.
    """
    if fmt not in ("toml", "json"):
        raise SerializationError(f"unknown format {fmt!r}: use 'toml' or 'json'")
    state = dict(state)
    check_state_dict(state)
    if fmt == "json":
        return json.dumps(state, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    for key, value in state.items():
        problem = _toml_problem(value, key)
        if problem is not None:
            raise SerializationError(f"{problem}; JSON can hold every state value")
    return _toml_text(state)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state dict from a ``.toml`` or ``.json`` file.

    Raises:
        StateFileNotFoundError: no such file (a ``SerializationError`` and a
            ``FileNotFoundError``).
        SerializationError: unknown suffix, not UTF-8, malformed
            (the message gives the parser's line and column), a duplicate key or
            NaN/infinity in JSON, a top level that is not an object, or a value
            that is not allowed in a state dict (e.g. a TOML date).

    Example:
        >>> mf.save(pipeline, "state.toml")
        >>> sd = mf.load("state.toml")
        >>> sd["analyzer.instructions"]
        'Be helpful and concise'
    """
    source = Path(path)
    suffix = _suffix(source)
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        raise StateFileNotFoundError(f"cannot load {source}: no such file", str(source)) from None
    except IsADirectoryError:
        raise SerializationError(f"cannot load {source}: it is a directory, not a file") from None
    except OSError as error:
        raise SerializationError(f"cannot load {source}: {error.strerror or error}") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SerializationError(
            f"cannot load {source}: the file is not valid UTF-8 (byte {error.start})"
        ) from None
    return _parse(text, "toml" if suffix == ".toml" else "json", source)


def loads(text: str, fmt: str, source: str = "<stdin>") -> dict[str, Any]:
    """Parse a state dict from ``text`` in ``"toml"`` or ``"json"`` (what ``load`` reads).

    Raises:
        SerializationError: an unknown format, malformed text, a top level that
            is not an object, or a value not allowed in a state dict; the
            message names ``source``.
    """
    if fmt not in ("toml", "json"):
        raise SerializationError(f"unknown format {fmt!r}: use 'toml' or 'json'")
    return _parse(text, fmt, Path(source))


def _parse(text: str, fmt: str, source: Path) -> dict[str, Any]:
    """The state dict in ``text``: decoded, an object at the top, every value allowed."""
    data = _decode_toml(text, source) if fmt == "toml" else _decode_json(text, source)
    if not isinstance(data, dict):
        raise SerializationError(
            f"cannot load {source}: the top level is a {_json_type_name(data)}, but a state "
            "file must hold an object (a mapping of keys to values)"
        )
    try:
        check_state_dict(data)
    except StateValueError as error:
        raise SerializationError(f"cannot load {source}: {error}") from error
    return data


# -- formats ------------------------------------------------------------------


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = repr(path.suffix) if path.suffix else "no suffix"
        raise SerializationError(
            f"cannot tell the format of {path}: {shown} is not a supported suffix; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def _encode_json(state: dict[str, Any], target: Path) -> bytes:
    text = json.dumps(state, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    return _utf8(text, state, target)


def _encode_toml(state: dict[str, Any], target: Path) -> bytes:
    for key, value in state.items():
        problem = _toml_problem(value, key)
        if problem is not None:
            raise SerializationError(
                f"cannot save to {target}: {problem}; save to a .json file instead, "
                "which can hold every state value"
            )
    return _utf8(_toml_text(state), state, target)


def _toml_text(state: dict[str, Any]) -> str:
    """TOML for ``state``: multi-line strings where they read better and come back exactly."""
    if _has_line_break(state):
        try:
            text = tomli_w.dumps(state, multiline_strings=True)
            if _same_state(tomllib.loads(text), state):
                return text
        except (tomllib.TOMLDecodeError, UnicodeError, ValueError):
            pass
    return tomli_w.dumps(state)


def _has_line_break(value: Any) -> bool:
    if isinstance(value, str):
        return "\n" in value
    if isinstance(value, dict):
        return any(_has_line_break(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_line_break(item) for item in value)
    return False


def _same_state(loaded: Any, original: Any) -> bool:
    # 1 == 1.0 == True in Python; a round trip must keep the types too.
    if type(loaded) is not type(original):
        return False
    if isinstance(original, dict):
        return loaded.keys() == original.keys() and all(
            _same_state(loaded[key], original[key]) for key in original
        )
    if isinstance(original, list):
        return len(loaded) == len(original) and all(
            _same_state(a, b) for a, b in zip(loaded, original, strict=True)
        )
    return bool(loaded == original)


def _toml_problem(value: Any, where: str) -> str | None:
    """Why TOML cannot hold ``value`` (at key path ``where``), or ``None`` if it can."""
    if value is None:
        return f"the value for key {where!r} is None, which TOML cannot hold"
    if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX:
        return f"the integer for key {where!r} does not fit in 64 bits, which TOML requires"
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _toml_problem(item, f"{where}[{index}]")
            if problem is not None:
                return problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = _toml_problem(item, f"{where}[{key!r}]")
            if problem is not None:
                return problem
    return None


def _utf8(text: str, state: dict[str, Any], target: Path) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        culprit = next(
            (key for key, value in state.items() if not _encodes(key) or not _encodes(value)),
            None,
        )
        raise SerializationError(
            f"cannot save to {target}: the entry for key {culprit!r} contains text that is not "
            "valid Unicode (a lone surrogate), which cannot be written as UTF-8"
        ) from None


def _encodes(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode_toml(text: str, source: Path) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SerializationError(f"cannot load {source}: malformed TOML: {error}") from None
    except RecursionError:
        raise SerializationError(f"cannot load {source}: the TOML is nested too deeply") from None


def _decode_json(text: str, source: Path) -> Any:
    def refuse_constant(name: str) -> Any:
        raise SerializationError(
            f"cannot load {source}: {name} is not allowed (state values must be finite numbers)"
        )

    def finite_float(literal: str) -> float:
        number = float(literal)
        if number in (float("inf"), float("-inf")):
            raise SerializationError(
                f"cannot load {source}: the number {literal} is too large for a float"
            )
        return number

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise SerializationError(
                    f"cannot load {source}: duplicate key {key!r} in a JSON object"
                )
            result[key] = value
        return result

    try:
        return json.loads(
            text,
            parse_constant=refuse_constant,
            parse_float=finite_float,
            object_pairs_hook=unique_keys,
        )
    except json.JSONDecodeError as error:
        raise SerializationError(
            f"cannot load {source}: malformed JSON at line {error.lineno}, column "
            f"{error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise SerializationError(f"cannot load {source}: the JSON is nested too deeply") from None


def _json_type_name(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


# -- atomic write ---------------------------------------------------------------


def _atomic_write(target: Path, payload: bytes) -> None:
    """Replace ``target`` with ``payload`` so that a crash leaves the old or the new file.

    The temporary file must be in the same folder: ``os.replace`` is atomic only
    within one file system.
    """
    folder = target.parent
    if not folder.is_dir():
        raise StateFileNotFoundError(
            f"cannot save to {target}: the folder {folder} does not exist", str(folder)
        )
    if target.is_dir():
        raise SerializationError(f"cannot save to {target}: it is a directory")
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        mode = _NEW_FILE_MODE
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise SerializationError(
            f"cannot save to {target}: cannot create a file in {folder}: {error.strerror or error}"
        ) from error
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise SerializationError(
                f"cannot save to {target}: {error.strerror or error}"
            ) from error
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some systems cannot open or fsync a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
