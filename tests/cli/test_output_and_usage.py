"""How the program talks: colour and tables for people, plain text for pipes, exit codes,
usage errors, where the store comes from, the installed console script, `db` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

ANSI = "\x1b["


def test_diff_is_coloured_with_word_highlights_only_when_asked_or_on_a_terminal(
    sqlite_history, cli
):
    coloured = cli("diff", "pipeline", "2", "3", "--color", "always", db=sqlite_history)
    assert coloured.code == 0 and ANSI in coloured.out
    assert "\x1b[31m-Be very helpful and " in coloured.out  # the removed line, red
    assert "\x1b[32m+Be very helpful and " in coloured.out  # the added line, green
    # the changed word itself is highlighted inside its line
    assert "\x1b[1;37;41mconcise" in coloured.out and "\x1b[1;30;42mbrief" in coloured.out

    # Piped (no terminal), NO_COLOR, --no-color and --color never: the plain unified diff.
    plain = cli("diff", "pipeline", "2", "3", db=sqlite_history).out
    assert ANSI not in plain and plain.startswith("--- pipeline@2:")
    for env, flags in [
        ({"NO_COLOR": "1"}, ()),
        ({}, ("--no-color",)),
        ({"FORCE_COLOR": "1"}, ("--color", "never")),
    ]:
        result = cli("diff", "pipeline", "2", "3", *flags, db=sqlite_history, env=env)
        assert result.out == plain, (env, flags)


def test_log_names_and_sql_are_tables_on_a_terminal(sqlite_history, cli):
    log = cli("--color", "always", "log", "pipeline", db=sqlite_history)
    assert ANSI in log.out and "shorter prompt" in log.out
    assert "production" in log.out and "0.78" in log.out  # one metadata field: a score column
    names = cli("names", "--color", "always", db=sqlite_history)
    assert "production→2" in names.out and "experiment" in names.out
    assert cli("names", db=sqlite_history).out == "experiment\npipeline\n"


def test_usage_errors_exit_2(sqlite_history):
    # argparse's errors, checked in one process to keep the suite fast: main() raises
    # SystemExit(2) after printing the usage line.
    script = (
        "import sys, io, contextlib, json\nfrom msgflux.store.cli import main\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        try: code = main(argv)\n"
        "        except SystemExit as done: code = done.code\n"
        "    assert code == 2, (argv, code, err.getvalue())\n"
        "    assert 'usage: msgflux-store' in err.getvalue(), argv\n"
    )
    cases = [
        [],
        ["frobnicate"],
        ["log"],
        ["log", "pipeline", "--limit", "0"],
        ["save", "p", "f.toml", "--meta", "novalue"],
        ["save", "p", "f.toml", "--expect-head", "soon"],
        ["diff", "pipeline"],
        ["diff", "pipeline:1", "experiment:1", "x"],
        ["sql", "SELECT 1", "--format", "xml"],
        ["--color", "sometimes", "names"],
        ["prune", "pipeline"],
        ["push", "pipeline"],
    ]
    cases = [["--db", sqlite_history, *case] for case in cases]
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_subcommand_has_help_with_an_example(cli):
    top = cli("--help")
    assert top.code == 0
    for text in (
        "exit codes:",
        "0  success",
        "1  differences found",
        "2  usage error",
        "3  store or file error",
        "MSGFLUX_STORE",
        '"created_at"',
    ):
        assert text in top.out
    commands = [
        "names",
        "log",
        "show",
        "diff",
        "tags",
        "tag-history",
        "sql",
        "save",
        "checkout",
        "tag",
        "untag",
        "rollback",
        "verify",
        "prune",
        "gc",
        "export",
        "import",
        "push",
        "pull",
        "report",
        "db",
    ]
    for command in commands:
        assert f"    {command} " in top.out, command
    # One process for every --help: argparse exits after printing it.
    script = (
        "import sys, io, contextlib\nfrom msgflux.store.cli import main\n"
        "for argv in sys.argv[1:]:\n"
        "    buffer = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buffer):\n"
        "        try: main(argv.split() + ['--help'])\n"
        "        except SystemExit as done: assert done.code == 0, argv\n"
        "    text = buffer.getvalue()\n"
        "    assert 'example:' in text and argv in text, argv\n"
        "    if argv not in ('db',): assert '--json' in text, argv\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *commands, "db upgrade", "db current"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_store_is_db_else_env_else_the_file_in_the_current_folder(tmp_path, cli, make_history):
    make_history(str(tmp_path / "msgflux_state.db"))
    make_history(str(tmp_path / "from_env.db"))
    cli("tag", "pipeline", "3", "only-in-env", db=str(tmp_path / "from_env.db"))
    default = cli("tags", "pipeline", "--json", cwd=tmp_path)
    assert default.json() == {"production": 2}
    from_env = cli(
        "tags",
        "pipeline",
        "--json",
        cwd=tmp_path,
        env={"MSGFLUX_STORE": str(tmp_path / "from_env.db")},
    )
    assert from_env.json() == {"only-in-env": 3, "production": 2}
    # A read command never creates a store; the error names the file.
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = cli("names", cwd=empty)
    assert missing.code == 3 and f"no store at {empty / 'msgflux_state.db'}" in missing.err
    assert not (empty / "msgflux_state.db").exists()


def test_the_installed_console_script_runs(sqlite_history, cli):
    script = Path(sys.executable).parent / "msgflux-store"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable} (package not installed)")
    result = cli(
        "log", "pipeline", "--limit", "1", "--json", db=sqlite_history, program=[str(script)]
    )
    assert result.code == 0 and result.json()[0]["number"] == 3
    assert cli("--version", program=[str(script)]).out.startswith("msgflux-store (msgflux-state ")


def test_debug_shows_the_traceback(sqlite_history, cli):
    result = cli("--debug", "log", "nope", db=sqlite_history)
    assert result.code != 0 and "Traceback" in result.err and "NameNotFound" in result.err


def test_db_current_reports_an_old_revision_and_db_upgrade_brings_it_to_head(tmp_path, cli):
    from alembic import command

    from msgflux.store.migrate import alembic_config, head_revision

    old = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{old}")
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    head = head_revision()

    current = cli("db", "current", "--json", db=str(old))
    assert current.json() == {"store": "0001", "package": head, "up_to_date": False}
    assert "run `msgflux-store db upgrade`" in cli("db", "current", db=str(old)).out
    upgraded = cli("db", "upgrade", "--json", db=str(old)).json()
    assert (upgraded["before"], upgraded["after"]) == ("0001", head)
    again = cli("--db", str(old), "db", "upgrade")
    assert again.out.strip().endswith(f"is already at schema revision {head}")
    assert cli("db", "current", db=str(tmp_path / "none.db")).code == 3


def test_the_readme_and_help_state_the_same_command_to_call_mapping(cli):
    import re

    from msgflux.store.cli import build_parser, command_calls

    mapping = command_calls()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("| command | call |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    table = re.findall(r"^\| `([a-z -]+)` \| (.+?) \|$", section, flags=re.MULTILINE)
    assert table == mapping
    # every subcommand of the parser is in the mapping, and --help ends with it
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    top = {name.split(" ")[0] for name, _ in mapping}
    assert top == set(subcommands)
    help_text = cli("--help").out
    assert help_text.rstrip().endswith(mapping[-1][1])
    for name, calls in mapping:
        assert re.search(rf"^  {re.escape(name)} +{re.escape(calls)}$", help_text, re.MULTILINE)


def test_an_error_stays_one_line_whatever_a_path_holds(sqlite_history, cli, tmp_path) -> None:  # noqa: ANN001
    # Found by tests/reliability/test_bad_input_cli.py: "\x85" (NEL) in a path split the line.
    for breaker in ("\x85", "\u2028", "\x1c", "\r"):
        target = tmp_path / "missing" / f"a{breaker}b.html"
        result = cli("report", "pipeline", "-o", str(target), db=sqlite_history)
        assert result.code == 3 and result.out == ""
        assert len(result.err.splitlines()) == 1, repr(result.err)
        assert repr(breaker)[1:-1] in result.err and "No such file or directory" in result.err
