"""Traffic splits: a tag pointing at several versions with weights, and picking one per route key.

A route key (a user id, a session id...) picks a version deterministically:
the BLAKE2b hash of ``name``, ``tag`` and the key, read as a number in
[0, 1), falls into one version's share of the cumulative weights (versions in
ascending order). The same key always gets the same version for a given
split; changing the weights moves only the keys whose point crosses a boundary.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from msgflux.store import schema as t
from msgflux.store.engine import read_transaction
from msgflux.store.errors import InvalidInputError

if TYPE_CHECKING:
    from msgflux.store._rows import Backend

__all__ = [
    "Weights",
    "check_weights",
    "weights_text",
    "parse_weights_text",
    "primary",
    "valid_split",
    "Router",
    "route_point",
    "split_versions",
    "read_weights",
    "current_target",
    "describe_target",
    "route",
]

#: ``{version number: weight}``; the weights sum to 1.
Weights = dict[int, float]

_SUM_TOLERANCE = 1e-9
_SCALE = float(2**64)


def check_weights(weights: Any) -> dict[Any, float]:
    """Validate a split as given by the user: ``{ref: weight}``, weights > 0 summing to 1.

    Raises:
        InvalidInputError: not a mapping, fewer than 2 entries, a weight that is
        not a finite positive number, or weights not summing to 1.
    """
    if not isinstance(weights, Mapping):
        raise InvalidInputError(
            f"a split is a dict {{version: weight}}, not {type(weights).__name__}"
        )
    if len(weights) < 2:
        raise InvalidInputError("a split needs at least two versions; use tag() for one")
    checked: dict[Any, float] = {}
    for ref, weight in weights.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise InvalidInputError(
                f"the weight of version {ref!r} must be a positive number, not {weight!r}"
            )
        checked[ref] = float(weight)
    total = math.fsum(checked.values())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise InvalidInputError(f"split weights must sum to 1, these sum to {total:g}")
    return checked


def weights_text(weights: Mapping[int, float]) -> str:
    """Canonical JSON of a split, versions ascending: ``{"12":0.9,"13":0.1}``."""
    return json.dumps(
        {str(number): weights[number] for number in sorted(weights)}, separators=(",", ":")
    )


def parse_weights_text(text: str | None) -> Weights | None:
    """The inverse of :func:`weights_text` (``None`` stays ``None``)."""
    if text is None:
        return None
    return {int(number): float(weight) for number, weight in json.loads(text).items()}


def primary(weights: Mapping[int, float]) -> int:
    """The version a split reports as the tag's target: the heaviest, the lowest number on ties."""
    return min(weights, key=lambda number: (-weights[number], number))


def route_point(name: str, tag: str, route_key: str) -> float:
    """Where ``route_key`` falls in [0, 1) for ``name``/``tag``: a BLAKE2b hash, not random."""
    digest = blake2b(
        f"{name}\x00{tag}\x00{route_key}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Router:
    """Picks a version of a split for a route key; built once per split, then ~2 µs a pick.

    Equivalent to comparing :func:`route_point` with the cumulative weights, in
    integers: the hash state of ``name``/``tag`` is computed once and copied.
    """

    __slots__ = ("name", "tag", "weights", "_base", "_bounds", "_numbers")

    def __init__(self, name: str, tag: str, weights: Mapping[int, float]) -> None:
        self.name = name
        self.tag = tag
        self.weights = dict(weights)
        self._base = blake2b(f"{name}\x00{tag}\x00".encode("utf-8", "surrogatepass"), digest_size=8)
        self._numbers = sorted(weights)
        bounds, total = [], 0.0
        for number in self._numbers:
            total += weights[number]
            # the first point past this version's share, as a 64-bit integer
            bounds.append(math.ceil(total * _SCALE))
        bounds[-1] = 2**64  # rounding must never leave a gap at the top
        self._bounds = bounds

    def pick(self, route_key: Any) -> int:
        """The version number ``route_key`` (a str or int) is routed to."""
        digest = self._base.copy()
        digest.update(
            (route_key if isinstance(route_key, str) else str(route_key)).encode(
                "utf-8", "surrogatepass"
            )
        )
        point = int.from_bytes(digest.digest(), "big")
        return self._numbers[bisect.bisect_right(self._bounds, point)]


def read_weights(connection: Connection, name_id: int, tag: str) -> Weights:
    """The split rows of a tag (empty when it points at one version)."""
    return {
        int(version): float(weight)
        for version, weight in connection.execute(
            select(t.tag_splits.c.version, t.tag_splits.c.weight).where(
                t.tag_splits.c.name_id == name_id, t.tag_splits.c.tag == tag
            )
        ).tuples()
    }


def split_versions(connection: Connection, name_id: int) -> set[int]:
    """Every version of a name that some split points at (prune must keep them)."""
    return set(
        connection.execute(
            select(t.tag_splits.c.version).where(t.tag_splits.c.name_id == name_id)
        ).scalars()
    )


def current_target(connection: Connection, name_id: int, tag: str) -> Weights | None:
    """What a tag points at: ``{version: 1.0}``, a split, or ``None`` when it does not exist."""
    version = connection.execute(
        select(t.tags.c.version).where(t.tags.c.name_id == name_id, t.tags.c.tag == tag)
    ).scalar()
    if version is None:
        return None
    return valid_split(int(version), read_weights(connection, name_id, tag))


def valid_split(version: int, weights: Weights) -> Weights:
    """The split of a tag whose row points at ``version``, or ``{version: 1.0}``.

    Split rows that don't include the tag's version are stale (the tag was moved
    by something that knows nothing of splits, e.g. an older bundle import) and
    are ignored, here and in the ``state_tags`` view.
    """
    return weights if version in weights else {version: 1.0}


def describe_target(weights: Mapping[int, float] | None) -> str:
    """``version 3``, ``split {12: 0.9, 13: 0.1}`` or ``nothing``, for messages."""
    if not weights:
        return "nothing"
    if len(weights) == 1:
        return f"version {next(iter(weights))}"
    return (
        "split {" + ", ".join(f"{number}: {weights[number]:g}" for number in sorted(weights)) + "}"
    )


def route(store: Backend, name: str, ref: Any, route_key: Any) -> Any:
    """``ref`` with a split tag replaced by the version ``route_key`` is routed to."""
    if not isinstance(route_key, str | int) or isinstance(route_key, bool):
        raise InvalidInputError(f"route_key must be a str or an int, not {route_key!r}")
    if not isinstance(ref, str) or ref in ("latest", "head") or ref.isdigit():
        return ref

    def work(connection: Connection) -> Weights | None:
        name_id = connection.execute(select(t.names.c.id).where(t.names.c.name == name)).scalar()
        return None if name_id is None else current_target(connection, name_id, ref)

    weights = read_transaction(store.engine, f"routing {name!r}", work)
    return Router(name, ref, weights).pick(route_key) if weights and len(weights) > 1 else ref
