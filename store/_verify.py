"""``StateStore.verify``: recompute every hash and run the database's own checks.

Content is read in one read transaction (a consistent snapshot). Problems are
reported per affected version, with the key where one can be named:

* a value whose text no longer hashes to its hash (a flipped byte) names
  every version and key that uses it;
* a version whose content, rebuilt from its key spans, no longer hashes to
  its snapshot hash (a span deleted or changed, or the snapshot hash edited)
  is named and, for a lost span, so are the keys both neighbouring versions
  have and it lacks.
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
    snapshot_problems, snapshots_checked = _check_snapshots(connection, progress)
    problems.extend(snapshot_problems)
    version_count = connection.execute(select(func.count()).select_from(t.versions)).scalar_one()
    return VerifyReport(
        tuple(problems),
        blobs_checked=blob_count,
        snapshots_checked=snapshots_checked,
        versions_checked=version_count,
    )


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
        select(t.blobs.c.id, t.blobs.c.hash, t.blobs.c.value_type, t.blobs.c.text)
    )
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
        select(
            t.names.c.name,
            t.versions.c.number,
            t.versions.c.metadata,
            t.versions.c.message,
            t.versions.c.author,
        )
        .join(t.names, t.names.c.id == t.versions.c.name_id)
        .order_by(t.names.c.name, t.versions.c.number)
    )
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
        select(t.spans.c.blob_id, t.names.c.name, t.versions.c.number, t.keys.c.key)
        .join(t.keys, t.keys.c.id == t.spans.c.key_id)
        .join(
            t.versions,
            (t.versions.c.name_id == t.spans.c.name_id)
            & (t.versions.c.number >= t.spans.c.since)
            & (t.spans.c.until.is_(None) | (t.versions.c.number < t.spans.c.until)),
        )
        .join(t.names, t.names.c.id == t.versions.c.name_id)
        .where(t.spans.c.blob_id.in_(list(blob_ids)))
        .order_by(t.names.c.name, t.versions.c.number, t.keys.c.key)
    )
    for blob_id, name, number, key in rows:
        users[blob_id].append((name, number, key))
    return users


def _check_snapshots(connection: Connection, progress: Progress) -> tuple[list[Problem], int]:
    """Rebuild every version's content from its spans and check it against its snapshot.

    One pass per name over its versions and its spans, both in number order:
    the content is kept as ``{key: value hash}`` and hashed again only where
    it changed. Also reports a key that two spans give at once.
    """
    total = connection.execute(select(func.count()).select_from(t.versions)).scalar_one()
    problems: list[Problem] = []
    done = 0
    names = connection.execute(select(t.names.c.id, t.names.c.name).order_by(t.names.c.name)).all()
    for name_id, name in names:
        versions = connection.execution_options(yield_per=10000).execute(
            select(t.versions.c.number, t.snapshots.c.hash, t.snapshots.c.key_count)
            .join(t.snapshots, t.snapshots.c.id == t.versions.c.snapshot_id)
            .where(t.versions.c.name_id == name_id)
            .order_by(t.versions.c.number)
        )
        spans = iter(
            connection.execution_options(yield_per=10000)
            .execute(
                select(t.spans.c.since, t.spans.c.until, t.keys.c.key, t.blobs.c.hash)
                .join(t.keys, t.keys.c.id == t.spans.c.key_id)
                .join(t.blobs, t.blobs.c.id == t.spans.c.blob_id, isouter=True)
                .where(t.spans.c.name_id == name_id)
                .order_by(t.spans.c.since)
            )
            .all()
        )
        pending = next(spans, None)
        content: dict[str, tuple[str, int | None]] = {}  # key -> (value hash, until)
        computed: str | None = None
        previous: set[str] = set()
        bad: list[tuple[int, str, set[str], set[str]]] = []
        for number, expected, key_count in versions:
            if done % _EVERY == 0:
                progress("versions", done, total)
            done += 1
            reasons: list[str] = []
            for key in [
                key for key, (_h, until) in content.items() if until is not None and until <= number
            ]:
                del content[key]
                computed = None
            while pending is not None and pending.since <= number:
                if pending.until is None or pending.until > number:
                    if pending.key in content:
                        reasons.append(f"key {_shown(pending.key)!r} has two values at once")
                    content[pending.key] = (pending.hash, pending.until)
                    computed = None
                pending = next(spans, None)
            if computed is None:
                try:
                    computed = snapshot_hash({key: digest for key, (digest, _u) in content.items()})
                except (ValueError, TypeError) as error:  # unreadable key or value
                    computed = f"unreadable ({error})"
            if computed != expected:
                reasons.append(
                    f"snapshot hash mismatch: stored {str(expected)[:12]}, content {computed[:12]}"
                )
            if len(content) != key_count:
                reasons.append(f"{len(content)} keys but key_count {key_count}")
            if reasons:
                bad.append((number, "; ".join(reasons), set(content), previous))
            previous = set(content)
        for number, reason, keys, before in bad:
            after = {
                key
                for (key,) in connection.execute(
                    text(
                        "SELECT k.key FROM keys k JOIN spans s ON s.key_id = k.id "
                        "WHERE k.name_id = :n AND s.name_id = :n AND s.since <= :v "
                        "AND (s.until IS NULL OR s.until > :v)"
                    ),
                    {"n": name_id, "v": number + 1},
                )
            }
            lost = sorted((before & after) - keys) if before and after else []
            if lost:
                for key in lost:
                    problems.append(
                        Problem(
                            "snapshot",
                            f"{reason}; key missing (present in the neighbouring versions)",
                            _shown(name),
                            number,
                            _shown(key),
                        )
                    )
            else:
                problems.append(Problem("snapshot", reason, _shown(name), number))
    progress("versions", total, total)
    snapshots = connection.execute(select(func.count()).select_from(t.snapshots)).scalar_one()
    return problems, int(snapshots)
