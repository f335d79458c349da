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

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import PoolProxiedConnection

# The value of each key of a version: the key's span with the greatest SINCE at
# or before the version, unless it ended by then. One primary-key seek per key
# of the name (the same rule as the views in migrations/versions/0006_spans.py).
# "{{span_at_...}}" is written per dialect (_SPAN_AT): on SQLite a CROSS JOIN,
# which keeps keys in the outer loop (left to itself the planner scans every
# span of the name); on PostgreSQL a LATERAL subquery with ORDER BY ... LIMIT 1,
# one backward index seek per key (with "since = (SELECT MAX ...)" its planner
# read every span of each key and filtered: 12 ms for 7 keys at 400 versions).
_SPAN_AT = {
    "sqlite": """
        CROSS JOIN spans s ON s.name_id = k.name_id AND s.key_id = k.id
            AND s.since = (SELECT MAX(x.since) FROM spans x
                           WHERE x.name_id = k.name_id AND x.key_id = k.id AND x.since <= {n})
            AND (s.until IS NULL OR s.until > {n})""",
    "postgresql": """
        JOIN LATERAL (SELECT x.name_id, x.key_id, x.since, x.until, x.position, x.blob_id,
                             x.origin
                      FROM spans x WHERE x.name_id = k.name_id AND x.key_id = k.id
                                     AND x.since <= {n}
                      ORDER BY x.since DESC LIMIT 1) s
            ON s.until IS NULL OR s.until > {n}""",
}
_AT_NUMBERS = {"param": "?", "version": "v.number", "head": "n.head"}


def _at(number: str) -> str:
    return f"{{span_at_{number}}}"


def _blame(source: str, at: str, origin: str, where: str) -> str:
    return f"""
        SELECT k.key, b.value_type, b.text, f.number, f.created_at, f.author, f.message,
               s.position
        {source} {_at(at)}
        JOIN blobs b ON b.id = s.blob_id
        {origin}
        WHERE {where}"""


# The version a span's value came from: the first one kept at or after its origin
# (the origin itself unless pruned), or just the origin, NULL if pruned (the fast
# statements: one seek fewer per key; a NULL sends blame to the general one).
_FIRST_KEPT = """JOIN versions f ON f.name_id = k.name_id AND f.number = (
            SELECT MIN(g.number) FROM versions g
            WHERE g.name_id = k.name_id AND g.number >= s.origin AND g.number <= ?)"""
_ORIGIN = "{origin_version}"
# Per dialect: on PostgreSQL a LATERAL lookup (LIMIT 1 keeps the planner from
# flattening it), as with a plain join and statistics from a young table the
# planner read every version of the name for each key and filtered on the
# number (34 ms for 50 keys at 2,000 versions; 1 ms with the lookup).
_ORIGIN_VERSION = {
    "sqlite": "LEFT JOIN versions f ON f.name_id = k.name_id AND f.number = s.origin",
    "postgresql": """LEFT JOIN LATERAL (
            SELECT g.number, g.created_at, g.author, g.message FROM versions g
            WHERE g.name_id = k.name_id AND g.number = s.origin LIMIT 1) f ON TRUE""",
}


# "{lock_names}" becomes a row lock on PostgreSQL; SQLite has none (BEGIN
# IMMEDIATE already holds the database's write lock).
_STATEMENTS = {
    # Two statements, not one join: on PostgreSQL a writer that waited for the
    # row lock re-reads only the locked row under READ COMMITTED, so columns
    # joined from other tables would come back NULL (every concurrent save then
    # got parent = NULL). Lock first, then read the head it protects.
    "lock_name": "SELECT id, head, created_at FROM names WHERE name = ? {lock_names}",
    "head_version": """
        SELECT v.number, v.snapshot_id, s.hash, v.parent
        FROM versions v JOIN snapshots s ON s.id = v.snapshot_id
        WHERE v.name_id = ? AND v.number = ?""",
    # The head's snapshot hash, read without any lock (an identical save stops here).
    "head_snapshot": """
        SELECT v.number, s.hash FROM names n
        JOIN versions v ON v.name_id = n.id AND v.number = n.head
        JOIN snapshots s ON s.id = v.snapshot_id
        WHERE n.name = ?""",
    "insert_name": "INSERT INTO names (name, head, created_at) VALUES (?, 0, ?)",
    "snapshot_id": "SELECT id FROM snapshots WHERE hash = ?",
    "insert_blob": """
        INSERT INTO blobs (hash, value_type, text) VALUES (?, ?, ?)
        ON CONFLICT (hash) DO NOTHING""",
    # No row back when the snapshot exists (another name or version has this content).
    "insert_snapshot": """
        INSERT INTO snapshots (hash, key_count, created_at) VALUES (?, ?, ?)
        ON CONFLICT (hash) DO NOTHING RETURNING id""",
    "key_id": "SELECT id FROM keys WHERE name_id = ? AND key = ?",
    "insert_key": "INSERT INTO keys (name_id, key) VALUES (?, ?) RETURNING id",
    "insert_span": """
        INSERT INTO spans (name_id, key_id, since, until, position, blob_id, origin)
        VALUES (?, ?, ?, NULL, ?, ?, ?)""",
    "close_span": "UPDATE spans SET until = ? WHERE name_id = ? AND key_id = ? AND since = ?",
    "insert_version": """
        INSERT INTO versions (name_id, number, snapshot_id, parent, created_at, message,
                              author, metadata)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
    "set_head": "UPDATE names SET head = ? WHERE id = ?",
    # Every key of version ? of name_id ?: what a save compares against.
    "cells": f"""
        SELECT k.key, k.id, s.since, s.position, s.blob_id, b.hash, s.origin
        FROM keys k {_at("param")}
        JOIN blobs b ON b.id = s.blob_id
        WHERE k.name_id = ?""",
    # The state of a version as (key, type, text, position) rows, in no order:
    # sorted by position in Python (decode_state), which costs a sixth fewer
    # instructions than SQLite's sorter on a 50-key load. content_of_number takes
    # (number, number, number, name) and finds the name and version once, in a
    # scalar subquery (as a join: 7% more instructions); no rows for a missing
    # version.
    "content_of_number": f"""
        SELECT k.key, b.value_type, b.text, s.position FROM keys k {_at("param")}
        JOIN blobs b ON b.id = s.blob_id
        WHERE k.name_id = (SELECT n.id FROM names n
                           JOIN versions v ON v.name_id = n.id AND v.number = ?
                           WHERE n.name = ?)""",
    "content_of_head": f"""
        SELECT k.key, b.value_type, b.text, s.position FROM names n
        {{cross}} keys k ON k.name_id = n.id {_at("head")}
        JOIN blobs b ON b.id = s.blob_id
        WHERE n.name = ?""",
    "content": f"""
        SELECT k.key, b.value_type, b.text, s.position FROM keys k {_at("param")}
        JOIN blobs b ON b.id = s.blob_id
        WHERE k.name_id = ?""",
    # (key, value hash, type, text) of a version, for bundles.
    "hashed_content": f"""
        SELECT k.key, b.hash, b.value_type, b.text FROM keys k {_at("param")}
        JOIN blobs b ON b.id = s.blob_id
        WHERE k.name_id = ? ORDER BY s.position""",
    # Each key of a version with the earliest surviving version since which it has
    # held its value (blame: the span's origin, or the first version kept after
    # it), that version's time, author and message, and the key's position (rows
    # in no order, as the content statements). "blame" takes (number,
    # number, number, name_id); the fast "blame_of_number" (number, name), as
    # content_of_number does (no rows for a missing version), and "blame_of_head"
    # (name) give NULL versions where an origin was pruned.
    "blame": _blame("FROM keys k", "param", _FIRST_KEPT, "k.name_id = ?"),
    "blame_of_number": _blame(
        "FROM names n {cross} versions v ON v.name_id = n.id AND v.number = ?\n"
        "        {cross} keys k ON k.name_id = n.id",
        "version",
        _ORIGIN,
        "n.name = ?",
    ),
    "blame_of_head": _blame(
        "FROM names n {cross} keys k ON k.name_id = n.id", "head", _ORIGIN, "n.name = ?"
    ),
    "version_time": """
        SELECT number, created_at FROM versions WHERE name_id = ? AND number >= ?
        ORDER BY number LIMIT 1""",
    # The spans of one key, newest first (log --key): a primary-key range of spans
    # (as a join, PostgreSQL's planner could scan spans: 15 ms at 2,000 versions).
    "key_spans": """
        SELECT s.since, s.until, s.blob_id FROM spans s
        WHERE s.name_id = ?
          AND s.key_id = (SELECT k.id FROM keys k WHERE k.name_id = ? AND k.key = ?)
        ORDER BY s.since DESC""",
}

_LOCKS: dict[str, dict[str, str]] = {
    "sqlite": {"lock_names": "", "share_blobs": "", "cross": "CROSS JOIN"},
    # A concurrent gc must not delete a value between our lookup and our insert.
    "postgresql": {"lock_names": "FOR UPDATE", "share_blobs": "FOR SHARE", "cross": "JOIN"},
}
for _dialect, _words in _LOCKS.items():
    _words["origin_version"] = _ORIGIN_VERSION[_dialect]
    for _label, _number in _AT_NUMBERS.items():
        _words[f"span_at_{_label}"] = _SPAN_AT[_dialect].replace("{n}", _number)

_BLOB_IDS = "SELECT hash, id FROM blobs WHERE hash IN ({marks}) {share_blobs}"
# For each number P given (a VALUES list: its column is "column1" on both
# databases), the first surviving version at or after P and the last one before
# that: one round trip for a chunk of a key's change points (log --key).
_NEIGHBOURS = """
    SELECT p.column1, f.number, (SELECT MAX(w.number) FROM versions w
                                 WHERE w.name_id = ? AND w.number < f.number)
    FROM (VALUES {marks}) AS p
    LEFT JOIN versions f ON f.name_id = ? AND f.number = (
        SELECT MIN(v.number) FROM versions v WHERE v.name_id = ? AND v.number >= p.column1)"""


def _for(dialect: str, sql: str) -> str:
    text = " ".join(sql.format(**_LOCKS[dialect]).split())
    return text.replace("?", "%s") if dialect == "postgresql" else text


_BY_DIALECT = {
    dialect: {name: _for(dialect, sql) for name, sql in _STATEMENTS.items()} for dialect in _LOCKS
}


def _cursor_call(connection: Connection, sql: str, params: Any, many: bool) -> Any:
    return _dbapi_call(
        connection.connection, connection.invalidate, connection.dialect, sql, params, many
    )


def _dbapi_call(
    pooled: PoolProxiedConnection,
    invalidate: Callable[[BaseException], None],
    dialect: Dialect,
    sql: str,
    params: Any,
    many: bool,
) -> Any:
    """Run ``sql`` on a cursor of ``pooled``; a driver error is raised as SQLAlchemy's
    ``DBAPIError``, after ``invalidate`` if it means the connection is gone."""
    dbapi_connection = pooled.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except dialect.loaded_dbapi.Error as error:
        disconnected = dialect.is_disconnect(error, dbapi_connection, cursor)
        if disconnected:
            invalidate(error)
        raise _wrapped(dialect, sql, params, error, disconnected) from error
    return cursor


def _wrapped(
    dialect: Dialect, sql: str | None, params: Any, error: Exception, disconnected: bool
) -> exc.StatementError:
    """A driver error as SQLAlchemy's own execution wraps it (a ``DBAPIError``)."""
    return exc.DBAPIError.instance(
        sql,
        params,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=disconnected,
        dialect=dialect,
    )


def read_rows(engine: Engine, statement: str, params: Sequence[Any]) -> list[Any]:
    """Every row of one named SELECT, run with no explicit transaction.

    One statement is its own consistent snapshot (SQLite autocommit, PostgreSQL
    statement snapshot), so BEGIN/COMMIT is skipped; and the pooled DB-API
    connection is used without a SQLAlchemy ``Connection`` around it (about
    10 us of a 50-key load). Driver errors are wrapped as :func:`fetch_all`
    wraps them.
    """
    dialect = engine.dialect
    try:
        pooled = engine.raw_connection()
    except dialect.loaded_dbapi.Error as error:  # wrapped as Engine.connect() wraps it
        raise _wrapped(
            dialect, None, None, error, dialect.is_disconnect(error, None, None)
        ) from error
    try:
        sql = _BY_DIALECT[dialect.name][statement]
        cursor = _dbapi_call(pooled, pooled.invalidate, dialect, sql, tuple(params), many=False)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()
    finally:
        pooled.close()


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


def run(connection: Connection, sql: str) -> None:
    """Execute one fixed statement with no parameters and no rows (``BEGIN``...)."""
    _cursor_call(connection, sql, (), many=False).close()


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


@lru_cache(maxsize=16)
def _neighbours_sql(dialect: str, count: int) -> str:
    return _for(
        dialect, _NEIGHBOURS.replace("{marks}", ", ".join(["(CAST(? AS INTEGER))"] * count))
    )


def neighbours(
    connection: Connection, name_id: int, points: Sequence[int]
) -> list[tuple[int, int | None, int | None]]:
    """``(point, first surviving version >= point, last surviving version before that)``
    for each of ``points`` (at most a few hundred), in no particular order."""
    sql = _neighbours_sql(connection.dialect.name, len(points))
    # Placeholders in text order: the select list's, the points, the join's two.
    cursor = _cursor_call(connection, sql, (name_id, *points, name_id, name_id), many=False)
    try:
        return [(int(point), first, before) for point, first, before in cursor.fetchall()]
    finally:
        cursor.close()


def time_param(connection: Connection, moment: datetime) -> Any:
    """A UTC datetime as the column type stores it (SQLAlchemy's text format on SQLite)."""
    if connection.dialect.name == "sqlite":
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return moment


def time_value(raw: Any) -> datetime:
    """A stored time as read by the driver (text on SQLite) as an aware UTC datetime."""
    if isinstance(raw, str):
        try:  # SQLite's naive UTC text: five times faster than parsing, then replace()
            return datetime.fromisoformat(raw + "+00:00")
        except ValueError:  # text with its own offset
            raw = datetime.fromisoformat(raw)
    moment: datetime = raw
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
