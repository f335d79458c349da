"""``msgflux-store``: the command line over :class:`~msgflux.store.StateStore`.

Most subcommands are one ``StateStore`` method with the same name and options
(``log NAME --key K --limit N`` is ``store.log(name, key=k, limit=n)``); the
exact command -> call mapping is printed at the end of ``msgflux-store --help``
(``show`` is ``get`` + ``load``, ``sql`` is ``query``, ``push`` is ``copy_to``...).

Reading guide, one room per concern:

* :mod:`._command` -- the registry (:func:`~._command.command`), the
  :class:`~._command.Context` a command runs in (``ctx.args``, ``ctx.store``
  opened lazily and closed at the end, ``ctx.usage(...)``) and the shared
  argument types and declarations (``NAME``, ``VERSION``, ``--meta``...);
* :mod:`._output` -- the one output layer: a command returns a
  :class:`~._output.Result` holding its ``--json`` document, its plain lines,
  its terminal table; :class:`~._output.Output` prints the form the run asks for
  (JSON, table, colour, plain text, CSV, the pager);
* one module per group of commands, each command's arguments declared right
  above its handler: :mod:`._read` (names, log, show, tags, tag-history),
  :mod:`._diff`, :mod:`._sql`, :mod:`._write` (save, checkout, tag, untag,
  rollback, annotate, delete, rename), :mod:`._serving` (split, unprotect,
  watch), :mod:`._maintenance` (verify, prune, gc, db), :mod:`._transfer`
  (export, import, push, pull), :mod:`._report`, :mod:`._setup` (init,
  completion);
* this module -- assembles the parser from the registry, and :func:`main` maps
  errors to exit codes.

Adding a command (e.g. ``blame NAME [REF] [--key K]``): in the group module
it belongs to (``_read.py`` for ``blame``), write ::

    @command("blame", "who last changed each key of a version", calls="StateStore.blame",
             example="  msgflux-store blame pipeline production --key retriever.k",
             json='[{"key", "version", "author", "saved_at"}, ...]',
             arguments=[NAME, arg("ref", metavar="REF", nargs="?", default="latest",
                                  help="..."), arg("--key", metavar="K", help="...")])
    def _blame(ctx: Context) -> Result:
        rows = ctx.store.blame(ctx.args.name, ctx.args.ref, key=ctx.args.key)
        return Result(data=[...], lines=[...], table=Table([...], [...]))

then add its row to the command table in the README's "Command line" section
(a test compares that table with ``--help``). ``--help``, the mapping in it,
``--json``, tables, colour and completion follow from the declaration. A new
option of an existing command (``show --at TIME``) is one more ``arg(...)`` in
its list and one more keyword in its call. A version in a JSON document is
:func:`msgflux.store._as_json.version_json`; a time is
:func:`msgflux.store._time.iso` (JSON) or :func:`~msgflux.store._time.short`
(tables). A new group module is imported below and listed in :data:`_GROUPS`
(that order is ``--help``'s). Every option needs a help text and every command
an example (tests check both).

Exit codes: 0 ok; 1 differences found (``diff --exit-code``) or ``verify``
found problems; 2 usage error; 3 store or file error (one line on stderr,
the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from msgflux.errors import MsgfluxError
from msgflux.store.cli import (
    _diff,
    _maintenance,
    _read,
    _report,
    _serving,
    _setup,
    _sql,
    _transfer,
    _write,
)
from msgflux.store.cli._command import (
    COMMANDS,
    DEFAULT_STORE,
    EXIT_DIFFERENT,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    PARENTS,
    PROG,
    STORE_ENV,
    CliError,
    Command,
    Context,
)
from msgflux.store.cli._output import Output
from msgflux.store.errors import StoreError

__all__ = [
    "EXIT_DIFFERENT",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "build_parser",
    "main",
]

#: The command groups, in the order ``--help`` lists them (importing one registers it).
_GROUPS = (_read, _diff, _sql, _write, _serving, _maintenance, _transfer, _report, _setup)

_DESCRIPTION = """\
A versioned, content-hashed store of state dicts on SQLite or PostgreSQL.
Each subcommand makes the StateStore call listed under "commands and their
calls" below, with the same names and options.

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


def _commands() -> list[Command]:
    """Every registered command, group by group in the order of :data:`_GROUPS`."""
    order = {group.__name__: index for index, group in enumerate(_GROUPS)}
    return sorted(COMMANDS, key=lambda entry: order[entry.run.__module__])


def command_calls() -> list[tuple[str, str]]:
    """``(command, the StateStore call it makes)`` for every command, in ``--help`` order."""
    return [(entry.name, entry.calls) for entry in _commands()]


def _mapping() -> str:
    width = max(len(name) for name, _ in command_calls())
    return "commands and their calls:\n" + "\n".join(
        f"  {name.ljust(width)}  {calls}" for name, calls in command_calls()
    )


# -- the parser -------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a misspelled subcommand or choice."""

    def error(self, message: str) -> Any:
        import re

        from msgflux.store._rows import did_you_mean

        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            message += did_you_mean(match.group(1), choices)
        super().error(message)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _common_options() -> _Parser:
    # Defaults are SUPPRESS so that an option given before the subcommand is not
    # overwritten by the subcommand's own (absent) copy of it.
    common = _Parser(add_help=False)
    group = common.add_argument_group("global options")
    group.add_argument(
        "--db",
        metavar="PATH_OR_URL",
        default=argparse.SUPPRESS,
        help=f"the store (default: ${STORE_ENV}, else ./{DEFAULT_STORE})",
    )
    group.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default=argparse.SUPPRESS,
        help="colour and tables: auto (a terminal without $NO_COLOR), always, never",
    )
    group.add_argument(
        "--no-color", action="store_true", default=argparse.SUPPRESS, help="same as --color never"
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON document (shape in the command's help)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error",
    )
    return common


def _add(subparsers: Any, entry: Command, name: str, common: argparse.ArgumentParser) -> None:
    summary = f"{entry.summary} ({entry.calls})"
    epilog = f"example:\n{entry.example}"
    if entry.json_shape:
        epilog += f"\n\n--json prints:\n  {entry.json_shape}"
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=epilog,
        formatter_class=_Formatter,
        parents=[common],
    )
    for argument in entry.arguments:
        parser.add_argument(*argument.flags, **argument.options)
    parser.set_defaults(command=entry, parser_of_command=parser)


def build_parser() -> argparse.ArgumentParser:
    """The ``msgflux-store`` argument parser: one subcommand per registered command."""
    common = _common_options()
    parser = _Parser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=f"{_EPILOG}\n\n{_mapping()}",
        formatter_class=_Formatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=_version_text())
    commands = parser.add_subparsers(dest="command_name", metavar="COMMAND", required=True)
    nested: dict[str, Any] = {}
    for entry in _commands():
        parent, _, name = entry.name.rpartition(" ")
        if not parent:
            _add(commands, entry, name, common)
            continue
        if parent not in nested:
            summary, description, example = PARENTS[parent]
            group = commands.add_parser(
                parent,
                help=summary,
                description=description,
                epilog=f"example:\n{example}",
                formatter_class=_Formatter,
                parents=[common],
            )
            group.set_defaults(parser_of_command=group)
            nested[parent] = group.add_subparsers(
                dest=f"{parent}_command", metavar="ACTION", required=True
            )
        _add(nested[parent], entry, name, common)
    return parser


def _version_text() -> str:
    try:
        from importlib.metadata import version

        package = version("msgflux-state")
    except Exception:  # noqa: BLE001 -- not installed: running from a checkout
        package = "unknown"
    return f"{PROG} (msgflux-state {package})"


# -- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``msgflux-store`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Raises:
        SystemExit: for a usage error (code 2) and after ``--help``/``--version`` (code 0).
    """
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    entry: Command = args.command
    try:
        out = Output(args)
        with Context(args, out, creates=entry.creates) as ctx:
            return out.render(entry.run(ctx))
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
        _error(
            f"internal error: {type(error).__name__}: {error} (rerun with --debug for the "
            "traceback)"
        )
        return EXIT_ERROR


def _message(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, StoreError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__


# What str.splitlines() breaks on: an error stays one line whatever a path or name holds.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _error(message: str) -> None:
    one_line = "".join(
        repr(character)[1:-1] if character in _LINE_BREAKS else character for character in message
    )
    sys.stderr.write(f"{PROG}: error: {one_line}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
