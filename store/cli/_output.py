"""The one output layer: a command returns a :class:`Result`, :class:`Output` prints it.

A command says *what* it has (the ``--json`` document, lines for a pipe, a
table or its own drawing for a terminal, raw text) and never checks how it was
run; :meth:`Output.render` picks, in this order:

1. the command's own ``--format`` (``sql``), if it gave one;
2. ``--json``: the ``data`` document (a command without one prints its text);
3. colour on (a terminal, or ``--color always``): ``coloured`` if given;
4. a terminal (or ``--color always``): ``table``, a :class:`Table` or a drawing;
5. otherwise ``text`` as is, else ``lines``, else the table as CSV.

Long terminal output of a ``paged`` result goes through ``$PAGER``. Spinners
and progress bars go to stderr, only when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TextIO

from msgflux.store.types import Progress

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["NO_JSON", "Output", "Result", "Table", "busy", "progress_bar"]

#: ``Result.data`` of a command that has no JSON form: ``--json`` prints its text.
NO_JSON: Any = object()


@dataclass
class Table:
    """Rows under column headers; ``rows`` may be a function, called only if the table is shown."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]] | Callable[[], Sequence[Sequence[Any]]]
    styles: Sequence[str | None] = ()  # one per column, used only with colour

    def all_rows(self) -> Sequence[Sequence[Any]]:
        return self.rows() if callable(self.rows) else self.rows


Draw = Callable[["Output"], None]


@dataclass
class Result:
    """What a command produced, in every form it has; :meth:`Output.render` prints one."""

    data: Any = NO_JSON  # the --json document
    lines: Iterable[str] = ()  # for a pipe (and a terminal without a table): one line each
    text: str | bytes | None = None  # written as is (a state file, a script, an HTML page)
    table: Table | Draw | None = None  # for a terminal: a table, or a drawing of its own
    coloured: Draw | None = None  # when colour is on (implies a terminal)
    format: Literal["json", "csv", "table"] | None = None  # the command's own --format
    paged: bool = False  # long terminal output goes through the pager
    code: int = 0  # the exit code


class Output:
    """Where and how results are printed: rich on a terminal, plain text or JSON otherwise."""

    def __init__(self, args: argparse.Namespace, stream: TextIO | None = None) -> None:
        from rich.console import Console

        self.stream: TextIO = stream or sys.stdout
        self.json = bool(getattr(args, "json", False))
        mode = "never" if getattr(args, "no_color", False) else getattr(args, "color", "auto")
        is_tty = self.stream.isatty()
        if mode == "auto":
            self.color = is_tty and not os.environ.get("NO_COLOR")
        else:
            self.color = mode == "always"
        # Tables are for people: a terminal, or colour forced on.
        self.terminal = is_tty or mode == "always"
        self.console: Console = Console(
            file=self.stream,
            force_terminal=self.color,
            no_color=not self.color,
            color_system="auto" if self.color else None,
            highlight=False,
            emoji=False,
            markup=False,
            width=None if is_tty else max(120, int(os.environ.get("COLUMNS", "0") or 0)),
        )

    # -- the choice ---------------------------------------------------------------------------

    def render(self, result: Result) -> int:
        """Print ``result`` in the form this run asks for; return its exit code."""
        if result.format == "json" or (self.json and result.data is not NO_JSON):
            self.dump(result.data)
        elif result.format == "csv":
            assert isinstance(result.table, Table)
            self.csv(result.table)
        elif result.format == "table":
            assert isinstance(result.table, Table)
            self.table(result.table)
        elif result.paged and not self.json:
            with self._paged():
                self._for_people(result)
        else:
            self._for_people(result)
        return result.code

    def _for_people(self, result: Result) -> None:
        if self.color and result.coloured is not None:
            result.coloured(self)
        elif self.terminal and result.table is not None:
            if isinstance(result.table, Table):
                self.table(result.table)
            else:
                result.table(self)
        elif isinstance(result.text, bytes):
            self.stream.flush()
            sys.stdout.buffer.write(result.text)
        elif result.text is not None:
            self.stream.write(result.text)
        elif isinstance(result.table, Table) and not result.lines:
            self.csv(result.table)
        else:
            for line in result.lines:
                self.line(line)

    def record(self, data: Any, line: str) -> None:
        """One record of a stream (``watch``): a compact JSON line with --json, else ``line``."""
        if self.json:
            self.stream.write(json.dumps(data, ensure_ascii=False) + "\n")
        else:
            self.line(line)
        self.stream.flush()

    # -- the forms ----------------------------------------------------------------------------

    def line(self, text: str = "") -> None:
        self.stream.write(_printable(text) + "\n")

    def dump(self, data: Any) -> None:
        self.stream.write(
            _printable(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)) + "\n"
        )

    def csv(self, table: Table) -> None:
        writer = csv.writer(self.stream, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows(table.all_rows())

    def table(self, table: Table) -> None:
        from rich.table import Table as RichTable
        from rich.text import Text

        shown = RichTable(
            show_edge=False, header_style="bold" if self.color else None, pad_edge=False
        )
        for index, column in enumerate(table.columns):
            style = table.styles[index] if index < len(table.styles) and self.color else None
            shown.add_column(column, style=style, overflow="fold")
        for row in table.all_rows():
            shown.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
        self.console.print(shown)

    # -- the pager ----------------------------------------------------------------------------

    @contextmanager
    def _paged(self) -> Iterator[None]:
        """Collect what the block prints on a terminal; page it when taller than the screen.

        Only on a terminal: piped output is never paged. The pager is
        ``$MSGFLUX_PAGER``, else ``$PAGER``, else ``less`` with ``LESS=FRX`` (quit
        if one screen, keep colours, no clearing), as git does.
        """
        if not self.stream.isatty():
            yield
            return
        real_stream, buffer = self.stream, io.StringIO()
        self.stream = buffer
        self.console.file = buffer
        try:
            yield
        finally:
            self.stream = real_stream
            self.console.file = real_stream
        _page(buffer.getvalue(), real_stream)


def _page(text: str, stream: TextIO) -> None:
    height = shutil.get_terminal_size().lines
    command = os.environ.get("MSGFLUX_PAGER") or os.environ.get("PAGER") or "less"
    if text.count("\n") < height or command in ("", "cat"):
        stream.write(text)
        return
    environment = dict(os.environ)
    environment.setdefault("LESS", "FRX")
    try:
        pager = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE, env=environment)
    except OSError:
        stream.write(text)
        return
    assert pager.stdin is not None
    try:
        pager.stdin.write(text.encode("utf-8", "replace"))
        pager.stdin.close()
    except BrokenPipeError:  # the reader quit the pager early
        pass
    pager.wait()


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


def _printable(text: str) -> str:
    """``text`` with lone surrogates as ``?``: a file name that is not UTF-8 reaches argv as
    surrogates (os.fsdecode), and echoing it must not fail after the work is done."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


# -- stderr: spinners and progress bars -----------------------------------------------------


@contextmanager
def busy(message: str) -> Iterator[None]:
    """A spinner on stderr while a long operation runs: only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


@contextmanager
def progress_bar(message: str) -> Iterator[Progress | None]:
    """A progress bar per phase on stderr, fed by a ``progress(phase, done, total)`` callback.

    Yields ``None`` (no callback, no output) when stderr is not a terminal.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    with Bars(
        TextColumn(f"{message} {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bars:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield update
