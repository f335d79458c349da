"""Filters of :meth:`StateStore.log`: author, time range, message text, tag, metadata condition.

The filters run over the versions the log already reads (newest first), so
``limit`` counts the versions that pass. ``where`` uses the one condition
parser of the store (:mod:`msgflux.store._where`), shared with guarded tags.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from msgflux.store._time import utc
from msgflux.store._where import Condition, parse_condition
from msgflux.store.errors import InvalidInputError
from msgflux.store.types import Version

__all__: list[str] = []


def moment(value: Any, option: str, *, end: bool = False) -> datetime:
    """``value`` (a datetime, a date, or ISO text: ``2026-11-27`` or ``2026-11-27T13:00``)
    as an aware UTC datetime; a bare date means its start (or, with ``end``, its end)."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime.combine(value, time())
        if end:
            result += timedelta(days=1)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                result = datetime.combine(date.fromisoformat(text), time())
                if end:
                    result += timedelta(days=1)
            else:
                result = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            raise InvalidInputError(
                f"{option} must be a date or an ISO time such as 2026-11-27 "
                f"or 2026-11-27T13:00, not {value!r}"
            ) from None
    else:
        raise InvalidInputError(
            f"{option} must be a date, a datetime or ISO text, not {type(value).__name__}"
        )
    return utc(result)


@dataclass(frozen=True)
class LogFilter:
    """The filters of one ``log`` call, checked once."""

    author: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    grep: str | None = None
    tagged: frozenset[int] | None = None  # versions the tag ever pointed at
    where: Condition | None = None

    def passes(self, version: Version) -> bool:
        if self.author is not None and version.author != self.author:
            return False
        if self.since is not None and version.created_at < self.since:
            return False
        if self.until is not None and version.created_at >= self.until:
            return False
        if self.grep is not None and self.grep not in version.message.casefold():
            return False
        if self.tagged is not None and version.number not in self.tagged:
            return False
        return self.where is None or self.where.matches(version.metadata)


def make_filter(*, author: Any, since: Any, until: Any, grep: Any, where: Any) -> LogFilter | None:
    """Check the options; ``None`` when no filter is given. ``--until`` with a bare date
    includes that whole day."""
    if author is None and since is None and until is None and grep is None and where is None:
        return None
    for option, text in (("author", author), ("grep", grep)):
        if text is not None and (not isinstance(text, str) or not text):
            raise InvalidInputError(f"{option} must be a non-empty string, not {text!r}")
    return LogFilter(
        author=author,
        since=None if since is None else moment(since, "since"),
        until=None if until is None else moment(until, "until", end=True),
        grep=None if grep is None else grep.casefold(),
        where=None if where is None else parse_condition(where),
    )


def apply(versions: Iterable[Version], log_filter: LogFilter, limit: int | None) -> list[Version]:
    result = []
    for version in versions:
        if log_filter.passes(version):
            result.append(version)
            if limit is not None and len(result) >= limit:
                break
    return result
