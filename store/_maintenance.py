"""Maintenance: pruning old versions, collecting unused content, verifying every hash.

Reading guide: the bodies of :meth:`StateStore.prune <msgflux.store.StateStore.prune>`,
``gc`` and ``verify``. What gc deletes is decided in
:mod:`msgflux.store._spans` (``collect``), how space is given back in
:mod:`msgflux.store._space`, what verify checks in :mod:`msgflux.store._verify`.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, select

from msgflux.store import _space, _spans, _split
from msgflux.store import schema as t
from msgflux.store._rows import CHUNK, Backend, lock_name, tags_by_version
from msgflux.store._verify import verify as _verify
from msgflux.store.engine import read_transaction, write_transaction
from msgflux.store.types import GcResult, Progress, VerifyReport

__all__: list[str] = []


def no_progress(phase: str, done: int, total: int) -> None:
    """A ``progress`` callback that reports nothing."""


def prune(store: Backend, name: str, *, keep_last: int, dry_run: bool) -> list[int]:
    """:meth:`StateStore.prune` once its arguments are checked."""

    def work(connection: Connection) -> list[int]:
        name_id, _head = lock_name(connection, name, create=False)
        numbers = list(
            connection.execute(
                select(t.versions.c.number)
                .where(t.versions.c.name_id == name_id)
                .order_by(t.versions.c.number.desc())
                .offset(keep_last)
            ).scalars()
        )
        tagged = set(tags_by_version(connection, name_id))
        tagged |= _split.split_versions(connection, name_id)
        doomed = sorted(number for number in numbers if number not in tagged)
        if dry_run:
            return doomed
        for start in range(0, len(doomed), CHUNK):
            connection.execute(
                delete(t.versions).where(
                    t.versions.c.name_id == name_id,
                    t.versions.c.number.in_(doomed[start : start + CHUNK]),
                )
            )
        return doomed

    return write_transaction(
        store.engine, f"pruning {name!r}", work, lock_timeout=store.lock_timeout
    )


def gc(store: Backend, *, vacuum: bool) -> GcResult:
    """:meth:`StateStore.gc` once ``vacuum`` is checked."""
    if vacuum:
        before = _space.database_size(store.engine)
        collected = gc(store, vacuum=False)
        _space.vacuum(store.engine, lock_timeout=store.lock_timeout)
        return GcResult(
            collected.snapshots,
            collected.blobs,
            bytes_before=before,
            bytes_after=_space.database_size(store.engine),
        )

    def work(connection: Connection) -> GcResult:
        if connection.dialect.name == "postgresql":
            # Saves insert into these tables; let them finish and wait for us.
            connection.exec_driver_sql(
                "LOCK TABLE snapshots, spans, keys, blobs IN SHARE ROW EXCLUSIVE MODE"
            )
        snapshots, blobs = _spans.collect(connection)
        return GcResult(snapshots=snapshots, blobs=blobs)

    return write_transaction(
        store.engine, "collecting garbage", work, lock_timeout=store.lock_timeout
    )


def verify(store: Backend, progress: Progress | None) -> VerifyReport:
    """:meth:`StateStore.verify`."""
    return read_transaction(
        store.engine,
        "verifying the store",
        lambda connection: _verify(connection, progress or no_progress),
    )
