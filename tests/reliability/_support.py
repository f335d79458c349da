"""Helpers shared by the reliability tests: deterministic content, table dumps, structure checks.

Kept free of pytest so that the worker processes (``_workers.py``) can import it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from msgflux.store.engine import resolve_url
from msgflux.store.hashing import snapshot_hash, value_hash

#: Every table of the store, in dump order (alembic_version included: a refused
#: call must not touch the schema stamp either).
TABLES = (
    "alembic_version",
    "names",
    "versions",
    "snapshots",
    "keys",
    "spans",
    "blobs",
    "tags",
    "tag_events",
    "tag_splits",
    "tag_policies",
    "tag_audit",
)


def state_for(writer: int, index: int) -> dict[str, Any]:
    """A distinct, reproducible state dict for save ``index`` of ``writer``.

    Key counts vary (5..10 keys) and some values are shared across saves, so
    the content-addressed paths (new blob, reused blob) are both exercised.
    """
    state: dict[str, Any] = {
        "writer": writer,
        "index": index,
        "text": f"writer {writer} save {index}",
        "shared.prompt": "Be brief." if index % 2 else "Be helpful and concise.",
        "nested": {"w": writer, "i": [index, index * 0.5, None, True]},
    }
    for extra in range((writer * 7 + index) % 6):
        state[f"extra.{extra}"] = f"{writer}-{index}-{extra}"
    return state


def crash_state(seed: int, counter: int) -> dict[str, Any]:
    """The state the crash child saves for ``counter``: 4..303 keys, reproducible from the pair.

    Large states make a save take long enough for a SIGKILL to land inside it.
    """
    size = 4 + (counter * 37 + seed) % 300
    digest = hashlib.sha256(f"{seed}:{counter}".encode()).hexdigest()
    state: dict[str, Any] = {"counter": counter, "seed": seed}
    for key in range(size):
        # Every 3rd value is shared with other counters (deduplicated blobs).
        state[f"layer{key // 50}.param{key}"] = (
            f"shared value {key}" if key % 3 == 0 else f"{digest}:{key}:" + "x" * (key % 64)
        )
    return state


def expected_snapshot(state: dict[str, Any]) -> str:
    """The snapshot hash of ``state`` by the documented hashing rules."""
    return snapshot_hash({key: value_hash(value) for key, value in state.items()})


def raw_engine(url: str) -> sa.Engine:
    """A plain engine on the store's database (no store logic), for dumps and tampering."""
    return sa.create_engine(resolve_url(url), poolclass=NullPool)


def dump(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every store table, sorted: two dumps are equal iff nothing changed."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        present = set(sa.inspect(connection).get_table_names())
        for table in TABLES:
            if table not in present:
                tables[table] = []
                continue
            rows = connection.exec_driver_sql(f"SELECT * FROM {table}").all()
            tables[table] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def structure_problems(engine: sa.Engine) -> list[str]:
    """Half-written rows the schema alone would not catch; empty when the store is whole.

    * (each version's key count against its snapshot is verify()'s to check);
    * every version's snapshot exists, every span's value exists;
    * no key has two spans at one version;
    * ``names.head`` equals the highest version number, and numbers run 1..head
      (these tests never prune).
    """
    checks = {
        # one pass over spans (a window), not a join of every span with every other
        "key with overlapping spans": """
            SELECT key_id FROM (
                SELECT key_id, until,
                       LEAD(since) OVER (PARTITION BY name_id, key_id ORDER BY since) AS next
                FROM spans) AS ordered
            WHERE next IS NOT NULL AND (until IS NULL OR until > next)""",
        "version without its snapshot": """
            SELECT v.id FROM versions v
            WHERE NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.id = v.snapshot_id)""",
        "span without its value": """
            SELECT p.key_id FROM spans p
            WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = p.blob_id)""",
        "head is not the highest version": """
            SELECT n.name FROM names n
            WHERE n.head <> COALESCE((SELECT MAX(v.number) FROM versions v
                                      WHERE v.name_id = n.id), 0)""",
        "gap in version numbers": """
            SELECT n.name FROM names n
            WHERE n.head <> (SELECT COUNT(*) FROM versions v WHERE v.name_id = n.id)""",
    }
    problems = []
    with engine.connect() as connection:
        for label, sql in checks.items():
            for row in connection.exec_driver_sql(sql):
                problems.append(f"{label}: {row[0]}")
    return problems


def placeholder(dialect: str) -> str:
    """The driver's positional parameter marker for :meth:`StateStore.query`."""
    return "?" if dialect == "sqlite" else "%s"


def paths_in(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested JSON document (``()`` first): where a test may tamper."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths_in(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths_in(value, (*prefix, index))
    return found


def bundle_document(path: Any) -> dict[str, Any]:
    """A bundle file (any format) as one version-1 document, to tamper with and import."""
    from msgflux.store import _bundle

    return _bundle.document(_bundle.read(path)())
