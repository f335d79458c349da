"""Measure the HTML report on a long history: 1,000 versions of 50 keys.

Not collected by pytest (the name doesn't start with ``test_``). Run it with::

    python tests/cli/bench_report.py [--versions 1000] [--keys 50] [--db PATH_OR_URL]

Each version changes two keys (values grow by a word) and carries numeric
metadata (``score``, ``latency_ms``); the script prints the time to render
the report and its size.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from msgflux.store import StateStore
from msgflux.store.report import render_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--db", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        target = args.db or str(Path(folder) / "bench.db")
        randomly = random.Random(1)
        state = {f"module{index // 10}.param{index}":
                 f"value {index} " + "lorem ipsum dolor sit amet " * (index % 7)
                 for index in range(args.keys)}
        with StateStore(target) as store:
            started = time.perf_counter()
            for number in range(args.versions):
                for key in randomly.sample(sorted(state), 2):
                    state[key] += f" v{number}"
                store.save("pipeline", state, message=f"step {number}", author="bench",
                           metadata={"score": randomly.random(), "latency_ms": 100 + number % 37})
            saved = time.perf_counter() - started
            started = time.perf_counter()
            html = render_report(store, "pipeline")
            rendered = time.perf_counter() - started
        output = Path(folder) / "history.html"
        output.write_text(html, encoding="utf-8")
        size = output.stat().st_size
    print(f"{args.versions} versions x {args.keys} keys: saved in {saved:.1f} s; report rendered "
          f"in {rendered:.2f} s, {size / 1e6:.2f} MB ({size / args.versions:.0f} bytes/version)")


if __name__ == "__main__":
    main()
