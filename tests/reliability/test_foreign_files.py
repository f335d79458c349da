"""Another application's SQLite file is refused before anything touches it (issue 8, item 4).

A non-empty file without the store's schema revision must keep its bytes and
its journal mode whatever opens it: every ``StateStore`` option and every
command of ``msgflux-store``. Only a new or empty file becomes a store.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from msgflux.store import SchemaError, StateStore
from msgflux.store.cli import main

from .conftest import record


def _app_database(path: Path) -> None:
    """A small application database in rollback-journal mode, as most apps leave theirs."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    connection.executemany("INSERT INTO users (name) VALUES (?)", [("ana",), ("bo",)])
    connection.execute("CREATE VIEW user_names AS SELECT name FROM users")
    connection.commit()
    connection.close()


def _alembic_app_database(path: Path) -> None:
    """Another application that uses alembic too, with its own revision."""
    _app_database(path)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    connection.execute("INSERT INTO alembic_version VALUES ('ae1027a6acf')")
    connection.commit()
    connection.close()


def _fingerprint(path: Path) -> tuple[str, str, list[str]]:
    """The file's hash, its journal mode (read from the header bytes) and the folder's files."""
    data = path.read_bytes()
    # Header bytes 18/19 are 2 for WAL, 1 for a rollback journal.
    mode = "wal" if data[18:20] == b"\x02\x02" else "rollback"
    return hashlib.sha256(data).hexdigest(), mode, sorted(p.name for p in path.parent.iterdir())


FOREIGN = {
    "app": _app_database,
    "alembic app": _alembic_app_database,
    "not sqlite": lambda path: path.write_text("name,score\nana,1\n"),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_every_store_option_refuses_a_foreign_file_untouched(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "app.db"
    FOREIGN[kind](path)
    before = _fingerprint(path)
    options = [
        {},
        {"migrate": False},
        {"durability": "full"},
        {"lock_timeout": 0.5},
        {"query_timeout": 1},
        {"migrate": False, "durability": "full"},
    ]
    for option in options:
        with pytest.raises(SchemaError, match="not a msgflux store"):
            StateStore(path, **option)
        with pytest.raises(SchemaError, match="not a msgflux store"):
            StateStore(str(path), **option)
        assert _fingerprint(path) == before, option
    record(
        request,
        f"{kind}: {len(options) * 2} opens refused with SchemaError, bytes, "
        "journal mode and folder unchanged",
    )


COMMANDS = [
    ["names"],
    ["log", "p"],
    ["show", "p"],
    ["diff", "p", "1", "2"],
    ["tags", "p"],
    ["tag-history", "p"],
    ["sql", "SELECT 1"],
    ["save", "p", "{state}"],
    ["checkout", "p", "1", "{out}"],
    ["tag", "p", "1", "prod"],
    ["untag", "p", "prod"],
    ["rollback", "p", "1"],
    ["verify"],
    ["prune", "p", "--keep-last", "1"],
    ["gc"],
    ["export", "{out}"],
    ["import", "{bundle}"],
    ["push", "--to", "{other}"],
    ["pull", "--from", "{other}"],
    ["report", "p", "-o", "{out}"],
    ["db", "upgrade"],
    ["db", "current"],
]


@pytest.mark.parametrize("kind", ["app", "not sqlite"])
def test_every_command_refuses_a_foreign_file_untouched(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    with StateStore(files / "other.db") as other:
        other.save("p", {"k": 1})
        other.export_bundle(files / "bundle.json")
    (files / "state.json").write_text('{"k": 2}')
    folder = tmp_path / "app"
    folder.mkdir()
    path = folder / "app.db"
    FOREIGN[kind](path)
    before = _fingerprint(path)
    slots = {
        "state": str(files / "state.json"),
        "out": str(files / "out.json"),
        "bundle": str(files / "bundle.json"),
        "other": str(files / "other.db"),
    }
    for command in COMMANDS:
        argv = ["--db", str(path), *[part.format(**slots) for part in command]]
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 3, (command, err)
        assert "not a msgflux store" in err, (command, err)
        assert _fingerprint(path) == before, command
        # and the foreign file as the other side of push/pull
    for argv in (
        ["--db", str(files / "other.db"), "push", "--to", str(path)],
        ["--db", str(files / "other.db"), "pull", "--from", str(path)],
    ):
        assert main(argv) == 3
        assert "not a msgflux store" in capsys.readouterr().err
        assert _fingerprint(path) == before, argv
    record(
        request,
        f"{kind}: {len(COMMANDS) + 2} commands exit 3 'not a msgflux store', "
        "file bytes and journal mode unchanged",
    )


def test_only_a_new_or_empty_file_becomes_a_store(tmp_path: Path) -> None:
    empty_file = tmp_path / "empty.db"
    empty_file.touch()
    empty_database = tmp_path / "empty-database.db"
    sqlite3.connect(empty_database).execute("PRAGMA user_version = 0").connection.close()
    for path in (tmp_path / "new.db", empty_file, empty_database):
        with StateStore(path) as store:
            assert store.save("p", {"k": 1}).number == 1
        with StateStore(path, migrate=False) as store:  # and it opens again as a store
            assert store.load("p") == {"k": 1}
