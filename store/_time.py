"""Time in the store: every moment is an aware UTC ``datetime``, written as ISO 8601.

One place for the rules: a naive ``datetime`` (SQLite hands them back) was
written in UTC; an aware one (PostgreSQL hands back the session's time zone)
is converted to UTC; text is ISO 8601 with ``+00:00``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "now", "parse_iso", "short", "utc"]


def now() -> datetime:
    """The current moment, aware, in UTC."""
    return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC: a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC, e.g. ``2026-11-28T08:37:00.123456+00:00``."""
    return utc(moment).isoformat()


def short(moment: datetime, *, seconds: bool = True) -> str:
    """``moment`` in UTC for a table: ``2026-11-28 08:37:00`` (or without seconds)."""
    return utc(moment).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def parse_iso(text: str) -> datetime:
    """ISO 8601 text as an aware UTC datetime (no offset: UTC).

    Raises:
        ValueError: ``text`` is not an ISO time, or is out of range once in UTC.
    """
    try:
        return utc(datetime.fromisoformat(text))
    except OverflowError:  # valid in its own offset, past year 9999 in UTC
        raise ValueError(f"{text!r} is out of range in UTC") from None
