"""The prompt-tuning loop through the installed ``msgflux-store`` console script.

Piped runs check what scripts see; runs on a pseudo-terminal (``run_tty``) check
what people see: the compact log table, the pager, the delete prompt.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_testkit import CONSOLE_SCRIPT, Result, run_cli, run_tty

PROMPT_FILE = '''"generator.system_prompt" = """
You are a helper.
Answer briefly.
"""
"retriever.k" = 4
'''


def cli(*args: str, **options: Any) -> Result:
    return run_cli(*args, program=CONSOLE_SCRIPT, **options)


@pytest.fixture
def loop_db(tmp_path: Path) -> str:
    db = str(tmp_path / "loop.db")
    (tmp_path / "p.toml").write_text(PROMPT_FILE)
    assert (
        cli(
            "save",
            "pipeline",
            str(tmp_path / "p.toml"),
            "-m",
            "baseline",
            "--author",
            "ana",
            "--meta",
            "score=0.71",
            db=db,
        ).code
        == 0
    )
    return db


def test_checkout_writes_multi_line_prompts_and_save_reports_changes(
    loop_db: str, tmp_path: Path
) -> None:
    target = tmp_path / "work.toml"
    assert cli("checkout", "pipeline", "latest", str(target), db=loop_db).code == 0
    assert target.read_text() == PROMPT_FILE
    target.write_text(
        PROMPT_FILE.replace("Answer briefly.", "Answer briefly, citing sources.").replace(
            "= 4", "= 8"
        )
    )
    saved = cli("save", "pipeline", str(target), "-m", "cite", db=loop_db)
    assert saved.code == 0, saved.err
    assert saved.out.splitlines()[1] == " 2 keys changed, 0 added, 0 removed"
    shown = cli("show", "pipeline", "--key", "generator.system_prompt", db=loop_db)
    assert shown.out == "You are a helper.\nAnswer briefly, citing sources.\n"
    assert cli("show", "pipeline", "--key", "retriever.k", db=loop_db).out == "8\n"
    missing = cli("show", "pipeline", "--key", "retriever.kk", db=loop_db)
    assert missing.code == 3 and "did you mean 'retriever.k'" in missing.err


def test_save_from_stdin_and_checkout_to_stdout(loop_db: str) -> None:
    out = cli("checkout", "pipeline", "1", "-", db=loop_db)
    assert out.code == 0 and out.out == PROMPT_FILE
    as_json = cli("checkout", "pipeline", "1", "-", "--format", "json", db=loop_db)
    assert json.loads(as_json.out)["retriever.k"] == 4
    edited = out.out.replace("= 4", "= 6")
    saved = _pipe(["save", "pipeline", "-", "-m", "k6"], edited, loop_db)
    assert saved.code == 0 and saved.out.startswith("saved pipeline@2 "), saved.err
    via_json = _pipe(
        ["save", "pipeline", "-", "--format", "json", "--json"],
        json.dumps({"generator.system_prompt": "x", "retriever.k": 6}),
        loop_db,
    )
    document = json.loads(via_json.out)
    assert document["created"] and document["changes"] == {
        "changed": ["generator.system_prompt"],
        "added": [],
        "removed": [],
    }
    bad = _pipe(["save", "pipeline", "-"], "not = [toml", loop_db)
    assert bad.code == 3 and "<stdin>" in bad.err and bad.out == ""
    assert _pipe(["save", "pipeline", "x.toml", "--format", "json"], "", loop_db).code == 2


def _pipe(args: list[str], text: str, db: str) -> Result:
    return run_cli(*args, db=db, stdin_text=text)


def test_identical_save_with_a_score_annotates_and_says_so(loop_db: str, tmp_path: Path) -> None:
    same = cli("save", "pipeline", str(tmp_path / "p.toml"), "--meta", "score=0.9", db=loop_db)
    assert same.code == 0
    assert same.out == (
        f"unchanged: {tmp_path / 'p.toml'} equals pipeline@1; no version was "
        "written; its metadata was recorded as an annotation of pipeline@1\n"
    )
    annotated = cli(
        "annotate", "pipeline", "1", "--meta", "cost=0.02", "--author", "bot", db=loop_db
    )
    assert annotated.out == "annotated pipeline@1: cost=0.02\n"
    rows = cli(
        "sql",
        "SELECT version, key, value, author FROM state_annotations ORDER BY key",
        "--json",
        db=loop_db,
    ).json()
    assert rows == [
        {"version": 1, "key": "cost", "value": "0.02", "author": "bot"},
        {"version": 1, "key": "score", "value": "0.9", "author": None},
    ]
    assert cli("log", "pipeline", "--json", db=loop_db).json()[0]["metadata"] == {
        "score": 0.9,
        "cost": 0.02,
    }
    assert cli("annotate", "pipeline", "1", db=loop_db).code == 2  # --meta is required


def test_same_keys_refuses_naming_the_keys(loop_db: str, tmp_path: Path) -> None:
    (tmp_path / "more.toml").write_text(PROMPT_FILE + '"reranker.top" = 3\n')
    refused = cli("save", "pipeline", str(tmp_path / "more.toml"), "--same-keys", db=loop_db)
    assert refused.code == 3 and "added reranker.top" in refused.err
    assert len(cli("log", "pipeline", "--json", db=loop_db).json()) == 1


def test_a_toml_table_is_flagged(loop_db: str, tmp_path: Path) -> None:
    (tmp_path / "tables.toml").write_text('[generator]\nsystem_prompt = "Hi"\n[retriever]\nk = 4\n')
    saved = cli("save", "pipeline", str(tmp_path / "tables.toml"), db=loop_db)
    assert saved.code == 0
    assert "[generator] is a TOML table, saved as ONE dict-valued key 'generator'" in saved.err
    assert "pipeline stores 1 keys generator.* instead" in saved.err


def test_log_filters_and_oneline(history: str) -> None:
    def numbers(*options: str) -> list[int]:
        result = cli("log", "pipeline", *options, "--json", db=history)
        assert result.code == 0, result.err
        return [version["number"] for version in result.json()]

    assert numbers("--author", "ana") == [2, 1]
    assert numbers("--where", "score>0.72") == [3, 2]
    assert numbers("--where", "score>0.72", "--limit", "1") == [3]
    assert numbers("--grep", "TEMPERATURE") == [3]
    assert numbers("--tag", "production") == [2]
    assert numbers("--since", "2000-01-01", "--until", "2999-01-01") == [3, 2, 1]
    assert numbers("--until", "2000-01-01") == []
    assert numbers("--key", "retriever.k") == [2]
    oneline = cli("log", "pipeline", "--oneline", "--limit", "2", db=history)
    assert re.fullmatch(
        r"pipeline@3 [0-9a-f]{12} drop temperature\n"
        r"pipeline@2 [0-9a-f]{12} \[production\] shorter prompt\n",
        oneline.out,
    )
    bad = cli("log", "pipeline", "--where", "score", db=history)
    assert bad.code == 3 and "KEY OPERATOR VALUE" in bad.err


def test_log_on_a_terminal_is_a_compact_table(tmp_path: Path) -> None:
    from msgflux.store import StateStore

    db = str(tmp_path / "wide.db")
    with StateStore(db) as store:
        for number in range(1, 4):
            store.save(
                "pipeline",
                {"k": number},
                author="someone-with-a-long-name",
                message="a long message that goes on about what changed " * 3,
                metadata={"score": 0.5 + number / 10, "dataset": "dev-v2"},
            )
        store.tag("pipeline", 2, "production")
    for columns in (80, 120):
        screen = run_tty("log", "pipeline", db=db, columns=columns)
        lines = screen.splitlines()
        header = lines[0].split()
        assert header[:4] == ["ver", "snapshot", "saved", "(UTC)"] and header[-1] == "message"
        if columns == 120:  # room for everything; at 80 the text columns are shortened
            assert header == [
                "ver",
                "snapshot",
                "saved",
                "(UTC)",
                "author",
                "tags",
                "dataset",
                "score",
                "message",
            ]
        assert all(len(line) <= columns for line in lines), screen
        assert len(lines) == 4  # a header and one line per version: nothing wraps
        for line in lines[1:]:
            assert re.match(r"\s*\d+  [0-9a-f]{8}  \d{4}-\d\d-\d\d \d\d:\d\d  ", line), line
        assert ("production" if columns == 120 else "produ\u2026") in lines[2] and "0.7" in lines[2]
    many = StateStore(db)
    try:
        many.annotate("pipeline", 1, metadata={"cost": 0.1, "latency_ms": 900})
    finally:
        many.close()
    summary = run_tty("log", "pipeline", db=db, columns=170).splitlines()
    assert summary[0].split()[-2:] == ["metadata", "message"]  # four fields: summarised
    assert "cost=0.1 dataset=dev-v2 latency_ms=900 score=0.6" in summary[3]


def test_long_output_on_a_terminal_goes_through_the_pager(tmp_path: Path) -> None:
    from msgflux.store import StateStore

    db = str(tmp_path / "long.db")
    with StateStore(db) as store:
        for number in range(60):
            store.save("pipeline", {"k": number}, message=f"step {number}")
    paged = tmp_path / "paged.txt"
    pager = {
        "PAGER": f"{sys.executable} -c \"import sys; open({str(paged)!r}, 'w')"
        f'.write(sys.stdin.read())"'
    }
    shown = run_tty("log", "pipeline", db=db, lines=20, env=pager)
    assert "step 59" not in shown and paged.read_text().count("step ") == 60
    paged.unlink()
    direct = run_tty("log", "pipeline", "--no-pager", db=db, lines=20, env=pager)
    assert direct.count("step ") == 60 and not paged.exists()
    short = run_tty("log", "pipeline", "--limit", "5", db=db, lines=20, env=pager)
    assert short.count("step ") == 5 and not paged.exists()
    piped = cli("log", "pipeline", db=db, env=pager)
    assert piped.out.count("step ") == 60 and not paged.exists()


def test_diff_stat_name_only_and_compact_scalars(history: str) -> None:
    full = cli("diff", "pipeline", "2", "3", db=history)
    assert "analyzer.temperature" in full.out and "+Be very helpful and brief." in full.out
    scalars = cli("diff", "pipeline", "1", "2", db=history)
    assert "retriever.k" in scalars.out
    names = cli("diff", "pipeline", "2", "3", "--name-only", db=history)
    assert names.out == "analyzer.instructions\nanalyzer.temperature\n"
    stat = cli("diff", "pipeline", "2", "3", "--stat", db=history)
    assert stat.out.splitlines() == [
        " analyzer.instructions |    2 +-",
        " analyzer.temperature  |    1 - (removed)",
        " 2 keys changed, 1 line added, 2 removed",
    ]
    assert cli("diff", "pipeline", "2", "3", "--stat", "--name-only", db=history).code == 2


def test_scalar_change_on_one_line(tmp_path: Path) -> None:
    from msgflux.store import StateStore

    db = str(tmp_path / "k.db")
    with StateStore(db) as store:
        store.save("pipeline", {"retriever.k": 4, "prompt": "a"})
        store.save("pipeline", {"retriever.k": 8, "prompt": "a"})
    assert cli("diff", "pipeline", "2", db=db).out == "retriever.k: 4 \u2192 8\n"


def test_prune_dry_run_and_pruned_parents(tmp_path: Path) -> None:
    from msgflux.store import StateStore

    db = str(tmp_path / "p.db")
    with StateStore(db) as store:
        for k in range(5):
            store.save("pipeline", {"k": k})
        store.tag("pipeline", 2, "production")
    dry = cli("prune", "pipeline", "--keep-last", "1", "--dry-run", db=db)
    assert dry.out == (
        "would delete versions 1, 3..4 of pipeline (3 versions; dry run, nothing deleted)\n"
    )
    assert len(cli("log", "pipeline", "--json", db=db).json()) == 5
    done = cli("prune", "pipeline", "--keep-last", "1", db=db)
    assert done.out == (
        "deleted versions 1, 3..4 of pipeline; their content stays until `msgflux-store gc`\n"
    )
    assert "until you run gc" in cli("prune", "--help").out
    diff = cli("diff", "pipeline", "5", db=db)
    assert diff.out == (
        "# the parent pipeline@4 was pruned; compared with the nearest "
        "surviving ancestor pipeline@2\nk: 1 \u2192 4\n"
    )
    assert cli("diff", "pipeline", "5", "--json", db=db).json()["note"].startswith("the parent")


def test_delete_and_rename(history: str) -> None:
    refused = cli("delete", "pipeline", db=history)
    assert refused.code == 2 and "needs --yes" in refused.err
    tagged = cli("delete", "pipeline", "--yes", db=history)
    assert tagged.code == 3 and "has tags production" in tagged.err
    assert cli("rename", "experiment", "pipeline", db=history).code == 3
    assert cli("rename", "experiment", "idea", db=history).out == (
        "renamed experiment to idea (1 versions)\n"
    )
    deleted = cli("delete", "pipeline", "--yes", "--force", "--author", "ana", db=history)
    assert (
        deleted.out == "deleted pipeline (3 versions); run `msgflux-store gc` to reclaim "
        "their content\n"
    )
    assert cli("names", db=history).out == "idea\n"
    events = cli(
        "sql", "SELECT name, action, new_name, author FROM state_name_events", "--json", db=history
    ).json()
    assert events == [
        {"name": "experiment", "action": "renamed", "new_name": "idea", "author": None},
        {"name": "pipeline", "action": "deleted", "new_name": None, "author": "ana"},
    ]


def test_delete_asks_on_a_terminal(sqlite_history: str) -> None:
    kept = run_tty("delete", "experiment", db=sqlite_history, stdin_text="n\n")
    assert "delete experiment and all its 1 versions? [y/N]" in kept and "not deleted" in kept
    gone = run_tty("delete", "experiment", db=sqlite_history, stdin_text="y\n")
    assert "deleted experiment (1 versions)" in gone


def test_sql_objects_arrays_named_parameters_and_csv_when_piped(sqlite_history: str) -> None:
    query = "SELECT version, message FROM state_history WHERE name = :n ORDER BY version"
    objects = cli("sql", query, "-p", "n=pipeline", "--json", db=sqlite_history)
    assert objects.json()[0] == {"version": 1, "message": "baseline"}
    arrays = cli("sql", query, "-p", "n=pipeline", "--arrays", db=sqlite_history).json()
    assert arrays["columns"] == ["version", "message"] and arrays["rows"][0] == [1, "baseline"]
    piped = cli("sql", query, "-p", "n=pipeline", db=sqlite_history)
    assert piped.out.splitlines()[:2] == ["version,message", "1,baseline"]
    positional = cli("sql", "SELECT ? AS x", "-p", "n=rag=x", db=sqlite_history)
    assert positional.code == 3 or positional.out  # a named 'n' with value 'rag=x'
    literal = cli("sql", "SELECT ? AS x", "-p", "a b=c", db=sqlite_history)
    assert literal.out == "x\na b=c\n"  # not an identifier: a positional value
    for conflict in (
        ["--json", "--format", "csv"],
        ["--arrays", "--format", "table"],
        ["-p", "1", "-p", "n=2"],
    ):
        result = cli("sql", "SELECT 1", *conflict, db=sqlite_history)
        assert result.code == 2 and result.out == "", conflict
    table = run_tty("sql", "SELECT 1 AS one", db=sqlite_history)
    assert "one" in table and "," not in table


def test_did_you_mean_for_commands_names_and_tags(sqlite_history: str) -> None:
    command = cli("lgo", "pipeline", db=sqlite_history)
    assert command.code == 2 and "did you mean 'log'" in command.err
    name = cli("log", "pipline", db=sqlite_history)
    assert name.code == 3 and "did you mean 'pipeline'" in name.err
    tag = cli("show", "pipeline", "prodution", db=sqlite_history)
    assert tag.code == 3 and "did you mean 'production'" in tag.err


def test_every_option_has_help_text() -> None:
    import argparse

    from msgflux.store.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not action.help and action.dest not in ("help", "version"):
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "msgflux-store")
    assert missing == []


def test_completion_and_init(tmp_path: Path) -> None:
    import subprocess

    bash = cli("completion", "bash")
    assert bash.code == 0 and "complete" in bash.out and "annotate" in bash.out
    script = tmp_path / "completion.bash"
    script.write_text(bash.out)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # valid bash
    zsh = cli("completion", "zsh")
    assert zsh.code == 0 and zsh.out.startswith("#compdef msgflux-store")
    assert cli("completion", "fish").code == 2
    first = cli("init", cwd=tmp_path)
    assert first.out == f"initialised a store at {tmp_path / 'msgflux_state.db'} (schema 0007)\n"
    again = cli("init", cwd=tmp_path)
    assert again.out.startswith("a store already exists at")
    assert cli("names", cwd=tmp_path).code == 0


def test_quickstart_and_cli_share_the_default_store(tmp_path: Path) -> None:
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    for _ in range(2):  # a second run starts the history afresh
        done = subprocess.run(
            [sys.executable, str(repo / "examples" / "quickstart.py")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    log = cli("log", "pipeline", cwd=tmp_path)
    assert log.code == 0 and [line.split()[0] for line in log.out.splitlines()] == [
        "pipeline@3",
        "pipeline@2",
        "pipeline@1",
    ]
