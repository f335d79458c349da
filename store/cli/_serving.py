"""Serving commands: ``split``, ``unprotect``, ``watch`` (``tag --protect/--where`` and
``untag --force`` are options of the writing commands)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from msgflux.store._as_json import tag_event_json
from msgflux.store.cli._command import EXIT_OK, EXPECT_TAG, Context, arg, command
from msgflux.store.cli._output import NO_JSON, Result

__all__: list[str] = []

_NAME = arg("name", metavar="NAME", help="the history's name")
_TAG = arg("tag", metavar="TAG", help="the tag")
_AUTHOR = arg("--author", metavar="A", help="who did it (recorded in the audit)")


def _weight_pair(text: str) -> tuple[str, float]:
    version, _, weight = text.partition("=")
    try:
        if not version or not weight:
            raise ValueError
        return version, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected VERSION=WEIGHT (e.g. 12=0.9), got {text!r}"
        ) from None


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 60, got {text!r}")
    return value


@command(
    "split",
    "point TAG at several versions with weights summing to 1",
    calls="StateStore.split",
    example="  msgflux-store split pipeline production 12=0.9 13=0.1",
    json='{"name", "tag", "weights": {version: weight}}',
    arguments=[
        _NAME,
        _TAG,
        arg(
            "weights",
            metavar="VERSION=WEIGHT",
            nargs="+",
            type=_weight_pair,
            help="a version (number or hash prefix) and its weight; weights sum to 1",
        ),
        _AUTHOR,
        EXPECT_TAG,
    ],
)
def _split(ctx: Context) -> Result:
    args = ctx.args
    targets: dict[Any, float] = {}
    for version, weight in args.weights:
        targets[int(version) if version.isdigit() else version] = weight
    weights = ctx.store.split(
        args.name, args.tag, targets, author=args.author, **ctx.given("expect", "expected")
    )
    shares = ", ".join(f"{number} ({weight:g})" for number, weight in weights.items())
    return Result(
        data={"name": args.name, "tag": args.tag, "weights": weights},
        lines=[f"split {args.name} {args.tag}: {shares}"],
    )


@command(
    "unprotect",
    "remove the guard of TAG; audited",
    calls="StateStore.unprotect",
    example="  msgflux-store unprotect pipeline production --author ops",
    json='{"name", "tag", "protected": false}',
    arguments=[_NAME, _TAG, _AUTHOR],
)
def _unprotect(ctx: Context) -> Result:
    args = ctx.args
    ctx.store.unprotect(args.name, args.tag, author=args.author)
    return Result(
        data={"name": args.name, "tag": args.tag, "protected": False},
        lines=[f"tag {args.tag} of {args.name} is no longer protected"],
    )


@command(
    "watch",
    "print each move of TAG as it happens, one line each, until interrupted",
    calls="StateStore.tag_history on each change, detected as Follower does",
    example="  msgflux-store watch pipeline production\n"
    "  msgflux-store watch pipeline production --json | jq .version",
    json='one JSON object per line: {"name", "tag", "version" (null: removed), '
    '"previous_version", "weights" (a split) or null, "moved_at", "author"}',
    arguments=[
        _NAME,
        _TAG,
        arg(
            "--interval",
            type=_interval,
            default=0.05,
            metavar="SECONDS",
            help="how often to check for a change (default 0.05; reads only on change)",
        ),
    ],
)
def _watch(ctx: Context) -> Result:
    from msgflux.store._follow import watch_moves

    args = ctx.args

    def ready() -> None:
        sys.stderr.write(f"watching {args.name} {args.tag} (Ctrl-C to stop)\n")
        sys.stderr.flush()

    try:
        for event in watch_moves(ctx.store, args.name, args.tag, poll=args.interval, ready=ready):
            row = tag_event_json(event, weights=True)
            to: Any = "removed" if event.version is None else event.version
            if event.weights:
                to = " ".join(f"{number}={weight:g}" for number, weight in event.weights.items())
            ctx.out.record(
                row,
                f"{row['moved_at']}\t{event.tag}\t{event.previous_version}\t"
                f"{to}\t{event.author or ''}".rstrip("\t"),
            )
    except KeyboardInterrupt:
        pass
    return Result(data=NO_JSON, code=EXIT_OK)  # every record is already printed
