"""Benchmark StateStore against a raw sqlite3 floor, TOML files and git, on one workload.

Usage (from the repository root, in the project's venv)::

    python benchmarks/run.py                 # 50 and 500 keys, 200 versions, 100 loads
    python benchmarks/run.py --quick         # the same, smaller: under a minute
    python benchmarks/run.py --deep          # save time at version ~100 vs ~100,000
    python benchmarks/run.py --tools         # report, bundles, prune + gc, verify, log at scale
    python benchmarks/run.py --report-render # the report at 30/300/3,000 versions, drawn in Chromium
    python benchmarks/run.py --keys 50 --versions 1000 --loads 200 --json out.json
    python benchmarks/run.py --serving       # the serving targets (benchmarks/serving.py)

Workload (see ``workload.py``): a state dict of ``--keys`` prompts (30-300
words from a fixed vocabulary, fixed seed), ``--versions`` saves each
changing one key, then ``--loads`` loads of random versions. Every
implementation replays the same saves and loads; every load is checked
against the state that was saved (outside the timer). The first save (all
keys new) is reported on its own, not in the save median.

The StateStore caches value hashes of ``str`` values in-process (keyed by the
string), so it runs in three flows:

* ``warm``: unchanged values are the same string objects between versions, as
  a running module's ``state_dict()`` returns them;
* ``fresh strings``: every save gets newly built string objects (JSON round
  trip before each save, outside the timer); the cache still hits by equality;
* ``cold caches``: every per-process cache of the store (value hashes, the
  parent snapshot's blob ids) is cleared before every save (outside the
  timer), as in a fresh process: every value is re-hashed, like the floor does.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends import (  # noqa: E402
    NAME,
    Backend,
    GitToml,
    NaiveSqlite,
    SqliteFloor,
    StoreBackend,
    TomlFiles,
)
from workload import ChangeStream, Workload, make_workload, states  # noqa: E402

FLOWS = ("warm", "fresh strings", "cold caches")
LIMIT_VS_FLOOR = 1.5
LIMIT_DEEP = 1.2


# --- measuring -----------------------------------------------------------------------------


def median_ms(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1000


def p90_ms(seconds: Sequence[float]) -> float:
    ordered = sorted(seconds)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)] * 1000


@dataclass
class Result:
    """One implementation's run; times in seconds, one entry per save / load."""

    label: str
    keys: int
    first_save: float = 0.0
    saves: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    disk_bytes: int = 0
    compacted_bytes: int = 0

    @property
    def save_median(self) -> float:
        """Median save, in ms."""
        return median_ms(self.saves)

    @property
    def load_median(self) -> float:
        """Median load, in ms."""
        return median_ms(self.loads)

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "keys": self.keys,
            "first_save_ms": self.first_save * 1000,
            "save_median_ms": self.save_median,
            "save_p90_ms": p90_ms(self.saves),
            "load_median_ms": self.load_median,
            "load_p90_ms": p90_ms(self.loads),
            "disk_bytes": self.disk_bytes,
            "compacted_bytes": self.compacted_bytes,
        }


def run_interleaved(
    runs: list[tuple[str, str, Callable[[Path], Backend]]],
    workload: Workload,
    expected: list[dict[str, str]],
    folder: Path,
) -> list[Result]:
    """Replay the workload on every implementation, round-robin, and time each save and load.

    Version ``n`` is saved by every implementation before version ``n + 1``
    (the order rotates each round), so background load on the machine hits
    every implementation alike. Loads are interleaved the same way, and each
    loaded state is checked against the saved one outside the timer.
    """
    backends: list[Backend] = []
    results = [Result(label, workload.keys) for label, _flow, _make in runs]
    try:
        for index, (_label, _flow, make) in enumerate(runs):
            (folder / str(index)).mkdir(parents=True)
            backends.append(make(folder / str(index)))
        gc.collect()
        for number, state in enumerate(states(workload), start=1):
            for index in _rotation(len(runs), number):
                label, flow, _make = runs[index]
                given = state
                if flow == "fresh strings":
                    given = json.loads(json.dumps(state))
                elif flow == "cold caches":
                    backends[index].clear_caches()
                started = time.perf_counter()
                saved = backends[index].save(given)
                elapsed = time.perf_counter() - started
                if saved != number:
                    raise AssertionError(f"{label}: save {number} returned version {saved}")
                if number == 1:
                    results[index].first_save = elapsed
                else:
                    results[index].saves.append(elapsed)
        for backend in backends:
            backend.finish_saves()
        for round_number, number in enumerate(workload.load_versions):
            want = expected[number - 1]
            for index in _rotation(len(runs), round_number):
                started = time.perf_counter()
                state = backends[index].load(number)
                results[index].loads.append(time.perf_counter() - started)
                if state != want or list(state) != list(want):
                    raise AssertionError(f"{runs[index][0]}: version {number} loaded wrong content")
        for backend, result in zip(backends, results, strict=True):
            result.disk_bytes = backend.disk_bytes()
            backend.close()
            result.compacted_bytes = backend.compacted_bytes()
    finally:
        for backend in backends:
            backend.close()
    return results


def _rotation(count: int, shift: int) -> list[int]:
    shift %= count
    return [*range(shift, count), *range(shift)]


def implementations(
    keys: int, *, naive_from: int, skip: set[str]
) -> list[list[tuple[str, str, Callable[[Path], Backend]]]]:
    """Groups of (label, flow, factory) runs at this key count; each group is interleaved.

    The SQLite implementations share one group. TOML and git run in groups of
    their own, after it: interleaved with the others, a ``git`` subprocess (or
    a large TOML parse) right before a save or load made that save or load
    measurably slower (StateStore saves 1.9 ms alone, 3.2 ms next to git).
    """
    sqlite: list[tuple[str, str, Callable[[Path], Backend]]] = [
        (f"StateStore ({flow})", flow, StoreBackend) for flow in FLOWS
    ]
    sqlite += [
        ("sqlite3 floor", "warm", SqliteFloor),
        ("sqlite3 floor + hash cache", "warm", lambda folder: SqliteFloor(folder, hash_cache=True)),
    ]
    if keys >= naive_from:
        sqlite.append(("naive sqlite3 (no dedup)", "warm", NaiveSqlite))
    groups = [
        sqlite,
        [("TOML file per version", "warm", TomlFiles)],
        [("git commit per version", "warm", GitToml)],
    ]
    kept = [
        [run for run in group if not any(word in run[0].lower() for word in skip)]
        for group in groups
    ]
    return [group for group in kept if group]


# --- reporting ------------------------------------------------------------------------------


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError


def table(results: list[Result]) -> str:
    header = (
        "| keys | implementation | save p50 | save p90 | load p50 | load p90 "
        "| first save | disk (incl. WAL / loose) | disk (checkpointed / gc) |"
    )
    lines = [header, "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        lines.append(
            f"| {result.keys} | {result.label} | {result.save_median:.3f} ms "
            f"| {p90_ms(result.saves):.3f} ms | {result.load_median:.3f} ms "
            f"| {p90_ms(result.loads):.3f} ms | {result.first_save * 1000:.2f} ms "
            f"| {_size(result.disk_bytes)} | {_size(result.compacted_bytes)} |"
        )
    return "\n".join(lines)


def checks(results: list[Result]) -> list[tuple[bool | None, str]]:
    """The targets of the benchmark issue, as (passed, description); ``None``: information."""
    outcome: list[tuple[bool | None, str]] = []
    for keys in sorted({result.keys for result in results}):
        by_label = {result.label: result for result in results if result.keys == keys}
        pairs = [
            ("save", "StateStore (warm)", "sqlite3 floor + hash cache", "save_median"),
            ("save", "StateStore (cold caches)", "sqlite3 floor", "save_median"),
            ("load", "StateStore (warm)", "sqlite3 floor", "load_median"),
        ]
        for what, mine, floor, metric in pairs:
            if mine in by_label and floor in by_label:
                ours = getattr(by_label[mine], metric)
                theirs = getattr(by_label[floor], metric)
                outcome.append(
                    (
                        ours <= LIMIT_VS_FLOOR * theirs,
                        f"{keys} keys: {what}: {mine} {ours:.3f} ms vs {floor} "
                        f"{theirs:.3f} ms = {ours / theirs:.2f}x "
                        f"(limit {LIMIT_VS_FLOOR}x)",
                    )
                )
        naive = by_label.get("naive sqlite3 (no dedup)")
        store = by_label.get("StateStore (warm)")
        if naive is not None and store is not None:
            outcome.append(
                (
                    store.save_median < naive.save_median,
                    f"{keys} keys: one-key change, StateStore (warm) "
                    f"{store.save_median:.3f} ms < naive floor "
                    f"{naive.save_median:.3f} ms",
                )
            )
        cold = by_label.get("StateStore (cold caches)")
        if naive is not None and cold is not None:
            outcome.append(
                (
                    None,
                    f"{keys} keys: one-key change, StateStore (cold caches) "
                    f"{cold.save_median:.3f} ms vs naive floor "
                    f"{naive.save_median:.3f} ms (not a target: both re-hash "
                    "every value)",
                )
            )
    return outcome


def environment() -> str:
    """Versions, CPU, load average and the store's git revision, to read the numbers against."""
    import subprocess

    import sqlalchemy

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read_lines("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    try:
        root = Path(__file__).resolve().parent.parent
        revision = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = "unknown"
    load = os.getloadavg()[0]
    return (
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}, {platform.system()}, {cpu} x "
        f"{os.cpu_count()}, load average {load:.2f}, repository at {revision}"
    )


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def print_checks(outcome: list[tuple[bool | None, str]]) -> bool:
    for passed, text in outcome:
        print(f"{'INFO' if passed is None else 'PASS' if passed else 'FAIL'}  {text}")
    return all(passed is not False for passed, _ in outcome)


# --- the comparison -------------------------------------------------------------------------


def compare(args: argparse.Namespace, workdir: Path) -> list[Result]:
    results: list[Result] = []
    skip = {word.lower() for word in args.skip}
    for keys in args.keys:
        workload = make_workload(keys, args.versions, args.loads, seed=args.seed)
        expected = list(states(workload))
        groups = implementations(keys, naive_from=args.naive_from, skip=skip)
        print(
            f"\n{keys} keys: {workload.versions} versions "
            f"(1 initial + {args.versions} one-key changes), {args.loads} loads",
            flush=True,
        )
        merged: list[Result] = []
        for round_number in range(args.rounds):
            measured: list[Result] = []
            for index, runs in enumerate(groups):
                started = time.perf_counter()
                measured += run_interleaved(
                    runs,
                    workload,
                    expected,
                    workdir / f"keys-{keys}-round-{round_number}-group-{index}",
                )
                print(
                    f"  round {round_number + 1}/{args.rounds}: "
                    f"{', '.join(label for label, _flow, _make in runs)} "
                    f"({time.perf_counter() - started:.1f} s)",
                    flush=True,
                )
            if not merged:
                merged = measured
                continue
            # Pool the samples of every round; keep the smaller first save.
            for total, extra in zip(merged, measured, strict=True):
                total.saves += extra.saves
                total.loads += extra.loads
                total.first_save = min(total.first_save, extra.first_save)
        results += merged
    return results


# --- --deep: save time at version ~100 vs ~100,000 ------------------------------------------


def deep(args: argparse.Namespace, workdir: Path) -> bool:
    """Fill one name to ``--deep-versions``, then time saves at version ~100 and at the top.

    The two windows are measured interleaved (one save to a fresh store at
    version ~100, one save to the deep store, alternately), so the machine's
    background load hits both alike. With ``--workdir`` the deep store is kept
    and a later run resumes filling it instead of starting over.
    """
    from msgflux.store import NameNotFound, StateStore

    target, keys, window = args.deep_versions, args.keys[0], args.window
    if target < 100 + window:
        raise SystemExit(f"--deep-versions must be at least {100 + window}")
    path = workdir / "deep.db"
    deep_store = StateStore(path)
    try:
        head = deep_store.get(NAME).number
    except NameNotFound:
        head = 0
    deep_stream = ChangeStream(keys, seed=args.seed)
    print(
        f"--deep: {keys} keys, filling one name to {target - window:,} versions (then "
        f"{window} timed saves) in {path}; starting at version {head:,}"
    )
    started = last_report = time.perf_counter()
    recent: list[float] = []
    for number in range(head + 1, target - window + 1):
        state = deep_stream.state if number == 1 else deep_stream.next_state()
        begin = time.perf_counter()
        deep_store.save(NAME, state)
        recent.append(time.perf_counter() - begin)
        if time.perf_counter() - last_report >= 15 or number == target - window:
            last_report = time.perf_counter()
            elapsed = last_report - started
            print(
                f"  version {number:>9,}  {elapsed:6.0f} s  "
                f"{(number - head) / elapsed:5.0f} saves/s  median of the last "
                f"{len(recent)} saves {median_ms(recent):.3f} ms  db+wal {_size(_disk(path))}",
                flush=True,
            )
            recent = []
    shallow_store = StateStore(workdir / "shallow.db")
    shallow_stream = ChangeStream(keys, seed=args.seed + 10)
    shallow_store.save(NAME, shallow_stream.state)
    for _ in range(98):
        shallow_store.save(NAME, shallow_stream.next_state())
    early: list[float] = []
    late: list[float] = []
    for turn in range(window):
        pairs = [(shallow_store, shallow_stream, early), (deep_store, deep_stream, late)]
        for store, stream, timings in pairs if turn % 2 else pairs[::-1]:
            state = stream.next_state()
            begin = time.perf_counter()
            store.save(NAME, state)
            timings.append(time.perf_counter() - begin)
    top = deep_store.get(NAME).number
    loads_early, loads_late = _interleaved_loads(
        shallow_store, 99 + window, deep_store, top, args.loads, args.seed
    )
    shallow_store.close()
    deep_store.close()
    ratio = median_ms(late) / median_ms(early)
    print()
    print("| window (interleaved) | save p50 | save p90 | load p50 (random versions) | load p90 |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| versions 100..{99 + window} | {median_ms(early):.3f} ms | {p90_ms(early):.3f} ms "
        f"| {median_ms(loads_early):.3f} ms | {p90_ms(loads_early):.3f} ms |"
    )
    print(
        f"| versions {top - window + 1:,}..{top:,} | {median_ms(late):.3f} ms "
        f"| {p90_ms(late):.3f} ms | {median_ms(loads_late):.3f} ms "
        f"| {p90_ms(loads_late):.3f} ms |"
    )
    print(f"\ndisk: {_size(_disk(path))} (db + WAL) at {top:,} versions of {keys} keys")
    return print_checks(
        [
            (
                ratio <= LIMIT_DEEP,
                f"deep: save p50 at version ~{top:,} is {ratio:.2f}x the save p50 "
                f"at version ~100 (limit {LIMIT_DEEP}x)",
            )
        ]
    )


def _disk(path: Path) -> int:
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal", "-shm")
        if Path(f"{path}{suffix}").exists()
    )


def _interleaved_loads(
    shallow: Any, shallow_head: int, deep_store: Any, deep_head: int, count: int, seed: int
) -> tuple[list[float], list[float]]:
    """Time ``count`` loads of random versions from each store, alternately."""
    import random

    rng = random.Random(seed + 3)
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(count):
        for which, (store, head) in enumerate(((shallow, shallow_head), (deep_store, deep_head))):
            number = rng.randint(1, head)
            begin = time.perf_counter()
            store.load(NAME, number)
            timings[which].append(time.perf_counter() - begin)
    return timings


# --- command line ---------------------------------------------------------------------------


def _key_counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keys",
        type=_key_counts,
        default=None,
        help="comma-separated key counts (default 50,500; --deep: 50)",
    )
    parser.add_argument(
        "--versions",
        type=int,
        default=None,
        help="one-key changes after the initial version (default 200)",
    )
    parser.add_argument(
        "--loads", type=int, default=None, help="random version loads (default 100)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run (< 1 minute): 40 changes, 30 loads; --deep fills 3,000 versions",
    )
    parser.add_argument(
        "--deep",
        action="store_true",
        help="fill one store to --deep-versions and compare save time at "
        "version ~100 with version ~N (takes minutes)",
    )
    parser.add_argument(
        "--deep-versions", type=int, default=None, help="versions for --deep (default 100,000)"
    )
    parser.add_argument(
        "--window", type=int, default=200, help="saves per --deep window (default 200)"
    )
    parser.add_argument(
        "--naive-from",
        type=int,
        default=500,
        help="run the naive no-dedup floor at key counts >= this (default 500)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        help="skip implementations whose label contains this word (e.g. git)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole comparison on fresh stores and pool the samples "
        "(steadier medians on a busy machine)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to create the stores (default: a temporary folder, removed); "
        "kept when given, and --deep then resumes filling its deep.db",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument(
        "--tools",
        action="store_true",
        help="time the history tools at --tools-versions (see tools_report.py)",
    )
    parser.add_argument("--tools-versions", type=int, default=20_000)
    parser.add_argument(
        "--log-versions",
        type=int,
        default=100_000,
        help="versions of the history --tools times log(limit=20) on",
    )
    parser.add_argument("--skip-log", action="store_true", help="--tools without the log timing")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="--tools, --report-render: rebuild the cached histories",
    )
    parser.add_argument(
        "--report-render",
        action="store_true",
        help="time the HTML report's generation and Chromium's drawing of it "
        "(see report_render.py)",
    )
    parser.add_argument(
        "--report-versions",
        default="30,300,3000",
        help="--report-render: history sizes, comma-separated",
    )
    parser.add_argument(
        "--chromium",
        default=None,
        help="--report-render: the Chromium binary (default "
        "$MSGFLUX_TEST_CHROMIUM, else chromium on the PATH)",
    )
    args = parser.parse_args(argv)
    args.keys = args.keys or ([50] if args.deep or args.tools or args.report_render else [50, 500])
    args.versions = args.versions or (40 if args.quick else 200)
    args.loads = args.loads or (30 if args.quick else 100)
    args.deep_versions = args.deep_versions or (3_000 if args.quick else 100_000)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--serving" in argv:  # its own options: python benchmarks/serving.py --help
        import serving

        return serving.main([arg for arg in argv if arg != "--serving"])
    args = parse_args(argv)
    print(environment())
    keep = args.workdir is not None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="msgflux-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.deep:
            return 0 if deep(args, workdir) else 1
        if args.tools:
            from tools_report import main_tools

            return 0 if main_tools(args, workdir) else 1
        if args.report_render:
            from report_render import main_report_render

            return 0 if main_report_render(args, workdir) else 1
        results = compare(args, workdir)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        print()
        print(table(results))
        print()
        passed = print_checks(checks(results))
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "environment": environment(),
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "results": [
                            {**result.summary(), "saves_s": result.saves, "loads_s": result.loads}
                            for result in results
                        ],
                    },
                    indent=2,
                )
            )
        return 0 if passed else 1
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
