"""The store's errors: one hierarchy under :class:`StoreError`.

Each message says what was asked and what exists, e.g.
``version 9 of 'pipeline' not found: 'pipeline' has versions 1..3 and tags production, staging``.
"""

from __future__ import annotations

from msgflux.errors import MsgfluxError

__all__ = [
    "StoreError",
    "InvalidInputError",
    "NameNotFound",
    "VersionNotFound",
    "ConflictError",
    "ProtectedTagError",
    "IntegrityError",
    "SchemaError",
    "ReadOnlyError",
    "QueryTimeout",
    "LockTimeout",
    "DatabaseError",
]


class StoreError(MsgfluxError):
    """Base class of every error raised by :mod:`msgflux.store`."""


class InvalidInputError(StoreError, ValueError):
    """A name, key, value, tag, version reference, option or file was refused.

    Nothing was written. The message names the offending item.
    """


class VersionNotFound(StoreError, LookupError):
    """A name, version number, tag or snapshot prefix does not exist."""


class NameNotFound(VersionNotFound):
    """The name has no history in this store."""


class ConflictError(StoreError):
    """A compare-and-swap failed or two histories diverged; nothing was written."""


class ProtectedTagError(ConflictError):
    """A guarded tag refused a move: ``expected=`` missing, its condition unmet, or untag
    without ``force=True``. Nothing moved; the refusal is kept in the tag audit record."""


class IntegrityError(StoreError):
    """Stored or imported content does not match its hashes."""


class SchemaError(StoreError):
    """The database schema is newer than this release, or is not a store at all."""


class ReadOnlyError(StoreError):
    """:meth:`StateStore.query` refused a statement that would write or change settings."""


class QueryTimeout(StoreError):
    """A :meth:`StateStore.query` ran longer than its time limit and was interrupted."""


class LockTimeout(StoreError):
    """Another writer held the database lock longer than ``lock_timeout`` seconds."""


class DatabaseError(StoreError):
    """The database could not be opened, read or written (read-only file, full disk, lost connection...)."""
