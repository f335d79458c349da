"""What the store accepts as names, tags, keys, texts and metadata: one place for input rules.

Every rule raises :class:`~msgflux.store.errors.InvalidInputError` naming the
offending item, before anything touches the database. The same rules apply on
every backend, so a history can always move between SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from msgflux._values import MAX_DEPTH, check_value
from msgflux.errors import StateValueError
from msgflux.store.errors import InvalidInputError
from msgflux.store.hashing import VALUE_TYPES, canonical_json, decode_value

__all__ = [
    "MAX_LABEL",
    "MAX_KEY_BYTES",
    "MAX_VERSION",
    "check_label",
    "check_key",
    "check_tag",
    "check_text",
    "metadata_text",
    "check_version_number",
    "check_parent",
    "check_metadata_text",
    "check_stored_value",
    "looks_like_hash",
]

MAX_LABEL = 200
# Keys are indexed; PostgreSQL's b-tree entries hold about 2.7 KB, and the same
# limit applies on every backend so a history can move between them.
MAX_KEY_BYTES = 1024
#: The largest version number the store hands out or imports. PostgreSQL's
#: ``integer`` stops at 2**31 - 1; the margin keeps every ``number + 1`` the
#: store computes representable on both backends.
MAX_VERSION = 2_000_000_000

# A snapshot-hash prefix as a reference accepts: 4 to 64 hex digits.
_HEX_PREFIX = re.compile(r"[0-9a-fA-F]{4,64}")
# JSON strings, to be skipped when counting nesting brackets.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_label(kind: str, label: Any) -> str:
    """Return ``label`` if it is a usable name or tag (``kind`` is used in the message).

    Raises:
        InvalidInputError: not a non-empty string, leading/trailing spaces, more than
        :data:`MAX_LABEL` characters, control characters, ``':'``, or invalid Unicode.
    """
    if not isinstance(label, str) or not label or label != label.strip():
        raise InvalidInputError(
            f"{kind} {label!r} is not allowed: a {kind} is a non-empty string without "
            "leading or trailing spaces"
        )
    if len(label) > MAX_LABEL or _CONTROL.search(label):
        raise InvalidInputError(
            f"{kind} {label[:40]!r} is not allowed: at most {MAX_LABEL} characters and no "
            "control characters"
        )
    if ":" in label:
        raise InvalidInputError(f"{kind} {label!r} is not allowed: ':' separates NAME:VERSION")
    try:
        label.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidInputError(
            f"{kind} {label!r} is not valid Unicode text ({error.reason})"
        ) from None
    return label


def check_key(key: str) -> str:
    """Return ``key`` if every backend can store it as a state-dict key.

    Raises:
        InvalidInputError: a NUL character, invalid Unicode, or more than
        :data:`MAX_KEY_BYTES` bytes of UTF-8 (keys are indexed).
    """
    problem = None
    if "\x00" in key:
        problem = "it contains a NUL character"
    else:
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError as error:
            problem = f"it is not valid Unicode text ({error.reason})"
        else:
            if size > MAX_KEY_BYTES:
                problem = f"keys are at most {MAX_KEY_BYTES} bytes of UTF-8, this one has {size}"
    if problem is not None:
        raise InvalidInputError(f"state dict key {key[:60]!r} cannot be stored: {problem}")
    return key


def check_tag(tag: Any) -> str:
    """Return ``tag`` if it is a usable tag: a label that can't be read as a number or ``latest``.

    Raises:
        InvalidInputError: see :func:`check_label`; also all-digit tags, ``latest``,
        ``head``, and anything that looks like a snapshot-hash prefix (4 to 64 hex
        digits, e.g. ``cafe`` or ``2463cae0``), which :meth:`StateStore.load` would
        otherwise have to guess between.
    """
    label = check_label("tag", tag)
    if label in ("latest", "head") or label.isdigit():
        raise InvalidInputError(
            f"tag {label!r} is not allowed: it would be read as a version number or 'latest'"
        )
    if looks_like_hash(label):
        raise InvalidInputError(
            f"tag {label!r} is not allowed: it would be read as a snapshot-hash prefix "
            "(4 or more hex digits)"
        )
    return label


def looks_like_hash(text: str) -> bool:
    """True if ``text`` could be a snapshot-hash prefix: 4 to 64 hex digits (either case)."""
    return _HEX_PREFIX.fullmatch(text) is not None


def check_text(kind: str, text: Any, *, optional: bool) -> str | None:
    """Return a message or author text (``None`` allowed when ``optional``).

    Raises:
        InvalidInputError: not a string, a NUL character, or invalid Unicode.
    """
    if text is None and optional:
        return None
    if not isinstance(text, str):
        raise InvalidInputError(f"{kind} must be a string, not {type(text).__name__}")
    if "\x00" in text:
        raise InvalidInputError(f"{kind} contains a NUL character, which cannot be stored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidInputError(f"{kind} is not valid Unicode text ({error.reason})") from None
    return text


def metadata_text(metadata: Any) -> str:
    """Return the canonical JSON text of version metadata (``None`` means ``{}``).

    Raises:
        InvalidInputError: not a dict of JSON values with str keys.
    """
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, not {type(metadata).__name__}")
    metadata = dict(metadata)
    try:
        check_value("metadata", metadata)
        text = canonical_json(metadata)
        text.encode("utf-8")
    except (StateValueError, UnicodeEncodeError) as error:
        raise InvalidInputError(f"metadata refused: {error}") from None
    return text


def _too_deep(text: str) -> bool:
    """True if the JSON ``text`` nests arrays/objects deeper than :data:`MAX_DEPTH`.

    Counted on the text, before parsing: a parser recurses once per level, so
    text nested 100,000 deep must be refused without ever being parsed.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # the common case: too few brackets to be too deep
    depth = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def check_version_number(number: Any, where: str) -> int:
    """Return ``number`` if it is a version number the store can hold (1..:data:`MAX_VERSION`).

    Raises:
        InvalidInputError: not an ``int`` in that range (``where`` names it).
    """
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_VERSION:
        raise InvalidInputError(
            f"{where}: version number {number!r} is out of range (1..{MAX_VERSION:,})"
        )
    return number


def check_parent(number: int, parent: Any, where: str) -> int | None:
    """Return ``parent`` if it may be the parent of version ``number``: ``None`` or an earlier number.

    Raises:
        InvalidInputError: a parent that is the version itself, a later version, or not a number.
    """
    if parent is None:
        return None
    if isinstance(parent, bool) or not isinstance(parent, int) or not 1 <= parent < number:
        raise InvalidInputError(
            f"{where}: parent {parent!r} of version {number} is not an earlier version number"
        )
    return parent


def check_metadata_text(text: Any, where: str) -> str:
    """Return the canonical JSON of metadata given as JSON text, checked as :func:`metadata_text`.

    The same rule as a save's metadata: a JSON object of JSON values, no NaN or
    infinity, nested at most :data:`~msgflux._values.MAX_DEPTH` levels.

    Raises:
        InvalidInputError: naming ``where`` and what is wrong.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"{where}: metadata must be JSON text, not {type(text).__name__}")
    if _too_deep(text):
        raise InvalidInputError(f"{where}: metadata is nested deeper than {MAX_DEPTH} levels")
    try:
        metadata = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidInputError(f"{where}: metadata is not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"{where}: metadata is not a JSON object")
    try:
        return metadata_text(metadata)
    except InvalidInputError as error:
        raise InvalidInputError(f"{where}: {error}") from None


def check_stored_value(kind: Any, text: Any, where: str) -> Any:
    """Return the value stored as ``(kind, text)`` if a save would accept it.

    The rule of :func:`msgflux._values.check_value` (JSON values, no NaN or
    infinity, at most :data:`~msgflux._values.MAX_DEPTH` levels) plus the
    store's: no NUL character in a top-level string, valid Unicode.

    Raises:
        InvalidInputError: naming ``where`` and what is wrong.
    """
    if kind not in VALUE_TYPES or not isinstance(text, str):
        raise InvalidInputError(f"{where}: unknown value type {kind!r}")
    if kind == "str" and "\x00" in text:
        raise InvalidInputError(
            f"{where}: a string value contains a NUL character, which cannot be stored"
        )
    if kind in ("list", "dict") and _too_deep(text):
        raise InvalidInputError(f"{where}: the value is nested deeper than {MAX_DEPTH} levels")
    try:
        value = decode_value(kind, text)
        check_value(where, value)
        text.encode("utf-8")
    except StateValueError as error:
        raise InvalidInputError(f"{where}: {error}") from None
    except (ValueError, RecursionError) as error:
        raise InvalidInputError(f"{where}: the value is unreadable ({error})") from None
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
