"""The command registry, the context a command runs in, and the shared argument types.

A command is a function ``run(ctx) -> Result`` registered by :func:`command`
with its help, its arguments and the ``StateStore`` call it makes; the
package's ``build_parser`` turns the registry into argparse subcommands in the
order the group modules are imported.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from msgflux.errors import MsgfluxError

if TYPE_CHECKING:
    from msgflux.store.api import StateStore
    from msgflux.store.cli._output import Output, Result

__all__ = ["COMMANDS", "Arg", "CliError", "Command", "Context", "arg", "command"]

PROG = "msgflux-store"
STORE_ENV = "MSGFLUX_STORE"
DEFAULT_STORE = "msgflux_state.db"

EXIT_OK = 0
EXIT_DIFFERENT = 1  # diff --exit-code found differences; verify found problems
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_ERROR = 3  # StoreError, a file msgflux could not read or write, an OS error


class CliError(MsgfluxError):
    """A problem the command line itself detects (e.g. no store at the given path)."""


# -- declaring a command ----------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call: its flags (or positional name) and keywords."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """Declare an argument as ``parser.add_argument(*flags, **options)`` would."""
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    """One subcommand: its name (``"db upgrade"`` for a nested one), help and handler."""

    name: str
    run: Callable[[Context], Result]
    summary: str
    calls: str  # the StateStore call(s) it makes, shown in --help and the README
    example: str
    json_shape: str
    arguments: tuple[Arg, ...]
    creates: bool  # opening a missing SQLite file creates it (save, import, pull, init)


#: Every command, in the order they are listed by ``--help``.
COMMANDS: list[Command] = []

#: Commands that hold subcommands (``db``): name -> (help, description, example).
PARENTS: dict[str, tuple[str, str, str]] = {}


def parent(name: str, summary: str, *, description: str, example: str) -> None:
    """Declare ``name`` as a command holding subcommands (register them as ``"name sub"``)."""
    PARENTS[name] = (summary, description, example)


def command(
    name: str,
    summary: str,
    *,
    calls: str,
    example: str,
    json: str = "",
    arguments: Sequence[Arg] = (),
    creates: bool = False,
) -> Callable[[Callable[[Context], Result]], Callable[[Context], Result]]:
    """Register the decorated ``run(ctx) -> Result`` as the subcommand ``name``.

    ``summary`` is the one-line help (``calls`` is appended in parentheses),
    ``example`` one or more indented command lines, ``json`` the shape ``--json``
    prints (empty: the command has no JSON form) and ``arguments`` its
    :func:`arg` declarations, in order.
    """

    def register(run: Callable[[Context], Result]) -> Callable[[Context], Result]:
        COMMANDS.append(
            Command(name, run, summary, calls, example, json, tuple(arguments), creates)
        )
        return run

    return register


# -- the context a command runs in ------------------------------------------------------


class Context:
    """A run's arguments, its output and the stores it opens (closed when the run ends).

    ``ctx.store`` opens the store named by ``--db``/``$MSGFLUX_STORE`` on first use,
    so a command can check its input before anything is opened or created.
    """

    def __init__(self, args: argparse.Namespace, out: Output, *, creates: bool) -> None:
        self.args = args
        self.out = out
        self._creates = creates
        self._store: StateStore | None = None
        self._opened: list[StateStore] = []

    @property
    def target(self) -> str:
        """The store this run works on: ``--db``, else ``$MSGFLUX_STORE``, else the default."""
        return getattr(self.args, "db", None) or os.environ.get(STORE_ENV) or DEFAULT_STORE

    @property
    def store(self) -> StateStore:
        """This run's store, opened (and upgraded) on first use."""
        if self._store is None:
            self._store = self.open(self.target, create=self._creates)
        return self._store

    def open(self, target: str, *, create: bool = False) -> StateStore:
        """Open another store (``push --to``, ``pull --from``); refuse a missing SQLite file
        unless ``create``. Closed when the run ends."""
        from msgflux.store.api import StateStore

        if not create:
            missing = missing_sqlite(target)
            if missing is not None:
                raise CliError(
                    f"no store at {missing}: give --db PATH_OR_URL or set "
                    f"{STORE_ENV} (`save`, `import` and `pull` create a new store)"
                )
        store = StateStore(target)
        self._opened.append(store)
        return store

    def usage(self, message: str) -> SystemExit:
        """Print ``message`` as a usage error of this command and exit 2."""
        self.args.parser_of_command.error(message)
        return SystemExit(EXIT_USAGE)  # not reached: error() exits

    def given(self, option: str, parameter: str) -> dict[str, Any]:
        """``{parameter: value}`` if the compare-and-swap ``option`` was given, else ``{}``
        (the API tells an unset ``expected`` from ``None``)."""
        value = getattr(self.args, option, argparse.SUPPRESS)
        return {} if value is argparse.SUPPRESS else {parameter: value}

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for store in reversed(self._opened):
            store.close()


def missing_sqlite(target: str) -> str | None:
    """The SQLite file ``target`` names if it does not exist, else ``None``."""
    from msgflux.store.engine import resolve_url

    url = resolve_url(target)
    if url.get_backend_name() == "sqlite" and not Path(str(url.database)).exists():
        return str(url.database)
    return None


# -- argument types ---------------------------------------------------------------------


def expected_head(text: str) -> int | None:
    """``--expect``/``--expect-head``: a version number, or ``none`` (must be new)."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a version number or 'none', not {text!r}"
        ) from None


def positive(text: str) -> int:
    """A positive integer (``--limit``, ``--keep-last``, ``--recent``)."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return number


def seconds(text: str) -> float:
    """A positive number of seconds (``sql --timeout``)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


def json_or_text(text: str) -> Any:
    """``text`` as JSON if it parses, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:  # nested too deeply for the parser: neither JSON nor a plain text
        raise CliError(f"the JSON value {text[:20]!r}... is nested too deeply") from None


def meta_pair(text: str) -> tuple[str, Any]:
    """``--meta KEY=VALUE``: the value is JSON if it parses, else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    try:
        return key, json_or_text(value)
    except CliError as error:  # raised while parsing the command line: a usage error
        raise argparse.ArgumentTypeError(str(error)) from None


# -- arguments several commands share --------------------------------------------------

NAME = arg("name", metavar="NAME", help="the history")
VERSION = arg(
    "version", metavar="VERSION", help="a number, 'latest', a tag or a snapshot-hash prefix"
)
AUTHOR_SAVED = arg("--author", metavar="A", help="who saved it")
META = arg(
    "--meta",
    metavar="KEY=VALUE",
    type=meta_pair,
    nargs="+",
    action="extend",
    help="metadata, e.g. score=0.78 (a VALUE that parses as JSON is JSON, else a string)",
)
EXPECT_HEAD = arg(
    "--expect-head",
    type=expected_head,
    metavar="N",
    default=argparse.SUPPRESS,
    help="write only if the latest version is N ('none': NAME must be new)",
)
EXPECT_TAG = arg(
    "--expect",
    type=expected_head,
    metavar="N",
    default=argparse.SUPPRESS,
    help="move only if TAG points at version N ('none': TAG must be new)",
)
#: ``--author``, ``--meta``, ``--expect-head``: the options of a call that writes a version.
VERSION_OPTIONS = (AUTHOR_SAVED, META, EXPECT_HEAD)


def metadata(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``--meta`` pairs as a dict, ``None`` when none were given."""
    pairs = getattr(args, "meta", None)
    return dict(pairs) if pairs else None
