"""Reading commands: ``names``, ``log``, ``show``, ``blame``, ``tags``, ``tag-history``.

``diff`` has a module of its own (:mod:`._diff`); ``sql`` and ``report`` too.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from msgflux.errors import SerializationError
from msgflux.store._as_json import VERSION_SHAPE, tag_event_json, version_json
from msgflux.store._time import iso, parse_iso, short
from msgflux.store.cli._command import NAME, CliError, Context, arg, command, positive
from msgflux.store.cli._output import Output, Result, Table
from msgflux.store.types import Version

__all__: list[str] = []


def moment_arg(text: str) -> datetime:
    """``--at``: ISO 8601 text (a date alone is its midnight; no offset means UTC)."""
    try:
        return parse_iso(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time (e.g. 2026-11-24T10:00 or 2026-11-24T10:00+01:00)"
        ) from None


@command(
    "names",
    "list every name with a history",
    calls="StateStore.names",
    example="  msgflux-store names\n  msgflux-store names --json",
    json='["name", ...] sorted',
)
def _names(ctx: Context) -> Result:
    store = ctx.store
    names = store.names()

    def rows() -> list[tuple[Any, ...]]:  # only on a terminal: two more reads per name
        result = []
        for name in names:
            latest = store.log(name, limit=1)[0]
            tags = store.tags(name)
            result.append(
                (
                    name,
                    latest.number,
                    short(latest.created_at),
                    ", ".join(f"{tag}\u2192{number}" for tag, number in tags.items()),
                    latest.message,
                )
            )
        return result

    return Result(
        data=names,
        lines=names,
        table=Table(
            ["name", "latest", "saved (UTC)", "tags", "message"],
            rows,
            ["bold", "cyan", "dim", "yellow", None],
        ),
    )


# -- log --------------------------------------------------------------------------------------


@command(
    "log",
    "versions of NAME, newest first",
    calls="StateStore.log",
    example="  msgflux-store log pipeline --limit 5\n"
    "  msgflux-store log pipeline --where 'score>0.8' --since 2026-11-20 --oneline\n"
    "  msgflux-store log pipeline --key analyzer.instructions --json",
    json=f"[version, ...] newest first; {VERSION_SHAPE}",
    arguments=[
        NAME,
        arg(
            "--key", metavar="KEY", help="only the versions where KEY was added, changed or removed"
        ),
        arg("--limit", metavar="N", type=positive, help="at most N versions (after the filters)"),
        arg(
            "--oneline",
            action="store_true",
            help="one line per version: NAME@N HASH [TAGS] MESSAGE (the piped form)",
        ),
        arg("--author", metavar="A", help="only the versions saved by author A"),
        arg(
            "--since",
            metavar="WHEN",
            help="only versions saved at or after WHEN (2026-11-27 or an ISO time, UTC unless "
            "it has an offset)",
        ),
        arg(
            "--until",
            metavar="WHEN",
            help="only versions saved before WHEN (a bare date includes that day)",
        ),
        arg("--grep", metavar="TEXT", help="only versions whose message contains TEXT (any case)"),
        arg("--tag", metavar="TAG", help="only versions TAG has ever pointed at"),
        arg(
            "--where",
            metavar="CONDITION",
            help="only versions whose metadata passes CONDITION, e.g. 'score>0.8' or "
            "'dataset==dev-v2' (numbers compare as numbers, text as text)",
        ),
        arg(
            "--no-pager",
            action="store_true",
            help="never page (output is paged only on a terminal when taller than it)",
        ),
    ],
)
def _log(ctx: Context) -> Result:
    args = ctx.args
    versions = ctx.store.log(
        args.name,
        key=args.key,
        limit=args.limit,
        author=args.author,
        since=args.since,
        until=args.until,
        grep=args.grep,
        tag=args.tag,
        where=args.where,
    )

    def draw(out: Output) -> None:
        _print_log_table(out, versions)

    return Result(
        data=[version_json(version) for version in versions],
        lines=[str(version) for version in versions],
        table=None if args.oneline else draw,
        paged=not args.no_pager,
    )


#: Metadata fields shown as their own columns in a terminal log; more are summarised.
_MAX_METADATA_COLUMNS = 3


def _metadata_cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line: newlines and tabs would break the table
    return text if len(text) <= width else text[: max(width - 1, 0)] + "\u2026"


def _print_log_table(out: Output, versions: list[Version]) -> None:
    """A compact table that never breaks a hash or a date.

    Those columns have fixed widths, and only the free-text columns (metadata
    summary, message) are shortened with an ellipsis to fit the terminal. With
    at most three metadata fields, all plain values, each field gets a column;
    otherwise one summary column.
    """
    from rich.text import Text

    fields: list[str] = []
    for version in versions:
        for field in version.metadata:
            if field not in fields:
                fields.append(field)
    scalar = all(
        not isinstance(version.metadata.get(field), dict | list)
        for version in versions
        for field in fields
    )
    as_columns = fields if len(fields) <= _MAX_METADATA_COLUMNS and scalar else []
    summary = bool(fields) and not as_columns

    def widest(header: str, cells: list[str], cap: int) -> int:
        return min(max([len(header), *map(len, cells)]), cap)

    rows = []
    for version in versions:
        row = {
            "ver": str(version.number),
            "snapshot": version.snapshot[:8],
            "saved (UTC)": short(version.created_at, seconds=False),
            "author": version.author or "",
            "tags": ", ".join(version.tags),
        }
        for field in as_columns:
            row[field] = (
                "" if field not in version.metadata else _metadata_cell(version.metadata[field])
            )
        if summary:
            row["metadata"] = " ".join(
                f"{key}={_metadata_cell(value)}" for key, value in version.metadata.items()
            )
        row["message"] = version.message
        rows.append(row)
    fixed = ["ver", "snapshot", "saved (UTC)", "author", "tags", *as_columns]
    caps = {"ver": 10, "snapshot": 8, "saved (UTC)": 16, "author": 12, "tags": 16}
    widths = {
        column: widest(column, [row[column] for row in rows], caps.get(column, 12))
        for column in fixed
    }
    widths = {
        column: width
        for column, width in widths.items()
        if column in ("ver", "snapshot", "saved (UTC)")
        or width > len(column)
        or any(row[column] for row in rows)
    }
    free = out.console.width - sum(widths.values()) - 2 * len(widths) - 2
    for column in ("author", "tags", *as_columns):  # a narrow terminal: shorten these first
        if free >= 20:
            break
        if column in widths and widths[column] > 6:
            cut = min(widths[column] - 6, 20 - free)
            widths[column] -= cut
            free += cut
    free = max(free, 10)  # below this the line is wider than a very narrow terminal
    message_need = max([len("message"), *(len(" ".join(row["message"].split())) for row in rows)])
    if summary:
        meta_need = max(len(row["metadata"]) for row in rows)
        if meta_need + 2 + message_need <= free:
            widths["metadata"] = meta_need
        else:  # share: scores matter most to a tuner, the metadata gets up to 3/5
            widths["metadata"] = max(min(meta_need, free * 3 // 5), 10)
        free = max(free - widths["metadata"] - 2, 10)
    widths["message"] = min(message_need, free)
    right = {"ver", *as_columns}
    styles = (
        {
            "ver": "cyan",
            "snapshot": "dim",
            "saved (UTC)": "dim",
            "tags": "yellow",
            "metadata": "dim",
        }
        if out.color
        else {}
    )

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

    out.console.print(render({column: column for column in widths}, header=True), soft_wrap=True)
    for row in rows:
        out.console.print(render(row), soft_wrap=True)


# -- show -------------------------------------------------------------------------------------


@command(
    "show",
    "print a version's state dict as TOML or JSON",
    calls="StateStore.get + load",
    example="  msgflux-store show pipeline production > state.toml\n"
    "  msgflux-store show pipeline 3 --format json > state.json",
    json=f'{{"version": version, "state": {{key: value}}}}; {VERSION_SHAPE}',
    arguments=[
        NAME,
        arg(
            "version",
            metavar="VERSION",
            nargs="?",
            default="latest",
            help="a number, 'latest' (default), a tag or a snapshot-hash prefix",
        ),
        arg(
            "--format",
            choices=("toml", "json"),
            default="toml",
            help="toml (default; cannot hold None) or json",
        ),
        arg("--prefix", metavar="PREFIX", help="only the keys starting with PREFIX"),
        arg(
            "--key",
            metavar="KEY",
            help="print one value raw: a string as its text, anything else as JSON",
        ),
        arg(
            "--at",
            metavar="WHEN",
            type=moment_arg,
            help="instead of VERSION: the version that was the latest at WHEN (ISO time; "
            "no offset means UTC), e.g. 2026-11-24T10:00",
        ),
    ],
)
def _show(ctx: Context) -> Result:
    args = ctx.args
    if args.at is not None and args.version != "latest":
        raise ctx.usage("give VERSION or --at, not both")
    version = ctx.store.get(args.name, args.version, at=args.at)
    state = ctx.store.load(args.name, version.number, prefix=args.prefix)
    if args.key is None:
        return Result(
            data={"version": version_json(version), "state": state},
            text=state_text(state, args.format, f"{args.name}@{version.number}"),
        )
    if args.key not in state:
        from msgflux.store._rows import cut_list, did_you_mean

        raise CliError(
            f"{args.name}@{version.number} has no key {args.key!r}"
            f"{did_you_mean(args.key, list(state))}; its keys are "
            f"{cut_list(list(state))}"
        )
    value = state[args.key]
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    if not isinstance(value, str) or not value.endswith("\n"):
        text += "\n"
    return Result(data=value, text=text)


@command(
    "blame",
    "for each key of a version, the version that gave it its value",
    calls="StateStore.blame",
    example="  msgflux-store blame pipeline production\n"
    "  msgflux-store blame pipeline 12 --key analyzer.instructions --json",
    json='[{"key", "version", "created_at", "author", "message"}, ...] in saved key order',
    arguments=[
        NAME,
        arg(
            "version",
            metavar="VERSION",
            nargs="?",
            default="latest",
            help="a number, 'latest' (default), a tag or a snapshot-hash prefix",
        ),
        arg("--key", metavar="KEY", help="only this key"),
        arg("--prefix", metavar="PREFIX", help="only the keys starting with PREFIX"),
    ],
)
def _blame(ctx: Context) -> Result:
    args = ctx.args
    lines = ctx.store.blame(args.name, args.version, key=args.key, prefix=args.prefix)
    data = [
        {
            "key": line.key,
            "version": line.version,
            "created_at": iso(line.created_at),
            "author": line.author,
            "message": line.message,
        }
        for line in lines
    ]
    return Result(
        data=data,
        lines=[
            f"{line.version}\t{iso(line.created_at)}\t{line.author or ''}\t{line.key}"
            for line in lines
        ],
        table=Table(
            ["key", "version", "saved", "author", "message"],
            [
                (line.key, line.version, short(line.created_at), line.author or "", line.message)
                for line in lines
            ],
            ["bold", "cyan", "dim", None, None],
        ),
    )


def state_text(state: dict[str, Any], fmt: str, label: str) -> str:
    """``state`` as a TOML or JSON file would hold it (the rules of ``msgflux.save``)."""
    from msgflux.serialization import dumps

    try:
        return dumps(state, fmt)
    except SerializationError as error:
        raise CliError(
            f"cannot show {label} as {fmt.upper()}: {error}; use --format json"
        ) from None


# -- tags -------------------------------------------------------------------------------------


@command(
    "tags",
    "the tags of NAME",
    calls="StateStore.tags",
    example="  msgflux-store tags pipeline",
    json='{"tag": version number, ...}',
    arguments=[NAME],
)
def _tags(ctx: Context) -> Result:
    tags = ctx.store.tags(ctx.args.name)
    return Result(
        data=tags,
        lines=[f"{tag}\t{number}" for tag, number in tags.items()],
        table=Table(["tag", "version"], list(tags.items()), ["yellow", "cyan"]),
    )


@command(
    "tag-history",
    "every move and removal of NAME's tags, oldest first",
    calls="StateStore.tag_history",
    example="  msgflux-store tag-history pipeline production",
    json='[{"name", "tag", "version" (null: removed), "previous_version", "moved_at", '
    '"author"}, ...]',
    arguments=[NAME, arg("tag", metavar="TAG", nargs="?", help="only this tag (default: all)")],
)
def _tag_history(ctx: Context) -> Result:
    events = ctx.store.tag_history(ctx.args.name, ctx.args.tag)
    rows = [tag_event_json(event) for event in events]
    return Result(
        data=rows,
        lines=[
            f"{row['moved_at']}\t{row['tag']}\t{row['previous_version']}\t"
            f"{'removed' if row['version'] is None else row['version']}"
            for row in rows
        ],
        table=Table(
            ["moved at (UTC)", "tag", "from", "to", "author"],
            [
                (
                    short(event.moved_at),
                    event.tag,
                    event.previous_version,
                    "removed" if event.version is None else event.version,
                    event.author,
                )
                for event in events
            ],
            ["dim", "yellow", None, "cyan", None],
        ),
    )
