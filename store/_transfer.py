"""Transfer: moving whole histories between stores, as a bundle file or store to store.

Reading guide: the bodies of :meth:`StateStore.export_bundle
<msgflux.store.StateStore.export_bundle>`, ``import_bundle`` and ``copy_to``.
The bundle format, its reader, writer and the importer that applies a record
stream are in :mod:`msgflux.store._bundle`; ``copy_to`` streams the records of
one store straight into the other's importer, in one write transaction there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from msgflux.store import _bundle
from msgflux.store._maintenance import no_progress
from msgflux.store._rows import Backend
from msgflux.store.engine import read_transaction, write_transaction
from msgflux.store.types import Progress
from msgflux.store.validation import check_label

__all__: list[str] = []


def wanted(names: Iterable[str] | None) -> list[str] | None:
    """``names`` checked as names (``None``: every name)."""
    return None if names is None else [check_label("name", name) for name in names]


def export_bundle(
    store: Backend,
    path: str | os.PathLike[str],
    names: Iterable[str] | None,
    progress: Progress | None,
) -> dict[str, int]:
    """:meth:`StateStore.export_bundle`."""
    chosen = wanted(names)
    report = progress or no_progress
    return read_transaction(
        store.engine,
        "exporting",
        lambda connection: _bundle.write(path, _bundle.export(connection, chosen, report)),
    )


def import_records(
    store: Backend, records: _bundle.Records, progress: Progress | None = None
) -> dict[str, list[int]]:
    """Apply a record stream to ``store`` in one write transaction (see ``import_bundle``)."""
    report = progress or no_progress
    return write_transaction(
        store.engine,
        "importing",
        lambda connection: _bundle.apply(connection, records, report),
        lock_timeout=store.lock_timeout,
    )


def copy_to(store: Backend, other: Backend, names: Iterable[str] | None) -> dict[str, list[int]]:
    """:meth:`StateStore.copy_to`: ``store``'s records streamed into ``other``."""
    chosen = wanted(names)
    return read_transaction(
        store.engine,
        "exporting",
        lambda connection: import_records(
            other, lambda: _bundle.export(connection, chosen, no_progress)
        ),
    )
