"""Decoding what the store reads back: the one place that turns a damaged row into a clear error.

Every read of stored content (``load``, ``log``, ``get``, ``diff``, bundles)
decodes values and metadata here, so a damaged row raises
:class:`~msgflux.store.errors.IntegrityError` naming the name, version and key
instead of a raw ``JSONDecodeError``, ``ValueError`` or ``RecursionError``,
and ``verify`` reports the same rows with the same reasons.

SQLite hands text back decoded as UTF-8 and raises ``OperationalError("Could
not decode to UTF-8 ...")`` when a corrupted page holds invalid bytes; the
fast read paths keep SQLite's C decoder and map that error here
(:func:`damage`), while ``verify`` reads through :func:`tolerant_text`, which
decodes with ``surrogateescape`` so that one bad row cannot stop the scan.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, exc

from msgflux.store.errors import DatabaseError, IntegrityError
from msgflux.store.hashing import decode_value

__all__ = [
    "decode_rows",
    "decode_state",
    "decode_metadata",
    "metadata_problem",
    "problem_of",
    "damage",
    "tolerant_text",
    "is_undecodable",
]

_UNDECODABLE = "could not decode to utf-8"


def problem_of(kind: str, text: Any) -> str | None:
    """Why the stored ``(kind, text)`` cannot be read back, or ``None`` if it can."""
    try:
        if not isinstance(text, str):
            return f"stored text is {type(text).__name__}, not text"
        text.encode("utf-8")
        decode_value(kind, text)
    except (ValueError, TypeError, RecursionError) as error:
        return f"stored value is unreadable ({error})"
    return None


def decode_rows(rows: list[tuple[str, str, str]], where: Callable[[], str]) -> dict[str, Any]:
    """``(key, value_type, text)`` rows as a state dict (strings need no decoding).

    Raises:
        IntegrityError: a row cannot be decoded; the message is ``where()`` plus
        the key and the reason.
    """
    try:
        return {
            key: text if kind == "str" else decode_value(kind, text) for key, kind, text in rows
        }
    except (ValueError, TypeError, RecursionError):
        pass
    for key, kind, text in rows:  # the rare path: find the damaged key
        reason = problem_of(kind, text)
        if reason is not None:
            raise IntegrityError(
                f"{where()}, key {key!r}: {reason}; the database is damaged (run verify)"
            ) from None
    raise IntegrityError(f"{where()}: stored content is unreadable (run verify)")


def decode_state(rows: list[Any], where: Callable[[], str]) -> dict[str, Any]:
    """``(key, value_type, text, position)`` rows, in any order, as a state dict in
    position order (``rows`` is sorted in place).

    Raises:
        IntegrityError: as :func:`decode_rows`.
    """
    rows.sort(key=_position)
    try:
        return {
            key: text if kind == "str" else decode_value(kind, text)
            for key, kind, text, _position_ in rows
        }
    except (ValueError, TypeError, RecursionError):
        return decode_rows([row[:3] for row in rows], where)  # names the damaged key


_position = itemgetter(3)


def metadata_problem(text: Any) -> str | None:
    """Why stored metadata text is not a JSON object of JSON values, or ``None``."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, TypeError, RecursionError) as error:
        return f"stored metadata is unreadable ({error})"
    if not isinstance(value, dict):
        return "stored metadata is not a JSON object"
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def decode_metadata(text: str, where: Callable[[], str]) -> dict[str, Any]:
    """Stored metadata text as a dict.

    Raises:
        IntegrityError: naming ``where()`` when the text is not a JSON object.
    """
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except (ValueError, TypeError, RecursionError):
        pass
    raise IntegrityError(
        f"{where()}: {metadata_problem(text)}; the database is damaged (run verify)"
    )


def is_undecodable(error: BaseException) -> bool:
    """True for SQLite's error on text that is not valid UTF-8 (a corrupted page)."""
    original = error.orig if isinstance(error, exc.DBAPIError) else error
    return _UNDECODABLE in str(original).lower()


@contextmanager
def damage(where: Callable[[], str]) -> Iterator[None]:
    """Turn SQLite's "Could not decode to UTF-8" on a read into an :class:`IntegrityError`."""
    try:
        yield
    except (sqlite3.OperationalError, exc.DBAPIError, DatabaseError) as error:
        if not is_undecodable(error):
            raise
        raise IntegrityError(
            f"{where()}: a stored text is not valid UTF-8; the database is damaged (run verify)"
        ) from None


def _tolerant(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


@contextmanager
def tolerant_text(connection: Connection) -> Iterator[None]:
    """On SQLite, read invalid UTF-8 as lone surrogates (which then fail to encode) for a while."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    previous = raw.text_factory
    raw.text_factory = _tolerant
    try:
        yield
    finally:
        raw.text_factory = previous
