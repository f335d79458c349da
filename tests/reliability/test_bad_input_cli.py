"""Hostile input through ``msgflux-store``: a call works and round-trips, or is refused cleanly.

The command-line twin of ``test_bad_input.py``. Hypothesis feeds hostile names,
state files (odd keys, deep nesting, huge strings, ``NaN``, TOML datetimes,
non-object top levels, truncated or binary files, wrong suffixes), version
references (negative, zero, ``2**70``, malformed hashes, SQL in tag names),
tampered bundles and bad option values (``--meta``, ``--expect-head``,
``--limit``, ``--keep-last``) to the CLI over a small SQLite store. Every call
must either

* exit 0 - and what it saved loads back exactly through the Python API - or
* exit 2 (usage: argparse's ``usage:`` text ending in one ``error:`` line) or
  3 (store or file error: exactly one line ``msgflux-store: error: ...``), with
  no traceback, nothing on stdout, and a dump of every table equal to the dump
  taken before the call.

Subprocesses cost ~0.6 s each, so the bulk of the examples call
:func:`msgflux.store.cli.main` in-process (argparse's exit 2 arrives as
``SystemExit``); a handful of representative cases run the installed console
script for real. The number of cases shows at the end of the run
(``bad-input CLI cases tried: N``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msgflux
from msgflux.errors import MsgfluxError
from msgflux.store import StateStore
from msgflux.store.cli import main
from msgflux.store.hashing import decode_value

from ._support import bundle_document, dump, paths_in, raw_engine
from .conftest import BAD_INPUT_CLI_CASES, record
from .test_bad_input import HOSTILE_TEXT, MALFORMED, _nested, same

#: Hypothesis examples per in-process test (~15 ms a call): about 60 s in all.
EXAMPLES = 1000

# -- hostile material -------------------------------------------------------------------

# A real argv holds no NUL and no lone surrogates except the ones os.fsdecode makes
# of bytes that are not UTF-8 (U+DC80..U+DCFF): keep exactly what a shell can pass.
_ARGV_SAFE = re.compile("[\x00\ud800-\udc7f\udd00-\udfff]")
ARG_TEXT = sorted(
    {_ARGV_SAFE.sub("", text) for text in HOSTILE_TEXT}
    | {
        "\udcff",
        "a\udc80b",
        "-x",
        "--",
        "-1",
        "--json",
        "x'; DROP TABLE names; --",
        "production",
        "base",
    }
)
argv_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
arg_texts = st.one_of(st.sampled_from(ARG_TEXT), st.text(argv_chars, max_size=30))
names = st.one_of(st.just("base"), arg_texts)

HUGE = str(2**70)
REFS = [
    "1",
    "2",
    "0",
    "-1",
    "-0",
    HUGE,
    "-" + HUGE,
    "9" * 400,
    "1.0",
    "1e3",
    "0x1",
    " 1",
    "1 ",
    "١",
    "latest",
    "LATEST",
    "head",
    "production",
    "x'; DROP TABLE names; --",
    "%",
    "_",
    "0" * 64,
    "f" * 64,
    "g" * 64,
    "0" * 65,
    "zz",
    "abc",
    "ABCD",
    "04",
    "0430",
    "0430f8",
    "fb73c6953a73e910c571d19668d3f6e314be7ad8c681a7e0d376648ed421e83e",
    "base:1",
    "base:production",
    "nobody:1",
    ":",
    "base:",
    ":1",
    "a:b:c",
]
refs = st.one_of(st.sampled_from(REFS), st.integers(-5, 8).map(str), arg_texts)

BAD_COUNTS = ["0", "-1", "1.5", "", "x", HUGE, "-" + HUGE, "1e3", " 3", "nan", "inf", "٣", "3", "1"]
counts = st.one_of(st.sampled_from(BAD_COUNTS), st.integers(-3, 5).map(str), arg_texts)
HEADS = ["none", "NONE", "None", "null", "", "0", "-1", "1", "2", "3", HUGE, "1.5", "x", "٢"]
heads = st.one_of(st.sampled_from(HEADS), arg_texts)
METAS = [
    "score=0.71",
    "=1",
    "=",
    "k",
    "k=",
    "k==",
    "k=NaN",
    "k=Infinity",
    "k=[1, 2",
    "k={}",
    'k={"a": NaN}',
    "k=null",
    "k=1e999",
    "k=" + "[" * 2000 + "]" * 2000,
    "k=" + HUGE * 20,
    "a.b=1",
    "x'; DROP TABLE names; --=1",
    "k=\udcff",
    "k=a\nb",
    "\n=1",
    "k=" + "v" * 10_000,
]
GOOD_METAS = ["score=0.71", "dataset=dev-v2", "flags=[1, 2]", "note=null", "k=text with = sign"]
metas = st.one_of(
    st.sampled_from(GOOD_METAS),
    st.sampled_from(METAS),
    st.tuples(arg_texts, arg_texts).map("=".join),
)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
state_values = st.one_of(
    st.sampled_from(
        [
            2**70,
            -(2**63) - 1,
            "x" * 1_000_000,
            _nested(99),
            _nested(101),
            _nested(400),
            [],
            {},
            "",
            None,
        ]
    ),
    json_values,
)
state_keys = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=2000))
state_dicts = st.dictionaries(state_keys, state_values, max_size=4)
TOML_TEXTS = [
    "a = 1979-05-27T07:32:00Z",
    "a = 1979-05-27",
    "a = 07:32:00",
    "a = nan",
    "a = inf",
    "a = 1979-05-27T07:32:00",
    "a = [1979-05-27]",
    "a = 1\n[a]\nb = 2",
    "a = 'x\n",
    'a = """',
    "\ufeffa = 1",
    "a = 1\x00",
    "a.b.c = 1",
    "'' = 1",
    "a = " + "[" * 1000 + "]" * 1000,
    'a = "\\ud800"',
    "a = 1\r\nb = 2\r\n",
    "k = '" + "t" * 100_000 + "'",
]
NON_OBJECTS = ["[]", "null", "1", '"a"', "true", "[{}]", ""]
# Mostly the two real formats, so that many files get as far as the store.
SUFFIXES = [".json"] * 4 + [".toml"] * 3 + [".JSON", ".Toml", ".txt", "", ".json.bak", ".yaml"]


@st.composite
def state_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A suffix and the bytes of a state file: valid, subtly wrong, or garbage."""
    suffix = draw(st.sampled_from(SUFFIXES), label="suffix")
    kind = draw(
        st.sampled_from(["dict"] * 4 + ["malformed", "toml", "non-object", "truncated", "binary"]),
        label="kind",
    )
    if kind == "dict":  # json.dumps writes NaN/Infinity literals for non-finite floats
        state = draw(state_dicts, label="state")
        if suffix.lower().startswith(".toml") and draw(st.booleans(), label="as toml"):
            try:
                import tomli_w

                text = tomli_w.dumps(state)
            except (TypeError, ValueError, RecursionError):
                text = json.dumps(state)
        else:
            try:
                text = json.dumps(state, ensure_ascii=draw(st.booleans(), label="ascii"))
            except RecursionError:
                text = "{}"
    elif kind == "malformed":
        text = draw(st.sampled_from(MALFORMED), label="text")
    elif kind == "toml":
        text = draw(st.sampled_from(TOML_TEXTS), label="text")
    elif kind == "non-object":
        text = draw(st.sampled_from(NON_OBJECTS), label="text")
    elif kind == "truncated":
        full = json.dumps({"prompt": "Be brief.", "nested": {"k": [1, 2.5, None]}})
        text = full[: draw(st.integers(0, len(full) - 1), label="cut")]
    else:
        return suffix, draw(st.binary(max_size=64), label="bytes")
    return suffix, text.encode("utf-8", "surrogatepass")


# -- the harness ------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


def _stream(errors: str) -> io.TextIOWrapper:
    # Bytes underneath (``report -o -`` writes to sys.stdout.buffer), never a terminal.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=errors, write_through=True)


def run_in_process(argv: list[str]) -> Result:
    """``msgflux-store ARGV`` in this process: stdout strict UTF-8, stderr backslashreplace,
    as Python sets them up under a UTF-8 locale."""
    out, err = _stream("strict"), _stream("backslashreplace")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse: usage errors (2), --help/--version (0)
            code = stop.code if isinstance(stop.code, int) else 1
    return Result(
        code, out.buffer.getvalue().decode("utf-8"), err.buffer.getvalue().decode("utf-8")
    )


SCRIPT = Path(sys.executable).with_name("msgflux-store")
_DROPPED = ("NO_COLOR", "FORCE_COLOR", "MSGFLUX_STORE", "COLUMNS", "TERM")


def run_script(argv: list[str]) -> Result:
    """The installed console script, as a user's shell runs it."""
    program = str(SCRIPT) if SCRIPT.exists() else shutil.which("msgflux-store")
    assert program, "the msgflux-store console script is not installed"
    environment = {key: value for key, value in os.environ.items() if key not in _DROPPED}
    done = subprocess.run(
        [program, *argv], capture_output=True, check=False, env=environment, timeout=120
    )
    return Result(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


_ERROR_LINE = re.compile(r"msgflux-store: error: \S")
_USAGE_ERROR_LINE = re.compile(r"^msgflux-store(?: [\w-]+)*: error: \S", re.MULTILINE)


def check_contract(result: Result, argv: list[str]) -> None:
    """Exit 0, or a clean refusal: 2 with argparse's usage text, 3 with one error line."""
    shown = (
        f"msgflux-store {argv!r} -> {result.code}\nstdout: {result.out[:500]!r}\n"
        f"stderr: {result.err[:2000]!r}"
    )
    assert "Traceback" not in result.err, shown
    assert result.code in (0, 2, 3), shown
    if result.code == 0:
        assert result.err == "", shown
        return
    assert result.out == "", f"a refused call printed on stdout: {shown}"
    lines = result.err.splitlines()
    if result.code == 3:
        assert len(lines) == 1 and _ERROR_LINE.match(lines[0]), shown
        assert "internal error" not in lines[0], f"an unexpected exception: {shown}"
    else:  # argparse echoes unrecognized arguments raw, control characters included
        assert result.err.startswith("usage: msgflux-store"), shown
        assert _USAGE_ERROR_LINE.search(result.err) and result.err.endswith("\n"), shown


class Harness:
    """A SQLite store with 'base' v1 (tag production), v2; ``call`` runs the CLI and checks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = str(folder / "store.db")
        self.store = StateStore(self.db)
        self.engine = raw_engine(self.db)
        self.store.save("base", {"prompt": "Be brief.", "temperature": 0.2})
        self.store.save("base", {"prompt": "Be brief!", "temperature": 0.2})
        self.store.tag("base", 1, "production")
        self.files = folder / "files"
        self.files.mkdir()
        self.exits: Counter[int] = Counter()

    def call(self, *argv: str, subprocess: bool = False) -> tuple[Result, bool]:
        """Run ``--db DB ARGV``; return the result and whether the database changed."""
        full = ["--db", self.db, *argv]
        BAD_INPUT_CLI_CASES["subprocess" if subprocess else "in-process"] += 1
        before = dump(self.engine)
        result = (run_script if subprocess else run_in_process)(full)
        check_contract(result, full)
        self.exits[result.code] += 1
        changed = dump(self.engine) != before
        assert result.code == 0 or not changed, (
            f"refused call {full!r} changed the store: {result.err}"
        )
        return result, changed

    def write(self, label: str, suffix: str, payload: bytes) -> Path:
        path = self.files / f"{label}{suffix}"
        path.write_bytes(payload)
        return path

    def close(self) -> None:
        report = self.store.verify()
        self.store.close()
        self.engine.dispose()
        assert report.ok, str(report)


@pytest.fixture
def harness(tmp_path: Path, request: pytest.FixtureRequest):
    opened = Harness(tmp_path)
    yield opened
    record(
        request,
        f"{opened.exits.total()} CLI calls, "
        + ", ".join(f"exit {code}: {count}" for code, count in sorted(opened.exits.items())),
    )
    opened.close()


def explore(**strategies: Any):
    """Run the decorated body right away as a Hypothesis test of EXAMPLES examples."""

    def decorate(body):
        settings(
            deadline=None,
            database=None,
            max_examples=EXAMPLES,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )(given(**strategies)(body))()
        return body

    return decorate


def reference_parse(path: Path) -> Any:
    """What the file holds by the standard library alone (the oracle for a round trip)."""
    text = path.read_bytes().decode("utf-8")
    if path.suffix.lower() == ".toml":
        return tomllib.loads(text)
    return json.loads(text)


def _meta_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- the tests ---------------------------------------------------------------------------


def test_save_round_trips_or_refuses(harness):
    """``save NAME FILE`` with hostile names, files, --meta, --expect-head, -m, --author."""
    labels = itertools.count()

    @explore(
        name=names,
        file=state_files(),
        meta=st.one_of(st.just([]), st.lists(metas, max_size=2)),
        head=st.one_of(st.none(), st.none(), st.none(), heads),
        message=st.one_of(st.none(), arg_texts),
        author=st.one_of(st.none(), arg_texts),
        as_json=st.booleans(),
    )
    def case(name, file, meta, head, message, author, as_json):
        suffix, payload = file
        path = harness.write(f"state{next(labels)}", suffix, payload)
        argv = ["save", name, str(path)]
        argv += ["--meta", *meta] if meta else []
        argv += ["--expect-head", head] if head is not None else []
        argv += ["-m", message] if message is not None else []
        argv += ["--author", author] if author is not None else []
        argv += ["--json"] if as_json else []
        result, changed = harness.call(*argv)
        if result.code != 0:
            return
        expected = reference_parse(path)
        head_version = harness.store.log(name, limit=1)[0]
        loaded = harness.store.load(name, head_version.number)
        assert same(loaded, expected), f"{argv!r}: saved {loaded!r:.300}, file {expected!r:.300}"
        if path.suffix.lower() == ".json":
            assert list(loaded) == list(expected)
        if as_json:
            assert json.loads(result.out)["number"] == head_version.number
        created = (
            json.loads(result.out)["created"]
            if as_json
            else not result.out.startswith("unchanged:")
        )
        if changed and created:  # a new version: its message, author and metadata as given
            assert head_version.message == (message or "")
            assert head_version.author == author
            wanted = {}
            for pair in meta:
                key, _, value = pair.partition("=")
                wanted[key] = _meta_value(value)
            assert same(head_version.metadata, wanted)


def _keep_last(count: str | None) -> str:
    """``count``, but never a number below 2: 'base' keeps the versions other cases name."""
    try:
        return count if count is not None and int(count) >= 2 else "2"
    except ValueError:  # not a number (or too long to be one): a usage error to try
        return count


def test_version_references_resolve_or_refuse(harness):
    """Reading and writing commands with hostile refs, tags, names and counts."""
    store = harness.store
    outputs = harness.files / "out"
    outputs.mkdir()
    suffixes = st.sampled_from([".toml", ".json", ".txt", ""])

    @explore(
        operation=st.sampled_from(
            [
                "show",
                "diff",
                "log",
                "tags",
                "tag-history",
                "tag",
                "untag",
                "rollback",
                "checkout",
                "prune",
                "export",
                "sql",
                "report",
            ]
        ),
        name=names,
        ref=refs,
        other=st.one_of(st.none(), refs),
        tag=arg_texts,
        count=st.one_of(st.none(), counts),
        head=st.one_of(st.none(), heads),
        suffix=suffixes,
        as_json=st.booleans(),
    )
    def case(operation, name, ref, other, tag, count, head, suffix, as_json):
        for leftover in outputs.iterdir():
            leftover.unlink()
        target = outputs / f"out{suffix}"
        before_tags = store.tags("base")
        argv = {
            "show": ["show", name, ref, "--format", "json" if as_json else "toml"],
            "diff": ["diff", name, ref, *([other] if other is not None else [])],
            "log": ["log", name, "--key", tag, *(["--limit", count] if count is not None else [])],
            "tags": ["tags", name],
            "tag-history": ["tag-history", name, tag],
            "tag": ["tag", name, ref, tag, *(["--expect", head] if head is not None else [])],
            "untag": ["untag", name, tag, *(["--expect", head] if head is not None else [])],
            "rollback": [
                "rollback",
                name,
                ref,
                *(["--expect-head", head] if head is not None else []),
            ],
            "checkout": ["checkout", name, ref, str(target)],
            "prune": ["prune", name, "--keep-last", _keep_last(count)],
            "export": ["export", str(target), name, *([tag] if tag else [])],
            "sql": [
                "sql",
                "SELECT number FROM versions WHERE number = ?",
                "-p",
                ref,
                "--timeout",
                count or "5",
            ],
            "report": ["report", name, "-o", str(outputs / tag) if tag else "-"],
        }[operation]
        if as_json:
            argv.append("--json")
        result, _ = harness.call(*argv)
        if result.code != 0:
            if operation == "checkout":
                assert not target.exists(), "a refused checkout left a file"
            return
        if operation == "show" and as_json:
            shown = json.loads(result.out)
            number = shown["version"]["number"]
            assert same(shown["state"], store.load(name, number))
            if not ref.startswith("-"):  # "--json" as REF is the option; REF defaults to latest
                assert same(store.load(name, ref), store.load(name, number))
        elif operation == "checkout":
            version = store.get(name, ref)
            assert same(msgflux.load(target), store.load(name, version.number))
        elif operation == "tag":
            assert store.tags(name)[tag] == store.get(name, ref).number
        elif operation == "untag":
            assert tag not in store.tags(name)
        elif operation == "rollback":
            newest = store.log(name, limit=1)[0]
            assert same(store.load(name, newest.number), store.load(name, ref))
        elif operation == "prune" and name == "base":
            assert set(before_tags.values()) <= {v.number for v in store.log("base")}


BUNDLE_VALUES = st.one_of(
    st.sampled_from(
        [
            None,
            0,
            -1,
            2**70,
            "",
            "0" * 64,
            "f" * 64,
            "not a hash",
            [],
            {},
            [["k", "0" * 64]],
            {"type": "int", "text": "1"},
            {"type": "float", "text": "NaN"},
            True,
            1.5,
            "a\x00b",
            "'; DROP TABLE names; --",
            "9999-12-31T23:59:59-14:00",
            "2024-13-01",
            "{}",
        ]
    ),
    json_values,
)


def test_tampered_bundles_are_refused_or_import_exactly(harness):
    """Export a real bundle via the API, change a value's text or hash (or any other place),
    import it with ``msgflux-store import``."""
    harness.store.save("other", {"prompt": "Think.", "k": 4, "deep": _nested(20)})
    harness.store.save("other", {"prompt": "Think twice.", "k": 4})
    source = harness.files / "original.json"
    harness.store.export_bundle(source, ["base", "other"])
    original = bundle_document(source)  # tampered as a version-1 document
    targets = paths_in(original)[1:]
    value_hashes = sorted(original["values"])

    @explore(
        data=st.data(),
        suffix=st.sampled_from([".json", ".json", ".toml", ".txt"]),
        rename=st.one_of(st.none(), arg_texts),
    )
    def case(data, suffix, rename):
        tampered = copy.deepcopy(original)
        if rename is not None:  # a hostile name, often one the store lacks: the import writes
            tampered["names"][rename] = tampered["names"].pop("other")
        how = data.draw(
            st.sampled_from(["untouched", "value text", "value hash", "anywhere"]), label="how"
        )
        if how == "value text":
            value = tampered["values"][data.draw(st.sampled_from(value_hashes), label="value")]
            value["text"] = data.draw(
                st.one_of(
                    st.sampled_from(["", " ", "NaN", "1e999", '"x"', "null", value["text"] + " "]),
                    st.text(max_size=20),
                ),
                label="text",
            )
        elif how == "value hash":
            digest = data.draw(st.sampled_from(value_hashes), label="value")
            new = data.draw(
                st.sampled_from(
                    ["0" * 64, "F" * 64, digest[:12], digest + "0", "x'; DROP TABLE names; --", ""]
                ),
                label="new hash",
            )
            tampered["values"][new] = tampered["values"].pop(digest)
        elif how == "anywhere":
            path = data.draw(st.sampled_from(targets), label="path")
            parent = tampered
            try:
                for part in path[:-1]:
                    parent = parent[part]
                parent[path[-1]] = data.draw(BUNDLE_VALUES, label="new value")
            except (KeyError, IndexError, TypeError):
                return  # renamed away
        file = harness.files / f"bundle{suffix}"
        try:
            msgflux.save(tampered, file.with_suffix(".json") if suffix == ".txt" else file)
            if suffix == ".txt":
                file.with_suffix(".json").rename(file)
        except MsgfluxError:  # TOML cannot hold None: write what a hand-edit could
            file.write_text(json.dumps(tampered) if suffix != ".toml" else "names = 1\n")
        result, changed = harness.call("import", str(file))
        if result.code != 0:
            return
        report = harness.store.verify()
        assert report.ok, str(report)
        for name, history in tampered["names"].items():
            for version in history["versions"]:
                pairs = tampered["snapshots"][version["snapshot"]]
                wanted = {
                    key: decode_value(
                        tampered["values"][digest]["type"], tampered["values"][digest]["text"]
                    )
                    for key, digest in pairs
                }
                assert same(harness.store.load(name, version["number"]), wanted)


USAGE_CASES = [
    [],
    ["nope"],
    ["log"],
    ["log", "base", "--limit"],
    ["log", "base", "--limit", "0"],
    ["log", "base", "--limit", "-1"],
    ["log", "base", "--limit", "1.5"],
    ["log", "base", "--limit", HUGE + "x"],
    ["prune", "base"],
    ["prune", "base", "--keep-last", "0"],
    ["prune", "base", "--keep-last", "-" + HUGE],
    ["prune", "base", "--keep-last", "two"],
    ["save", "base"],
    ["save", "base", "f.toml", "--meta"],
    ["save", "base", "f.toml", "--meta", "k"],
    ["save", "base", "f.toml", "--meta", "=v"],
    ["save", "base", "f.toml", "--meta", "k=" + "[" * 5000],  # too deep for json.loads
    ["save", "base", "f.toml", "--meta", "k=" + "[" * 5000 + "]" * 5000],
    ["save", "base", "f.toml", "--expect-head", "x"],
    ["save", "base", "f.toml", "--expect-head", "1.5"],
    ["rollback", "base", "1", "--expect-head"],
    ["tag", "base", "1", "t", "--expect", "nan"],
    ["show", "base", "--format", "yaml"],
    ["diff", "base"],
    ["diff", "base:1"],
    ["diff", "base:1", "2", "3"],
    ["--color", "pink", "names"],
    ["sql", "SELECT 1", "--timeout", "0"],
    ["sql", "SELECT 1", "--timeout", "nan"],
    ["sql", "SELECT 1", "--timeout", "-inf"],
    ["db"],
    ["db", "drop"],
    ["show", "base", "-x"],
    ["log", "base", "--limit=\udcff"],
    ["push"],
    ["pull", "--from"],
]


def test_usage_errors_exit_2_with_usage(harness):
    """Bad command lines: argparse's usage text and one error line, exit 2, nothing written."""
    for argv in USAGE_CASES:
        result, _ = harness.call(*argv)
        assert result.code == 2, (argv, result)


def test_refusals_round_trip_through_the_console_script(harness):
    """About ten representative hostile calls through the real, installed console script."""
    files = harness.files
    nan = harness.write("nan", ".json", b'{"a": NaN}')
    when = harness.write("when", ".toml", b"a = 1979-05-27T07:32:00Z\n")
    garbage = harness.write("garbage", ".toml", bytes(range(256)))
    deep = harness.write("deep", ".json", ("[" * 100_000 + "]" * 100_000).encode())
    good = harness.write(
        "good",
        ".json",
        json.dumps({"k'; --": "\u202e日本語", "n": 2**70, "deep": _nested(60)}).encode(),
    )
    harness.store.export_bundle(files / "bundle.json", ["base"])
    bundle = bundle_document(files / "bundle.json")
    next(iter(bundle["values"].values()))["text"] = "Be very brief."
    (files / "tampered.json").write_text(json.dumps(bundle), encoding="utf-8")
    calls = [
        (["save", "base", str(nan)], 3),
        (["save", "base", str(when)], 3),
        (["save", "base", str(garbage)], 3),
        (["save", "base", str(deep)], 3),
        (["save", "hostile", str(good), "--meta", "k=[1, 2", "--expect-head", "none"], 0),
        (["save", "base", str(good), "--meta", "=1"], 2),
        (["show", "base", HUGE], 3),
        (["tag", "base", "1", "x'; DROP TABLE names; --", "--expect", "none"], 0),
        (["import", str(files / "tampered.json")], 3),
        (["log", "base", "--limit", "0"], 2),
        (["prune", "base", "--keep-last", "-" + HUGE], 2),
        (["log", "\udcff\udcfe"], 3),
    ]
    # One at a time: each compares the database dump before and after its own call.
    results = [harness.call(*argv, subprocess=True) for argv, _ in calls]
    for (argv, wanted), (result, _) in zip(calls, results, strict=True):
        assert result.code == wanted, (argv, result)
    assert same(harness.store.load("hostile"), reference_parse(good))
    assert harness.store.get("hostile", "latest").metadata == {"k": "[1, 2"}
    assert harness.store.tags("base")["x'; DROP TABLE names; --"] == 1
