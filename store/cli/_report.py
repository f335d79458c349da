"""``report``: NAME's history as one self-contained HTML page (:mod:`msgflux.store.report`)."""

from __future__ import annotations

from pathlib import Path

from msgflux.store.cli._command import NAME, Context, arg, command, positive
from msgflux.store.cli._output import Result, busy

__all__: list[str] = []


@command(
    "report",
    "write NAME's history as one self-contained HTML page",
    calls="msgflux.store.report.render_report",
    example="  msgflux-store report pipeline -o history.html",
    json='{"file", "name", "versions", "bytes"}',
    arguments=[
        NAME,
        arg(
            "-o",
            "--output",
            metavar="FILE",
            default="history.html",
            help="the HTML file (default history.html; '-' for stdout)",
        ),
        arg(
            "--recent",
            type=positive,
            default=200,
            metavar="N",
            help="show the newest N versions with their diffs (default 200); older ones are "
            "summarised",
        ),
    ],
)
def _report(ctx: Context) -> Result:
    from msgflux.store.report import _render

    args = ctx.args
    store = ctx.store
    with busy(f"rendering the history of {args.name}..."):
        page, count = _render(store, args.name, recent=args.recent)
    data = page.encode("utf-8")
    if args.output == "-":  # the page itself, also with --json
        return Result(text=data)
    Path(args.output).write_bytes(data)
    return Result(
        data={"file": str(args.output), "name": args.name, "versions": count, "bytes": len(data)},
        lines=[
            f"wrote {args.output}: {count} versions of {args.name}, {len(data) / 1024:,.0f} KiB"
        ],
    )
