"""``sql``: one read-only statement over the store's views, as a table, CSV or JSON."""

from __future__ import annotations

import math
from typing import Any

from msgflux.store.cli._command import Context, arg, command, json_or_text, seconds
from msgflux.store.cli._output import Result, Table

__all__: list[str] = []


@command(
    "sql",
    "run one read-only SQL statement over the store's views",
    calls="StateStore.query",
    example='  msgflux-store sql "SELECT name, version, message FROM state_history"\n'
    '  msgflux-store sql "SELECT version, value FROM state_values WHERE key = ?" \\\n'
    "      -p analyzer.instructions --format csv\n"
    '  msgflux-store sql "SELECT * FROM state_history WHERE name = :n" -p n=pipeline',
    json="[{column: value, ...}, ...] (one object per row); with --arrays\n"
    '  {"columns": [column, ...], "rows": [[value, ...], ...]}',
    arguments=[
        arg("sql", metavar="SQL", help="one read-only statement over the views"),
        arg(
            "-p",
            "--param",
            action="append",
            metavar="VALUE",
            help="a query parameter: VALUE binds ? (%%s on PostgreSQL) in order, name=VALUE "
            "binds :name (%%(name)s); JSON if it parses, else a string; repeatable",
        ),
        arg(
            "--format",
            choices=("table", "csv", "json"),
            default=None,
            help="table on a terminal, csv when piped (default), or json",
        ),
        arg(
            "--arrays",
            action="store_true",
            help='JSON as {"columns": [...], "rows": [[...], ...]} instead of objects',
        ),
        arg(
            "--timeout",
            type=seconds,
            metavar="SECONDS",
            help="interrupt the query after SECONDS (default 10)",
        ),
    ],
)
def _sql(ctx: Context) -> Result:
    args = ctx.args
    if ctx.out.json and args.format not in (None, "json"):
        raise ctx.usage(f"--json and --format {args.format} conflict; give one")
    if args.arrays and (args.format or "json") != "json":
        raise ctx.usage(f"--arrays is a JSON form and conflicts with --format {args.format}")
    params = _params(ctx)
    result = ctx.store.query(args.sql, params, timeout=args.timeout)
    table = Table(result.columns, result)
    if not (args.arrays or args.format == "json" or ctx.out.json):
        return Result(table=table, format=args.format)  # auto: a table, or CSV when piped
    # JSON has no NaN or infinity (SQLite computes them, PostgreSQL stores them):
    # they print as null, so the output is always valid JSON.
    finite = [
        [None if type(cell) is float and not math.isfinite(cell) else cell for cell in row]
        for row in result
    ]
    if args.arrays:
        return Result(data={"columns": result.columns, "rows": finite}, format="json")
    return Result(
        data=[dict(zip(result.columns, row, strict=True)) for row in finite], format="json"
    )


def _params(ctx: Context) -> list[Any] | dict[str, Any]:
    """``-p VALUE`` binds positionally; ``-p name=value`` binds ``:name`` / ``%(name)s``."""
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for param in ctx.args.param or ():
        name, sep, value = param.partition("=")
        if sep and name.isidentifier():
            named[name] = json_or_text(value)
        else:
            positional.append(json_or_text(param))
    if positional and named:
        raise ctx.usage(
            "use either positional parameters (-p VALUE) or named ones (-p name=VALUE), not both"
        )
    return named or positional
