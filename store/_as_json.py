"""The JSON objects of the store's records, one function each, for every printer of them.

The command line's ``--json`` and the follower's cache file write a
:class:`~msgflux.store.Version` through :func:`version_json`, so the shape is
defined once (documented in ``msgflux-store --help``). Bundles keep their own
record format (``kind``, optional fields left out), see :mod:`._bundle`.
"""

from __future__ import annotations

from typing import Any

from msgflux.store._time import iso
from msgflux.store.types import TagEvent, Version

__all__ = ["VERSION_SHAPE", "tag_event_json", "version_json"]

#: The keys of :func:`version_json`, as the command line's help states them.
VERSION_SHAPE = (
    'a version is {"name", "number", "snapshot", "parent", "created_at", '
    '"message", "author", "metadata", "tags"}'
)


def version_json(version: Version) -> dict[str, Any]:
    """The stable JSON object of a version; ``created_at`` is ISO 8601 in UTC."""
    return {
        "name": version.name,
        "number": version.number,
        "snapshot": version.snapshot,
        "parent": version.parent,
        "created_at": iso(version.created_at),
        "message": version.message,
        "author": version.author,
        "metadata": version.metadata,
        "tags": list(version.tags),
    }


def tag_event_json(event: TagEvent, *, weights: bool = False) -> dict[str, Any]:
    """The JSON object of a tag move or removal (``version`` null: removed).

    ``weights`` adds the split's ``{version: weight}`` (null when not a split), as
    ``watch`` prints it.
    """
    row: dict[str, Any] = {
        "name": event.name,
        "tag": event.tag,
        "version": event.version,
        "previous_version": event.previous_version,
    }
    if weights:
        row["weights"] = (
            None
            if event.weights is None
            else {str(number): weight for number, weight in event.weights.items()}
        )
    row["moved_at"] = iso(event.moved_at)
    row["author"] = event.author
    return row
