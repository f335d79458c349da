"""Writing through the command line: save, checkout, tag, untag, rollback, prune, gc, verify,
export and import (both backends)."""

from __future__ import annotations

import json

import msgflux
from msgflux.store import StateStore


def test_save_a_file_then_check_it_out_again(store_url, cli, cli_all, tmp_path):
    msgflux.save({"analyzer.instructions": "Be brief.", "retriever.k": 4}, tmp_path / "a.toml")
    first = cli(
        "save",
        "pipeline",
        str(tmp_path / "a.toml"),
        "-m",
        "baseline",
        "--author",
        "ana",
        "--meta",
        "score=0.71",
        "dataset=dev",
        "flags=[1, 2]",
        "--expect-head",
        "none",
        "--json",
        db=store_url,
    )
    assert (first.code, first.err) == (0, "")
    saved = first.json()
    assert (saved["number"], saved["message"], saved["author"]) == (1, "baseline", "ana")
    # --meta values are JSON when they parse as JSON, else strings.
    assert saved["metadata"] == {"score": 0.71, "dataset": "dev", "flags": [1, 2]}

    (tmp_path / "b.json").write_text(
        json.dumps({"analyzer.instructions": "Be very brief.", "retriever.k": None}),
        encoding="utf-8",
    )
    second = cli("save", "pipeline", str(tmp_path / "b.json"), "--expect-head", "1", db=store_url)
    assert second.code == 0 and second.out.startswith("saved pipeline@2 ")

    again, stale, out, none_toml, shown = cli_all(
        [
            ("save", "pipeline", str(tmp_path / "b.json")),
            ("save", "pipeline", str(tmp_path / "a.toml"), "--expect-head", "1"),
            ("checkout", "pipeline", "1", str(tmp_path / "out.toml")),
            ("checkout", "pipeline", "2", str(tmp_path / "none.toml")),
            ("show", "pipeline", "2"),
        ],
        db=store_url,
    )
    assert again.code == 0 and again.out.startswith("unchanged:")
    assert stale.code == 3 and "msgflux-store: error:" in stale.err
    assert out.code == 0 and "wrote pipeline@1 (2 keys)" in out.out
    assert msgflux.load(tmp_path / "out.toml") == {
        "analyzer.instructions": "Be brief.",
        "retriever.k": 4,
    }
    # TOML cannot hold None: the error says so and suggests JSON.
    assert none_toml.code == 3 and ".json" in none_toml.err
    assert not (tmp_path / "none.toml").exists()
    assert shown.code == 3 and "use --format json" in shown.err and shown.out == ""


def test_tag_untag_and_rollback(sqlite_history, cli):
    history = sqlite_history
    tagged = cli("tag", "pipeline", "3", "staging", "--author", "bo", "--json", db=history)
    assert tagged.json()["tags"] == ["staging"]
    moved = cli("tag", "pipeline", "1", "production", "--expect", "2", db=history)
    assert moved.out.strip() == "tagged pipeline@1 as production"
    conflict = cli("tag", "pipeline", "3", "production", "--expect", "2", db=history)
    assert conflict.code == 3 and "moved in between" in conflict.err
    bad = cli("tag", "pipeline", "3", "latest", db=history)
    assert bad.code == 3 and "tag 'latest' is not allowed" in bad.err

    removed = cli("untag", "pipeline", "staging", "--json", db=history).json()
    assert removed == {"name": "pipeline", "tag": "staging", "version": 3}

    rolled = cli("rollback", "pipeline", "production", "--json", db=history).json()
    assert (rolled["number"], rolled["parent"], rolled["message"]) == (
        4,
        3,
        "rollback to version 1",
    )
    with StateStore(history) as store:
        assert store.load("pipeline", 4) == store.load("pipeline", 1)
    same = cli("rollback", "pipeline", "1", db=history)
    assert same.code == 0 and same.out.startswith("unchanged:")


def test_prune_gc_verify_export_import(sqlite_history, cli, cli_all, tmp_path):
    history = sqlite_history
    pruned, nothing = cli_all(
        [
            ("prune", "pipeline", "--keep-last", "1", "--json"),
            ("prune", "experiment", "--keep-last", "1"),
        ],
        db=history,
    )
    assert pruned.json() == {
        "name": "pipeline",
        "deleted": [1],  # 2 is tagged, 3 is kept
        "dry_run": False,
    }
    assert nothing.out.startswith("nothing to prune")
    gc = cli("gc", "--json", db=history).json()
    assert gc["snapshots"] == 1 and gc["values"] >= 1

    bundle = tmp_path / "bundle.json"
    verified, text, exported = cli_all(
        [("verify", "--json"), ("verify",), ("export", str(bundle), "pipeline", "--json")],
        db=history,
    )
    assert verified.code == 0 and verified.err == ""
    assert verified.json()["ok"] is True and verified.json()["versions_checked"] == 3
    assert text.out.startswith("checked 3 versions")
    assert exported.json() == {"file": str(bundle), "names": {"pipeline": 2}}

    target = str(tmp_path / "copy.db")
    imported = cli("import", str(bundle), "--json", db=target).json()
    assert imported == {"names": {"pipeline": [2, 3]}}
    again, log = cli_all([("import", str(bundle)), ("log", "pipeline", "--json")], db=target)
    assert again.out.strip() == "nothing to import: already up to date"
    assert [version["number"] for version in log.json()] == [3, 2]


def test_verify_exits_1_when_it_finds_a_damaged_value(tmp_path, cli_all):
    target = tmp_path / "damaged.db"
    with StateStore(target) as store:
        store.save("pipeline", {"prompt": "Be brief."})
    import sqlite3

    with sqlite3.connect(target) as connection:
        connection.execute("UPDATE blobs SET text = 'Be long.'")
    result, as_json = cli_all([("verify",), ("verify", "--json")], db=str(target))
    assert result.code == 1 and "problem" in result.out
    assert as_json.code == 1 and as_json.json()["problems"]


def test_bad_files_are_one_line_errors(tmp_path, cli_all):
    db = str(tmp_path / "store.db")
    (tmp_path / "bad.toml").write_text("key = = 1\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text('{"key": 1,}', encoding="utf-8")
    (tmp_path / "state.yaml").write_text("key: 1\n", encoding="utf-8")
    cases = [
        ("bad.toml", "malformed TOML"),
        ("bad.json", "malformed JSON at line 1"),
        ("state.yaml", "'.yaml' is not a supported suffix"),
        ("missing.toml", "no such file"),
    ]
    results = cli_all(
        [("save", "pipeline", str(tmp_path / name)) for name, _ in cases]
        + [("import", str(tmp_path / "bad.json"))],
        db=db,
    )
    for (name, expected), result in zip(cases, results[:-1], strict=True):
        assert result.code == 3, name
        assert result.err.startswith("msgflux-store: error: cannot ")
        assert expected in result.err and len(result.err.splitlines()) == 1
    assert results[-1].code == 3 and "malformed JSON" in results[-1].err
