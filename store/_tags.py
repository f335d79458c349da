"""Tag rows: pointing a tag, its split, and the append-only record of every move.

Reading guide: the reads (:func:`tags`, :func:`history`, :func:`tag_at`,
:func:`weights`) are the bodies of the :class:`~msgflux.store.StateStore`
methods of those names. For writes, :func:`point` is the one place a ``tags`` row is written or
deleted, :func:`record` the one place a ``tag_events`` row is appended, and
:func:`move` both, with the split rows (``tag_splits``). The policy checks
around a move live in :mod:`msgflux.store._guard`, the split rules in
:mod:`msgflux.store._split`; a bundle replays recorded events with their
original times (:mod:`msgflux.store._bundle`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from msgflux.store import _split
from msgflux.store import schema as t
from msgflux.store._rows import Backend, describe, name_row, tag_not_found
from msgflux.store._time import now, utc
from msgflux.store.engine import read_transaction
from msgflux.store.errors import VersionNotFound
from msgflux.store.types import TagEvent

__all__: list[str] = []


def point(connection: Connection, name_id: int, tag: str, number: int | None) -> None:
    """Point ``tag`` at ``number`` (creating its row), or delete it for ``None``; no record."""
    if number is None:
        connection.execute(delete(t.tags).where(t.tags.c.name_id == name_id, t.tags.c.tag == tag))
        return
    current = connection.execute(
        select(t.tags.c.version).where(t.tags.c.name_id == name_id, t.tags.c.tag == tag)
    ).scalar()
    if current is None:
        connection.execute(insert(t.tags).values(name_id=name_id, tag=tag, version=number))
    elif current != number:
        connection.execute(
            update(t.tags)
            .where(t.tags.c.name_id == name_id, t.tags.c.tag == tag)
            .values(version=number)
        )


def record(
    connection: Connection,
    name_id: int,
    tag: str,
    version: int | None,
    previous: int | None,
    *,
    author: str | None,
    moved_at: datetime | None = None,
    weights: str | None = None,
) -> None:
    """Append one move (``version``; ``None`` for a removal) of ``tag`` to ``tag_events``."""
    connection.execute(
        insert(t.tag_events).values(
            name_id=name_id,
            tag=tag,
            version=version,
            previous_version=previous,
            moved_at=moved_at or now(),
            author=author,
            weights=weights,
        )
    )


def move(
    connection: Connection,
    name_id: int,
    tag: str,
    weights: Mapping[int, float] | None,
    previous: Mapping[int, float] | None,
    *,
    author: str | None,
) -> None:
    """Point ``tag`` at ``weights`` (one version, a split, or ``None``: remove it) and
    record the move against ``previous`` (what it pointed at)."""
    connection.execute(
        delete(t.tag_splits).where(t.tag_splits.c.name_id == name_id, t.tag_splits.c.tag == tag)
    )
    top = _split.primary(weights) if weights else None
    point(connection, name_id, tag, top)
    split = weights is not None and len(weights) > 1
    if split and weights is not None:
        connection.execute(
            insert(t.tag_splits),
            [
                {"name_id": name_id, "tag": tag, "version": number, "weight": weight}
                for number, weight in weights.items()
            ],
        )
    record(
        connection,
        name_id,
        tag,
        top,
        None if previous is None else _split.primary(previous),
        author=author,
        weights=_split.weights_text(weights) if split and weights is not None else None,
    )


# -- reads ---------------------------------------------------------------------------------


def tags(store: Backend, name: str) -> dict[str, int]:
    """:meth:`StateStore.tags`."""

    def work(connection: Connection) -> dict[str, int]:
        name_id, _head = name_row(connection, name)
        return dict(
            connection.execute(
                select(t.tags.c.tag, t.tags.c.version)
                .where(t.tags.c.name_id == name_id)
                .order_by(t.tags.c.tag)
            )
            .tuples()
            .all()
        )

    return read_transaction(store.engine, f"reading the tags of {name!r}", work)


def history(store: Backend, name: str, tag: str | None) -> list[TagEvent]:
    """:meth:`StateStore.tag_history`."""

    def work(connection: Connection) -> list[TagEvent]:
        name_id, _head = name_row(connection, name)
        query = select(t.tag_events).where(t.tag_events.c.name_id == name_id)
        if tag is not None:
            query = query.where(t.tag_events.c.tag == tag)
        return [
            TagEvent(
                name,
                row.tag,
                row.version,
                row.previous_version,
                utc(row.moved_at),
                row.author,
                _split.parse_weights_text(row.weights),
            )
            for row in connection.execute(query.order_by(t.tag_events.c.id))
        ]

    return read_transaction(store.engine, f"reading the tag history of {name!r}", work)


def tag_at(store: Backend, name: str, tag: str, moment: datetime) -> int | None:
    """:meth:`StateStore.tag_at` (``moment`` aware, in UTC)."""

    def work(connection: Connection) -> tuple[bool, int | None]:
        name_id, _head = name_row(connection, name)
        rows = connection.execute(
            select(t.tag_events.c.version, t.tag_events.c.moved_at)
            .where(t.tag_events.c.name_id == name_id, t.tag_events.c.tag == tag)
            .order_by(t.tag_events.c.moved_at.desc(), t.tag_events.c.id.desc())
        ).all()
        ever = bool(rows)
        for version, moved_at in rows:
            if utc(moved_at) <= moment:
                return ever, version
        return ever, None

    ever, version = read_transaction(store.engine, f"reading tag {tag!r} of {name!r}", work)
    if not ever:
        raise_missing(store, name, tag)
    return version


def raise_missing(store: Backend, name: str, tag: str) -> None:
    """Raise VersionNotFound for a tag ``name`` never had (NameNotFound for no ``name``)."""

    def work(connection: Connection) -> None:
        raise tag_not_found(connection, name, tag)

    read_transaction(store.engine, f"reading the tags of {name!r}", work)


def weights(connection: Connection, name: str, tag: str) -> dict[int, float]:
    """What ``tag`` points at, as ``{version: weight}`` (see :meth:`StateStore.tag_weights`).

    Raises:
        NameNotFound; VersionNotFound: the tag does not exist (with what does).
    """
    name_id, _head = name_row(connection, name)
    found = _split.current_target(connection, name_id, tag)
    if found is None:
        raise VersionNotFound(
            f"tag {tag!r} of {name!r} not found: {describe(connection, name, name_id)}"
        )
    return found
