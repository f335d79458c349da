"""The statements on the save and load paths, run on the pooled connection's DB-API cursor.

Why not SQLAlchemy expressions here: building and compiling a ``select()``
per call, then wrapping its result, was most of a 50-key save and load
(``benchmarks/README.md``). These statements are written once, in SQL that
SQLite and PostgreSQL both accept, with ``?`` placeholders rewritten to the
driver's ``%s`` for psycopg, and run on the cursor of the connection that
SQLAlchemy checked out: SQLAlchemy still owns the pool and the transaction
(BEGIN IMMEDIATE, commit, rollback), and driver errors are wrapped in
SQLAlchemy's ``DBAPIError`` exactly as its own execution would, so the
retry and error translation in ``engine.py`` see no difference. Everything
else in the store uses Core.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, exc

# "{lock}" becomes a row lock on PostgreSQL; SQLite has none (BEGIN IMMEDIATE
# already holds the database's write lock).
_STATEMENTS = {
    # Two statements, not one join: on PostgreSQL a writer that waited for the
    # row lock re-reads only the locked row under READ COMMITTED, so columns
    # joined from other tables would come back NULL (every concurrent save then
    # got parent = NULL). Lock first, then read the head it protects.
    "lock_name": "SELECT id, head FROM names WHERE name = ? {lock_names}",
    "head_version": """
        SELECT v.number, v.snapshot_id, s.hash, v.parent
        FROM versions v JOIN snapshots s ON s.id = v.snapshot_id
        WHERE v.name_id = ? AND v.number = ?""",
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
    "content_of_number": """
        SELECT e.key, b.value_type, b.text FROM names n
        JOIN versions v ON v.name_id = n.id AND v.number = ?
        JOIN entries e ON e.snapshot_id = v.snapshot_id
        JOIN blobs b ON b.id = e.blob_id
        WHERE n.name = ? ORDER BY e.position""",
    "content_of_head": """
        SELECT e.key, b.value_type, b.text FROM names n
        JOIN versions v ON v.name_id = n.id AND v.number = n.head
        JOIN entries e ON e.snapshot_id = v.snapshot_id
        JOIN blobs b ON b.id = e.blob_id
        WHERE n.name = ? ORDER BY e.position""",
    "content": """
        SELECT e.key, b.value_type, b.text FROM entries e JOIN blobs b ON b.id = e.blob_id
        WHERE e.snapshot_id = ? ORDER BY e.position""",
}

_LOCKS = {
    "sqlite": {"lock_names": "", "share_blobs": ""},
    # A concurrent gc must not delete a value between our lookup and our insert.
    "postgresql": {"lock_names": "FOR UPDATE", "share_blobs": "FOR SHARE"},
}

_BLOB_IDS = "SELECT hash, id FROM blobs WHERE hash IN ({marks}) {share_blobs}"


def _for(dialect: str, sql: str) -> str:
    text = " ".join(sql.split()).format(**_LOCKS[dialect]).strip()
    return text.replace("?", "%s") if dialect == "postgresql" else text


_BY_DIALECT = {dialect: {name: _for(dialect, sql) for name, sql in _STATEMENTS.items()}
               for dialect in _LOCKS}


def _cursor_call(connection: Connection, sql: str, params: Any, many: bool) -> Any:
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except connection.dialect.loaded_dbapi.Error as error:
        disconnected = connection.dialect.is_disconnect(error, dbapi_connection, cursor)
        if disconnected:
            connection.invalidate(error)
        raise exc.DBAPIError.instance(
            sql, params, error, connection.dialect.loaded_dbapi.Error,
            connection_invalidated=disconnected, dialect=connection.dialect) from error
    return cursor


def _sql(connection: Connection, statement: str) -> str:
    return _BY_DIALECT[connection.dialect.name][statement]


def fetch_all(connection: Connection, statement: str, params: Sequence[Any]) -> list[Any]:
    """Execute one named statement and return every row as a tuple."""
    cursor = _cursor_call(connection, _sql(connection, statement), tuple(params), many=False)
    try:
        return list(cursor.fetchall())
    finally:
        cursor.close()


def fetch_one(connection: Connection, statement: str, params: Sequence[Any]) -> Any:
    """Execute one named statement and return its first row, or ``None``."""
    cursor = _cursor_call(connection, _sql(connection, statement), tuple(params), many=False)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def execute(connection: Connection, statement: str, params: Sequence[Any]) -> None:
    """Execute one named statement that returns no rows."""
    _cursor_call(connection, _sql(connection, statement), tuple(params), many=False).close()


def execute_many(connection: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """Execute one named statement for every row (the driver's ``executemany``)."""
    if rows:  # an empty executemany misfires on some drivers
        _cursor_call(connection, _sql(connection, statement), rows, many=True).close()


@lru_cache(maxsize=64)
def _blob_ids_sql(dialect: str, count: int) -> str:
    return _for(dialect, _BLOB_IDS.replace("{marks}", ", ".join("?" * count)))


def blob_ids(connection: Connection, digests: Sequence[str]) -> list[tuple[str, int]]:
    """``(hash, id)`` of the stored values among ``digests`` (at most a few hundred)."""
    sql = _blob_ids_sql(connection.dialect.name, len(digests))
    cursor = _cursor_call(connection, sql, tuple(digests), many=False)
    try:
        return [(digest, blob_id) for digest, blob_id in cursor.fetchall()]
    finally:
        cursor.close()


def time_param(connection: Connection, moment: datetime) -> Any:
    """A UTC datetime as the column type stores it (SQLAlchemy's text format on SQLite)."""
    if connection.dialect.name == "sqlite":
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment
