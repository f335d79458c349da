"""Metadata after the fact and whole-history operations: annotate, save summaries,
``same_keys``, delete and rename.

Reading guide: each function runs inside a write transaction the caller
(:class:`~msgflux.store.StateStore`) opened, with the name's row locked.

* An annotation merges keys into ``versions.metadata`` (what ``state_history``
  shows) and appends one row per key whose value changed to ``annotations``
  (the ``state_annotations`` view): who, when, which key, which value.
* A save whose content equals the head writes no version; metadata given with
  it becomes an annotation of the head, with the save's author and time.
* Deleting or renaming a name appends a row to ``name_events``
  (``state_name_events``).
"""

from __future__ import annotations

import json
from collections.abc import KeysView, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, insert, select, update

from msgflux.store import schema as t
from msgflux.store._refs import resolve
from msgflux.store._rows import Head, cut_list, lock_name, version, version_rows
from msgflux.store._time import now as _now
from msgflux.store.errors import ConflictError, InvalidInputError
from msgflux.store.hashing import canonical_json, same_value
from msgflux.store.types import Version
from msgflux.store.validation import metadata_text

if TYPE_CHECKING:
    from msgflux.store._prepare import Prepared

__all__: list[str] = []

# -- what a save changes ------------------------------------------------------------------


def check_same_keys(name: str, head: Head, previous: KeysView[str], prepared: Prepared) -> None:
    """Refuse (``InvalidInputError``) a save whose key set differs from the head's keys."""
    keys = set(prepared.keys)
    added = sorted(keys - previous)
    removed = sorted(previous - keys)
    if added or removed:
        parts = []
        if added:
            parts.append(f"added {cut_list(added)}")
        if removed:
            parts.append(f"removed {cut_list(removed)}")
        raise InvalidInputError(
            f"same_keys: the keys differ from {name}@{head.number}: {'; '.join(parts)}; "
            "nothing was written"
        )


# -- annotations --------------------------------------------------------------------------


def annotate(
    connection: Connection, name: str, ref: Any, metadata: Mapping[str, Any], author: str | None
) -> Version:
    """Lock ``name`` and merge ``metadata`` into version ``ref`` (:meth:`StateStore.annotate`)."""
    name_id, head = lock_name(connection, name, create=False)
    return annotate_row(
        connection, name, resolve(connection, name, name_id, head, ref), metadata, author
    )


def annotate_row(
    connection: Connection,
    name: str,
    row: Any,
    metadata: Mapping[str, Any],
    author: str | None,
    moment: datetime | None = None,
) -> Version:
    """Merge ``metadata`` into the version ``row`` and record every key whose value changed."""
    current = json.loads(row.metadata)
    changed = {
        key: value
        for key, value in metadata.items()
        if key not in current or not same_value(current[key], value)
    }
    if changed:
        merged = metadata_text({**current, **metadata})
        when = moment or _now()
        connection.execute(
            update(t.versions)
            .where(t.versions.c.name_id == row.name_id, t.versions.c.number == row.number)
            .values(metadata=merged)
        )
        connection.execute(
            insert(t.version_annotations),
            [
                {
                    "name_id": row.name_id,
                    "version": row.number,
                    "key": key,
                    "value": canonical_json(value),
                    "annotated_at": when,
                    "author": author,
                }
                for key, value in changed.items()
            ],
        )
        row = version_rows(connection, row.name_id, number=row.number).one()
    return version(connection, name, row)


def check_annotation(metadata: Any) -> dict[str, Any]:
    """The metadata to merge, validated; at least one key."""
    metadata_text(metadata)  # the save rules: a dict of JSON values with str keys
    if not metadata:
        raise InvalidInputError("annotate needs at least one metadata key, e.g. {'score': 0.9}")
    return dict(metadata)


# -- whole histories ----------------------------------------------------------------------


def _tables_of_a_name() -> list[Any]:
    """Every table with rows that belong to one name (a ``name_id`` column), children first."""
    return [
        table
        for table in reversed(t.metadata.sorted_tables)
        if "name_id" in table.c and table is not t.names
    ]


def delete_name(connection: Connection, name: str, *, force: bool, author: str | None) -> int:
    """Delete every row of ``name`` (content is left for ``gc``); return its version count."""
    name_id, _head = lock_name(connection, name, create=False)
    tags = sorted(
        connection.execute(select(t.tags.c.tag).where(t.tags.c.name_id == name_id)).scalars()
    )
    if tags and not force:
        raise ConflictError(
            f"{name!r} has tags {cut_list(tags)}: untag them first or delete with force=True "
            "(--force); nothing was deleted"
        )
    count = _version_count(connection, name_id)
    for table in _tables_of_a_name():
        connection.execute(delete(table).where(table.c.name_id == name_id))
    connection.execute(delete(t.names).where(t.names.c.id == name_id))
    connection.execute(
        insert(t.name_events).values(
            name=name,
            action="deleted",
            new_name=None,
            versions=count,
            happened_at=_now(),
            author=author,
        )
    )
    return count


def rename(connection: Connection, name: str, new: str, *, author: str | None) -> int:
    """Rename ``name`` to ``new`` (every version, tag and record follows); return the count."""
    name_id, _head = lock_name(connection, name, create=False)
    if connection.execute(select(t.names.c.id).where(t.names.c.name == new)).first():
        raise ConflictError(
            f"cannot rename {name!r} to {new!r}: {new!r} already exists; nothing was changed"
        )
    count = _version_count(connection, name_id)
    connection.execute(update(t.names).where(t.names.c.id == name_id).values(name=new))
    connection.execute(
        insert(t.name_events).values(
            name=name,
            action="renamed",
            new_name=new,
            versions=count,
            happened_at=_now(),
            author=author,
        )
    )
    return count


def _version_count(connection: Connection, name_id: int) -> int:
    return int(
        connection.execute(
            select(func.count()).select_from(t.versions).where(t.versions.c.name_id == name_id)
        ).scalar()
        or 0
    )
