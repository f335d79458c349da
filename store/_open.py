"""Opening a store: a target (path or URL) becomes a migrated (or checked) engine.

Reading guide: :func:`open_engine` is what :class:`~msgflux.store.StateStore`
does on open; :class:`Opened` is the same without the methods, for a
:class:`~msgflux.store.Follower` given a path or URL instead of a store.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from msgflux.store.engine import (
    STATEMENT_TIMEOUT,
    create_store_engine,
    read_transaction,
    resolve_url,
)
from msgflux.store.errors import InvalidInputError
from msgflux.store.migrate import check_current, upgrade

__all__: list[str] = []


def check_seconds(option: str, seconds: object) -> float:
    """``seconds`` as a float; InvalidInputError unless it is a positive number."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise InvalidInputError(f"{option} must be a positive number of seconds")
    return float(seconds)


def open_engine(
    target: str | os.PathLike[str] | URL,
    *,
    migrate: bool,
    lock_timeout: float,
    durability: str,
    statement_timeout: float,
) -> tuple[URL, Engine]:
    """The URL and engine of ``target``, its schema upgraded (``migrate``) or checked.

    Raises:
        InvalidInputError: an unusable target; DatabaseError: it cannot be opened;
        SchemaError: written by a newer release (or older, without ``migrate``).
    """
    url = resolve_url(target)
    engine = create_store_engine(
        url, lock_timeout=lock_timeout, durability=durability, statement_timeout=statement_timeout
    )
    try:
        if migrate:
            upgrade(engine, lock_timeout=lock_timeout)
        else:
            read_transaction(
                engine, "opening the store", lambda connection: check_current(engine, connection)
            )
    except BaseException:
        engine.dispose()
        raise
    return url, engine


class Opened:
    """A store's URL, engine and lock timeout, opened as ``StateStore(target)`` opens them."""

    def __init__(self, target: str | os.PathLike[str] | URL, *, lock_timeout: float = 30.0) -> None:
        self.lock_timeout = lock_timeout
        self.url, self._engine = open_engine(
            target,
            migrate=True,
            lock_timeout=lock_timeout,
            durability="normal",
            statement_timeout=STATEMENT_TIMEOUT,
        )

    @property
    def engine(self) -> Engine:
        """The engine (see :attr:`StateStore.engine <msgflux.store.StateStore.engine>`)."""
        return self._engine

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()
