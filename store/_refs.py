"""Version references: the one rule that turns a reference into a version.

* an ``int`` is a version number;
* ``"latest"`` / ``"head"`` is the newest version;
* a string of digits is a version number if that version exists, and
  otherwise a snapshot-hash prefix (4 or more digits); when it is both (a
  version with that number exists *and* a different snapshot of the name
  starts with those digits) it is refused as ambiguous;
* any other string is a tag or a snapshot-hash prefix (4 to 64 hex digits).
  New tags can never look like a prefix (:func:`~msgflux.store.validation.check_tag`);
  a tag from an older release that does, and also matches another snapshot,
  is refused as ambiguous.

So the store never silently loads other content than the reference could mean.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from msgflux.store import schema as t
from msgflux.store._rows import describe, did_you_mean, tag_target, version_rows
from msgflux.store.errors import InvalidInputError, VersionNotFound
from msgflux.store.validation import MAX_VERSION, looks_like_hash

__all__ = ["resolve"]


def _prefix_matches(connection: Connection, name_id: int, prefix: str) -> list[Row[Any]]:
    """``(number, hash)`` of this name's versions whose snapshot hash starts with ``prefix``."""
    return list(
        connection.execute(
            select(t.versions.c.number, t.snapshots.c.hash)
            .join(t.snapshots, t.snapshots.c.id == t.versions.c.snapshot_id)
            .where(t.versions.c.name_id == name_id, t.snapshots.c.hash.like(prefix.lower() + "%"))
            .order_by(t.versions.c.number.desc())
        ).all()
    )


def check_ref(ref: Any) -> None:
    """Refuse a reference that is neither a version number nor a string.

    Raises:
        InvalidInputError: ``ref`` is a bool, a list, ``None``...
    """
    if isinstance(ref, bool) or not isinstance(ref, int | str):
        raise InvalidInputError(
            f"a version is a number, 'latest', a tag or a snapshot-hash prefix, not {ref!r}"
        )


def resolve(connection: Connection, name: str, name_id: int, head: int, ref: Any) -> Row[Any]:
    """Find the version row ``ref`` names (see the module docstring).

    Raises:
        InvalidInputError: a malformed or ambiguous reference.
        VersionNotFound: nothing matches; the message says what exists.
    """
    check_ref(ref)
    if isinstance(ref, int):
        return _numbered(connection, name, name_id, ref, ref)
    if ref in ("latest", "head"):
        return _numbered(connection, name, name_id, head, ref)
    row: Row[Any] | None = None
    meaning = ""
    if ref.isdigit() and ref.isascii():
        # int() refuses more than 4300 digits; anything past 10 is out of range anyway.
        number = int(ref) if len(ref) <= 10 else MAX_VERSION + 1
        if 1 <= number <= MAX_VERSION:
            row = version_rows(connection, name_id, number=number).first()
            meaning = f"version {number}"
    else:
        tagged = tag_target(connection, name_id, ref)
        if tagged is not None:
            row = version_rows(connection, name_id, number=tagged).first()
            meaning = f"tag {ref!r} (version {tagged})"
    if looks_like_hash(ref):
        matches = _prefix_matches(connection, name_id, ref)
        hashes = sorted({match.hash for match in matches})
        if row is not None and hashes and hashes != [row.snapshot]:
            raise InvalidInputError(
                f"reference {ref!r} of {name!r} is ambiguous: it is {meaning} and a prefix of "
                f"snapshot {', '.join(digest[:12] for digest in hashes)}; give the number as "
                "an int, or a longer prefix"
            )
        if row is None and matches:
            if len(hashes) > 1:
                raise InvalidInputError(
                    f"snapshot prefix {ref!r} of {name!r} is ambiguous: it matches "
                    f"{', '.join(digest[:12] for digest in hashes)}"
                )
            row = version_rows(connection, name_id, number=matches[0].number).first()
    if row is None:
        if ref.isdigit() and ref.isascii():
            what = " (no such version or snapshot)" if len(ref) >= 4 else ""
        else:
            tags = list(
                connection.execute(
                    select(t.tags.c.tag).where(t.tags.c.name_id == name_id)
                ).scalars()
            )
            what = " (no such tag or snapshot)" + did_you_mean(ref, tags)
        raise VersionNotFound(
            f"version {ref!r} of {name!r} not found{what}: {describe(connection, name, name_id)}"
        )
    return row


def _numbered(connection: Connection, name: str, name_id: int, number: int, ref: Any) -> Row[Any]:
    row = None
    if 1 <= number <= MAX_VERSION:
        row = version_rows(connection, name_id, number=number).first()
    if row is None:
        raise VersionNotFound(
            f"version {ref!r} of {name!r} not found: {describe(connection, name, name_id)}"
        )
    return row
