"""Tag moves with their guards: compare-and-swap, protected tags, conditions, splits, audit.

Every move of a tag (``tag``, ``split``, ``untag``) runs :func:`move` or
:func:`remove` inside the write transaction that holds the name's lock, so
the policy check, the condition on the target versions' metadata and the move
itself see one state of the database: a concurrent ``protect`` or move either
happened before (and is checked) or waits for this one.

A refused move of a protected tag raises :class:`_Refused` inside the
transaction (which rolls back); :func:`guarded_write` then writes the refusal
to ``tag_audit`` in a transaction of its own and raises the user-facing
error. Policy changes are audited in the transaction that makes them. A stale
``expected=`` on an unprotected tag is an ordinary ConflictError and writes
nothing, as before guarded tags existed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, insert, select

from msgflux.store import _split, _tags
from msgflux.store import schema as t
from msgflux.store._refs import resolve
from msgflux.store._rows import Backend, describe, lock_name, version
from msgflux.store._time import now as _now
from msgflux.store._where import parse_condition
from msgflux.store.engine import write_transaction
from msgflux.store.errors import (
    ConflictError,
    InvalidInputError,
    ProtectedTagError,
    VersionNotFound,
)
from msgflux.store.types import Version

__all__ = [
    "guarded_write",
    "move",
    "remove",
    "protect",
    "unprotect",
    "check_expected",
    "notify_change",
]

T = TypeVar("T")

#: The PostgreSQL channel a store notifies on commit of a save or a tag move (payload: the name).
CHANNEL = "msgflux_store"


def notify_change(connection: Connection, name: str) -> None:
    """Tell followers on PostgreSQL that ``name`` changed; delivered when the transaction commits.

    SQLite needs nothing: followers there watch ``PRAGMA data_version``.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_notify(%s, %s)", (CHANNEL, name))


@dataclass(frozen=True)
class _Policy:
    require_expected: bool
    condition: str | None


class _Refused(Exception):
    """A refused move, carried out of the rolled-back transaction to be audited."""

    def __init__(
        self,
        error: ConflictError,
        name_id: int,
        tag: str,
        weights: Mapping[int, float] | None,
        author: str | None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.name_id = name_id
        self.tag = tag
        self.weights = weights
        self.author = author


def check_expected(expected: Any) -> None:
    """Refuse an ``expected=`` that is not a version number, ``None`` or a split dict."""
    if expected is None or (isinstance(expected, int) and not isinstance(expected, bool)):
        return
    if (
        isinstance(expected, Mapping)
        and expected
        and all(isinstance(number, int) and not isinstance(number, bool) for number in expected)
    ):
        return
    raise InvalidInputError(
        f"expected must be a version number, None or a split {{version: weight}}, not {expected!r}"
    )


def _matches(expected: Any, current: Mapping[int, float] | None) -> bool:
    if expected is None:
        return current is None
    if isinstance(expected, Mapping):
        return current is not None and dict(current) == {
            number: float(weight) for number, weight in expected.items()
        }
    return current is not None and dict(current) == {expected: 1.0}


def _policy(connection: Connection, name_id: int, tag: str) -> _Policy | None:
    row = connection.execute(
        select(t.tag_policies.c.require_expected, t.tag_policies.c.condition).where(
            t.tag_policies.c.name_id == name_id, t.tag_policies.c.tag == tag
        )
    ).first()
    return None if row is None else _Policy(bool(row[0]), row[1])


def _audit(
    connection: Connection,
    name_id: int,
    tag: str,
    action: str,
    reason: str,
    *,
    author: str | None,
    weights: Mapping[int, float] | None = None,
) -> None:
    connection.execute(
        insert(t.tag_audit).values(
            name_id=name_id,
            tag=tag,
            action=action,
            version=_split.primary(weights) if weights else None,
            weights=_split.weights_text(weights) if weights and len(weights) > 1 else None,
            reason=reason,
            at=_now(),
            author=author,
        )
    )


def guarded_write(store: Backend, action: str, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a write transaction; audit and raise a refusal it signals."""
    try:
        return write_transaction(store.engine, action, work, lock_timeout=store.lock_timeout)
    except _Refused as caught:
        refused = caught
    write_transaction(
        store.engine,
        f"auditing a refused move ({action})",
        lambda connection: _audit(
            connection,
            refused.name_id,
            refused.tag,
            "refused",
            str(refused.error),
            author=refused.author,
            weights=refused.weights,
        ),
        lock_timeout=store.lock_timeout,
    )
    raise refused.error from None


def move(
    connection: Connection,
    name: str,
    tag: str,
    targets: Mapping[Any, float],
    *,
    expected: Any,
    has_expected: bool,
    author: str | None,
) -> Version:
    """Point ``tag`` at ``targets`` (``{ref: weight}``); return the heaviest target's Version.

    One target with weight 1 is an ordinary tag move (and ends a split).
    """
    name_id, head = lock_name(connection, name, create=False)
    rows = {}
    weights: dict[int, float] = {}
    for ref, weight in targets.items():
        row = resolve(connection, name, name_id, head, ref)
        if row.number in weights:
            raise InvalidInputError(
                f"split of {name!r}: {ref!r} names version {row.number}, "
                "which the split already lists"
            )
        rows[row.number] = row
        weights[row.number] = weight
    current = _split.current_target(connection, name_id, tag)
    policy = _policy(connection, name_id, tag)

    def refuse(error: ConflictError) -> _Refused:
        return _Refused(error, name_id, tag, weights, author)

    if policy is not None and policy.require_expected and not has_expected:
        raise refuse(
            ProtectedTagError(
                f"tag {tag!r} of {name!r} is protected: moving it needs expected= (--expect) (it points at "
                f"{_split.describe_target(current)})"
            )
        )
    if has_expected and not _matches(expected, current):
        error = _stale(name, tag, current, expected)
        raise refuse(error) if policy is not None else error
    if policy is not None and policy.condition is not None:
        condition = parse_condition(policy.condition)
        for number, row in sorted(rows.items()):
            metadata = json.loads(row.metadata)
            if not condition.matches(metadata):
                raise refuse(
                    ProtectedTagError(
                        f"tag {tag!r} of {name!r} is protected by the condition "
                        f"{policy.condition!r}: version {number} does not satisfy it (metadata "
                        f"{json.dumps(metadata, sort_keys=True)})"
                    )
                )
    top = _split.primary(weights)
    if current != weights:
        _tags.move(connection, name_id, tag, weights, current, author=author)
        notify_change(connection, name)
    return version(connection, name, rows[top])


def _stale(
    name: str, tag: str, current: Mapping[int, float] | None, expected: Any
) -> ConflictError:
    wanted = _split.describe_target(expected) if isinstance(expected, Mapping) else expected
    return ConflictError(
        f"tag {tag!r} of {name!r} points at {_split.describe_target(current)}, "
        f"not {wanted} (expected): it was moved in between"
    )


def remove(
    connection: Connection,
    name: str,
    tag: str,
    *,
    expected: Any,
    has_expected: bool,
    force: bool,
    author: str | None,
) -> int:
    """Remove ``tag`` (and its split); return the version it pointed at (the heaviest)."""
    name_id, _head = lock_name(connection, name, create=False)
    current = _split.current_target(connection, name_id, tag)
    if current is None:
        raise VersionNotFound(
            f"tag {tag!r} of {name!r} not found: {describe(connection, name, name_id)}"
        )
    policy = _policy(connection, name_id, tag)
    if policy is not None and not force:
        raise _Refused(
            ProtectedTagError(
                f"tag {tag!r} of {name!r} is protected: removing it needs force=True (--force) "
                "(or unprotect it first)"
            ),
            name_id,
            tag,
            None,
            author,
        )
    if has_expected and not _matches(expected, current):
        error = _stale(name, tag, current, expected)
        raise _Refused(error, name_id, tag, None, author) if policy is not None else error
    previous = _split.primary(current)
    _tags.move(connection, name_id, tag, None, current, author=author)
    if policy is not None:
        _audit(
            connection,
            name_id,
            tag,
            "forced-untag",
            f"removed the protected tag (it pointed at {_split.describe_target(current)})",
            author=author,
            weights=current,
        )
    notify_change(connection, name)
    return previous


def protect(
    connection: Connection,
    name: str,
    tag: str,
    *,
    require_expected: bool,
    where: str | None,
    author: str | None,
) -> None:
    """Create or replace the policy of ``tag`` and audit the change."""
    name_id, _head = lock_name(connection, name, create=False)
    connection.execute(
        delete(t.tag_policies).where(
            t.tag_policies.c.name_id == name_id, t.tag_policies.c.tag == tag
        )
    )
    connection.execute(
        insert(t.tag_policies).values(
            name_id=name_id,
            tag=tag,
            require_expected=require_expected,
            condition=where,
            protected_at=_now(),
            author=author,
        )
    )
    rules = [
        ("moves need expected=" if require_expected else "moves need no expected="),
        *([f"targets must satisfy {where!r}"] if where is not None else []),
    ]
    _audit(connection, name_id, tag, "protect", "; ".join(rules), author=author)


def unprotect(connection: Connection, name: str, tag: str, *, author: str | None) -> None:
    """Remove the policy of ``tag`` and audit the change; raise if there is none."""
    name_id, _head = lock_name(connection, name, create=False)
    removed = connection.execute(
        delete(t.tag_policies).where(
            t.tag_policies.c.name_id == name_id, t.tag_policies.c.tag == tag
        )
    )
    if not removed.rowcount:
        raise VersionNotFound(f"tag {tag!r} of {name!r} is not protected")
    _audit(connection, name_id, tag, "unprotect", "protection removed", author=author)
