"""The statements on the save and load paths, as plain SQL run through ``exec_driver_sql``.

Why not SQLAlchemy expressions here: building and compiling a ``select()``
per call cost about 120 microseconds, half of a 50-key save
(``benchmarks/README.md``). These statements are written once, in SQL that
SQLite and PostgreSQL both accept, with ``?`` placeholders rewritten to the
driver's ``%s`` for psycopg; SQLAlchemy still owns the connection pool, the
transaction, error wrapping and retries. Everything else uses Core.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

# "{lock}" becomes a row lock on PostgreSQL; SQLite has none (BEGIN IMMEDIATE
# already holds the database's write lock).
_STATEMENTS = {
    "name_head": """
        SELECT n.id, n.head, v.number, v.snapshot_id, s.hash
        FROM names n
        LEFT JOIN versions v ON v.name_id = n.id AND v.number = n.head
        LEFT JOIN snapshots s ON s.id = v.snapshot_id
        WHERE n.name = ? {lock_names}""",
    "insert_name": "INSERT INTO names (name, head, created_at) VALUES (?, 0, ?)",
    "snapshot_id": "SELECT id FROM snapshots WHERE hash = ?",
    "snapshot_blob_ids": """
        SELECT b.hash, b.id FROM entries e JOIN blobs b ON b.id = e.blob_id
        WHERE e.snapshot_id = ?""",
    "insert_blob": """
        INSERT INTO blobs (hash, value_type, text) VALUES (?, ?, ?)
        ON CONFLICT (hash) DO NOTHING""",
    "insert_snapshot": """
        INSERT INTO snapshots (hash, key_count, created_at) VALUES (?, ?, ?) RETURNING id""",
    "insert_entry": """
        INSERT INTO entries (snapshot_id, key, position, blob_id) VALUES (?, ?, ?, ?)""",
    "insert_version": """
        INSERT INTO versions (name_id, number, snapshot_id, parent, created_at, message,
                              author, metadata)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
    "set_head": "UPDATE names SET head = ? WHERE id = ?",
    "version_snapshot": """
        SELECT v.snapshot_id FROM names n JOIN versions v ON v.name_id = n.id
        WHERE n.name = ? AND v.number = ?""",
    "head_snapshot": """
        SELECT v.snapshot_id FROM names n JOIN versions v
          ON v.name_id = n.id AND v.number = n.head
        WHERE n.name = ?""",
    "content": """
        SELECT e.key, b.value_type, b.text FROM entries e JOIN blobs b ON b.id = e.blob_id
        WHERE e.snapshot_id = ? ORDER BY e.position""",
}

_LOCKS = {
    "sqlite": {"lock_names": "", "share_blobs": ""},
    # A concurrent gc must not delete a value between our lookup and our insert.
    "postgresql": {"lock_names": "FOR UPDATE OF n", "share_blobs": "FOR SHARE"},
}

_BLOB_IDS = "SELECT hash, id FROM blobs WHERE hash IN ({marks}) {share_blobs}"


def _for(dialect: str, sql: str) -> str:
    text = " ".join(sql.split()).format(**_LOCKS[dialect]).strip()
    return text.replace("?", "%s") if dialect == "postgresql" else text


_BY_DIALECT = {dialect: {name: _for(dialect, sql) for name, sql in _STATEMENTS.items()}
               for dialect in _LOCKS}


def run(connection: Connection, statement: str, params: Sequence[Any]) -> Any:
    """Execute one named statement with positional ``params``; return the result."""
    return connection.exec_driver_sql(_BY_DIALECT[connection.dialect.name][statement],
                                      tuple(params))


def run_many(connection: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """Execute one named statement for every row (the driver's ``executemany``)."""
    if rows:  # an empty executemany misfires on some drivers
        connection.exec_driver_sql(_BY_DIALECT[connection.dialect.name][statement], rows)


def blob_ids(connection: Connection, digests: Sequence[str]) -> list[tuple[str, int]]:
    """``(hash, id)`` of the stored values among ``digests`` (at most a few hundred)."""
    dialect = connection.dialect.name
    sql = _for(dialect, _BLOB_IDS.replace("{marks}", ", ".join("?" * len(digests))))
    return [tuple(row) for row in connection.exec_driver_sql(sql, tuple(digests))]  # type: ignore[misc]


def time_param(connection: Connection, moment: datetime) -> Any:
    """A UTC datetime as the column type stores it (SQLAlchemy's text format on SQLite)."""
    if connection.dialect.name == "sqlite":
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment
