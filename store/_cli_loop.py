"""The prompt-tuning loop on the command line: ``log`` for people, ``diff --stat``,
``annotate``, ``delete``, ``rename``, ``init``, ``completion`` and the pager.

Reading guide: :func:`add_commands` declares the new subcommands next to their
handlers (``_cmd_*``); :func:`print_log` and :func:`diff_lines` render for
people; :func:`paged` sends long terminal output through ``$PAGER`` (``less
-FRX`` by default), as git does. The shared plumbing (opening the store,
``--json``, colour) lives in :mod:`msgflux.store.cli`.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from msgflux.store.types import StateDiff, Version, format_ranges

__all__: list[str] = []

#: Metadata fields shown as their own columns in a terminal log; more are summarised.
_MAX_METADATA_COLUMNS = 3


# -- the pager ----------------------------------------------------------------------------

@contextmanager
def paged(out: Any, args: argparse.Namespace) -> Iterator[None]:
    """Collect what the block prints on a terminal; page it when taller than the screen.

    Only on a terminal and without ``--no-pager``/``--json``: piped output is
    never paged. The pager is ``$MSGFLUX_PAGER``, else ``$PAGER``, else
    ``less`` with ``LESS=FRX`` (quit if one screen, keep colours, no clearing).
    """
    if out.json or getattr(args, "no_pager", False) or not out.stream.isatty():
        yield
        return
    real_stream, buffer = out.stream, io.StringIO()
    out.stream = buffer
    out.console.file = buffer
    try:
        yield
    finally:
        out.stream = real_stream
        out.console.file = real_stream
    text = buffer.getvalue()
    height = shutil.get_terminal_size().lines
    command = os.environ.get("MSGFLUX_PAGER") or os.environ.get("PAGER") or "less"
    if text.count("\n") < height or command in ("", "cat"):
        real_stream.write(text)
        return
    environment = dict(os.environ)
    environment.setdefault("LESS", "FRX")
    try:
        pager = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE, env=environment)
    except OSError:
        real_stream.write(text)
        return
    assert pager.stdin is not None
    try:
        pager.stdin.write(text.encode("utf-8", "replace"))
        pager.stdin.close()
    except BrokenPipeError:  # the reader quit the pager early
        pass
    pager.wait()


# -- log ----------------------------------------------------------------------------------

def add_log_options(sub: argparse.ArgumentParser, positive: Callable[[str], int]) -> None:
    sub.add_argument("--oneline", action="store_true",
                     help="one line per version: NAME@N HASH [TAGS] MESSAGE (the piped form)")
    sub.add_argument("--author", metavar="A", help="only the versions saved by author A")
    sub.add_argument("--since", metavar="WHEN",
                     help="only versions saved at or after WHEN (2026-11-27 or an ISO time, UTC "
                          "unless it has an offset)")
    sub.add_argument("--until", metavar="WHEN",
                     help="only versions saved before WHEN (a bare date includes that day)")
    sub.add_argument("--grep", metavar="TEXT", help="only versions whose message contains TEXT "
                                                    "(any case)")
    sub.add_argument("--tag", metavar="TAG", help="only versions TAG has ever pointed at")
    sub.add_argument("--where", metavar="CONDITION",
                     help="only versions whose metadata passes CONDITION, e.g. 'score>0.8' or "
                          "'dataset==dev-v2' (numbers compare as numbers, text as text)")
    sub.add_argument("--no-pager", action="store_true",
                     help="never page (output is paged only on a terminal when taller than it)")


def log_call(args: argparse.Namespace) -> dict[str, Any]:
    """The ``StateStore.log`` keywords of a ``log`` command line."""
    return {"key": args.key, "limit": args.limit, "author": args.author, "since": args.since,
            "until": args.until, "grep": args.grep, "tag": args.tag, "where": args.where}


def _metadata_cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line: newlines and tabs would break the table
    return text if len(text) <= width else text[:max(width - 1, 0)] + "\u2026"


def print_log(out: Any, versions: list[Version], *, oneline: bool) -> None:
    """A compact table on a terminal, else one line each (``NAME@N HASH [TAGS] MESSAGE``).

    The table never breaks a hash or a date: those columns have fixed widths,
    and only the free-text columns (metadata summary, message) are shortened
    with an ellipsis to fit the terminal. With at most three metadata fields,
    all plain values, each field gets a column; otherwise one summary column.
    """
    if oneline or not out.terminal:
        for version in versions:
            out.line(str(version))
        return
    from rich.text import Text

    fields: list[str] = []
    for version in versions:
        for field in version.metadata:
            if field not in fields:
                fields.append(field)
    scalar = all(not isinstance(version.metadata.get(field), dict | list)
                 for version in versions for field in fields)
    as_columns = fields if len(fields) <= _MAX_METADATA_COLUMNS and scalar else []
    summary = bool(fields) and not as_columns

    def widest(header: str, cells: list[str], cap: int) -> int:
        return min(max([len(header), *map(len, cells)]), cap)

    rows = []
    for version in versions:
        row = {"ver": str(version.number), "snapshot": version.snapshot[:8],
               "saved (UTC)": version.created_at.strftime("%Y-%m-%d %H:%M"),
               "author": version.author or "", "tags": ", ".join(version.tags)}
        for field in as_columns:
            row[field] = ("" if field not in version.metadata
                          else _metadata_cell(version.metadata[field]))
        if summary:
            row["metadata"] = " ".join(f"{key}={_metadata_cell(value)}"
                                       for key, value in version.metadata.items())
        row["message"] = version.message
        rows.append(row)
    fixed = ["ver", "snapshot", "saved (UTC)", "author", "tags", *as_columns]
    caps = {"ver": 10, "snapshot": 8, "saved (UTC)": 16, "author": 12, "tags": 16}
    widths = {column: widest(column, [row[column] for row in rows], caps.get(column, 12))
              for column in fixed}
    widths = {column: width for column, width in widths.items()
              if column in ("ver", "snapshot", "saved (UTC)") or width > len(column)
              or any(row[column] for row in rows)}
    free = out.console.width - sum(widths.values()) - 2 * len(widths) - 2
    for column in ("author", "tags", *as_columns):  # a narrow terminal: shorten these first
        if free >= 20:
            break
        if column in widths and widths[column] > 6:
            cut = min(widths[column] - 6, 20 - free)
            widths[column] -= cut
            free += cut
    free = max(free, 10)  # below this the line is wider than a very narrow terminal
    message_need = max([len("message"), *(len(" ".join(row["message"].split()))
                                          for row in rows)])
    if summary:
        meta_need = max(len(row["metadata"]) for row in rows)
        if meta_need + 2 + message_need <= free:
            widths["metadata"] = meta_need
        else:  # share: scores matter most to a tuner, the metadata gets up to 3/5
            widths["metadata"] = max(min(meta_need, free * 3 // 5), 10)
        free = max(free - widths["metadata"] - 2, 10)
    widths["message"] = min(message_need, free)
    right = {"ver", *as_columns}
    styles = {"ver": "cyan", "snapshot": "dim", "saved (UTC)": "dim", "tags": "yellow",
              "metadata": "dim"} if out.color else {}

    def render(cells: dict[str, str], header: bool = False) -> Text:
        line = Text()
        for index, (column, width) in enumerate(widths.items()):
            cell = _cut(cells[column], width)
            cell = cell.rjust(width) if column in right else cell.ljust(width)
            if index == len(widths) - 1:
                cell = cell.rstrip()
            line.append(cell, style="bold" if header and out.color else styles.get(column, ""))
            if index < len(widths) - 1:
                line.append("  ")
        return line

    out.console.print(render({column: column for column in widths}, header=True),
                      soft_wrap=True)
    for row in rows:
        out.console.print(render(row), soft_wrap=True)


# -- diff ---------------------------------------------------------------------------------

def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float)


def _lines_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def diff_stat(diff: StateDiff) -> list[str]:
    """git's ``--stat``: one line per key with the lines added and removed."""
    counts: list[tuple[str, int, int]] = []
    for key in diff.keys:
        old = (_lines_of(diff.removed[key]) if key in diff.removed else
               _lines_of(diff.changed[key][0]) if key in diff.changed else [])
        new = (_lines_of(diff.added[key]) if key in diff.added else
               _lines_of(diff.changed[key][1]) if key in diff.changed else [])
        added = removed = 0
        for line in difflib.ndiff(old, new):
            if line.startswith("+ "):
                added += 1
            elif line.startswith("- "):
                removed += 1
        counts.append((key, added, removed))
    if not counts:
        return [str(diff)]
    width = max(len(key) for key, _, _ in counts)
    biggest = max(added + removed for _, added, removed in counts) or 1
    scale = min(1.0, 40 / biggest)
    lines = []
    for key, added, removed in counts:
        label = " (added)" if key in diff.added else " (removed)" if key in diff.removed else ""
        bar = "+" * round(added * scale) + "-" * round(removed * scale)
        lines.append(f" {key.ljust(width)} | {added + removed:>4} {bar}{label}")
    total_added = sum(added for _, added, _ in counts)
    total_removed = sum(removed for _, _, removed in counts)
    lines.append(f" {len(counts)} key{'s' if len(counts) != 1 else ''} changed, "
                 f"{total_added} line{'s' if total_added != 1 else ''} added, "
                 f"{total_removed} removed")
    return lines


def diff_lines(diff: StateDiff) -> list[tuple[str, str]]:
    """``(kind, line)`` for a terminal or a pipe: a scalar change on one line
    (``retriever.k: 4 \u2192 8``), everything else as a unified diff."""
    result: list[tuple[str, str]] = []
    if diff.note:
        result.append(("note", f"# {diff.note}"))
    if not diff:
        result.append(("note", str(diff).splitlines()[-1]))
        return result
    for key, lines in diff.hunks():
        if key in diff.changed and all(_scalar(side) for side in diff.changed[key]):
            old, new = diff.changed[key]
            result.append(("scalar", f"{key}: {json.dumps(old)} \u2192 {json.dumps(new)}"))
            continue
        for line in lines:
            kind = ("header" if line.startswith(("---", "+++")) else
                    "hunk" if line.startswith("@@") else
                    "added" if line.startswith("+") else
                    "removed" if line.startswith("-") else "context")
            result.append((kind, line))
    return result


# -- new commands -------------------------------------------------------------------------

def _cmd_annotate(args: argparse.Namespace, out: Any) -> int:
    from msgflux.store import cli

    with cli._store(args) as store:
        version = store.annotate(args.name, args.version, metadata=dict(args.meta),
                                 author=args.author)
    if out.json:
        out.dump(cli.version_json(version))
    else:
        fields = " ".join(f"{key}={_metadata_cell(value)}" for key, value in args.meta)
        out.line(f"annotated {version.name}@{version.number}: {fields}")
    return cli.EXIT_OK


def _cmd_delete(args: argparse.Namespace, out: Any) -> int:
    from msgflux.store import cli

    with cli._store(args) as store:
        count = len(store.log(args.name))
        if not args.yes:
            if not sys.stdin.isatty():
                raise cli._usage(args, f"deleting {args.name!r} needs --yes when not run on a "
                                       "terminal")
            sys.stderr.write(f"delete {args.name} and all its {count} versions? [y/N] ")
            sys.stderr.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                out.line("not deleted")
                return cli.EXIT_OK
        count = store.delete_name(args.name, force=args.force, author=args.author)
    if out.json:
        out.dump({"name": args.name, "deleted_versions": count})
    else:
        out.line(f"deleted {args.name} ({count} versions); run `{cli.PROG} gc` to reclaim "
                 "their content")
    return cli.EXIT_OK


def _cmd_rename(args: argparse.Namespace, out: Any) -> int:
    from msgflux.store import cli

    with cli._store(args) as store:
        count = store.rename(args.name, args.new, author=args.author)
    if out.json:
        out.dump({"name": args.name, "new_name": args.new, "versions": count})
    else:
        out.line(f"renamed {args.name} to {args.new} ({count} versions)")
    return cli.EXIT_OK


def _cmd_init(args: argparse.Namespace, out: Any) -> int:
    from msgflux.store import cli
    from msgflux.store.engine import describe, resolve_url
    from msgflux.store.migrate import head_revision

    target = cli._target(args)
    url = resolve_url(target)
    existed = cli._missing_sqlite(target) is None
    with cli._store(args, create=True):
        pass
    where = (os.path.abspath(str(url.database)) if url.get_backend_name() == "sqlite"
             else describe(url))
    if out.json:
        out.dump({"store": where, "created": not existed, "schema": head_revision()})
    elif existed and url.get_backend_name() == "sqlite":
        out.line(f"a store already exists at {where} (schema {head_revision()})")
    else:
        out.line(f"initialised a store at {where} (schema {head_revision()})")
    return cli.EXIT_OK


def _cmd_completion(args: argparse.Namespace, out: Any) -> int:
    import shtab

    from msgflux.store import cli

    out.stream.write(shtab.complete(cli.build_parser(), shell=args.shell))
    return cli.EXIT_OK


def add_commands(commands: Any, add: Callable[..., argparse.ArgumentParser],
                 common: argparse.ArgumentParser, meta_pair: Callable[[str], Any],
                 version_shape: str) -> None:
    """Declare ``annotate``, ``delete``, ``rename``, ``init`` and ``completion``."""
    sub = add(commands, "annotate", _cmd_annotate,
              "merge metadata (a score that came later) into a version; content and number "
              "stay (StateStore.annotate)",
              "  msgflux-store annotate pipeline 7 --meta score=0.91 --author eval-bot\n"
              "  msgflux-store sql \"SELECT * FROM state_annotations\"", common,
              f"the annotated version; {version_shape}")
    sub.add_argument("name", metavar="NAME", help="the history")
    sub.add_argument("version", metavar="VERSION",
                     help="a number, 'latest', a tag or a snapshot-hash prefix")
    sub.add_argument("--meta", metavar="KEY=VALUE", type=meta_pair, nargs="+", action="extend",
                     required=True,
                     help="metadata to merge, e.g. score=0.91 (JSON if it parses, else a string)")
    sub.add_argument("--author", metavar="A", help="who annotated (kept in state_annotations)")

    sub = add(commands, "delete", _cmd_delete,
              "delete the whole history of NAME; refused while it has tags unless --force "
              "(StateStore.delete_name)",
              "  msgflux-store delete scratch --yes\n"
              "  msgflux-store delete old-pipeline --force --yes && msgflux-store gc", common,
              '{"name", "deleted_versions"}')
    sub.add_argument("name", metavar="NAME", help="the history to delete")
    sub.add_argument("--force", action="store_true", help="delete even if NAME has tags")
    sub.add_argument("--yes", action="store_true",
                     help="do not ask (required when not on a terminal)")
    sub.add_argument("--author", metavar="A", help="who deleted (kept in state_name_events)")

    sub = add(commands, "rename", _cmd_rename,
              "rename a history; versions, tags and records follow (StateStore.rename)",
              "  msgflux-store rename pipeline rag-pipeline", common,
              '{"name", "new_name", "versions"}')
    sub.add_argument("name", metavar="NAME", help="the history to rename")
    sub.add_argument("new", metavar="NEW", help="its new name (must not exist)")
    sub.add_argument("--author", metavar="A", help="who renamed (kept in state_name_events)")

    add(commands, "init", _cmd_init, "create an empty store (if missing) and say where it is",
        "  msgflux-store init\n  msgflux-store --db runs/states.db init", common,
        '{"store", "created", "schema"}')

    sub = add(commands, "completion", _cmd_completion,
              "print a shell completion script (bash or zsh)",
              "  msgflux-store completion bash > ~/.local/share/bash-completion/completions/"
              "msgflux-store\n"
              "  msgflux-store completion zsh > \"${fpath[1]}/_msgflux-store\"", common)
    sub.add_argument("shell", choices=("bash", "zsh"), help="the shell")


def prune_summary(name: str, deleted: list[int], *, dry_run: bool, keep_last: int,
                  prog: str) -> str:
    if not deleted:
        return f"nothing to prune: {name} has at most {keep_last} untagged old versions"
    if dry_run:
        noun = "version" if len(deleted) == 1 else "versions"
        return (f"would delete {noun} {format_ranges(deleted)} of {name} "
                f"({len(deleted)} version{'s' if len(deleted) != 1 else ''}; dry run, nothing deleted)")
    noun = "version" if len(deleted) == 1 else "versions"
    return (f"deleted {noun} {format_ranges(deleted)} of {name}; their content stays "
            f"until `{prog} gc`")
