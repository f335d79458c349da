"""Reading a store from the command line: names, log, show, diff, tags, sql (both backends).

Reads are independent, so each test starts its command lines at once (``cli_all``).
"""

from __future__ import annotations

import csv
import io
import json
import tomllib

import pytest

import msgflux
from msgflux.store import StateStore

VERSION_FIELDS = {
    "name",
    "number",
    "snapshot",
    "parent",
    "created_at",
    "message",
    "author",
    "metadata",
    "tags",
}


def test_names_log_and_tags_print_json_for_scripts_and_lines_when_piped(history, cli_all):
    names, log, keyed, piped, tags, events = cli_all(
        [
            ("names", "--json"),
            ("log", "pipeline", "--json"),
            # --key and --limit are StateStore.log's key= and limit=; global options may follow.
            ("log", "pipeline", "--key", "analyzer.temperature", "--limit", "5", "--json"),
            ("log", "pipeline", "--limit", "2"),
            ("tags", "pipeline", "--json"),
            ("tag-history", "pipeline", "--json"),
        ],
        db=history,
    )
    assert (names.code, names.err) == (0, "")
    assert names.json() == ["experiment", "pipeline"]

    assert log.code == 0
    versions = log.json()
    assert [version["number"] for version in versions] == [3, 2, 1]
    assert all(set(version) == VERSION_FIELDS for version in versions)
    newest, middle, first = versions
    assert (newest["parent"], first["parent"]) == (2, None)
    assert middle["tags"] == ["production"] and newest["tags"] == []
    assert (first["message"], first["author"], first["metadata"]) == (
        "baseline",
        "ana",
        {"score": 0.71},
    )
    assert len(first["snapshot"]) == 64 and first["created_at"].endswith("+00:00")

    assert [version["number"] for version in keyed.json()] == [3, 1]

    lines = piped.out.splitlines()
    assert lines[0].startswith("pipeline@3 ") and lines[1].endswith("[production] shorter prompt")
    assert "\x1b[" not in piped.out

    assert tags.json() == {"production": 2}
    assert [
        (event["tag"], event["version"], event["previous_version"]) for event in events.json()
    ] == [("production", 2, None)]


def test_show_prints_a_state_file_that_msgflux_load_reads(history, cli_all, tmp_path):
    toml_text, json_text, shown = cli_all(
        [
            ("show", "pipeline", "production"),
            ("show", "pipeline", "--format", "json", "--prefix", "retriever."),
            ("show", "pipeline", "1", "--json"),
        ],
        db=history,
    )
    assert toml_text.code == 0
    assert tomllib.loads(toml_text.out) == {
        "analyzer.instructions": "Be very helpful and concise.",
        "analyzer.temperature": 0.2,
        "retriever.k": 4,
    }
    (tmp_path / "shown.json").write_text(json_text.out, encoding="utf-8")
    assert msgflux.load(tmp_path / "shown.json") == {"retriever.k": 4}

    data = shown.json()
    assert data["version"]["number"] == 1 and set(data["version"]) == VERSION_FIELDS
    assert data["state"]["analyzer.instructions"] == "Be helpful and concise."


def test_diff_against_parent_between_versions_and_across_names(history, cli_all):
    plain, between, across, different, same = cli_all(
        [
            ("diff", "pipeline", "3"),
            ("diff", "pipeline", "1", "3", "--json"),
            ("diff", "pipeline:production", "experiment:1", "--json"),
            ("diff", "pipeline", "1", "2", "--exit-code"),
            ("diff", "pipeline", "2", "production", "--exit-code"),
        ],
        db=history,
    )
    assert plain.code == 0
    assert "--- pipeline@2:analyzer.instructions" in plain.out
    assert "-Be very helpful and concise." in plain.out
    assert "+Be very helpful and brief." in plain.out
    assert "\x1b[" not in plain.out

    data = between.json()
    assert (data["old"], data["new"]) == ("pipeline@1", "pipeline@3")
    assert data["added"] == {"retriever.k": 4}
    assert data["removed"] == {"analyzer.temperature": 0.2}
    assert data["changed"] == {
        "analyzer.instructions": {
            "old": "Be helpful and concise.",
            "new": "Be very helpful and brief.",
        }
    }

    data = across.json()
    assert (data["old"], data["new"]) == ("pipeline@2", "experiment@1")
    assert data["changed"]["retriever.k"] == {"old": 4, "new": 8}

    # --exit-code: 1 when there are differences, 0 when there are none (like git diff).
    assert different.code == 1
    assert same.code == 0 and same.out.strip() == "no differences between pipeline@2 and pipeline@2"


def test_sql_reads_the_views_as_table_csv_or_json_and_refuses_writes(history, cli_all):
    query = "SELECT version, message FROM state_history WHERE name = 'pipeline' ORDER BY version"
    as_json, as_csv, table, refused = cli_all(
        [
            ("sql", query, "--format", "json"),
            ("sql", query, "--format", "csv"),
            ("sql", query),
            ("sql", "DELETE FROM names"),
        ],
        db=history,
    )
    assert as_json.json() == [
        {"version": 1, "message": "baseline"},
        {"version": 2, "message": "shorter prompt"},
        {"version": 3, "message": "drop temperature"},
    ]
    rows = list(csv.reader(io.StringIO(as_csv.out)))
    assert rows[0] == ["version", "message"] and rows[3] == ["3", "drop temperature"]
    assert "shorter prompt" in table.out and "version" in table.out

    assert refused.code == 3 and refused.out == ""
    assert refused.err.startswith("msgflux-store: error: query refused")
    assert "read-only" in refused.err and len(refused.err.splitlines()) == 1


def test_a_missing_name_version_or_tag_is_one_line_naming_what_exists(history, cli_all):
    cases = [
        (("log", "nope"), "no history named 'nope': the store has experiment, pipeline"),
        (
            ("show", "pipeline", "9"),
            (
                "version '9' of 'pipeline' not found: 'pipeline' has "
                "versions 1..3 and tags production"
            ),
        ),
        (("diff", "pipeline", "staging"), "version 'staging' of 'pipeline' not found"),
        (("untag", "pipeline", "staging"), "tag 'staging' of 'pipeline' not found"),
    ]
    results = cli_all([args for args, _expected in cases], db=history)
    for (args, expected), result in zip(cases, results, strict=True):
        assert result.code == 3, args
        assert result.err.startswith("msgflux-store: error: "), result.err
        assert expected in result.err
        assert len(result.err.splitlines()) == 1 and "Traceback" not in result.err


def test_sql_json_prints_non_finite_numbers_as_null(store_url, cli):
    # SQLite computes infinity from 1e999 and NaN from inf - inf; PostgreSQL has float8 literals.
    with StateStore(store_url) as store:
        store.save("p", {"k": 1})
        dialect = store.dialect
    query = (
        "SELECT 1e999 AS big, -1e999 AS small, 1e999 - 1e999 AS nan, 1.5 AS fine"
        if dialect == "sqlite"
        else "SELECT 'Infinity'::float8 AS big, '-Infinity'::float8 AS small, "
        "'NaN'::float8 AS nan, 1.5::float8 AS fine"
    )
    result = cli("sql", query, "--json", db=store_url)
    assert result.code == 0, result.err
    assert json.loads(result.out, parse_constant=lambda name: pytest.fail(name)) == [
        {"big": None, "small": None, "nan": None, "fine": 1.5}
    ]
    arrays = cli("sql", query, "--arrays", db=store_url)
    assert json.loads(arrays.out, parse_constant=lambda name: pytest.fail(name)) == {
        "columns": ["big", "small", "nan", "fine"],
        "rows": [[None, None, None, 1.5]],
    }
