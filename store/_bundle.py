"""Bundles: whole histories as one JSON/TOML document, and fast-forward import.

Format (``format_version`` 1)::

    {"format": "msgflux-store-bundle", "format_version": 1,
     "names": {NAME: {"versions": [{"number", "snapshot", "parent"?, "created_at",
                                    "message", "author"?, "metadata" (JSON text)}],
                      "tags": {TAG: NUMBER},
                      "tag_history": [{"tag", "version"?, "previous_version"?,
                                       "moved_at", "author"?}]}},
     "snapshots": {SNAPSHOT_HASH: [[KEY, VALUE_HASH], ...]},
     "values": {VALUE_HASH: {"type": VALUE_TYPE, "text": STORED_TEXT}}}

Absent optional fields mean ``None`` (TOML has no null). Every hash is
recomputed on import before anything is written. The same plan drives
``StateStore.copy_to`` (push/pull), so a store never trusts another's hashes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select, update

from msgflux.store import schema as t
from msgflux.store.errors import ConflictError, IntegrityError, InvalidInputError
from msgflux.store.hashing import (
    VALUE_TYPES,
    decode_value,
    encode_value,
    snapshot_hash,
    value_hash,
)
from msgflux.store.types import Progress
from msgflux.store.validation import check_key, check_label, check_tag, check_text

if TYPE_CHECKING:
    from msgflux.store.api import StateStore

__all__ = ["FORMAT", "export", "parse", "apply"]

FORMAT = "msgflux-store-bundle"
FORMAT_VERSION = 1


_EVERY = 1000  # items between progress reports


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def export(connection: Connection, wanted: list[str] | None,
           not_found: Callable[[Connection, str], Exception],
           progress: Progress) -> dict[str, Any]:
    """Read the histories of ``wanted`` names (all if ``None``) into a bundle dict."""
    name_rows = connection.execute(select(t.names.c.id, t.names.c.name).order_by(t.names.c.name))
    ids = {row.name: row.id for row in name_rows}
    if wanted is not None:
        for name in wanted:
            if name not in ids:
                raise not_found(connection, name)
        ids = {name: ids[name] for name in dict.fromkeys(wanted)}
    names: dict[str, Any] = {}
    snapshot_ids: dict[int, str] = {}
    for name, name_id in ids.items():
        versions = []
        for row in connection.execute(
                select(t.versions, t.snapshots.c.hash.label("snapshot"))
                .join(t.snapshots, t.snapshots.c.id == t.versions.c.snapshot_id)
                .where(t.versions.c.name_id == name_id).order_by(t.versions.c.number)):
            snapshot_ids[row.snapshot_id] = row.snapshot
            version = {"number": row.number, "snapshot": row.snapshot,
                       "created_at": _iso(row.created_at), "message": row.message,
                       "metadata": row.metadata}
            if row.parent is not None:
                version["parent"] = row.parent
            if row.author is not None:
                version["author"] = row.author
            versions.append(version)
        tags = dict(connection.execute(select(t.tags.c.tag, t.tags.c.version).where(
            t.tags.c.name_id == name_id).order_by(t.tags.c.tag)).tuples().all())
        history = []
        for row in connection.execute(select(t.tag_events).where(
                t.tag_events.c.name_id == name_id).order_by(t.tag_events.c.id)):
            event = {"tag": row.tag, "moved_at": _iso(row.moved_at)}
            for field in ("version", "previous_version", "author"):
                if getattr(row, field) is not None:
                    event[field] = getattr(row, field)
            history.append(event)
        names[name] = {"versions": versions, "tags": tags, "tag_history": history}
    snapshots: dict[str, list[list[str]]] = {}
    values: dict[str, dict[str, str]] = {}
    for done, (snapshot_id, snapshot) in enumerate(snapshot_ids.items()):
        if done % _EVERY == 0:
            progress("snapshots", done, len(snapshot_ids))
        rows = connection.execute(
            select(t.entries.c.key, t.blobs.c.hash, t.blobs.c.value_type, t.blobs.c.text)
            .join(t.blobs, t.blobs.c.id == t.entries.c.blob_id)
            .where(t.entries.c.snapshot_id == snapshot_id).order_by(t.entries.c.position))
        entries = []
        for key, digest, kind, text in rows:
            entries.append([key, digest])
            values.setdefault(digest, {"type": kind, "text": text})
        snapshots[snapshot] = entries
    progress("snapshots", len(snapshot_ids), len(snapshot_ids))
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "names": names,
            "snapshots": snapshots, "values": values}


@dataclass
class _Plan:
    names: dict[str, dict[str, Any]]
    snapshots: dict[str, list[tuple[str, str]]]
    values: dict[str, tuple[str, str]]


def _field(record: Any, field: str, kinds: type | tuple[type, ...], where: str,
           optional: bool = False) -> Any:
    if not isinstance(record, dict):
        raise InvalidInputError(f"bundle {where} must be an object")
    if field not in record:
        if optional:
            return None
        raise InvalidInputError(f"bundle {where} lacks {field!r}")
    value = record[field]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in (
            kinds if isinstance(kinds, tuple) else (kinds,))):
        raise InvalidInputError(f"bundle {where}.{field} has the wrong type "
                                f"({type(value).__name__})")
    return value


def parse(data: Any, progress: Progress) -> _Plan:
    """Check a bundle's structure and every hash; raise before anything is written.

    Raises:
        InvalidInputError: malformed structure. IntegrityError: a hash does not match.
    """

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInputError(f"not a msgflux-store bundle (expected format {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidInputError(f"bundle format_version {data.get('format_version')!r} is not "
                                f"supported (this release reads {FORMAT_VERSION})")
    values: dict[str, tuple[str, str]] = {}
    records = _field(data, "values", dict, "")
    for done, (digest, record) in enumerate(records.items()):
        if done % _EVERY == 0:
            progress("values", done, len(records))
        kind = _field(record, "type", str, f"values[{digest[:12]}]")
        text = _field(record, "text", str, f"values[{digest[:12]}]")
        if kind not in VALUE_TYPES:
            raise InvalidInputError(f"bundle value {digest[:12]} has unknown type {kind!r}")
        try:
            value = decode_value(kind, text)
            actual = value_hash(value)
        except (ValueError, UnicodeEncodeError, RecursionError) as error:
            raise IntegrityError(f"bundle value {digest[:12]} is unreadable: {error}") from None
        if actual != digest:
            raise IntegrityError(f"bundle value {digest[:12]} does not match its hash "
                                 f"(content hashes to {actual[:12]})")
        # Store exactly what a save would: the raw string or the canonical JSON.
        values[digest] = encode_value(value)
    snapshots: dict[str, list[tuple[str, str]]] = {}
    for digest, entries in _field(data, "snapshots", dict, "").items():
        if not isinstance(entries, list) or not all(
                isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str)
                                                                   for part in entry)
                for entry in entries):
            raise InvalidInputError(f"bundle snapshot {digest[:12]} must be a list of [key, hash]")
        pairs = [(key, value) for key, value in entries]
        for key, value in pairs:
            if not key:
                raise InvalidInputError(f"bundle snapshot {digest[:12]} has an empty key")
            check_key(key)
            if value not in values:
                raise IntegrityError(f"bundle snapshot {digest[:12]} key {key!r} refers to a "
                                     f"value {value[:12]} the bundle lacks")
        if len(dict(pairs)) != len(pairs):
            raise InvalidInputError(f"bundle snapshot {digest[:12]} repeats a key")
        actual = snapshot_hash(dict(pairs))
        if actual != digest:
            raise IntegrityError(f"bundle snapshot {digest[:12]} does not match its hash "
                                 f"(content hashes to {actual[:12]})")
        snapshots[digest] = pairs
    names: dict[str, dict[str, Any]] = {}
    for name, history in _field(data, "names", dict, "").items():
        check_label("name", name)
        where = f"names[{name!r}]"
        versions: list[dict[str, Any]] = []
        for index, record in enumerate(_field(history, "versions", list, where)):
            at = f"{where}.versions[{index}]"
            version = {
                "number": _field(record, "number", int, at),
                "snapshot": _field(record, "snapshot", str, at),
                "parent": _field(record, "parent", int, at, optional=True),
                "created_at": _parse_time(_field(record, "created_at", str, at), at),
                "message": _field(record, "message", str, at),
                "author": _field(record, "author", str, at, optional=True),
                "metadata": _field(record, "metadata", str, at),
            }
            check_text(f"{at}.message", version["message"], optional=False)
            check_text(f"{at}.author", version["author"], optional=True)
            if version["snapshot"] not in snapshots:
                raise IntegrityError(f"bundle {at} refers to a snapshot the bundle lacks")
            try:
                meta = json.loads(version["metadata"])
            except ValueError:
                meta = None
            if not isinstance(meta, dict):
                raise InvalidInputError(f"bundle {at}.metadata is not a JSON object")
            if not 1 <= version["number"] <= 2**31 - 1 or (
                    versions and version["number"] <= versions[-1]["number"]):
                raise InvalidInputError(f"bundle {at}.number must increase from 1")
            versions.append(version)
        tags = _field(history, "tags", dict, where)
        for tag in tags:
            check_tag(tag)
        numbers = {version["number"] for version in versions}
        for tag, number in tags.items():
            if not isinstance(number, int) or number not in numbers:
                raise InvalidInputError(f"bundle {where} tag {tag!r} points at a missing version")
        events = []
        for index, record in enumerate(_field(history, "tag_history", list, where)):
            at = f"{where}.tag_history[{index}]"
            events.append({
                "tag": _field(record, "tag", str, at),
                "version": _field(record, "version", int, at, optional=True),
                "previous_version": _field(record, "previous_version", int, at, optional=True),
                "moved_at": _parse_time(_field(record, "moved_at", str, at), at),
                "author": _field(record, "author", str, at, optional=True),
            })
            check_label("tag", events[-1]["tag"])
            check_text(f"{at}.author", events[-1]["author"], optional=True)
        names[name] = {"versions": versions, "tags": tags, "tag_history": events}
    return _Plan(names, snapshots, values)


def _parse_time(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
        # Stored in UTC: a time valid in its own offset but past year 9999 in
        # UTC could be written and then never read back.
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(
            UTC)
    except (ValueError, OverflowError):
        raise InvalidInputError(f"bundle {where} has a malformed time {text!r}") from None


def apply(connection: Connection, plan: _Plan, store: StateStore,
          progress: Progress) -> dict[str, list[int]]:
    """Fast-forward each name of ``plan`` into the store on ``connection``.

    Raises :class:`ConflictError` (the whole transaction rolls back) when a
    name's history here and in the plan disagree on a shared version number.
    """
    from msgflux.store.api import _Prepared

    copied: dict[str, list[int]] = {}
    for name, history in plan.names.items():
        incoming = history["versions"]
        if not incoming:
            copied[name] = []
            continue
        name_id, head = store._lock_name(connection, name, create=True)
        is_new = head == 0
        here = dict(connection.execute(
            select(t.versions.c.number, t.snapshots.c.hash)
            .join(t.snapshots, t.snapshots.c.id == t.versions.c.snapshot_id)
            .where(t.versions.c.name_id == name_id)).tuples().all())
        theirs = {version["number"]: version["snapshot"] for version in incoming}
        for number in here.keys() & theirs.keys():
            if here[number] != theirs[number]:
                raise ConflictError(
                    f"{name!r} diverged: version {number} is {here[number][:12]} here and "
                    f"{theirs[number][:12]} in the source; nothing was copied")
        their_head = max(theirs, default=0)
        if here and head not in theirs and head < their_head:
            raise ConflictError(f"{name!r} diverged: version {head} here is unknown to the "
                                "source; nothing was copied")
        if head > their_head:
            if their_head and their_head not in here:
                raise ConflictError(f"{name!r} diverged: the source's head {their_head} is "
                                    "not in this history; nothing was copied")
            copied[name] = []
            continue  # this history is ahead: nothing to fast-forward, tags left alone
        new = [version for version in incoming if version["number"] > head]
        for done, version in enumerate(new):
            if done % 100 == 0:
                progress(f"versions of {name}", done, len(new))
            pairs = plan.snapshots[version["snapshot"]]
            prepared = _Prepared([key for key, _ in pairs], [digest for _, digest in pairs],
                                 {digest: plan.values[digest] for _, digest in pairs},
                                 version["snapshot"])
            snapshot_id, _ids = store._store_snapshot(connection, prepared)
            connection.execute(insert(t.versions).values(
                name_id=name_id, number=version["number"], snapshot_id=snapshot_id,
                parent=version["parent"], created_at=version["created_at"],
                message=version["message"], author=version["author"],
                metadata=version["metadata"]))
        if new:
            connection.execute(update(t.names).where(t.names.c.id == name_id)
                               .values(head=max(head, their_head)))
        if is_new:
            for event in history["tag_history"]:
                connection.execute(insert(t.tag_events).values(name_id=name_id, **event))
            for tag, number in history["tags"].items():
                connection.execute(insert(t.tags).values(name_id=name_id, tag=tag,
                                                         version=number))
        else:
            _sync_tags(connection, name_id, history["tags"])
        copied[name] = [version["number"] for version in new]
    return copied


def _sync_tags(connection: Connection, name_id: int, wanted: dict[str, int]) -> None:
    """Make this name's tags match ``wanted``, recording every move and removal.

    A tag pointing at a version pruned here is left where it is (there is
    nothing to point it at).
    """
    from msgflux.store.api import _now

    current = dict(connection.execute(select(t.tags.c.tag, t.tags.c.version).where(
        t.tags.c.name_id == name_id)).tuples().all())
    present = set(connection.execute(select(t.versions.c.number).where(
        t.versions.c.name_id == name_id, t.versions.c.number.in_(set(wanted.values())))
    ).scalars())
    for tag in current.keys() - wanted.keys():
        connection.execute(delete(t.tags).where(t.tags.c.name_id == name_id,
                                                t.tags.c.tag == tag))
        connection.execute(insert(t.tag_events).values(
            name_id=name_id, tag=tag, version=None, previous_version=current[tag],
            moved_at=_now(), author="import"))
    for tag, number in wanted.items():
        if current.get(tag) == number or number not in present:
            continue
        if tag in current:
            connection.execute(update(t.tags).where(t.tags.c.name_id == name_id,
                                                    t.tags.c.tag == tag).values(version=number))
        else:
            connection.execute(insert(t.tags).values(name_id=name_id, tag=tag, version=number))
        connection.execute(insert(t.tag_events).values(
            name_id=name_id, tag=tag, version=number, previous_version=current.get(tag),
            moved_at=_now(), author="import"))
