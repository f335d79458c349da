"""Damaged rows: verify reports every one by name, version and key; reads raise IntegrityError.

Issue 8, item 9. Damage is written behind the store's back, as a corrupted page
or a hand edit would leave it: metadata that is not JSON (or holds NaN), a
value whose text no longer decodes, and on SQLite text that is not UTF-8.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from msgflux.store import IntegrityError, StateStore
from msgflux.store.cli import main

from ._support import raw_engine
from .conftest import record


def _history(store: StateStore) -> None:
    store.save("p", {"prompt": "one", "k": 1}, metadata={"score": 0.5})
    store.save("p", {"prompt": "two", "k": 2}, metadata={"score": 0.7})
    store.save("q", {"x": [1, 2]})


def _execute(store: StateStore, statement: str) -> None:
    engine = raw_engine(str(store.url.render_as_string(hide_password=False)))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def _verify_cli(store: StateStore, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--db", store.url.render_as_string(hide_password=False), "verify"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_damaged_metadata_and_values_are_reported_and_refused_by_reads(
    store_url: str, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    with StateStore(store_url) as store:
        _history(store)
        _execute(
            store,
            "UPDATE versions SET metadata = '{broken' WHERE number = 2 AND name_id = "
            "(SELECT id FROM names WHERE name = 'p')",
        )
        _execute(
            store,
            "UPDATE versions SET metadata = '{\"score\": NaN}' WHERE name_id = "
            "(SELECT id FROM names WHERE name = 'q')",
        )
        _execute(store, "UPDATE blobs SET text = '[1, 2' WHERE value_type = 'list'")
        report = store.verify()
        found = {
            (problem.kind, problem.name, problem.version, problem.key)
            for problem in report.problems
        }
        assert ("metadata", "p", 2, None) in found
        assert ("metadata", "q", 1, None) in found
        assert ("value", "q", 1, "x") in found
        # reads of the damaged rows name them; undamaged ones still work
        with pytest.raises(IntegrityError, match=r"version 2 of 'p'.*metadata"):
            store.log("p")
        with pytest.raises(IntegrityError, match=r"of 'p'.*metadata"):
            store.get("p", 2)
        with pytest.raises(IntegrityError, match=r"of 'q', key 'x'"):
            store.load("q")
        with pytest.raises(IntegrityError, match=r"of 'q', key 'x'"):
            store.load("q", 1)
        assert store.load("p", 1) == {"prompt": "one", "k": 1}
        assert store.get("p", 1).metadata == {"score": 0.5}
        code, output = _verify_cli(store, capsys)
        assert code == 1 and "[metadata] p:2" in output and "[value] q:1 key 'x'" in output
        assert main(["--db", store.url.render_as_string(hide_password=False), "log", "p"]) == 3
        assert "version 2 of 'p'" in capsys.readouterr().err
    record(
        request,
        f"{len(report.problems)} problems reported by name, version and key; "
        "log/get/load raise IntegrityError naming the row; verify exits 1",
    )


def test_text_that_is_not_utf8_is_reported_never_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "store.db"
    with StateStore(path) as store:
        _history(store)
    # invalid UTF-8 bytes in a value, a metadata text and a key, as a corrupted page leaves them
    connection = sqlite3.connect(path)
    connection.execute("UPDATE blobs SET text = CAST(x'6f6eff65' AS TEXT) WHERE text = 'one'")
    connection.execute(
        "UPDATE versions SET metadata = CAST(x'7b22ff223a317d' AS TEXT) "
        "WHERE number = 2 AND name_id = (SELECT id FROM names WHERE name = 'p')"
    )
    connection.execute("UPDATE keys SET key = CAST(x'78ff' AS TEXT) WHERE key = 'x'")
    connection.commit()
    connection.close()
    with StateStore(path) as store:
        report = store.verify()
        found = {
            (problem.kind, problem.name, problem.version, problem.key)
            for problem in report.problems
        }
        assert ("value", "p", 1, "prompt") in found
        assert ("metadata", "p", 2, None) in found
        assert any(kind == "snapshot" and name == "q" for kind, name, _v, _k in found)
        with pytest.raises(IntegrityError, match=r"version 1 of 'p'.*not valid UTF-8"):
            store.load("p", 1)
        with pytest.raises(IntegrityError, match=r"of 'p'.*not valid UTF-8"):
            store.log("p")
        with pytest.raises(IntegrityError, match=r"of 'q'.*not valid UTF-8"):
            store.load("q")
        assert store.load("p", 2) == {"prompt": "two", "k": 2}
        code, output = _verify_cli(store, capsys)
        assert code == 1 and "[value] p:1 key 'prompt'" in output
        assert "internal error" not in output and "Traceback" not in output
    record(
        request,
        f"invalid UTF-8 in a value, metadata and a key: {len(report.problems)} "
        "problems named, reads raise IntegrityError, verify exits 1",
    )
