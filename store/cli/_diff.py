"""``diff``: a unified diff for pipes, coloured with word highlights on a terminal,
``--stat`` (git's), ``--name-only`` and ``--json``."""

from __future__ import annotations

import difflib
import json
from typing import Any

from msgflux.store.cli._command import EXIT_DIFFERENT, EXIT_OK, Context, arg, command
from msgflux.store.cli._output import Output, Result
from msgflux.store.types import StateDiff

__all__: list[str] = []


def _ref(text: str) -> Any:
    """``NAME:VERSION`` as a (name, version) pair; a bare VERSION as is."""
    name, sep, ref = text.partition(":")
    return (name, ref) if sep else text


@command(
    "diff",
    "what changed between two versions",
    calls="StateStore.diff",
    example="  msgflux-store diff pipeline 3              # version 3 against its parent\n"
    "  msgflux-store diff pipeline 1 production\n"
    "  msgflux-store diff pipeline:production experiment:4   # across names\n"
    "  msgflux-store diff pipeline 2 3 --exit-code || echo changed",
    json='{"old": "name@N", "new": "name@M", "added": {key: value}, '
    '"removed": {key: value},\n   "changed": {key: {"old": value, "new": value}}}',
    arguments=[
        arg("name", metavar="NAME", help="NAME, or NAME:A to compare across names"),
        arg(
            "a",
            metavar="A",
            nargs="?",
            help="a version (number, tag, 'latest', hash prefix) or OTHER:VERSION",
        ),
        arg(
            "b", metavar="B", nargs="?", help="the newer side; default: A compared with its parent"
        ),
        arg("--prefix", metavar="PREFIX", help="only the keys starting with PREFIX"),
        arg(
            "--exit-code",
            action="store_true",
            help="exit with 1 when there are differences (like git diff)",
        ),
        arg(
            "--stat",
            action="store_true",
            help="one line per key with the number of lines added and removed",
        ),
        arg("--name-only", action="store_true", help="only the keys that differ"),
    ],
)
def _diff(ctx: Context) -> Result:
    args = ctx.args
    refs = [_ref(ref) for ref in (args.a, args.b) if ref is not None]
    if isinstance(_ref(args.name), tuple):  # diff NAME:A OTHER:B
        name, first = _ref(args.name)
        if len(refs) != 1:
            raise ctx.usage("NAME:A needs exactly one other side, e.g. diff a:1 b:2")
        a, b = (name, first), refs[0]
    else:
        name = args.name
        if not refs:
            raise ctx.usage("give a version A (compared with its parent) or two versions")
        a, b = refs[0], refs[1] if len(refs) == 2 else None
    diff = ctx.store.diff(name, a, b, prefix=args.prefix)
    if args.stat and args.name_only:
        raise ctx.usage("--stat and --name-only cannot be combined")
    code = EXIT_DIFFERENT if args.exit_code and diff else EXIT_OK
    document: dict[str, Any] = {
        "old": diff.old,
        "new": diff.new,
        "added": diff.added,
        "removed": diff.removed,
        "changed": {key: {"old": old, "new": new} for key, (old, new) in diff.changed.items()},
    }
    if diff.note:
        document["note"] = diff.note
    if args.name_only:
        return Result(data=document, lines=diff.keys, code=code)
    if args.stat:
        return Result(data=document, lines=_stat(diff), code=code)

    def coloured(out: Output) -> None:
        _print_coloured(out, diff)

    return Result(data=document, lines=_diff_lines(diff), coloured=coloured, code=code)


# -- the forms --------------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float)


def _lines_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def _stat(diff: StateDiff) -> list[str]:
    """git's ``--stat``: one line per key with the lines added and removed."""
    counts: list[tuple[str, int, int]] = []
    for key in diff.keys:
        old = (
            _lines_of(diff.removed[key])
            if key in diff.removed
            else _lines_of(diff.changed[key][0])
            if key in diff.changed
            else []
        )
        new = (
            _lines_of(diff.added[key])
            if key in diff.added
            else _lines_of(diff.changed[key][1])
            if key in diff.changed
            else []
        )
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
    lines.append(
        f" {len(counts)} key{'s' if len(counts) != 1 else ''} changed, "
        f"{total_added} line{'s' if total_added != 1 else ''} added, "
        f"{total_removed} removed"
    )
    return lines


def _diff_lines(diff: StateDiff) -> list[str]:
    """The plain diff: a scalar change on one line (``retriever.k: 4 \u2192 8``), everything
    else as a unified diff."""
    result: list[str] = []
    if diff.note:
        result.append(f"# {diff.note}")
    if not diff:
        result.append(str(diff).splitlines()[-1])
        return result
    for key, lines in diff.hunks():
        if key in diff.changed and all(_scalar(side) for side in diff.changed[key]):
            old, new = diff.changed[key]
            result.append(f"{key}: {json.dumps(old)} \u2192 {json.dumps(new)}")
        else:
            result.extend(lines)
    return result


_STYLES = {"header": "bold", "hunk": "cyan", "context": "", "removed": "red", "added": "green"}
_WORD_STYLES = {"removed": "bold white on red", "added": "bold black on green"}


def _print_coloured(out: Output, diff: StateDiff) -> None:
    from rich.text import Text

    from msgflux.store._word_diff import classify_lines

    if diff.note:
        out.console.print(Text(f"# {diff.note}", style="dim"))
    if not diff:
        out.console.print(Text(str(diff).splitlines()[-1], style="dim"))
        return
    for key, lines in diff.hunks():
        if key in diff.changed and all(_scalar(side) for side in diff.changed[key]):
            old, new = diff.changed[key]
            text = Text(f"{key}: ", style="bold")
            text.append(json.dumps(old), style="red")
            text.append(" \u2192 ")
            text.append(json.dumps(new), style="green")
            out.console.print(text, soft_wrap=True)
            continue
        for line in classify_lines(lines):
            text = Text()
            style = _STYLES[line.kind]
            for piece, changed in line.segments:
                text.append(piece, style=_WORD_STYLES.get(line.kind, style) if changed else style)
            out.console.print(text, soft_wrap=True)
