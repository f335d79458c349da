"""What the store accepts as names, tags, keys, texts and metadata: one place for input rules.

Every rule raises :class:`~msgflux.store.errors.InvalidInputError` naming the
offending item, before anything touches the database. The same rules apply on
every backend, so a history can always move between SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgflux._values import check_value
from msgflux.errors import StateValueError
from msgflux.store.errors import InvalidInputError
from msgflux.store.hashing import canonical_json

__all__ = ["MAX_LABEL", "MAX_KEY_BYTES", "check_label", "check_key", "check_tag", "check_text",
           "metadata_text"]

MAX_LABEL = 200
# Keys are indexed; PostgreSQL's b-tree entries hold about 2.7 KB, and the same
# limit applies on every backend so a history can move between them.
MAX_KEY_BYTES = 1024


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
    if len(label) > MAX_LABEL or any(ord(char) < 32 or char == "\x7f" for char in label):
        raise InvalidInputError(
            f"{kind} {label[:40]!r} is not allowed: at most {MAX_LABEL} characters and no "
            "control characters"
        )
    if ":" in label:
        raise InvalidInputError(f"{kind} {label!r} is not allowed: ':' separates NAME:VERSION")
    try:
        label.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidInputError(f"{kind} {label!r} is not valid Unicode text ({error.reason})"
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
        InvalidInputError: see :func:`check_label`; also all-digit tags, ``latest``, ``head``.
    """
    label = check_label("tag", tag)
    if label in ("latest", "head") or label.isdigit():
        raise InvalidInputError(
            f"tag {label!r} is not allowed: it would be read as a version number or 'latest'"
        )
    return label


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
