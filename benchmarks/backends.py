"""The implementations being compared, each behind the same small interface.

* :class:`StoreBackend`: ``msgflux.store.StateStore`` itself.
* :class:`SqliteFloor`: the same per-key-row design written by hand with the
  stdlib ``sqlite3`` module: the store's tables (``blobs``, ``snapshots``,
  ``entries``, ``names``, ``versions``), WAL, ``synchronous=NORMAL``,
  ``foreign_keys=ON``, ``BEGIN IMMEDIATE``, one transaction per save, value
  hashes = SHA-256 of canonical JSON, unchanged blobs skipped with one
  ``IN`` lookup. One persistent connection. This is the floor the store is
  measured against; with ``hash_cache=True`` it also keeps the store's
  in-process cache of string hashes.
* :class:`DeltaFloor`: the least a database can write per save, by hand:
  one row per *changed* key (``changes(key_id, version, blob_id)``, WITHOUT
  ROWID), the new values, and a version row with its snapshot hash; the
  previous version's value hashes are kept in memory. A load reads, per key,
  the change with the greatest version at or before the one asked for.
* :class:`NaiveSqlite`: the same tables without content addressing of values:
  every save re-hashes every value and inserts a blob row for every key.
* :class:`TomlFiles`: one TOML file per version (``tomli_w`` / ``tomllib``).
* :class:`GitToml`: one ``git commit`` of ``state.toml`` per version;
  a load is ``git show <rev>:state.toml`` parsed with ``tomllib``.

Every backend saves under one name and numbers versions 1, 2, 3...
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

__all__ = [
    "Backend",
    "StoreBackend",
    "SqliteFloor",
    "DeltaFloor",
    "NaiveSqlite",
    "TomlFiles",
    "GitToml",
    "tree_bytes",
]

NAME = "pipeline"


def tree_bytes(path: Path) -> int:
    """Apparent size of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def _sqlite_files_bytes(database: Path) -> int:
    return sum(
        tree_bytes(Path(f"{database}{suffix}"))
        for suffix in ("", "-wal", "-shm")
        if Path(f"{database}{suffix}").exists()
    )


def _checkpointed_bytes(database: Path) -> int:
    """Size once the WAL is folded into the main file (as after a clean close)."""
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return _sqlite_files_bytes(database)


class Backend:
    """Save a state dict as the next version; load a version by number."""

    label = "?"

    def save(self, state: dict[str, Any]) -> int:
        raise NotImplementedError

    def finish_saves(self) -> None:
        """Called once after the last save, before the loads (not timed)."""

    def load(self, number: int) -> dict[str, Any]:
        raise NotImplementedError

    def clear_caches(self) -> None:
        """Forget every in-process cache, as a fresh process would start (the 'cold' flow)."""

    def disk_bytes(self) -> int:
        """Bytes on disk as the implementation leaves them (SQLite: db + WAL + shm)."""
        raise NotImplementedError

    def compacted_bytes(self) -> int:
        """Bytes after the implementation's own compaction (WAL checkpoint, git gc)."""
        return self.disk_bytes()

    def close(self) -> None:
        pass


class StoreBackend(Backend):
    label = "StateStore"

    def __init__(self, folder: Path, store_class: Any = None) -> None:
        if store_class is None:
            from msgflux.store import StateStore as store_class

        self.path = folder / "store.db"
        self.store = store_class(self.path)

    def save(self, state: dict[str, Any]) -> int:
        return self.store.save(NAME, state).number

    def load(self, number: int) -> dict[str, Any]:
        return self.store.load(NAME, number)

    def clear_caches(self) -> None:
        # The value-hash cache and the parent's blob ids (whatever the store keeps
        # per process in ``*_cache`` dicts): a cold save, as in a fresh process.
        for attribute, value in vars(self.store).items():
            if attribute.endswith("_cache") and isinstance(value, dict):
                value.clear()

    def disk_bytes(self) -> int:
        return _sqlite_files_bytes(self.path)

    def compacted_bytes(self) -> int:
        return _checkpointed_bytes(self.path)

    def close(self) -> None:
        self.store.close()


# --- the raw sqlite3 floor ---------------------------------------------------------------

# The store's tables and indexes (migrations/versions/0001_initial.py), minus tags;
# IF NOT EXISTS, so that a floor reopens its file (benchmarks/instructions.py).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    id INTEGER PRIMARY KEY, hash VARCHAR(64) NOT NULL, value_type VARCHAR(8) NOT NULL,
    text TEXT NOT NULL, CONSTRAINT uq_blobs_hash UNIQUE (hash));
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY, hash VARCHAR(64) NOT NULL, key_count INTEGER NOT NULL,
    created_at DATETIME NOT NULL, CONSTRAINT uq_snapshots_hash UNIQUE (hash));
CREATE TABLE IF NOT EXISTS entries (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id), key TEXT NOT NULL,
    position INTEGER NOT NULL, blob_id INTEGER NOT NULL REFERENCES blobs (id),
    PRIMARY KEY (snapshot_id, key));
CREATE INDEX IF NOT EXISTS ix_entries_blob_id ON entries (blob_id);
CREATE TABLE IF NOT EXISTS names (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, head INTEGER NOT NULL,
    created_at DATETIME NOT NULL, CONSTRAINT uq_names_name UNIQUE (name));
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY, name_id INTEGER NOT NULL REFERENCES names (id),
    number INTEGER NOT NULL, snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
    parent INTEGER, created_at DATETIME NOT NULL, message TEXT NOT NULL, author TEXT,
    metadata TEXT NOT NULL, CONSTRAINT uq_versions_name_id_number UNIQUE (name_id, number));
CREATE INDEX IF NOT EXISTS ix_versions_snapshot_id ON versions (snapshot_id);
"""

_CHUNK = 500


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _value_hash(value: Any) -> str:
    return hashlib.sha256(_canonical(value)).hexdigest()


def _encode(value: Any) -> tuple[str, str]:
    if type(value) is str:
        return "str", value
    kind = {
        int: "int",
        float: "float",
        bool: "bool",
        type(None): "null",
        list: "list",
        dict: "dict",
    }[type(value)]
    return kind, _canonical(value).decode("utf-8")


def _decode(kind: str, text: str) -> Any:
    return text if kind == "str" else json.loads(text)


def _now() -> str:
    return datetime.now(UTC).isoformat(sep=" ")


class SqliteFloor(Backend):
    """What the store does, by hand: see the module docstring."""

    label = "sqlite3 floor"
    filename = "floor.db"
    unique_blobs = True

    def __init__(self, folder: Path, *, hash_cache: bool = False) -> None:
        self.path = folder / self.filename
        self._cache: dict[str, str] | None = {} if hash_cache else None
        if hash_cache:
            self.label = f"{self.label} + hash cache"
        self.connection = sqlite3.connect(self.path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = NORMAL")
        self.connection.execute("PRAGMA foreign_keys = ON")
        schema = (
            _SCHEMA
            if self.unique_blobs
            else _SCHEMA.replace(", CONSTRAINT uq_blobs_hash UNIQUE (hash)", "")
        )
        self.connection.executescript(schema)

    def _hash(self, value: Any) -> str:
        cache = self._cache
        if cache is None or type(value) is not str:
            return _value_hash(value)
        digest = cache.get(value)
        if digest is None:
            digest = cache[value] = _value_hash(value)
        return digest

    def save(self, state: dict[str, Any]) -> int:
        keys = list(state)
        hashes = [self._hash(value) for value in state.values()]
        encoded: dict[str, tuple[str, str]] = {}
        for digest, value in zip(hashes, state.values(), strict=True):
            if digest not in encoded:
                encoded[digest] = _encode(value)
        snapshot = hashlib.sha256(_canonical(dict(zip(keys, hashes, strict=True)))).hexdigest()
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            number = self._append(connection, keys, hashes, encoded, snapshot)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return number

    def _append(
        self,
        connection: sqlite3.Connection,
        keys: list[str],
        hashes: list[str],
        encoded: dict[str, tuple[str, str]],
        snapshot: str,
    ) -> int:
        row = connection.execute("SELECT id, head FROM names WHERE name = ?", (NAME,)).fetchone()
        if row is None:
            name_id = connection.execute(
                "INSERT INTO names (name, head, created_at) VALUES (?, 0, ?)", (NAME, _now())
            ).lastrowid
            head = 0
        else:
            name_id, head = row
        if head:
            current = connection.execute(
                "SELECT s.hash FROM versions v JOIN snapshots s ON s.id = v.snapshot_id "
                "WHERE v.name_id = ? AND v.number = ?",
                (name_id, head),
            ).fetchone()[0]
            if current == snapshot:
                return head
        snapshot_id = self._store_snapshot(connection, keys, hashes, encoded, snapshot)
        connection.execute(
            "INSERT INTO versions (name_id, number, snapshot_id, parent, created_at, message, "
            "author, metadata) VALUES (?, ?, ?, ?, ?, '', NULL, '{}')",
            (name_id, head + 1, snapshot_id, head or None, _now()),
        )
        connection.execute("UPDATE names SET head = ? WHERE id = ?", (head + 1, name_id))
        return head + 1

    def _store_snapshot(
        self,
        connection: sqlite3.Connection,
        keys: list[str],
        hashes: list[str],
        encoded: dict[str, tuple[str, str]],
        snapshot: str,
    ) -> int:
        row = connection.execute("SELECT id FROM snapshots WHERE hash = ?", (snapshot,)).fetchone()
        if row is not None:
            return row[0]
        blob_ids = self._store_blobs(connection, encoded)
        snapshot_id = connection.execute(
            "INSERT INTO snapshots (hash, key_count, created_at) VALUES (?, ?, ?)",
            (snapshot, len(keys), _now()),
        ).lastrowid
        connection.executemany(
            "INSERT INTO entries (snapshot_id, key, position, blob_id) VALUES (?, ?, ?, ?)",
            [
                (snapshot_id, key, position, blob_ids[digest])
                for position, (key, digest) in enumerate(zip(keys, hashes, strict=True))
            ],
        )
        return snapshot_id

    def _store_blobs(
        self, connection: sqlite3.Connection, encoded: dict[str, tuple[str, str]]
    ) -> dict[str, int]:
        digests = list(encoded)
        ids: dict[str, int] = {}
        for start in range(0, len(digests), _CHUNK):
            chunk = digests[start : start + _CHUNK]
            ids.update(
                connection.execute(
                    f"SELECT hash, id FROM blobs WHERE hash IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
            )
        for digest in digests:
            if digest not in ids:
                kind, text = encoded[digest]
                ids[digest] = connection.execute(
                    "INSERT INTO blobs (hash, value_type, text) VALUES (?, ?, ?)",
                    (digest, kind, text),
                ).lastrowid
        return ids

    def load(self, number: int) -> dict[str, Any]:
        connection = self.connection
        connection.execute("BEGIN")
        try:
            (name_id,) = connection.execute(
                "SELECT id FROM names WHERE name = ?", (NAME,)
            ).fetchone()
            row = connection.execute(
                "SELECT v.snapshot_id, v.number, v.parent, v.created_at, v.message, v.author, "
                "v.metadata, s.hash FROM versions v JOIN snapshots s ON s.id = v.snapshot_id "
                "WHERE v.name_id = ? AND v.number = ?",
                (name_id, number),
            ).fetchone()
            if row is None:
                raise KeyError(number)
            state = {
                key: _decode(kind, text)
                for key, kind, text in connection.execute(
                    "SELECT e.key, b.value_type, b.text FROM entries e "
                    "JOIN blobs b ON b.id = e.blob_id WHERE e.snapshot_id = ? "
                    "ORDER BY e.position",
                    (row[0],),
                )
            }
        finally:
            connection.execute("COMMIT")
        return state

    def clear_caches(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    def disk_bytes(self) -> int:
        return _sqlite_files_bytes(self.path)

    def compacted_bytes(self) -> int:
        return _checkpointed_bytes(self.path)

    def close(self) -> None:
        self.connection.close()


_DELTA_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
                                  value_type TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS changes (key_id INTEGER NOT NULL, version INTEGER NOT NULL,
                                    blob_id INTEGER, PRIMARY KEY (key_id, version))
                                    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (number INTEGER PRIMARY KEY, snapshot TEXT NOT NULL,
                                     created_at TEXT NOT NULL);
"""


class DeltaFloor(Backend):
    """Only the changed keys, by hand: see the module docstring."""

    label = "delta-rows floor"

    def __init__(self, folder: Path) -> None:
        self.path = folder / "delta.db"
        self.connection = sqlite3.connect(self.path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = NORMAL")
        self.connection.executescript(_DELTA_SCHEMA)
        self._cache: dict[str, str] = {}
        self._previous: dict[str, str] = {}  # key -> value hash of the last version
        self._key_ids: dict[str, int] = {}
        self.head = 0

    def _hash(self, value: Any) -> str:
        if type(value) is not str:
            return _value_hash(value)
        digest = self._cache.get(value)
        if digest is None:
            digest = self._cache[value] = _value_hash(value)
        return digest

    def save(self, state: dict[str, Any]) -> int:
        hashes = {key: self._hash(value) for key, value in state.items()}
        snapshot = hashlib.sha256(_canonical(hashes)).hexdigest()
        previous = self._previous
        changed = [key for key, digest in hashes.items() if previous.get(key) != digest]
        removed = [key for key in previous if key not in hashes]
        connection = self.connection
        number = self.head + 1
        connection.execute("BEGIN IMMEDIATE")
        for key in changed:
            key_id = self._key_ids.get(key)
            if key_id is None:
                key_id = self._key_ids[key] = connection.execute(
                    "INSERT INTO keys (key) VALUES (?)", (key,)
                ).lastrowid
            kind, text = _encode(state[key])
            connection.execute(
                "INSERT INTO blobs (hash, value_type, text) VALUES (?, ?, ?) "
                "ON CONFLICT (hash) DO NOTHING",
                (hashes[key], kind, text),
            )
            blob_id = connection.execute(
                "SELECT id FROM blobs WHERE hash = ?", (hashes[key],)
            ).fetchone()[0]
            connection.execute("INSERT INTO changes VALUES (?, ?, ?)", (key_id, number, blob_id))
        for key in removed:
            connection.execute(
                "INSERT INTO changes VALUES (?, ?, NULL)", (self._key_ids[key], number)
            )
        connection.execute("INSERT INTO versions VALUES (?, ?, ?)", (number, snapshot, _now()))
        connection.execute("COMMIT")
        self._previous, self.head = hashes, number
        return number

    def load(self, number: int) -> dict[str, Any]:
        rows = self.connection.execute(
            "SELECT k.key, b.value_type, b.text FROM keys k "
            "JOIN changes c ON c.key_id = k.id AND c.version = (SELECT MAX(x.version) "
            "FROM changes x WHERE x.key_id = k.id AND x.version <= ?) "
            "JOIN blobs b ON b.id = c.blob_id ORDER BY k.id",
            (number,),
        ).fetchall()
        return {key: _decode(kind, text) for key, kind, text in rows}

    def disk_bytes(self) -> int:
        return _sqlite_files_bytes(self.path)

    def compacted_bytes(self) -> int:
        return _checkpointed_bytes(self.path)

    def close(self) -> None:
        self.connection.close()


class NaiveSqlite(SqliteFloor):
    """The floor without value dedup: every save hashes and inserts every key's value."""

    label = "naive sqlite3 (no dedup)"
    filename = "naive.db"
    unique_blobs = False

    def _store_blobs(
        self, connection: sqlite3.Connection, encoded: dict[str, tuple[str, str]]
    ) -> dict[str, int]:
        return {
            digest: connection.execute(
                "INSERT INTO blobs (hash, value_type, text) VALUES (?, ?, ?)", (digest, kind, text)
            ).lastrowid
            for digest, (kind, text) in encoded.items()
        }


# --- files and git ------------------------------------------------------------------------


class TomlFiles(Backend):
    label = "TOML file per version"

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "toml"
        self.folder.mkdir()
        self.head = 0

    def _file(self, number: int) -> Path:
        return self.folder / f"v{number:07d}.toml"

    def save(self, state: dict[str, Any]) -> int:
        self.head += 1
        self._file(self.head).write_bytes(tomli_w.dumps(state).encode("utf-8"))
        return self.head

    def load(self, number: int) -> dict[str, Any]:
        return tomllib.loads(self._file(number).read_bytes().decode("utf-8"))

    def disk_bytes(self) -> int:
        return tree_bytes(self.folder)


class GitToml(Backend):
    label = "git commit per version"

    def __init__(self, folder: Path) -> None:
        self.repo = folder / "git"
        self.repo.mkdir()
        self.file = self.repo / "state.toml"
        self.env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
        }
        self._git("init", "-q")
        # No automatic gc in the middle of the timed saves; gc is measured separately.
        self._git("config", "gc.auto", "0")
        self.head = 0
        self.revisions: list[str] = []

    def _git(self, *args: str) -> bytes:
        return subprocess.run(
            ["git", *args], cwd=self.repo, env=self.env, check=True, capture_output=True
        ).stdout

    def save(self, state: dict[str, Any]) -> int:
        self.file.write_bytes(tomli_w.dumps(state).encode("utf-8"))
        self.head += 1
        if self.head == 1:
            self._git("add", "state.toml")
            self._git("commit", "-q", "-m", "version 1")
        else:
            self._git("commit", "-q", "-a", "-m", f"version {self.head}")
        return self.head

    def finish_saves(self) -> None:
        self.revisions = self._git("rev-list", "--reverse", "HEAD").decode().split()

    def load(self, number: int) -> dict[str, Any]:
        return tomllib.loads(
            self._git("show", f"{self.revisions[number - 1]}:state.toml").decode("utf-8")
        )

    def disk_bytes(self) -> int:
        return tree_bytes(self.repo / ".git")

    def compacted_bytes(self) -> int:
        self._git("gc", "-q")
        return tree_bytes(self.repo / ".git")
