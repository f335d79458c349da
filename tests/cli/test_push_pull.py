"""push and pull between a SQLite file and a PostgreSQL store (StateStore.copy_to)."""

from __future__ import annotations

import pytest


@pytest.mark.postgres
def test_push_to_postgres_then_pull_back_into_a_new_file(
    sqlite_history, postgres_url, cli, cli_all, tmp_path
):
    pushed = cli("push", "--to", postgres_url, "pipeline", "--json", db=sqlite_history)
    assert (pushed.code, pushed.err) == (0, "")
    assert pushed.json() == {"names": {"pipeline": [1, 2, 3]}}
    assert cli("push", "--to", postgres_url, db=sqlite_history).out.splitlines() == [
        "experiment: pushed versions 1"
    ]

    fresh = str(tmp_path / "fresh.db")
    pulled = cli("pull", "--from", postgres_url, "--json", db=fresh).json()
    assert pulled == {"names": {"experiment": [1], "pipeline": [1, 2, 3]}}
    tags, same = cli_all(
        [("tags", "pipeline", "--json"), ("diff", "pipeline:3", "pipeline:1", "--exit-code")],
        db=fresh,
    )
    assert tags.json() == {"production": 2} and same.code == 1

    # The histories diverge (each store saves its own version 4): a pull is refused and
    # nothing is written.
    cli_all(
        [
            ("save", "pipeline", str(_state_file(tmp_path)), "--db", fresh),
            ("rollback", "pipeline", "1", "--db", sqlite_history),
        ]
    )
    assert cli("push", "--to", postgres_url, db=sqlite_history).out.strip() == (
        "pipeline: pushed versions 4"
    )
    diverged = cli("pull", "--from", postgres_url, db=fresh)
    assert diverged.code == 3 and diverged.err.startswith("msgflux-store: error: ")
    assert len(diverged.err.splitlines()) == 1


def _state_file(folder):
    import msgflux

    path = folder / "other.toml"
    msgflux.save({"analyzer.instructions": "Something else."}, path)
    return path
