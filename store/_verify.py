"""``StateStore.verify``: recompute every hash and run the database's own checks.

Content is read in one read transaction (a consistent snapshot). Problems are
reported per affected version, with the key where one can be named:

* a value whose text no longer hashes to its hash (a flipped byte) names
  every version and key that uses it;
* a snapshot whose entries no longer hash to its hash (an entry deleted or
  changed, or the snapshot hash edited) names every version that uses it and,
  for a lost entry, the keys its neighbouring versions have and it lacks.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, func, select, text

from msgflux.store import schema as t
from msgflux.store._decode import metadata_problem, tolerant_text
from msgflux.store.hashing import canonical_json, decode_value, snapshot_hash, value_hash
from msgflux.store.types import Problem, Progress, VerifyReport

__all__ = ["verify"]

_EVERY = 5000  # rows between progress reports


def verify(connection: Connection, progress: Progress) -> VerifyReport:
    """Check the whole store on ``connection``; see the module docstring.

    Text that is not valid UTF-8 (a corrupted page) is read with
    ``surrogateescape`` and reported like any other unreadable row, so one bad
    row never stops the scan.
    """
    with tolerant_text(connection):
        return _verify(connection, progress)


def _shown(text: Any) -> Any:
    """Text with undecodable bytes shown as escapes (safe to print), other values as they are."""
    if isinstance(text, str):
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def _verify(connection: Connection, progress: Progress) -> VerifyReport:
    problems: list[Problem] = list(_database_checks(connection))
    problems.extend(_check_versions(connection))
    bad_blobs, blob_count = _check_blobs(connection, progress)
    users = _blob_users(connection, bad_blobs) if bad_blobs else {}
    for blob_id, reason in bad_blobs.items():
        places = users.get(blob_id) or [(None, None, None)]
        for name, number, key in places:
            problems.append(Problem("value", reason, _shown(name), number, _shown(key)))
    bad_snapshots, snapshots_checked = _check_snapshots(connection, progress)
    for snapshot_id, (reason, keys) in bad_snapshots.items():
        versions = connection.execute(
            select(t.names.c.name, t.versions.c.number, t.versions.c.name_id)
            .join(t.names, t.names.c.id == t.versions.c.name_id)
            .where(t.versions.c.snapshot_id == snapshot_id)
            .order_by(t.names.c.name, t.versions.c.number)).all()
        if not versions:
            problems.append(Problem("snapshot", f"unused snapshot #{snapshot_id}: {reason}"))
        for name, number, name_id in versions:
            lost = _lost_keys(connection, name_id, number, keys)
            if lost:
                for key in lost:
                    problems.append(Problem("snapshot", f"{reason}; key missing (present in "
                                            "the neighbouring versions)", _shown(name), number,
                                            _shown(key)))
            else:
                problems.append(Problem("snapshot", reason, _shown(name), number))
    version_count = connection.execute(select(func.count()).select_from(t.versions)).scalar_one()
    return VerifyReport(tuple(problems), blobs_checked=blob_count,
                        snapshots_checked=snapshots_checked, versions_checked=version_count)


def _database_checks(connection: Connection) -> list[Problem]:
    if connection.dialect.name != "sqlite":
        return []  # PostgreSQL checks its pages itself (checksums); no portable SQL check
    problems = []
    for (line,) in connection.execute(text("PRAGMA integrity_check")):
        if line != "ok":
            problems.append(Problem("database", f"integrity_check: {line}"))
    for row in connection.execute(text("PRAGMA foreign_key_check")):
        problems.append(Problem("database", f"foreign key broken in table {row[0]} row {row[1]}"))
    return problems


def _check_blobs(connection: Connection, progress: Progress) -> tuple[dict[int, str], int]:
    """Unreadable or mismatched values by blob id, and how many values there are."""
    total = connection.execute(select(func.count()).select_from(t.blobs)).scalar_one()
    bad: dict[int, str] = {}
    rows = connection.execution_options(yield_per=5000).execute(
        select(t.blobs.c.id, t.blobs.c.hash, t.blobs.c.value_type, t.blobs.c.text))
    for done, (blob_id, stored_hash, kind, stored_text) in enumerate(rows):
        if done % _EVERY == 0:
            progress("values", done, total)
        try:
            value = decode_value(kind, stored_text)
            actual = value_hash(value)
        except (ValueError, TypeError, RecursionError) as error:
            bad[blob_id] = f"stored value is unreadable ({error})"
            continue
        if actual != stored_hash:
            bad[blob_id] = f"value hash mismatch: stored {stored_hash[:12]}, content {actual[:12]}"
        elif kind != "str" and canonical_json(value) != stored_text:
            bad[blob_id] = "stored text is not the canonical JSON of its value"
    progress("values", total, total)
    return bad, total


def _check_versions(connection: Connection) -> list[Problem]:
    """Every version whose metadata, message or author cannot be read back (named)."""
    problems: list[Problem] = []
    rows = connection.execution_options(yield_per=5000).execute(
        select(t.names.c.name, t.versions.c.number, t.versions.c.metadata,
               t.versions.c.message, t.versions.c.author)
        .join(t.names, t.names.c.id == t.versions.c.name_id)
        .order_by(t.names.c.name, t.versions.c.number))
    for name, number, metadata, message, author in rows:
        reasons = []
        if _unencodable(name):
            reasons.append("the name is not valid UTF-8")
        reason = metadata_problem(metadata)
        if reason is None and _unencodable(metadata):
            reason = "stored metadata is not valid UTF-8"
        if reason is not None:
            problems.append(Problem("metadata", reason, _shown(name), number))
        for field, value in (("message", message), ("author", author)):
            if value is not None and _unencodable(value):
                reasons.append(f"the {field} is not valid UTF-8")
        for reason in reasons:
            problems.append(Problem("version", reason, _shown(name), number))
    return problems


def _unencodable(text: Any) -> bool:
    if not isinstance(text, str):
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _blob_users(connection: Connection, blob_ids: dict[int, str]) -> dict[int, list[Any]]:
    users: dict[int, list[Any]] = defaultdict(list)
    rows = connection.execute(
        select(t.entries.c.blob_id, t.names.c.name, t.versions.c.number, t.entries.c.key)
        .join(t.versions, t.versions.c.snapshot_id == t.entries.c.snapshot_id)
        .join(t.names, t.names.c.id == t.versions.c.name_id)
        .where(t.entries.c.blob_id.in_(list(blob_ids)))
        .order_by(t.names.c.name, t.versions.c.number, t.entries.c.key))
    for blob_id, name, number, key in rows:
        users[blob_id].append((name, number, key))
    return users


def _check_snapshots(connection: Connection, progress: Progress
                     ) -> tuple[dict[int, tuple[str, set[str]]], int]:
    total = connection.execute(select(func.count()).select_from(t.entries)).scalar_one()
    stored = {row.id: (row.hash, row.key_count) for row in connection.execute(
        select(t.snapshots.c.id, t.snapshots.c.hash, t.snapshots.c.key_count))}
    bad: dict[int, tuple[str, set[str]]] = {}
    seen: set[int] = set()

    def finish(snapshot_id: int, hashes: dict[str, str]) -> None:
        seen.add(snapshot_id)
        expected_hash, key_count = stored.get(snapshot_id, ("?", -1))
        reasons = []
        try:
            actual = snapshot_hash(hashes)
        except ValueError as error:  # a key that is not valid UTF-8
            bad[snapshot_id] = (f"a key is unreadable ({error})", set(hashes))
            return
        if actual != expected_hash:
            reasons.append(f"snapshot hash mismatch: stored {expected_hash[:12]}, "
                           f"content {actual[:12]}")
        if len(hashes) != key_count:
            reasons.append(f"{len(hashes)} entries but key_count {key_count}")
        if reasons:
            bad[snapshot_id] = ("; ".join(reasons), set(hashes))

    rows = connection.execution_options(yield_per=10000).execute(
        select(t.entries.c.snapshot_id, t.entries.c.key, t.blobs.c.hash)
        .join(t.blobs, t.blobs.c.id == t.entries.c.blob_id)
        .order_by(t.entries.c.snapshot_id))
    current: int | None = None
    hashes: dict[str, str] = {}
    for done, (snapshot_id, key, blob_hash) in enumerate(rows):
        if done % _EVERY == 0:
            progress("entries", done, total)
        if snapshot_id != current:
            if current is not None:
                finish(current, hashes)
            current, hashes = snapshot_id, {}
        hashes[key] = blob_hash
    if current is not None:
        finish(current, hashes)
    for snapshot_id in stored.keys() - seen:
        finish(snapshot_id, {})
    progress("entries", total, total)
    return bad, len(stored)


def _lost_keys(connection: Connection, name_id: int, number: int, keys: set[str]) -> list[str]:
    """Keys that both neighbours of a version have and it lacks (a deleted entry)."""
    neighbours = connection.execute(
        select(t.versions.c.snapshot_id).where(
            t.versions.c.name_id == name_id,
            t.versions.c.number.in_([number - 1, number + 1]))).scalars().all()
    candidates: set[str] | None = None
    for snapshot_id in neighbours:
        their = set(connection.execute(select(t.entries.c.key).where(
            t.entries.c.snapshot_id == snapshot_id)).scalars())
        candidates = their if candidates is None else candidates & their
    return sorted((candidates or set()) - keys)

