"""Measure the HTML report on a long history with realistic edits.

Not collected by pytest (the name doesn't start with ``test_``). Run it with::

    python tests/cli/bench_report.py [--versions 20000] [--keys 50] [--recent 200]

Each version rewrites whole sentences in one or two prompts and carries
numeric metadata (``score``, ``latency_ms``): ``Rewrites`` in
``benchmarks/tools_report.py``, which also builds and caches the history
(``benchmarks/run.py --tools`` measures the report with the other tools).
Prints the median time to render the report over ``--rounds`` and its size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from tools_report import NAME, cached_history  # noqa: E402

from msgflux.store import StateStore  # noqa: E402
from msgflux.store.report import RECENT, render_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--recent", type=int, default=RECENT)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = cached_history(args.versions, args.keys, args.seed)
    timings = []
    with StateStore(path) as store:
        for _ in range(args.rounds):
            started = time.perf_counter()
            html = render_report(store, NAME, recent=args.recent)
            timings.append(time.perf_counter() - started)
    size = len(html.encode("utf-8"))
    print(
        f"{args.versions:,} versions x {args.keys} keys (rewritten sentences), newest "
        f"{args.recent} diffed: report rendered in {statistics.median(timings):.2f} s "
        f"(median of {args.rounds}), {size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
