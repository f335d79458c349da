"""``msgflux-store``: the command line over :class:`~msgflux.store.StateStore`.

Each subcommand is one ``StateStore`` method with the same name and options
(``log NAME --key K --limit N`` is ``store.log(name, key=k, limit=n)``), so
learning one teaches the other. Reading guide: the ``_cmd_*`` functions are
the subcommands, :func:`build_parser` declares them with their help and
examples, :class:`_Output` decides between tables and colour for people and
plain text or JSON for scripts, :func:`main` maps errors to exit codes.

Exit codes: 0 ok; 1 differences found (``diff --exit-code``) or ``verify``
found problems; 2 usage error; 3 store or file error (one line on stderr,
the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from msgflux.errors import MsgfluxError, SerializationError
from msgflux.store import _cli_loop, _cli_serving
from msgflux.store.errors import NameNotFound, StoreError
from msgflux.store.types import Progress, format_ranges

__all__ = ["EXIT_DIFFERENT", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

PROG = "msgflux-store"
STORE_ENV = "MSGFLUX_STORE"
DEFAULT_STORE = "msgflux_state.db"

EXIT_OK = 0
EXIT_DIFFERENT = 1  # diff --exit-code found differences; verify found problems
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_ERROR = 3  # StoreError, a file msgflux could not read or write, an OS error


class CliError(MsgfluxError):
    """A problem the command line itself detects (e.g. no store at the given path)."""


# -- help texts ---------------------------------------------------------------------------

_DESCRIPTION = """\
A versioned, content-hashed store of state dicts on SQLite or PostgreSQL.
Every subcommand mirrors one StateStore method (same names, same options).

The store is --db PATH_OR_URL, else $MSGFLUX_STORE, else ./msgflux_state.db.
A path is an SQLite file; a URL such as postgresql://user@host/db is a server.
Commands that only read refuse to create a missing SQLite file."""

_EPILOG = """\
examples:
  msgflux-store save pipeline state.toml -m "baseline" --meta score=0.71
  msgflux-store log pipeline
  msgflux-store diff pipeline 1 2
  msgflux-store tag pipeline 2 production
  msgflux-store sql "SELECT version, key FROM state_changes WHERE name = 'pipeline'"
  msgflux-store report pipeline -o history.html

output:
  Tables and colour on a terminal; plain text when piped, with --no-color or
  $NO_COLOR; --color always forces colour. --json on any command prints one
  stable JSON document (see each command's --help). A version is
    {"name", "number", "snapshot", "parent", "created_at" (ISO 8601, UTC),
     "message", "author", "metadata", "tags"}

exit codes:
  0  success
  1  differences found (diff --exit-code) or verify found problems
  2  usage error (bad command line)
  3  store or file error: no such name/version/tag, conflict, refused SQL,
     unreadable file... (one line on stderr; --debug shows the traceback)"""

_VERSION_SHAPE = ('a version is {"name", "number", "snapshot", "parent", "created_at", '
                  '"message", "author", "metadata", "tags"}')


# -- output -------------------------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _short_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def version_json(version: Any) -> dict[str, Any]:
    """The stable JSON object of a :class:`~msgflux.store.Version`."""
    return {"name": version.name, "number": version.number, "snapshot": version.snapshot,
            "parent": version.parent, "created_at": _iso(version.created_at),
            "message": version.message, "author": version.author,
            "metadata": version.metadata, "tags": list(version.tags)}


class _Output:
    """Where and how results are printed: rich on a terminal, plain text or JSON otherwise."""

    def __init__(self, args: argparse.Namespace, stream: TextIO | None = None) -> None:
        from rich.console import Console

        self.stream = stream or sys.stdout
        self.json = bool(getattr(args, "json", False))
        mode = "never" if getattr(args, "no_color", False) else getattr(args, "color", "auto")
        is_tty = self.stream.isatty()
        if mode == "auto":
            self.color = is_tty and not os.environ.get("NO_COLOR")
        else:
            self.color = mode == "always"
        # Tables are for people: a terminal, or colour forced on.
        self.terminal = is_tty or mode == "always"
        self.console = Console(
            file=self.stream,
            force_terminal=self.color,
            no_color=not self.color,
            color_system="auto" if self.color else None,
            highlight=False,
            emoji=False,
            markup=False,
            width=None if is_tty else max(120, int(os.environ.get("COLUMNS", "0") or 0)),
        )

    def line(self, text: str = "") -> None:
        self.stream.write(_printable(text) + "\n")

    def dump(self, data: Any) -> None:
        self.stream.write(_printable(json.dumps(data, indent=2, ensure_ascii=False,
                                                default=_json_default)) + "\n")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]],
              styles: Sequence[str | None] = ()) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(show_edge=False, header_style="bold" if self.color else None,
                      pad_edge=False)
        for index, column in enumerate(columns):
            style = styles[index] if index < len(styles) and self.color else None
            table.add_column(column, style=style, overflow="fold")
        for row in rows:
            table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
        self.console.print(table)


def _printable(text: str) -> str:
    """``text`` with lone surrogates as ``?``: a file name that is not UTF-8 reaches argv as
    surrogates (os.fsdecode), and echoing it must not fail after the work is done."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


@contextmanager
def _busy(message: str) -> Iterator[None]:
    """A spinner on stderr while a long operation runs: only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


@contextmanager
def _progress_bar(message: str) -> Iterator[Progress | None]:
    """A progress bar per phase on stderr, fed by a ``progress(phase, done, total)`` callback.

    Yields ``None`` (no callback, no output) when stderr is not a terminal.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    with Bars(TextColumn(f"{message} {{task.description}}"), BarColumn(), MofNCompleteColumn(),
              TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bars:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield update


# -- opening the store --------------------------------------------------------------------

def _target(args: argparse.Namespace) -> str:
    return getattr(args, "db", None) or os.environ.get(STORE_ENV) or DEFAULT_STORE


def _missing_sqlite(target: str) -> str | None:
    """The SQLite file ``target`` names if it does not exist, else ``None``."""
    from msgflux.store.engine import resolve_url

    url = resolve_url(target)
    if url.get_backend_name() == "sqlite" and not Path(str(url.database)).exists():
        return str(url.database)
    return None


def _open(target: str, *, create: bool = False, migrate: bool = True) -> Any:
    from msgflux.store import StateStore

    if not create:
        missing = _missing_sqlite(target)
        if missing is not None:
            raise CliError(f"no store at {missing}: give --db PATH_OR_URL or set {STORE_ENV} "
                           "(`save`, `import` and `pull` create a new store)")
    return StateStore(target, migrate=migrate)


@contextmanager
def _store(args: argparse.Namespace, *, create: bool = False) -> Iterator[Any]:
    store = _open(_target(args), create=create)
    try:
        yield store
    finally:
        store.close()


# -- argument types -----------------------------------------------------------------------

def _expected_head(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a version number or 'none', not {text!r}") from None
    return number


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return number


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return seconds


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:  # nested too deeply for the parser: neither JSON nor a plain text
        raise CliError(f"the JSON value {text[:20]!r}... is nested too deeply") from None


def _meta_pair(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    try:
        return key, _json_or_text(value)
    except CliError as error:  # raised while parsing the command line: a usage error
        raise argparse.ArgumentTypeError(str(error)) from None


def _metadata(args: argparse.Namespace) -> dict[str, Any] | None:
    pairs = getattr(args, "meta", None)
    return dict(pairs) if pairs else None


def _ref(text: str) -> Any:
    """``NAME:VERSION`` as a (name, version) pair; a bare VERSION as is."""
    name, sep, ref = text.partition(":")
    return (name, ref) if sep else text


# -- commands: reading --------------------------------------------------------------------

def _cmd_names(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        names = store.names()
        if out.json:
            out.dump(names)
        elif out.terminal:
            rows = []
            for name in names:
                latest = store.log(name, limit=1)[0]
                tags = store.tags(name)
                rows.append((name, latest.number, _short_time(latest.created_at),
                             ", ".join(f"{tag}\u2192{number}" for tag, number in tags.items()),
                             latest.message))
            out.table(["name", "latest", "saved (UTC)", "tags", "message"], rows,
                      ["bold", "cyan", "dim", "yellow", None])
        else:
            for name in names:
                out.line(name)
    return EXIT_OK


def _cmd_log(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        versions = store.log(args.name, **_cli_loop.log_call(args))
    if out.json:
        out.dump([version_json(version) for version in versions])
    else:
        with _cli_loop.paged(out, args):
            _cli_loop.print_log(out, versions, oneline=args.oneline)
    return EXIT_OK


def _state_text(state: dict[str, Any], fmt: str, label: str) -> str:
    # The same rules msgflux.save applies to files, written once in serialization.
    from msgflux.serialization import dumps

    try:
        return dumps(state, fmt)
    except SerializationError as error:
        raise CliError(f"cannot show {label} as {fmt.upper()}: {error}; "
                       f"use --format json") from None


def _cmd_show(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        version = store.get(args.name, args.version)
        state = store.load(args.name, version.number, prefix=args.prefix)
    if args.key is not None:
        if args.key not in state:
            from msgflux.store._annotate import cut_list, did_you_mean

            raise CliError(f"{args.name}@{version.number} has no key {args.key!r}"
                           f"{did_you_mean(args.key, list(state))}; its keys are "
                           f"{cut_list(list(state))}")
        value = state[args.key]
        if out.json:
            out.dump(value)
        else:
            out.stream.write(value if isinstance(value, str) else
                             json.dumps(value, ensure_ascii=False, indent=2))
            if not isinstance(value, str) or not value.endswith("\n"):
                out.stream.write("\n")
        return EXIT_OK
    if out.json:
        out.dump({"version": version_json(version), "state": state})
    else:
        out.stream.write(_state_text(state, args.format, f"{args.name}@{version.number}"))
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace, out: _Output) -> int:
    refs = [_ref(ref) for ref in (args.a, args.b) if ref is not None]
    if isinstance(_ref(args.name), tuple):  # diff NAME:A OTHER:B
        name, first = _ref(args.name)
        if len(refs) != 1:
            raise _usage(args, "NAME:A needs exactly one other side, e.g. diff a:1 b:2")
        a, b = (name, first), refs[0]
    else:
        name = args.name
        if not refs:
            raise _usage(args, "give a version A (compared with its parent) or two versions")
        a, b = refs[0], refs[1] if len(refs) == 2 else None
    with _store(args) as store:
        diff = store.diff(name, a, b, prefix=args.prefix)
    if args.stat and args.name_only:
        raise _usage(args, "--stat and --name-only cannot be combined")
    if out.json:
        document = {"old": diff.old, "new": diff.new, "added": diff.added,
                    "removed": diff.removed,
                    "changed": {key: {"old": old, "new": new}
                                for key, (old, new) in diff.changed.items()}}
        if diff.note:
            document["note"] = diff.note
        out.dump(document)
    elif args.name_only:
        for key in diff.keys:
            out.line(key)
    elif args.stat:
        for line in _cli_loop.diff_stat(diff):
            out.line(line)
    elif out.color:
        _print_coloured_diff(out, diff)
    else:
        for _kind, line in _cli_loop.diff_lines(diff):
            out.line(line)
    return EXIT_DIFFERENT if args.exit_code and diff else EXIT_OK


_DIFF_STYLES = {"header": "bold", "hunk": "cyan", "context": "", "removed": "red",
                "added": "green"}
_WORD_STYLES = {"removed": "bold white on red", "added": "bold black on green"}


def _print_coloured_diff(out: _Output, diff: Any) -> None:
    from rich.text import Text

    from msgflux.store.report import classify_lines

    if diff.note:
        out.console.print(Text(f"# {diff.note}", style="dim"))
    if not diff:
        out.console.print(Text(str(diff).splitlines()[-1], style="dim"))
        return
    for key, lines in diff.hunks():
        if key in diff.changed and all(_cli_loop._scalar(side) for side in diff.changed[key]):
            old, new = diff.changed[key]
            text = Text(f"{key}: ", style="bold")
            text.append(json.dumps(old), style="red")
            text.append(" \u2192 ")
            text.append(json.dumps(new), style="green")
            out.console.print(text, soft_wrap=True)
            continue
        for line in classify_lines(lines):
            text = Text()
            style = _DIFF_STYLES[line.kind]
            for piece, changed in line.segments:
                text.append(piece, style=_WORD_STYLES.get(line.kind, style) if changed else style)
            out.console.print(text, soft_wrap=True)


def _cmd_tags(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        tags = store.tags(args.name)
    if out.json:
        out.dump(tags)
    elif out.terminal:
        out.table(["tag", "version"], list(tags.items()), ["yellow", "cyan"])
    else:
        for tag, number in tags.items():
            out.line(f"{tag}\t{number}")
    return EXIT_OK


def _cmd_tag_history(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        events = store.tag_history(args.name, args.tag)
    rows = [{"name": event.name, "tag": event.tag, "version": event.version,
             "previous_version": event.previous_version, "moved_at": _iso(event.moved_at),
             "author": event.author} for event in events]
    if out.json:
        out.dump(rows)
    elif out.terminal:
        out.table(["moved at (UTC)", "tag", "from", "to", "author"],
                  [(_short_time(event.moved_at), event.tag, event.previous_version,
                    "removed" if event.version is None else event.version, event.author)
                   for event in events], ["dim", "yellow", None, "cyan", None])
    else:
        for row in rows:
            to = "removed" if row["version"] is None else row["version"]
            out.line(f"{row['moved_at']}\t{row['tag']}\t{row['previous_version']}\t{to}")
    return EXIT_OK


def _sql_params(args: argparse.Namespace) -> list[Any] | dict[str, Any]:
    """``-p VALUE`` binds positionally; ``-p name=value`` binds ``:name`` / ``%(name)s``."""
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for param in args.param or ():
        name, sep, value = param.partition("=")
        if sep and name.isidentifier():
            named[name] = _json_or_text(value)
        else:
            positional.append(_json_or_text(param))
    if positional and named:
        raise _usage(args, "use either positional parameters (-p VALUE) or named ones "
                           "(-p name=VALUE), not both")
    return named or positional


def _cmd_sql(args: argparse.Namespace, out: _Output) -> int:
    if out.json and args.format not in (None, "json"):
        raise _usage(args, f"--json and --format {args.format} conflict; give one")
    if args.arrays and (args.format or "json") != "json":
        raise _usage(args, f"--arrays is a JSON form and conflicts with --format {args.format}")
    params = _sql_params(args)
    with _store(args) as store:
        result = store.query(args.sql, params, timeout=args.timeout)
    fmt = "json" if out.json or args.arrays else args.format
    if fmt is None:
        fmt = "table" if out.terminal else "csv"
    # JSON has no NaN or infinity (SQLite computes them, PostgreSQL stores them):
    # they print as null, so the output is always valid JSON.
    finite = [[None if type(cell) is float and not math.isfinite(cell) else cell
               for cell in row] for row in result] if fmt == "json" else []
    if fmt == "json" and args.arrays:
        out.dump({"columns": result.columns, "rows": finite})
    elif fmt == "json":
        out.dump([dict(zip(result.columns, row, strict=True)) for row in finite])
    elif fmt == "csv":
        writer = csv.writer(out.stream, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(result)
    else:
        out.table(result.columns, result)
    return EXIT_OK


# -- commands: writing --------------------------------------------------------------------

def _cas(args: argparse.Namespace, option: str, parameter: str) -> dict[str, Any]:
    """Pass a compare-and-swap option only when given (the API tells unset from None)."""
    value = getattr(args, option, argparse.SUPPRESS)
    return {} if value is argparse.SUPPRESS else {parameter: value}


def _read_state(args: argparse.Namespace) -> dict[str, Any]:
    """The state dict in FILE, or on stdin for ``-`` (``--format``, TOML by default)."""
    import msgflux
    from msgflux.serialization import loads

    if args.file == "-":
        return loads(sys.stdin.read(), args.format or "toml", "<stdin>")
    if args.format is not None:
        raise _usage(args, "--format is for '-' (stdin); a file's suffix names its format")
    return msgflux.load(args.file)


def _warn_tables(args: argparse.Namespace, state: dict[str, Any], store: Any) -> None:
    """A hand-written ``[generator]`` table is one dict-valued key, not ``generator.*`` keys."""
    if args.file != "-" and not str(args.file).lower().endswith(".toml"):
        return
    if args.file == "-" and (args.format or "toml") != "toml":
        return
    tables = [key for key, value in state.items() if isinstance(value, dict)]
    if not tables:
        return
    try:
        head = store.load(args.name)
    except NameNotFound:
        head = {}
    for key in tables:
        if isinstance(head.get(key), dict):
            continue
        dotted = sorted(other for other in head if other.startswith(key + "."))
        if not dotted:  # nothing to confuse it with: a dict-valued key is a fine state value
            continue
        hint = f"; {args.name} stores {len(dotted)} keys {key}.* instead"
        sys.stderr.write(
            f"{PROG}: note: [{key}] is a TOML table, saved as ONE dict-valued key {key!r}"
            f"{hint}. To keep separate keys write \"{key}.field\" = ... at the top level "
            "(as checkout does); --same-keys refuses a changed key set\n")


def _cmd_save(args: argparse.Namespace, out: _Output) -> int:
    state = _read_state(args)
    with _store(args, create=True) as store:
        _warn_tables(args, state, store)
        version = store.save(args.name, state, message=args.message or "", author=args.author,
                             metadata=_metadata(args), same_keys=args.same_keys,
                             **_cas(args, "expect_head", "expected_head"))
    source = "stdin" if args.file == "-" else args.file
    if out.json:
        out.dump({**version_json(version), "created": version.created,
                  "changes": None if version.changes is None else {
                      "changed": list(version.changes.changed),
                      "added": list(version.changes.added),
                      "removed": list(version.changes.removed)}})
    elif not version.created:
        annotated = (f"; its metadata was recorded as an annotation of "
                     f"{version.name}@{version.number}" if _metadata(args) else "")
        out.line(f"unchanged: {source} equals {version.name}@{version.number}; "
                 f"no version was written{annotated}")
    else:
        out.line(f"saved {version}")
        if version.changes is not None:
            out.line(f" {version.changes}")
    return EXIT_OK


def _cmd_checkout(args: argparse.Namespace, out: _Output) -> int:
    import msgflux

    with _store(args) as store:
        version = store.get(args.name, args.version)
        state = store.load(args.name, version.number)
    if args.file == "-":
        out.stream.write(_state_text(state, args.format or "toml",
                                     f"{args.name}@{version.number}"))
        return EXIT_OK
    if args.format is not None:
        raise _usage(args, "--format is for '-' (stdout); a file's suffix names its format")
    msgflux.save(state, args.file)
    if out.json:
        out.dump({"file": str(args.file), "version": version_json(version)})
    else:
        out.line(f"wrote {version.name}@{version.number} ({len(state)} keys) to {args.file}")
    return EXIT_OK


def _cmd_tag(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        version = store.tag(args.name, args.version, args.tag, author=args.author,
                            **_cas(args, "expect", "expected"))
        if args.protect or args.where is not None:
            store.protect(args.name, args.tag, where=args.where, author=args.author)
    if out.json:
        out.dump(version_json(version))
    else:
        guard = (f" (protected{f', where {args.where}' if args.where is not None else ''})"
                 if args.protect or args.where is not None else "")
        out.line(f"tagged {version.name}@{version.number} as {args.tag}{guard}")
    return EXIT_OK


def _cmd_untag(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        number = store.untag(args.name, args.tag, author=args.author, force=args.force,
                             **_cas(args, "expect", "expected"))
    if out.json:
        out.dump({"name": args.name, "tag": args.tag, "version": number})
    else:
        out.line(f"removed tag {args.tag} from {args.name} (it pointed at version {number})")
    return EXIT_OK


def _cmd_rollback(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        before = store.log(args.name, limit=1)[0].number
        version = store.rollback(args.name, args.version, message=args.message,
                                 author=args.author, metadata=_metadata(args),
                                 **_cas(args, "expect_head", "expected_head"))
    if out.json:
        out.dump(version_json(version))
    elif version.number == before:
        out.line(f"unchanged: {args.name}@{before} already has the content of version "
                 f"{args.version}")
    else:
        out.line(f"rolled back: {version}")
    return EXIT_OK


# -- commands: maintenance ----------------------------------------------------------------

def _cmd_verify(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store, _progress_bar("verifying") as progress:
        report = store.verify(progress=progress)
    if out.json:
        out.dump({"ok": report.ok, "versions_checked": report.versions_checked,
                  "snapshots_checked": report.snapshots_checked,
                  "values_checked": report.blobs_checked,
                  "problems": [{"kind": problem.kind, "message": problem.message,
                                "name": problem.name, "version": problem.version,
                                "key": problem.key} for problem in report.problems]})
    else:
        out.line(str(report))
    return EXIT_OK if report.ok else EXIT_DIFFERENT


def _cmd_prune(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store:
        deleted = store.prune(args.name, keep_last=args.keep_last, dry_run=args.dry_run)
    if out.json:
        out.dump({"name": args.name, "deleted": deleted, "dry_run": args.dry_run})
    else:
        out.line(_cli_loop.prune_summary(args.name, deleted, dry_run=args.dry_run,
                                         keep_last=args.keep_last, prog=PROG))
    return EXIT_OK


def _cmd_gc(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store, _busy("collecting unused content..."):
        result = store.gc(vacuum=args.vacuum)
    if out.json:
        out.dump({"snapshots": result.snapshots, "values": result.blobs,
                  "bytes_before": result.bytes_before, "bytes_after": result.bytes_after})
    else:
        out.line(f"removed {result.snapshots} unused snapshots and {result.blobs} unused values")
        if result.bytes_before is not None and result.bytes_after is not None:
            out.line(f"vacuumed: {result.bytes_before / 1e6:,.2f} MB -> "
                     f"{result.bytes_after / 1e6:,.2f} MB")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store, _progress_bar("exporting") as progress:
        counts = store.export_bundle(args.file, args.names or None, progress=progress)
    if out.json:
        out.dump({"file": str(args.file), "names": counts})
    else:
        out.line(f"exported {sum(counts.values())} versions of {len(counts)} names "
                 f"to {args.file}")
    return EXIT_OK


def _print_copied(out: _Output, copied: dict[str, list[int]], verb: str) -> None:
    if out.json:
        out.dump({"names": copied})
        return
    total = sum(len(numbers) for numbers in copied.values())
    if not total:
        out.line(f"nothing to {verb}: already up to date")
    for name, numbers in copied.items():
        if numbers:
            out.line(f"{name}: {verb}ed versions {format_ranges(numbers)}")


def _cmd_import(args: argparse.Namespace, out: _Output) -> int:
    with _store(args, create=True) as store, _progress_bar("importing") as progress:
        copied = store.import_bundle(args.file, progress=progress)
    _print_copied(out, copied, "import")
    return EXIT_OK


def _cmd_push(args: argparse.Namespace, out: _Output) -> int:
    with _store(args) as store, _with_store(_open(args.to, create=True)) as other, \
            _busy(f"pushing to {args.to}..."):
        copied = store.copy_to(other, args.names or None)
    _print_copied(out, copied, "push")
    return EXIT_OK


def _cmd_pull(args: argparse.Namespace, out: _Output) -> int:
    with _with_store(_open(args.source)) as other, _store(args, create=True) as store, \
            _busy(f"pulling from {args.source}..."):
        copied = other.copy_to(store, args.names or None)
    _print_copied(out, copied, "pull")
    return EXIT_OK


@contextmanager
def _with_store(store: Any) -> Iterator[Any]:
    try:
        yield store
    finally:
        store.close()


def _cmd_report(args: argparse.Namespace, out: _Output) -> int:
    from msgflux.store.report import _render

    with _store(args) as store, _busy(f"rendering the history of {args.name}..."):
        page, count = _render(store, args.name, recent=args.recent)
    data = page.encode("utf-8")
    if args.output == "-":
        sys.stdout.buffer.write(data)
        return EXIT_OK
    Path(args.output).write_bytes(data)
    if out.json:
        out.dump({"file": str(args.output), "name": args.name, "versions": count,
                  "bytes": len(data)})
    else:
        out.line(f"wrote {args.output}: {count} versions of {args.name}, "
                 f"{len(data) / 1024:,.0f} KiB")
    return EXIT_OK


def _cmd_db_upgrade(args: argparse.Namespace, out: _Output) -> int:
    from msgflux.store.engine import create_store_engine, resolve_url
    from msgflux.store.migrate import upgrade

    target = _target(args)
    engine = create_store_engine(resolve_url(target), lock_timeout=30.0, durability="normal")
    try:
        before, after = upgrade(engine, lock_timeout=30.0)
    finally:
        engine.dispose()
    if out.json:
        out.dump({"store": target, "before": before, "after": after})
    elif before == after:
        out.line(f"{target} is already at schema revision {after}")
    else:
        out.line(f"upgraded {target} from schema revision {before or 'none (empty)'} to {after}")
    return EXIT_OK


def _cmd_db_current(args: argparse.Namespace, out: _Output) -> int:
    from msgflux.store.engine import create_store_engine, read_transaction, resolve_url
    from msgflux.store.migrate import current_revision, head_revision

    target = _target(args)
    missing = _missing_sqlite(target)
    if missing is not None:
        raise CliError(f"no store at {missing}")
    # A plain engine, not StateStore: opening would upgrade (or refuse) an old schema.
    engine = create_store_engine(resolve_url(target), lock_timeout=30.0, durability="normal")
    try:
        revision = read_transaction(engine, "reading the schema revision", current_revision)
    finally:
        engine.dispose()
    head = head_revision()
    if out.json:
        out.dump({"store": revision, "package": head, "up_to_date": revision == head})
    else:
        out.line(f"store:   {revision or 'none (empty database)'}")
        state = "up to date" if revision == head else f"run `{PROG} db upgrade`"
        out.line(f"package: {head} ({state})")
    return EXIT_OK


# -- the parser ---------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a misspelled subcommand or choice."""

    def error(self, message: str) -> Any:
        import re

        from msgflux.store._annotate import did_you_mean

        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            message += did_you_mean(match.group(1), choices)
        super().error(message)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _usage(args: argparse.Namespace, message: str) -> SystemExit:
    args.parser_of_command.error(message)
    return SystemExit(EXIT_USAGE)  # not reached: error() exits


def _common_options() -> _Parser:
    # Defaults are SUPPRESS so that an option given before the subcommand is not
    # overwritten by the subcommand's own (absent) copy of it.
    common = _Parser(add_help=False)
    group = common.add_argument_group("global options")
    group.add_argument("--db", metavar="PATH_OR_URL", default=argparse.SUPPRESS,
                       help=f"the store (default: ${STORE_ENV}, else ./{DEFAULT_STORE})")
    group.add_argument("--color", choices=("auto", "always", "never"), default=argparse.SUPPRESS,
                       help="colour and tables: auto (a terminal without $NO_COLOR), always, never")
    group.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS,
                       help="same as --color never")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON document (shape in the command's help)")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error")
    return common


def _add(subparsers: Any, name: str, handler: Callable[..., int], summary: str, example: str,
         common: argparse.ArgumentParser, json_shape: str = "") -> argparse.ArgumentParser:
    epilog = f"example:\n{example}"
    if json_shape:
        epilog += f"\n\n--json prints:\n  {json_shape}"
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=summary, epilog=epilog, formatter_class=_Formatter,
        parents=[common])
    parser.set_defaults(handler=handler, parser_of_command=parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``msgflux-store`` argument parser (one subcommand per StateStore method)."""
    common = _common_options()
    parser = _Parser(prog=PROG, description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=_Formatter, parents=[common])
    parser.add_argument("--version", action="version", version=_version_text())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # reading
    _add(commands, "names", _cmd_names, "list every name with a history (StateStore.names)",
         "  msgflux-store names\n  msgflux-store names --json", common,
         '["name", ...] sorted')

    sub = _add(commands, "log", _cmd_log, "versions of NAME, newest first (StateStore.log)",
               "  msgflux-store log pipeline --limit 5\n"
               "  msgflux-store log pipeline --where 'score>0.8' --since 2026-11-20 --oneline\n"
               "  msgflux-store log pipeline --key analyzer.instructions --json", common,
               f"[version, ...] newest first; {_VERSION_SHAPE}")
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("--key", metavar="KEY",
                     help="only the versions where KEY was added, changed or removed")
    sub.add_argument("--limit", metavar="N", type=_positive,
                     help="at most N versions (after the filters)")
    _cli_loop.add_log_options(sub, _positive)

    sub = _add(commands, "show", _cmd_show,
               "print a version's state dict as TOML or JSON (StateStore.load)",
               "  msgflux-store show pipeline production > state.toml\n"
               "  msgflux-store show pipeline 3 --format json > state.json", common,
               f'{{"version": version, "state": {{key: value}}}}; {_VERSION_SHAPE}')
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("version", metavar="VERSION", nargs="?", default="latest",
                     help="a number, 'latest' (default), a tag or a snapshot-hash prefix")
    sub.add_argument("--format", choices=("toml", "json"), default="toml",
                     help="toml (default; cannot hold None) or json")
    sub.add_argument("--prefix", metavar="PREFIX", help="only the keys starting with PREFIX")
    sub.add_argument("--key", metavar="KEY",
                     help="print one value raw: a string as its text, anything else as JSON")

    sub = _add(commands, "diff", _cmd_diff,
               "what changed between two versions (StateStore.diff)",
               "  msgflux-store diff pipeline 3              # version 3 against its parent\n"
               "  msgflux-store diff pipeline 1 production\n"
               "  msgflux-store diff pipeline:production experiment:4   # across names\n"
               "  msgflux-store diff pipeline 2 3 --exit-code || echo changed", common,
               '{"old": "name@N", "new": "name@M", "added": {key: value}, '
               '"removed": {key: value},\n   "changed": {key: {"old": value, "new": value}}}')
    sub.add_argument("name", metavar="NAME", help="NAME, or NAME:A to compare across names")
    sub.add_argument("a", metavar="A", nargs="?",
                     help="a version (number, tag, 'latest', hash prefix) or OTHER:VERSION")
    sub.add_argument("b", metavar="B", nargs="?",
                     help="the newer side; default: A compared with its parent")
    sub.add_argument("--prefix", metavar="PREFIX", help="only the keys starting with PREFIX")
    sub.add_argument("--exit-code", action="store_true",
                     help="exit with 1 when there are differences (like git diff)")
    sub.add_argument("--stat", action="store_true",
                     help="one line per key with the number of lines added and removed")
    sub.add_argument("--name-only", action="store_true", help="only the keys that differ")

    sub = _add(commands, "tags", _cmd_tags, "the tags of NAME (StateStore.tags)",
               "  msgflux-store tags pipeline", common, '{"tag": version number, ...}')
    sub.add_argument("name", metavar="NAME", help="the history")

    sub = _add(commands, "tag-history", _cmd_tag_history,
               "every move and removal of NAME's tags, oldest first (StateStore.tag_history)",
               "  msgflux-store tag-history pipeline production", common,
               '[{"name", "tag", "version" (null: removed), "previous_version", "moved_at", '
               '"author"}, ...]')
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("tag", metavar="TAG", nargs="?", help="only this tag (default: all)")

    sub = _add(commands, "sql", _cmd_sql,
               "run one read-only SQL statement over the store's views (StateStore.query)",
               "  msgflux-store sql \"SELECT name, version, message FROM state_history\"\n"
               "  msgflux-store sql \"SELECT version, value FROM state_values WHERE key = ?\" \\\n"
               "      -p analyzer.instructions --format csv\n"
               "  msgflux-store sql \"SELECT * FROM state_history WHERE name = :n\" -p n=pipeline",
               common,
               '[{column: value, ...}, ...] (one object per row); with --arrays\n'
               '  {"columns": [column, ...], "rows": [[value, ...], ...]}')
    sub.add_argument("sql", metavar="SQL", help="one read-only statement over the views")
    sub.add_argument("-p", "--param", action="append", metavar="VALUE",
                     help="a query parameter: VALUE binds ? (%%s on PostgreSQL) in order, "
                          "name=VALUE binds :name (%%(name)s); JSON if it parses, else a "
                          "string; repeatable")
    sub.add_argument("--format", choices=("table", "csv", "json"), default=None,
                     help="table on a terminal, csv when piped (default), or json")
    sub.add_argument("--arrays", action="store_true",
                     help='JSON as {"columns": [...], "rows": [[...], ...]} instead of objects')
    sub.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                     help="interrupt the query after SECONDS (default 10)")

    # writing
    sub = _add(commands, "save", _cmd_save,
               "save a .toml/.json state dict file as the next version of NAME (StateStore.save)",
               "  msgflux-store save pipeline state.toml -m \"shorter prompt\" \\\n"
               "      --author ana --meta score=0.78 dataset=dev-v2 --expect-head 3\n"
               "  msgflux-store checkout pipeline latest - | sed s/4/8/ | "
               "msgflux-store save pipeline -", common,
               f"the saved version (the latest one if nothing changed) plus \"created\": bool "
               f"and\n  \"changes\": {{\"changed\", \"added\", \"removed\"}}; {_VERSION_SHAPE}")
    sub.add_argument("name", metavar="NAME", help="the history (created if new)")
    sub.add_argument("file", metavar="FILE",
                     help="a .toml or .json state dict (msgflux.save), or - for stdin")
    _add_version_options(sub)
    sub.add_argument("-m", "--message", metavar="MSG", default="", help="what changed and why")
    sub.add_argument("--format", choices=("toml", "json"), default=None,
                     help="the format of stdin (FILE -): toml (default) or json")
    sub.add_argument("--same-keys", action="store_true",
                     help="refuse the save if its keys differ from the latest version's")

    sub = _add(commands, "checkout", _cmd_checkout,
               "write a version as a .toml/.json state dict file (StateStore.load + msgflux.save)",
               "  msgflux-store checkout pipeline production state.toml\n"
               "  msgflux-store checkout pipeline 3 - --format json   # to stdout", common,
               f'{{"file": path, "version": version}}; {_VERSION_SHAPE}')
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("version", metavar="VERSION",
                     help="a number, 'latest', a tag or a snapshot-hash prefix")
    sub.add_argument("file", metavar="FILE",
                     help="the .toml or .json file to write (replaced atomically), or - for "
                          "stdout")
    sub.add_argument("--format", choices=("toml", "json"), default=None,
                     help="the format on stdout (FILE -): toml (default) or json")

    sub = _add(commands, "tag", _cmd_tag, "point TAG at a version of NAME (StateStore.tag)",
               "  msgflux-store tag pipeline 2 production", common,
               f"the tagged version; {_VERSION_SHAPE}")
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("version", metavar="VERSION",
                     help="a number, 'latest', a tag or a snapshot-hash prefix")
    sub.add_argument("tag", metavar="TAG", help="the tag to create or move")
    sub.add_argument("--author", metavar="A", help="who moved it (kept in the tag history)")
    sub.add_argument("--expect", type=_expected_head, metavar="N", default=argparse.SUPPRESS,
                     help="move only if TAG points at version N ('none': TAG must be new)")
    sub.add_argument("--protect", action="store_true",
                     help="then protect TAG: later moves need --expect (StateStore.protect)")
    sub.add_argument("--where", metavar="COND",
                     help="then protect TAG with a condition on the target's metadata, "
                          "e.g. 'score>=0.8' (implies --protect)")

    sub = _add(commands, "untag", _cmd_untag, "remove TAG from NAME (StateStore.untag)",
               "  msgflux-store untag pipeline staging", common,
               '{"name", "tag", "version": the version it pointed at}')
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("tag", metavar="TAG", help="the tag to remove")
    sub.add_argument("--author", metavar="A", help="who removed it (kept in the tag history)")
    sub.add_argument("--expect", type=_expected_head, metavar="N", default=argparse.SUPPRESS,
                     help="remove only if TAG points at version N")
    sub.add_argument("--force", action="store_true", help="remove a protected tag (audited)")

    sub = _add(commands, "rollback", _cmd_rollback,
               "append a version equal to VERSION; history is kept (StateStore.rollback)",
               "  msgflux-store rollback pipeline 1 -m \"revert: scores dropped\"", common,
               f"the new version (the head if it already had that content); {_VERSION_SHAPE}")
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("version", metavar="VERSION",
                     help="the version whose content comes back (number, tag, hash prefix)")
    _add_version_options(sub)
    sub.add_argument("-m", "--message", metavar="MSG", default=None,
                     help="default: 'rollback to version N'")

    _cli_serving.add_commands(commands, common, _add)

    # maintenance
    _add(commands, "verify", _cmd_verify,
         "recompute every hash and check the database; exit 1 on problems (StateStore.verify)",
         "  msgflux-store verify || echo damaged", common,
         '{"ok": bool, "versions_checked", "snapshots_checked", "values_checked",\n'
         '   "problems": [{"kind", "message", "name", "version", "key"}, ...]}')

    sub = _add(commands, "prune", _cmd_prune,
               "delete old untagged versions of NAME; their content stays until you run gc "
               "(StateStore.prune)",
               "  msgflux-store prune pipeline --keep-last 20 --dry-run\n"
               "  msgflux-store prune pipeline --keep-last 20 && msgflux-store gc", common,
               '{"name", "deleted": [version number, ...], "dry_run": bool}')
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("--keep-last", type=_positive, metavar="N", required=True,
                     help="keep the newest N versions (tagged versions are always kept)")
    sub.add_argument("--dry-run", action="store_true",
                     help="list what would be deleted; delete nothing")

    sub = _add(commands, "gc", _cmd_gc, "delete content no version uses (StateStore.gc)",
               "  msgflux-store gc\n  msgflux-store gc --vacuum   # and give the space back",
               common, '{"snapshots": count, "values": count, "bytes_before": int|null, '
               '"bytes_after": int|null}')
    sub.add_argument("--vacuum", action="store_true",
                     help="then VACUUM: the SQLite file shrinks (writers wait meanwhile); "
                          "plain VACUUM on PostgreSQL (StateStore.gc(vacuum=True))")

    sub = _add(commands, "export", _cmd_export,
               "write whole histories to a bundle file, JSON Lines (StateStore.export_bundle)",
               "  msgflux-store export backup.json\n  msgflux-store export one.json pipeline",
               common, '{"file", "names": {name: number of versions}}')
    sub.add_argument("file", metavar="FILE", help="the bundle to write (.json or .toml)")
    sub.add_argument("names", metavar="NAME", nargs="*", help="default: every name")

    sub = _add(commands, "import", _cmd_import,
               "import a bundle written by export, fast-forward only (StateStore.import_bundle)",
               "  msgflux-store --db other.db import backup.json", common,
               '{"names": {name: [imported version number, ...]}}')
    sub.add_argument("file", metavar="FILE", help="a bundle written by export")

    sub = _add(commands, "push", _cmd_push,
               "copy the versions another store lacks to it, fast-forward only "
               "(StateStore.copy_to)",
               "  msgflux-store push --to postgresql://ci@db/states pipeline", common,
               '{"names": {name: [copied version number, ...]}}')
    sub.add_argument("--to", metavar="PATH_OR_URL", required=True,
                     help="the other store (created if a missing SQLite file)")
    sub.add_argument("names", metavar="NAME", nargs="*", help="default: every name")

    sub = _add(commands, "pull", _cmd_pull,
               "copy the versions this store lacks from another one (other.copy_to(this))",
               "  msgflux-store pull --from postgresql://ci@db/states pipeline", common,
               '{"names": {name: [copied version number, ...]}}')
    sub.add_argument("--from", dest="source", metavar="PATH_OR_URL", required=True,
                     help="the store to copy from")
    sub.add_argument("names", metavar="NAME", nargs="*", help="default: every name")

    sub = _add(commands, "report", _cmd_report,
               "write NAME's history as one self-contained HTML page (report.render_report)",
               "  msgflux-store report pipeline -o history.html", common,
               '{"file", "name", "versions", "bytes"}')
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("-o", "--output", metavar="FILE", default="history.html",
                     help="the HTML file (default history.html; '-' for stdout)")
    sub.add_argument("--recent", type=_positive, default=200, metavar="N",
                     help="show the newest N versions with their diffs (default 200); older "
                          "ones are summarised")

    database = commands.add_parser(
        "db", help="schema migrations: db upgrade, db current",
        description="The store's schema revision (alembic), as in `optuna storage upgrade`.",
        epilog="example:\n  msgflux-store --db old.db db current\n"
               "  msgflux-store --db old.db db upgrade",
        formatter_class=_Formatter, parents=[common])
    database.set_defaults(parser_of_command=database)
    actions = database.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    _add(actions, "upgrade", _cmd_db_upgrade, "upgrade the schema to this release's head",
         "  msgflux-store --db old.db db upgrade", common,
         '{"store", "before": revision or null, "after": revision}')
    _add(actions, "current", _cmd_db_current,
         "print the schema revision of the store and of this package (never upgrades)",
         "  msgflux-store db current --json", common,
         '{"store": revision or null, "package": revision, "up_to_date": bool}')
    _cli_loop.add_commands(commands, _add, common, _meta_pair, _VERSION_SHAPE)
    return parser


def _add_version_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--author", metavar="A", help="who saved it")
    parser.add_argument("--meta", metavar="KEY=VALUE", type=_meta_pair, nargs="+",
                        action="extend",
                        help="metadata, e.g. score=0.78 (a VALUE that parses as JSON is JSON, "
                             "else a string)")
    parser.add_argument("--expect-head", type=_expected_head, metavar="N",
                        default=argparse.SUPPRESS,
                        help="write only if the latest version is N ('none': NAME must be new)")


def _version_text() -> str:
    try:
        from importlib.metadata import version

        package = version("msgflux-state")
    except Exception:  # noqa: BLE001 -- not installed: running from a checkout
        package = "unknown"
    return f"{PROG} (msgflux-state {package})"


# -- entry point --------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Run ``msgflux-store`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        return int(args.handler(args, _Output(args)))
    except KeyboardInterrupt:
        if debug:
            raise
        _error("interrupted")
        return 130
    except BrokenPipeError:
        # `msgflux-store log x | head`: the reader left; stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (MsgfluxError, OSError) as error:
        if debug:
            raise
        _error(_message(error))
        return EXIT_ERROR
    except Exception as error:  # a bug: one line, never exit 1 (differences)
        if debug:
            raise
        _error(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the "
               "traceback)")
        return EXIT_ERROR


def _message(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, StoreError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
