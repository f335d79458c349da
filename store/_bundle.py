"""Bundles: whole histories as a stream of records, and fast-forward import.

Format (``format_version`` 2): JSON Lines, UTF-8, one JSON object per line::

    {"format": "msgflux-store-bundle", "format_version": 2, "names": {NAME: VERSION_COUNT}}
    {"kind": "value", "hash": VALUE_HASH, "type": VALUE_TYPE, "text": STORED_TEXT}
    {"kind": "snapshot", "hash": SNAPSHOT_HASH, "entries": [[KEY, VALUE_HASH], ...]}
    {"kind": "version", "name": NAME, "number": N, "snapshot": SNAPSHOT_HASH, "parent"?: N,
     "created_at": ISO_TIME, "message": TEXT, "author"?: TEXT, "metadata": JSON_TEXT,
     "restart"?: [KEY, ...]}
    {"kind": "tag_event", "name": NAME, "tag": TAG, "version"?: N, "previous_version"?: N,
     "moved_at": ISO_TIME, "author"?: TEXT}
    {"kind": "tags", "name": NAME, "tags": {TAG: N}}
    {"kind": "end", "records": COUNT}

Each name is one block: its versions in increasing number, then its tag
events, then one ``tags`` record. A ``version`` names the snapshot of the
``snapshot`` record just before it (a version with the same content as the
previous one has no new ``snapshot`` record); a ``snapshot`` record's values
are in the ``value`` records since the previous snapshot or in that previous
snapshot. So both sides hold at most two versions' content at a time: memory
is bounded by the largest version, not by the history. The ``end`` record
counts the records between header and end, so a truncated file is refused.

``restart`` (optional; importers that do not know it ignore it) lists the keys
of a version that follows pruned versions whose value is the one of the
version exported before it, but which changed or were removed in between:
blame starts them here, as it does in the source. Without it, a key that was
removed in a pruned version and came back with its old value would be blamed
on the older version after an import (found by the store's state machine).

Import runs in one write transaction: every record is checked by the same
rules as a save (:mod:`msgflux.store.validation`) and every hash recomputed
as the stream is read; the first problem raises and rolls back everything.
Bundles of ``format_version`` 1 (one JSON or TOML document: ``names``,
``snapshots``, ``values``) still import, through the same checks; ``.toml``
export still writes version 1, as TOML cannot be streamed.

Tags only move forward in time: a tag here is changed by an import only if
the bundle records a move (or removal) of it later than the last one here,
and those moves are copied with their original times.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, func, select, update

from msgflux.store import _sql, _tags
from msgflux.store import schema as t
from msgflux.store._content import write_content
from msgflux.store._guard import notify_change
from msgflux.store._prepare import stored as stored_content
from msgflux.store._rows import lock_name, name_not_found
from msgflux.store._spans import Head, read_cells
from msgflux.store._time import parse_iso
from msgflux.store._time import utc as _utc
from msgflux.store.errors import ConflictError, IntegrityError, InvalidInputError, NameNotFound
from msgflux.store.hashing import encode_value, snapshot_hash, value_hash
from msgflux.store.types import Progress
from msgflux.store.validation import (
    check_key,
    check_label,
    check_metadata_text,
    check_parent,
    check_stored_value,
    check_tag,
    check_text,
    check_version_number,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "export", "write", "read", "apply", "document"]

FORMAT = "msgflux-store-bundle"
FORMAT_VERSION = 2

Record = dict[str, Any]
Records = Callable[[], Iterator[Record]]

_EVERY = 100  # versions between progress reports


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


# -- export ------------------------------------------------------------------------------


def export(
    connection: Connection, wanted: list[str] | None, progress: Progress
) -> Iterator[Record]:
    """Yield the records of the histories of ``wanted`` names (all if ``None``), header to end."""
    ids = dict(
        connection.execute(select(t.names.c.name, t.names.c.id).order_by(t.names.c.name))
        .tuples()
        .all()
    )
    if wanted is not None:
        for name in wanted:
            if name not in ids:
                raise name_not_found(connection, name)
        ids = {name: ids[name] for name in dict.fromkeys(wanted)}
    counts = dict(
        connection.execute(
            select(t.versions.c.name_id, func.count()).group_by(t.versions.c.name_id)
        )
        .tuples()
        .all()
    )
    totals = {name: int(counts.get(name_id, 0)) for name, name_id in ids.items()}
    yield {"format": FORMAT, "format_version": FORMAT_VERSION, "names": totals}
    records = 0
    previous_id: int | None = None
    previous: dict[str, tuple[str, str]] = {}  # value hash -> (type, text) of that snapshot
    content: list[tuple[str, str, str, str]] = []  # of the last version exported
    for name, name_id in ids.items():
        exported: int | None = None  # the number of the last version of this name
        rows = connection.execution_options(stream_results=True, yield_per=500).execute(
            select(t.versions, t.snapshots.c.hash.label("snapshot"))
            .join(t.snapshots, t.snapshots.c.id == t.versions.c.snapshot_id)
            .where(t.versions.c.name_id == name_id)
            .order_by(t.versions.c.number)
        )
        for done, row in enumerate(rows):
            if done % _EVERY == 0:
                progress(f"versions of {name}", done, totals[name])
            last_content = content
            if row.snapshot_id != previous_id:
                content = _content(connection, name_id, row.number)
                for _key, digest, kind, text in content:
                    if digest not in previous:
                        previous[digest] = (kind, text)  # also dedups within the snapshot
                        records += 1
                        yield {"kind": "value", "hash": digest, "type": kind, "text": text}
                previous = {digest: (kind, text) for _key, digest, kind, text in content}
                previous_id = row.snapshot_id
                records += 1
                yield {
                    "kind": "snapshot",
                    "hash": row.snapshot,
                    "entries": [[key, digest] for key, digest, _kind, _text in content],
                }
            version: Record = {
                "kind": "version",
                "name": name,
                "number": row.number,
                "snapshot": row.snapshot,
                "created_at": _iso(row.created_at),
                "message": row.message,
                "metadata": row.metadata,
            }
            if row.parent is not None:
                version["parent"] = row.parent
            if row.author is not None:
                version["author"] = row.author
            if exported is not None and row.parent is not None and row.parent != exported:
                restart = _restarted(connection, name_id, row.number, exported, last_content)
                if restart:
                    version["restart"] = restart
            exported = row.number
            records += 1
            yield version
        progress(f"versions of {name}", totals[name], totals[name])
        for row in connection.execute(
            select(t.tag_events)
            .where(t.tag_events.c.name_id == name_id)
            .order_by(t.tag_events.c.id)
        ):
            event: Record = {
                "kind": "tag_event",
                "name": name,
                "tag": row.tag,
                "moved_at": _iso(row.moved_at),
            }
            for column in ("version", "previous_version", "author"):
                if getattr(row, column) is not None:
                    event[column] = getattr(row, column)
            records += 1
            yield event
        tags = dict(
            connection.execute(
                select(t.tags.c.tag, t.tags.c.version)
                .where(t.tags.c.name_id == name_id)
                .order_by(t.tags.c.tag)
            )
            .tuples()
            .all()
        )
        records += 1
        yield {"kind": "tags", "name": name, "tags": tags}
    yield {"kind": "end", "records": records}


def _restarted(
    connection: Connection,
    name_id: int,
    number: int,
    exported: int,
    content: list[tuple[str, str, str, str]],
) -> list[str]:
    """Keys of version ``number`` that hold their value in version ``exported`` (whose
    ``content`` this is) too, but were given it again after it (in versions pruned
    since): an import must restart them."""
    hashes = {key: digest for key, digest, _, _ in content}
    return sorted(
        key
        for key, cell in read_cells(connection, name_id, number).items()
        if cell.origin > exported and hashes.get(key) == cell.hash
    )


def _content(connection: Connection, name_id: int, number: int) -> list[tuple[str, str, str, str]]:
    """``(key, value hash, value type, stored text)`` of one version, in saved key order."""
    return [
        (row[0], row[1], row[2], row[3])
        for row in _sql.fetch_all(connection, "hashed_content", (number, number, name_id))
    ]


def write(path: str | os.PathLike[str], records: Iterable[Record]) -> dict[str, int]:
    """Write ``records`` to ``path`` atomically; return ``{name: versions}`` from the header.

    ``.toml`` gets a version-1 document (built in memory); anything else JSON Lines.

    Raises:
        msgflux.errors.SerializationError: the file cannot be written.
    """
    from msgflux.errors import SerializationError

    target = Path(path)
    iterator = iter(records)
    header = next(iterator)
    if target.suffix.lower() == ".toml":
        from msgflux import save

        save(document([header, *iterator]), target)
        return dict(header["names"])
    folder = target.parent
    if not folder.is_dir():
        raise SerializationError(f"cannot save to {target}: the folder {folder} does not exist")
    if target.is_dir():
        raise SerializationError(f"cannot save to {target}: it is a directory")
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise SerializationError(f"cannot save to {target}: {error.strerror or error}") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            _write_line(handle, header)
            for record in iterator:
                _write_line(handle, record)
            handle.flush()
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
            ) from None
        raise
    return dict(header["names"])


def _write_line(handle: IO[bytes], record: Record) -> None:
    handle.write(
        json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8"
        )
        + b"\n"
    )


def document(records: Iterable[Record]) -> dict[str, Any]:
    """The records of a bundle as one version-1 document (``names``, ``snapshots``, ``values``)."""
    names: dict[str, Any] = {}
    snapshots: dict[str, list[list[str]]] = {}
    values: dict[str, dict[str, str]] = {}
    for record in records:
        kind = record.get("kind")
        if kind == "value":
            values[record["hash"]] = {"type": record["type"], "text": record["text"]}
        elif kind == "snapshot":
            snapshots[record["hash"]] = record["entries"]
        elif kind in ("version", "tag_event", "tags"):
            history = names.setdefault(
                record["name"], {"versions": [], "tags": {}, "tag_history": []}
            )
            fields = {key: value for key, value in record.items() if key not in ("kind", "name")}
            if kind == "version":
                history["versions"].append(fields)
            elif kind == "tag_event":
                history["tag_history"].append(fields)
            else:
                history["tags"] = fields["tags"]
    return {
        "format": FORMAT,
        "format_version": 1,
        "names": names,
        "snapshots": snapshots,
        "values": values,
    }


# -- reading a file ----------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in one record")
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_line(line: bytes, number: int) -> Record:
    try:
        record = json.loads(line, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidInputError(f"bundle line {number} is nested too deeply") from None
    except ValueError as error:
        raise InvalidInputError(f"bundle line {number} is not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"bundle line {number} is not a JSON object")
    return record


def read(path: str | os.PathLike[str]) -> Records:
    """A function that yields the records of the bundle at ``path`` (each call reads it afresh).

    A version-2 file is streamed line by line; a version-1 document (JSON or
    TOML) is read whole and turned into the same records.

    Raises:
        InvalidInputError: the file cannot be read or is not a bundle.
    """
    source = Path(path)
    try:
        with source.open("rb") as handle:
            first = handle.readline()
    except OSError as error:
        raise InvalidInputError(f"cannot read bundle {source}: {error.strerror or error}") from None
    header = None
    if source.suffix.lower() != ".toml":
        try:
            header = json.loads(first)
        except (ValueError, RecursionError):
            header = None
    if isinstance(header, dict) and header.get("format_version") == FORMAT_VERSION:
        return lambda: _stream(source)
    data = _load_document(source)
    return lambda: _from_document(data)


def _stream(source: Path) -> Iterator[Record]:
    with source.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield _parse_line(line, number)


def _load_document(source: Path) -> Any:
    from msgflux import load
    from msgflux.errors import MsgfluxError

    try:
        return load(source)
    except (MsgfluxError, OSError, RecursionError) as error:
        raise InvalidInputError(f"cannot read bundle: {error}") from None


def _from_document(data: Any) -> Iterator[Record]:
    """The records of a version-1 document, in stream order (structure checked as it goes)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInputError(f"not a msgflux-store bundle (expected format {FORMAT!r})")
    if data.get("format_version") != 1:
        raise InvalidInputError(
            f"bundle format_version {data.get('format_version')!r} is not "
            f"supported (this release reads 1 and {FORMAT_VERSION})"
        )
    names = _object(data, "names", "the bundle")
    snapshots = _object(data, "snapshots", "the bundle")
    values = _object(data, "values", "the bundle")
    for name, history in names.items():
        _object({"h": history}, "h", f"names[{name!r}]")
    yield {
        "format": FORMAT,
        "format_version": 1,
        "names": {
            name: len(history["versions"]) if isinstance(history.get("versions"), list) else 0
            for name, history in names.items()
        },
    }
    records = 0
    previous: set[str] = set()
    previous_snapshot: str | None = None
    for name, history in names.items():
        versions = history.get("versions")
        if not isinstance(versions, list):
            raise InvalidInputError(f"bundle names[{name!r}].versions must be a list")
        if not versions:
            continue  # nothing to import (as version 1 bundles always did)
        for index, version in enumerate(versions):
            if not isinstance(version, dict):
                raise InvalidInputError(
                    f"bundle names[{name!r}].versions[{index}] must be an object"
                )
            digest = version.get("snapshot")
            if digest != previous_snapshot and isinstance(digest, str):
                entries = snapshots.get(digest)
                if not isinstance(entries, list):
                    raise IntegrityError(
                        f"bundle {name!r} version {version.get('number')!r} "
                        f"refers to snapshot {digest[:12]}, which the bundle "
                        "lacks"
                    )
                used: set[str] = set()
                for entry in entries:
                    value_digest = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
                    if (
                        isinstance(value_digest, str)
                        and value_digest not in previous
                        and value_digest not in used
                        and value_digest in values
                    ):
                        value = values[value_digest]
                        if not isinstance(value, dict):
                            raise InvalidInputError(
                                f"bundle values[{value_digest[:12]}] must be an object"
                            )
                        used.add(value_digest)
                        records += 1
                        yield {
                            "kind": "value",
                            "hash": value_digest,
                            "type": value.get("type"),
                            "text": value.get("text"),
                        }
                previous = {
                    entry[1]
                    for entry in entries
                    if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)
                }
                previous_snapshot = digest
                records += 1
                yield {"kind": "snapshot", "hash": digest, "entries": entries}
            records += 1
            yield {**version, "kind": "version", "name": name}
        tag_history = history.get("tag_history", [])
        if not isinstance(tag_history, list):
            raise InvalidInputError(f"bundle names[{name!r}].tag_history must be a list")
        for event in tag_history:
            if not isinstance(event, dict):
                raise InvalidInputError(f"bundle names[{name!r}].tag_history has a non-object")
            records += 1
            yield {**event, "kind": "tag_event", "name": name}
        records += 1
        yield {"kind": "tags", "name": name, "tags": history.get("tags")}
    yield {"kind": "end", "records": records}


def _object(record: Any, key: str, where: str) -> dict[str, Any]:
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, dict):
        raise InvalidInputError(f"bundle: {where} lacks an object {key!r}")
    return value


# -- import ------------------------------------------------------------------------------


def _field(
    record: Record, name: str, kinds: type | tuple[type, ...], where: str, optional: bool = False
) -> Any:
    if name not in record or (optional and record[name] is None):
        if optional:
            return None
        raise InvalidInputError(f"bundle {where} lacks {name!r}")
    value = record[name]
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise InvalidInputError(
            f"bundle {where}: {name!r} has the wrong type ({type(value).__name__})"
        )
    return value


def _parse_time(text: str, where: str) -> datetime:
    try:
        # Stored in UTC: a time valid in its own offset but past year 9999 in
        # UTC could be written and then never read back (parse_iso refuses it).
        return parse_iso(text)
    except ValueError:
        raise InvalidInputError(f"bundle {where} has a malformed time {text!r}") from None


@dataclass
class _Name:
    """What the importer knows about the name whose block it is reading."""

    name: str
    name_id: int | None  # None until the first version of a new name is written
    head: int  # the head here before the import
    is_new: bool
    total: int
    last: int = 0  # the last incoming number
    saw_head: bool = False  # the incoming history contains our head
    last_found: bool = False  # the last incoming number <= head exists here with its hash
    appended: list[int] = field(default_factory=list)
    tag_last: dict[str, datetime] = field(default_factory=dict)  # last move here, per tag
    tag_final: dict[str, int | None] = field(default_factory=dict)  # newer moves' outcome
    done: int = 0
    cells: Head | None = None  # the last version written here (None: not read yet)


class _Importer:
    """Applies a record stream to the store on one write connection (see the module docstring)."""

    def __init__(self, connection: Connection, progress: Progress) -> None:
        self.connection = connection
        self.progress = progress
        self.totals: dict[str, int] = {}
        self.seen: set[str] = set()
        self.current: _Name | None = None
        self.copied: dict[str, list[int]] = {}
        self.values: dict[str, tuple[str, str]] = {}  # pending value records (checked on use)
        self.snapshot: tuple[str, list[tuple[str, str]]] | None = None  # pending snapshot
        # the last snapshot written: hash, entries and its values as stored
        self.last: tuple[str, list[tuple[str, str]], dict[str, tuple[str, str]]] | None = None
        self.records = 0

    def run(self, records: Iterator[Record]) -> dict[str, list[int]]:
        header = next(records, None)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise InvalidInputError(f"not a msgflux-store bundle (expected format {FORMAT!r})")
        if header.get("format_version") not in (1, FORMAT_VERSION):
            raise InvalidInputError(
                f"bundle format_version {header.get('format_version')!r} is not supported "
                f"(this release reads 1 and {FORMAT_VERSION})"
            )
        totals = header.get("names")
        if isinstance(totals, dict):
            self.totals = {
                str(name): count for name, count in totals.items() if isinstance(count, int)
            }
        for record in records:
            kind = record.get("kind")
            if kind == "end":
                if record.get("records") != self.records:
                    raise InvalidInputError(
                        f"bundle is inconsistent: its end record counts {record.get('records')!r} "
                        f"records, the file has {self.records}"
                    )
                self._finish_name()
                if next(records, None) is not None:
                    raise InvalidInputError("bundle has records after its end record")
                return self.copied
            self.records += 1
            handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise InvalidInputError(f"bundle record {self.records} has unknown kind {kind!r}")
            handler(self, record)
        raise InvalidInputError(
            "bundle is truncated: it has no end record (an interrupted "
            "export or copy?); nothing was imported"
        )

    # -- content --------------------------------------------------------------------------

    def _value(self, record: Record) -> None:
        digest = _field(record, "hash", str, f"record {self.records}")
        kind = record.get("type")
        text = record.get("text")
        if not isinstance(kind, str) or not isinstance(text, str):
            raise InvalidInputError(f"bundle value {digest[:12]} needs a string type and text")
        self.values[digest] = (kind, text)

    def _snapshot(self, record: Record) -> None:
        digest = _field(record, "hash", str, f"record {self.records}")
        entries = record.get("entries")
        pairs: list[tuple[str, str]] = []
        if isinstance(entries, list):
            for entry in entries:
                if (
                    type(entry) is not list
                    or len(entry) != 2
                    or type(entry[0]) is not str
                    or type(entry[1]) is not str
                ):
                    break
                pairs.append((entry[0], entry[1]))
        if not isinstance(entries, list) or len(pairs) != len(entries):
            raise InvalidInputError(
                f"bundle snapshot {digest[:12]} must be a list of [key, value hash]"
            )
        self.snapshot = (digest, pairs)

    def _content(
        self, digest: str, where: str
    ) -> tuple[list[tuple[str, str]], dict[str, tuple[str, str]]]:
        """Check the pending snapshot a version names; return its entries and stored values."""
        last = self.last
        if self.snapshot is None or self.snapshot[0] != digest:
            if last is not None and last[0] == digest and self.snapshot is None:
                return last[1], last[2]
            raise IntegrityError(
                f"bundle {where} refers to snapshot {digest[:12]}, which is "
                "not the snapshot record before it"
            )
        pairs = self.snapshot[1]
        known_keys = {key for key, _ in last[1]} if last is not None else set()
        known = last[2] if last is not None else {}
        stored: dict[str, tuple[str, str]] = {}
        hashes: dict[str, str] = {}
        for key, value_digest in pairs:
            at = f"{where}, key {key!r}"
            if not key:
                raise InvalidInputError(f"bundle {at}: empty key")
            if key not in known_keys:
                try:
                    check_key(key)
                except InvalidInputError as error:
                    raise InvalidInputError(f"bundle {where}: {error}") from None
            if key in hashes:
                raise InvalidInputError(f"bundle {at}: the key appears twice")
            hashes[key] = value_digest
            if value_digest in stored:
                continue
            if value_digest in known:
                stored[value_digest] = known[value_digest]
                continue
            raw = self.values.get(value_digest)
            if raw is None:
                raise IntegrityError(
                    f"bundle {at} refers to value {value_digest[:12]}, which the bundle lacks"
                )
            value = check_stored_value(raw[0], raw[1], f"bundle {at}")
            actual = value_hash(value)
            if actual != value_digest:
                raise IntegrityError(
                    f"bundle {at}: value {value_digest[:12]} does not match its "
                    f"hash (the content hashes to {actual[:12]})"
                )
            stored[value_digest] = encode_value(value)  # what a save would store
        actual = snapshot_hash(hashes)
        if actual != digest:
            raise IntegrityError(
                f"bundle {where}: snapshot {digest[:12]} does not match its "
                f"hash (the content hashes to {actual[:12]})"
            )
        self.last = (digest, pairs, stored)
        self.snapshot = None
        self.values = {}
        return pairs, stored

    # -- versions -------------------------------------------------------------------------

    def _start_name(self, name: str) -> _Name:
        current = self.current
        if current is not None and current.name == name:
            return current
        self._finish_name()
        check_label("name", name)
        if name in self.seen:
            raise InvalidInputError(f"bundle: the records of {name!r} are not in one block")
        self.seen.add(name)
        notify_change(self.connection, name)  # PostgreSQL followers; delivered on commit
        try:
            name_id: int | None
            name_id, head = lock_name(self.connection, name, create=False)
        except NameNotFound:
            name_id, head = None, 0  # created with its first version, not before
        state = _Name(name, name_id, head, head == 0, self.totals.get(name, 0))
        if name_id is not None:
            state.tag_last = {
                tag: _utc(moment)
                for tag, moment in self.connection.execute(
                    select(t.tag_events.c.tag, func.max(t.tag_events.c.moved_at))
                    .where(t.tag_events.c.name_id == name_id)
                    .group_by(t.tag_events.c.tag)
                ).tuples()
            }
        self.current = state
        return state

    def _name_id(self, state: _Name) -> int:
        if state.name_id is None:
            state.name_id, _head = lock_name(self.connection, state.name, create=True)
        return state.name_id

    def _version(self, record: Record) -> None:
        name = _field(record, "name", str, f"record {self.records}")
        state = self._start_name(name)
        at = f"{name!r} record {self.records}"
        number = check_version_number(_field(record, "number", int, at), f"bundle {at}")
        where = f"{name!r} version {number}"
        if number <= state.last:
            raise InvalidInputError(
                f"bundle {where}: version numbers must increase (it follows version {state.last})"
            )
        parent = check_parent(
            number, _field(record, "parent", int, where, optional=True), f"bundle {where}"
        )
        digest = _field(record, "snapshot", str, where)
        created_at = _parse_time(_field(record, "created_at", str, where), where)
        message = check_text(
            f"bundle {where}: message", _field(record, "message", str, where), optional=False
        )
        author = check_text(
            f"bundle {where}: author",
            _field(record, "author", str, where, optional=True),
            optional=True,
        )
        metadata = check_metadata_text(_field(record, "metadata", str, where), f"bundle {where}")
        restart = _field(record, "restart", list, where, optional=True)
        pairs, stored = self._content(digest, where)
        if restart is not None:
            keys = {key for key, _ in pairs}
            if not all(type(key) is str and key in keys for key in restart):
                raise InvalidInputError(f"bundle {where}: restart must list keys of that version")
        state.last = number
        if state.done % _EVERY == 0:
            self.progress(f"versions of {name}", state.done, state.total)
        state.done += 1
        if number <= state.head and state.name_id is not None:
            here = self.connection.execute(
                select(t.snapshots.c.hash)
                .join(t.versions, t.versions.c.snapshot_id == t.snapshots.c.id)
                .where(t.versions.c.name_id == state.name_id, t.versions.c.number == number)
            ).scalar()
            if here is not None and here != digest:
                raise ConflictError(
                    f"{name!r} diverged: version {number} is {here[:12]} here and "
                    f"{digest[:12]} in the source; nothing was copied"
                )
            state.last_found = here is not None
            state.saw_head = state.saw_head or number == state.head
            return
        if state.head and not state.saw_head:
            raise ConflictError(
                f"{name!r} diverged: version {state.head} here is unknown to "
                "the source; nothing was copied"
            )
        prepared = stored_content(
            [key for key, _ in pairs], [value for _, value in pairs], stored, digest
        )
        name_id = self._name_id(state)
        if state.cells is None:  # spans continue from the last version here
            last_here = self.connection.execute(
                select(func.max(t.versions.c.number)).where(t.versions.c.name_id == name_id)
            ).scalar()
            state.cells = Head(
                {} if last_here is None else read_cells(self.connection, name_id, int(last_here))
            )
        state.cells = write_content(
            self.connection,
            name_id,
            number,
            parent,
            prepared,
            state.cells,
            created_at=created_at,
            message=message or "",
            author=author,
            metadata=metadata,
            restart=frozenset(restart or ()),
        )
        state.appended.append(number)

    # -- tags -----------------------------------------------------------------------------

    def _tag_event(self, record: Record) -> None:
        name = _field(record, "name", str, f"record {self.records}")
        state = self._start_name(name)
        where = f"{name!r} tag event (record {self.records})"
        tag = check_label("tag", _field(record, "tag", str, where))
        version = _field(record, "version", int, where, optional=True)
        previous = _field(record, "previous_version", int, where, optional=True)
        for number in (version, previous):
            if number is not None:
                check_version_number(number, f"bundle {where}")
        moved_at = _parse_time(_field(record, "moved_at", str, where), where)
        author = check_text(
            f"bundle {where}: author",
            _field(record, "author", str, where, optional=True),
            optional=True,
        )
        last = state.tag_last.get(tag)
        if last is not None and moved_at <= last:
            return  # this move is already known here, or older than what is here
        _tags.record(
            self.connection,
            self._name_id(state),
            tag,
            version,
            previous,
            author=author,
            moved_at=moved_at,
        )
        state.tag_final[tag] = version

    def _tags(self, record: Record) -> None:
        name = _field(record, "name", str, f"record {self.records}")
        state = self._start_name(name)
        where = f"{name!r} tags"
        tags = _field(record, "tags", dict, where)
        for tag, number in tags.items():
            check_tag(tag)
            if isinstance(number, bool) or not isinstance(number, int):
                raise InvalidInputError(
                    f"bundle {where}: tag {tag!r} must point at a version number"
                )
            check_version_number(number, f"bundle {where}")
        if state.name_id is None and (tags or state.tag_final):
            raise InvalidInputError(f"bundle {where}: {name!r} has tags but no versions")
        if state.name_id is not None:
            self._sync_tags(state, tags, state.name_id)
        self._finish_name()

    def _sync_tags(self, state: _Name, wanted: dict[str, int], name_id: int) -> None:
        """Apply the bundle's tags that moved later than here (see the module docstring)."""
        connection = self.connection
        current = dict(
            connection.execute(
                select(t.tags.c.tag, t.tags.c.version).where(t.tags.c.name_id == name_id)
            )
            .tuples()
            .all()
        )
        changes: dict[str, int | None] = {}
        for tag in state.tag_final:  # moved or removed in the bundle after the last move here
            changes[tag] = wanted.get(tag)
        for tag, number in wanted.items():  # tags the bundle has no history for: only new ones
            if tag not in state.tag_final and tag not in current and tag not in state.tag_last:
                changes[tag] = number
                _tags.record(connection, name_id, tag, number, None, author="import")
        for tag, target in changes.items():
            if target is None:
                _tags.point(connection, name_id, tag, None)
                continue
            number = target
            present = connection.execute(
                select(t.versions.c.number).where(
                    t.versions.c.name_id == name_id, t.versions.c.number == number
                )
            ).scalar()
            if present is None:
                if state.is_new or number > max(state.last, state.head):
                    raise InvalidInputError(
                        f"bundle {state.name!r} tags: tag {tag!r} points "
                        f"at version {number}, which the bundle lacks"
                    )
                continue  # pruned here: nothing to point the tag at
            _tags.point(connection, name_id, tag, number)
        state.tag_final = {}

    def _finish_name(self) -> None:
        state = self.current
        if state is None:
            return
        self.current = None
        if state.head > state.last and state.last and not state.last_found:
            raise ConflictError(
                f"{state.name!r} diverged: the source's head {state.last} is "
                "not in this history; nothing was copied"
            )
        if state.appended and state.name_id is not None:
            self.connection.execute(
                update(t.names)
                .where(t.names.c.id == state.name_id)
                .values(head=max(state.head, state.last))
            )
        if state.tag_final:
            raise InvalidInputError(f"bundle: {state.name!r} has tag events but no tags record")
        self.progress(f"versions of {state.name}", state.total, state.total)
        self.copied[state.name] = state.appended


_HANDLERS: dict[str, Callable[[_Importer, Record], None]] = {
    "value": _Importer._value,
    "snapshot": _Importer._snapshot,
    "version": _Importer._version,
    "tag_event": _Importer._tag_event,
    "tags": _Importer._tags,
}


def apply(connection: Connection, records: Records, progress: Progress) -> dict[str, list[int]]:
    """Fast-forward the store on ``connection`` to the histories in ``records()``.

    Raises:
        InvalidInputError: a record breaks a rule (named by name, version and key).
        IntegrityError: a hash does not match its content.
        ConflictError: a history here and in the bundle disagree.
        The caller's transaction then rolls back: nothing is written.
    """
    stream = records()
    try:
        return _Importer(connection, progress).run(stream)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
