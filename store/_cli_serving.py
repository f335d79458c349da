"""The serving commands of ``msgflux-store``: ``split``, ``unprotect``, ``watch``.

Kept apart from ``cli.py`` (which adds ``--protect``/``--where`` to ``tag`` and
``--force`` to ``untag``); each command mirrors one StateStore method.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_commands"]


def _weight_pair(text: str) -> tuple[str, float]:
    version, _, weight = text.partition("=")
    try:
        if not version or not weight:
            raise ValueError
        return version, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected VERSION=WEIGHT (e.g. 12=0.9), got {text!r}") from None


def _cmd_split(args: argparse.Namespace, out: Any) -> int:
    from msgflux.store.cli import EXIT_OK, _cas, _store

    targets: dict[Any, float] = {}
    for version, weight in args.weights:
        targets[int(version) if version.isdigit() else version] = weight
    with _store(args) as store:
        weights = store.split(args.name, args.tag, targets, author=args.author,
                              **_cas(args, "expect", "expected"))
    if out.json:
        out.dump({"name": args.name, "tag": args.tag, "weights": weights})
    else:
        shares = ", ".join(f"{number} ({weight:g})" for number, weight in weights.items())
        out.line(f"split {args.name} {args.tag}: {shares}")
    return EXIT_OK


def _cmd_unprotect(args: argparse.Namespace, out: Any) -> int:
    from msgflux.store.cli import EXIT_OK, _store

    with _store(args) as store:
        store.unprotect(args.name, args.tag, author=args.author)
    if out.json:
        out.dump({"name": args.name, "tag": args.tag, "protected": False})
    else:
        out.line(f"tag {args.tag} of {args.name} is no longer protected")
    return EXIT_OK


def _event_json(event: Any) -> dict[str, Any]:
    from msgflux.store.cli import _iso

    return {"name": event.name, "tag": event.tag, "version": event.version,
            "previous_version": event.previous_version,
            "weights": None if event.weights is None else {
                str(number): weight for number, weight in event.weights.items()},
            "moved_at": _iso(event.moved_at), "author": event.author}


def _cmd_watch(args: argparse.Namespace, out: Any) -> int:
    from msgflux.store._follow import watch_moves
    from msgflux.store.cli import EXIT_OK, _store

    def ready() -> None:
        sys.stderr.write(f"watching {args.name} {args.tag} (Ctrl-C to stop)\n")
        sys.stderr.flush()

    with _store(args) as store:
        try:
            for event in watch_moves(store, args.name, args.tag, poll=args.interval,
                                     ready=ready):
                row = _event_json(event)
                if out.json:
                    out.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
                else:
                    to: Any = "removed" if event.version is None else event.version
                    if event.weights:
                        to = " ".join(f"{number}={weight:g}"
                                      for number, weight in event.weights.items())
                    out.line(f"{row['moved_at']}\t{event.tag}\t{event.previous_version}\t{to}"
                             f"\t{event.author or ''}".rstrip("\t"))
                out.stream.flush()
        except KeyboardInterrupt:
            return EXIT_OK
    return EXIT_OK


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 60, got {text!r}")
    return value


def add_commands(commands: Any, common: argparse.ArgumentParser,
                 add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``split``, ``unprotect`` and ``watch`` to the ``msgflux-store`` parser."""
    from msgflux.store.cli import _expected_head

    sub = add(commands, "split", _cmd_split,
              "point TAG at several versions with weights summing to 1 (StateStore.split)",
              "  msgflux-store split pipeline production 12=0.9 13=0.1", common,
              '{"name", "tag", "weights": {version: weight}}')
    sub.add_argument("name", metavar="NAME", help="the history's name")
    sub.add_argument("tag", metavar="TAG", help="the tag")
    sub.add_argument("weights", metavar="VERSION=WEIGHT", nargs="+", type=_weight_pair,
                     help="a version (number or hash prefix) and its weight; weights sum to 1")
    sub.add_argument("--author", metavar="A", help="who did it (recorded in the audit)")
    sub.add_argument("--expect", type=_expected_head, metavar="N", default=argparse.SUPPRESS,
                     help="move only if TAG points at version N ('none': TAG must be new)")

    sub = add(commands, "unprotect", _cmd_unprotect,
              "remove the guard of TAG (StateStore.unprotect); audited",
              "  msgflux-store unprotect pipeline production --author ops", common,
              '{"name", "tag", "protected": false}')
    sub.add_argument("name", metavar="NAME", help="the history's name")
    sub.add_argument("tag", metavar="TAG", help="the tag")
    sub.add_argument("--author", metavar="A", help="who did it (recorded in the audit)")

    sub = add(commands, "watch", _cmd_watch,
              "print each move of TAG as it happens, one line each, until interrupted",
              "  msgflux-store watch pipeline production\n"
              "  msgflux-store watch pipeline production --json | jq .version", common,
              'one JSON object per line: {"name", "tag", "version" (null: removed), '
              '"previous_version", "weights" (a split) or null, "moved_at", "author"}')
    sub.add_argument("name", metavar="NAME", help="the history's name")
    sub.add_argument("tag", metavar="TAG", help="the tag")
    sub.add_argument("--interval", type=_interval, default=0.05, metavar="SECONDS",
                     help="how often to check for a change (default 0.05; reads only on change)")
