"""History: reading versions back: get, log, load, diff, blame, and "as of a moment".

Reading guide: each function is the body of the
:class:`~msgflux.store.StateStore` method of the same name, run in one read
transaction of ``store.engine``. A reference is resolved by
:mod:`msgflux.store._refs`; what counts as a changed value is
:func:`~msgflux.store.hashing.same_value`; "the latest at a moment" is
:func:`number_at` (a binary search: saves are numbered in time order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, select

from msgflux.nn.modules._state import check_key_set
from msgflux.store import _log, _rows, _spans, _sql
from msgflux.store import schema as t
from msgflux.store._decode import damage, decode_rows, decode_state
from msgflux.store._refs import resolve
from msgflux.store._rows import Backend, name_row, version_label, version_query
from msgflux.store.engine import read_statement, read_transaction
from msgflux.store.errors import InvalidInputError, VersionNotFound
from msgflux.store.hashing import same_value
from msgflux.store.types import BlameLine, StateDiff, Version
from msgflux.store.validation import check_label

__all__: list[str] = []


def aware(moment: Any, option: str) -> datetime:
    """``moment`` in UTC; refuses anything but an aware datetime (InvalidInputError)."""
    if not isinstance(moment, datetime):
        raise InvalidInputError(f"{option} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(
            f"{option}={moment.isoformat()} is a naive datetime: give an aware one, e.g. "
            "datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)"
        )
    return moment.astimezone(UTC)


def check_prefix(prefix: Any) -> None:
    """Refuse a ``prefix`` that is neither None nor a string (InvalidInputError)."""
    if prefix is not None and not isinstance(prefix, str):
        raise InvalidInputError(f"prefix must be a string, not {type(prefix).__name__}")


def check_key(key: Any) -> None:
    """Refuse a ``key`` that is neither None nor a non-empty string (InvalidInputError)."""
    if key is not None and (not isinstance(key, str) or not key):
        raise InvalidInputError(f"key must be a non-empty string, not {key!r}")


def check_limit(limit: Any) -> None:
    """Refuse a ``limit`` that is neither None nor a positive integer (InvalidInputError)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit must be a positive integer, not {limit!r}")


def _under(state: dict[str, Any], prefix: str | None) -> dict[str, Any]:
    return (
        {key: value for key, value in state.items() if key.startswith(prefix)} if prefix else state
    )


# -- one version ---------------------------------------------------------------------------


def get(store: Backend, name: str, ref: Any, at: datetime | None) -> Version:
    """:meth:`StateStore.get` once ``name`` is checked."""

    def work(connection: Connection) -> Version:
        name_id, head = name_row(connection, name)
        wanted = ref if at is None else number_at(connection, name, name_id, head, at)
        return _rows.version(connection, name, resolve(connection, name, name_id, head, wanted))

    with damage(version_label(name, ref)):
        return read_transaction(store.engine, f"reading {name!r}", work)


def load(store: Backend, name: str, ref: Any, prefix: str | None) -> dict[str, Any]:
    """:meth:`StateStore.load` once ``name`` is checked and a route is resolved."""
    number = _rows.plain_number(ref)
    if number is not None and (prefix is None or isinstance(prefix, str)):
        # The common case (a number or "latest"): one indexed query, no Version.
        statement, params = (
            ("content_of_head", (name,))
            if number == 0
            else ("content_of_number", (number, number, number, name))
        )
        where = version_label(name, ref)
        with damage(where):
            rows = read_statement(store.engine, f"loading {name!r}", statement, params)
        if rows:  # nothing: an unknown version (or an empty state), resolved below
            return _under(decode_state(rows, where), prefix)
    return load_version(store, name, ref, prefix)[1]  # references by tag or hash; every error


def load_version(
    store: Backend, name: str, ref: Any, prefix: str | None, at: datetime | None = None
) -> tuple[Version, dict[str, Any]]:
    """The version ``ref`` (or the latest at ``at``) names and its state (under ``prefix``)."""
    check_label("name", name)
    check_prefix(prefix)
    with damage(version_label(name, ref)):
        found, state = read_transaction(
            store.engine,
            f"loading {name!r}",
            lambda connection: _load_in(connection, name, ref, at=at),
        )
    return found, _under(state, prefix)


def _load_in(
    connection: Connection, name: str, ref: Any, *, at: datetime | None = None
) -> tuple[Version, dict[str, Any]]:
    """The version ``ref`` (or the latest at ``at``) names and its whole state."""
    name_id, head = name_row(connection, name)
    if at is not None:
        ref = number_at(connection, name, name_id, head, at)
    row = resolve(connection, name, name_id, head, ref)
    return _rows.version(connection, name, row), decode_state(
        _sql.fetch_all(connection, "content", (row.number, row.number, name_id)),
        version_label(name, row.number),
    )


def load_into(
    store: Backend,
    module: Any,
    name: str,
    ref: Any,
    *,
    prefix: str | None,
    strict: bool,
    at: datetime | None,
) -> Version:
    """:meth:`StateStore.load_into`: the strict key check is the core's one rule."""
    found, state = load_version(store, name, ref, prefix, at=at)
    if strict:
        check_key_set(
            f"version {found.number} of {name!r}",
            [key for key in module.state_dict() if key.startswith(prefix or "")],
            state,
        )
    module.load_state_dict(state, strict=False)
    return found


def number_at(connection: Connection, name: str, name_id: int, head: int, at: datetime) -> int:
    """The version of ``name`` that was the latest at ``at`` (see :meth:`StateStore.load`).

    Raises:
        VersionNotFound: no version then, or the one that was the latest was pruned.
    """
    moment = aware(at, "at")

    def created(number: int) -> tuple[int, datetime] | None:
        row = _sql.fetch_one(connection, "version_time", (name_id, number))
        return None if row is None else (int(row[0]), _sql.time_value(row[1]))

    # Binary search over the numbers: saves are appended in time order, so the
    # answer is the last version created at or before `at`.
    low, high, found = 1, head, None
    while low <= high:
        middle = (low + high) // 2
        here = created(middle)
        if here is None or here[0] > high:
            high = middle - 1
        elif here[1] <= moment:
            found, low = here[0], here[0] + 1
        else:
            high = middle - 1
    first = created(1)
    when = moment.isoformat()
    if found is None:
        if first is not None and first[0] > 1:
            raise VersionNotFound(
                f"the version of {name!r} that was the latest at {when} "
                f"was pruned (the oldest kept is {first[0]})"
            )
        raise VersionNotFound(
            f"{name!r} had no versions at {when}"
            + (f" (its first is from {first[1].isoformat()})" if first is not None else "")
        )
    following = created(found + 1)
    if following is not None and following[0] != found + 1:
        raise VersionNotFound(
            f"the version of {name!r} that was the latest at {when} may have been pruned "
            f"(versions {found + 1}..{following[0] - 1} are gone)"
        )
    return found


# -- many versions -------------------------------------------------------------------------


def log(
    store: Backend,
    name: str,
    *,
    key: str | None,
    limit: int | None,
    log_filter: _log.LogFilter | None,
    tagged: list[int | None] | None,
) -> list[Version]:
    """:meth:`StateStore.log` once the filters are parsed (``tagged``: the tag's targets)."""
    if tagged is not None:
        log_filter = replace(
            log_filter or _log.LogFilter(),
            tagged=frozenset(number for number in tagged if number is not None),
        )
    if log_filter is not None:
        return _log.apply(
            log(store, name, key=key, limit=None, log_filter=None, tagged=None), log_filter, limit
        )
    check_label("name", name)
    check_limit(limit)
    check_key(key)

    def work(connection: Connection) -> list[Version]:
        name_id, _head = name_row(connection, name)
        tags = _rows.tags_by_version(connection, name_id)
        if key is None:
            query = version_query(name_id).order_by(t.versions.c.number.desc())
            if limit is not None:
                query = query.limit(limit)
            rows = connection.execute(query).all()
        else:
            numbers = _spans.numbers_changing(connection, name_id, key, limit)
            by_number = {
                row.number: row
                for row in connection.execute(
                    version_query(name_id).where(t.versions.c.number.in_(numbers))
                )
            }
            rows = [by_number[number] for number in numbers]
        return [
            _rows.version(connection, name, row, tags=tuple(tags.get(row.number, ())))
            for row in rows
        ]

    with damage(lambda: f"the log of {name!r}"):
        return read_transaction(store.engine, f"reading the log of {name!r}", work)


def diff(store: Backend, name: str, a: Any, b: Any, *, prefix: str | None) -> StateDiff:
    """:meth:`StateStore.diff`."""

    def side(ref: Any) -> tuple[str, Any]:
        if isinstance(ref, tuple):
            if len(ref) != 2:
                raise InvalidInputError(f"a cross-name reference is (name, version), not {ref!r}")
            return ref
        return name, ref

    new_name, new_ref = side(b if b is not None else a)
    old_side = None if b is None else side(a)
    for label in (new_name, *(old_side[:1] if old_side else ())):
        check_label("name", label)
    check_prefix(prefix)

    def work(connection: Connection) -> tuple[str, str, dict[str, Any], dict[str, Any], str]:
        # Both sides in one read transaction: one snapshot of the store.
        new_version, new_state = _load_in(connection, new_name, new_ref)
        new_label = f"{new_name}@{new_version.number}"
        if old_side is not None:
            old_version, old_state = _load_in(connection, *old_side)
            return (f"{old_side[0]}@{old_version.number}", new_label, old_state, new_state, "")
        if new_version.parent is None:
            return f"{new_name}@empty", new_label, {}, new_state, ""
        # The parent, or its nearest surviving ancestor if it was pruned.
        name_id, _head = name_row(connection, new_name)
        ancestor = connection.execute(
            select(t.versions.c.number)
            .where(t.versions.c.name_id == name_id, t.versions.c.number <= new_version.parent)
            .order_by(t.versions.c.number.desc())
            .limit(1)
        ).scalar()
        note = (
            ""
            if ancestor == new_version.parent
            else (
                f"the parent {new_name}@{new_version.parent} was pruned; "
                + (
                    f"compared with the nearest surviving ancestor {new_name}@{ancestor}"
                    if ancestor is not None
                    else "no earlier version survives, compared with nothing"
                )
            )
        )
        if ancestor is None:
            return f"{new_name}@empty", new_label, {}, new_state, note
        old_state = _load_in(connection, new_name, ancestor)[1]
        return f"{new_name}@{ancestor}", new_label, old_state, new_state, note

    old_label, new_label, old_state, new_state, note = read_transaction(
        store.engine, f"comparing versions of {new_name!r}", work
    )
    return state_diff(
        old_label, new_label, _under(old_state, prefix), _under(new_state, prefix), note
    )


def state_diff(
    old_label: str,
    new_label: str,
    old_state: Mapping[str, Any],
    new_state: Mapping[str, Any],
    note: str = "",
) -> StateDiff:
    """What ``new_state`` added, removed and changed against ``old_state``."""
    return StateDiff(
        old=old_label,
        new=new_label,
        added={key: value for key, value in new_state.items() if key not in old_state},
        removed={key: value for key, value in old_state.items() if key not in new_state},
        changed={
            key: (old_state[key], value)
            for key, value in new_state.items()
            if key in old_state and not same_value(old_state[key], value)
        },
        note=note,
    )


def blame(
    store: Backend, name: str, ref: Any, *, key: str | None, prefix: str | None
) -> list[BlameLine]:
    """:meth:`StateStore.blame`."""
    check_label("name", name)
    check_key(key)
    check_prefix(prefix)
    where = version_label(name, ref)
    number = _rows.plain_number(ref)
    if number is not None:
        # The common case (a number or "latest"): one statement, no transaction.
        statement, params = (
            ("blame_of_head", (name,)) if number == 0 else ("blame_of_number", (number, name))
        )
        with damage(where):
            rows = read_statement(store.engine, f"blaming {name!r}", statement, params)
        if key is not None:
            rows = [row for row in rows if row[0] == key]
        # Nothing: an unknown version, an empty state or key; a NULL version: an
        # origin was pruned. Both resolved below.
        if rows and all(row[3] is not None for row in rows):
            return _blame_lines(rows, prefix, where)

    def work(connection: Connection) -> list[BlameLine]:
        name_id, head = name_row(connection, name)
        number = int(resolve(connection, name, name_id, head, ref).number)
        rows = _sql.fetch_all(connection, "blame", (number, number, number, name_id))
        if key is not None:
            wanted = [row for row in rows if row[0] == key]
            if not wanted:
                keys = [row[0] for row in sorted(rows, key=_BLAME_POSITION)]
                raise InvalidInputError(
                    f"{name}@{number} has no key {key!r}"
                    f"{_rows.did_you_mean(key, keys)}; its keys: "
                    f"{_rows.cut_list(keys)}"
                )
            rows = wanted
        return _blame_lines(rows, prefix, version_label(name, number))

    with damage(where):
        return read_transaction(store.engine, f"blaming {name!r}", work)


_BLAME_POSITION = itemgetter(7)


def _blame_lines(rows: list[Any], prefix: str | None, where: Callable[[], str]) -> list[BlameLine]:
    """Blame rows (key, type, text, version, time, author, message, position), in any
    order, under ``prefix`` as lines in position order."""
    if prefix:
        rows = [row for row in rows if row[0].startswith(prefix)]
    rows.sort(key=_BLAME_POSITION)
    values = decode_rows([row[:3] for row in rows], where)
    times: dict[Any, datetime] = {}  # a version's time is parsed once, not once per key
    lines = []
    for row_key, _kind, _text, since, created, author, message, _position in rows:
        moment = times.get(created)
        if moment is None:
            moment = times[created] = _sql.time_value(created)
        lines.append(BlameLine(row_key, values[row_key], int(since), moment, author, message))
    return lines
