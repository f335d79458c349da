"""msgflux.store: a versioned, content-hashed store of state dicts on SQLite or PostgreSQL.

Every saved state dict becomes version ``n + 1`` of its name; identical
content is stored once. Roll back, diff, tag, load any version into a running
module, and query the whole history with SQL through documented views.

Example::

    from msgflux.store import StateStore
    store = StateStore("states.db")
    v1 = store.save("pipeline", module, message="baseline", metadata={"score": 0.71})
"""

from msgflux.store._follow import Follower
from msgflux.store.api import StateStore, VersionRef
from msgflux.store.errors import (
    ConflictError,
    DatabaseError,
    IntegrityError,
    InvalidInputError,
    LockTimeout,
    NameNotFound,
    ProtectedTagError,
    QueryTimeout,
    ReadOnlyError,
    SchemaError,
    StoreError,
    VersionNotFound,
)
from msgflux.store.types import (
    BlameLine,
    ChangeSummary,
    GcResult,
    Problem,
    QueryResult,
    Row,
    StateDiff,
    TagEvent,
    VerifyReport,
    Version,
)

__all__ = [
    "StateStore",
    "VersionRef",
    "Follower",
    "Version",
    "StateDiff",
    "TagEvent",
    "VerifyReport",
    "Problem",
    "QueryResult",
    "Row",
    "ChangeSummary",
    "BlameLine",
    "GcResult",
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
