"""Serving targets (issue 12): refresh cost, move-to-refresh latency, swap cost, route picking.

Usage (from the repository root, in the project's venv)::

    python benchmarks/serving.py                       # SQLite, and PostgreSQL if configured
    python benchmarks/serving.py --postgres URL        # PostgreSQL server (a schema is made)
    python benchmarks/run.py --serving                 # the same, through run.py

PostgreSQL runs when ``--postgres`` or ``$MSGFLUX_TEST_POSTGRES_URL`` names a
server. Measures, each a median over many samples:

* ``refresh()`` when nothing changed (batches of 10,000 calls, per call);
* from a tag move committed in another process to ``refresh()`` seeing it:
  a child process moves the tag and reports ``time.monotonic_ns()`` (a
  system-wide clock) right after its commit; this process spins on
  ``refresh()`` and takes the time when it returns ``True``;
* a swap of a 50-key state dict (one ``refresh()`` that swaps, after a move
  by another connection) against ``load_into`` of the same versions,
  interleaved;
* picking a version of a split for a route key;
* ``load_state_dict`` of the same 50-key module (no database), on its fast path and
  on the general path it takes when a module has load hooks or overrides (the
  fastest of 15 batches: this one is about the code, not the machine's load).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from msgflux import nn
from msgflux.nn.modules import _state as module_state
from msgflux.store import StateStore
from msgflux.store._follow import _PostgresWatch, _SqliteWatch
from msgflux.store._split import Router

KEYS = 50
TARGETS = {
    "sqlite": {"refresh_us": 20, "latency_ms": 1.0, "swap_ratio": 1.5, "pick_us": 5},
    "postgresql": {"refresh_us": 20, "latency_ms": 100.0, "swap_ratio": 1.5, "pick_us": 5},
}


def _state(number: int) -> dict[str, str]:
    words = ("answer", "briefly", "cite", "sources", "in", "plain", "language", "and", "JSON")
    return {
        f"layer{index // 10}.prompt{index}": f"v{number} "
        + " ".join(words[(index + step) % len(words)] for step in range(40))
        for index in range(KEYS)
    }


def _module() -> nn.Module:
    module = nn.Module()
    for key in _state(0):
        holder: nn.Module = module
        *path, leaf = key.split(".")
        for part in path:
            if not hasattr(holder, part):
                setattr(holder, part, nn.Module())
            holder = getattr(holder, part)
        holder.register_buffer(leaf, "")
    return module


def _mover(url: str, commands: Any, times: Any) -> None:
    store = StateStore(url)
    while True:
        number = commands.recv()
        if number is None:
            break
        store.tag("bench", number, "production")
        times.send(time.monotonic_ns())
    store.close()


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def bench(url: str, label: str, samples: int) -> dict[str, float]:
    store = StateStore(url)
    for number in range(1, 5):
        store.save("bench", _state(number))
    store.tag("bench", 1, "production")
    other = StateStore(url)
    module = _module()
    follower = store.follow(module, "bench", "production")
    results: dict[str, float] = {}

    # refresh() when nothing changed
    batches = []
    for _ in range(15):
        started = time.perf_counter()
        for _ in range(10_000):
            follower.refresh()
        batches.append((time.perf_counter() - started) / 10_000)
    results["refresh_us"] = _median_us(batches)

    # a swap against load_into, interleaved
    swaps, loads = [], []
    target = 2
    for index in range(samples):
        target = 2 if target != 2 else 3
        other.tag("bench", target, "production")
        while True:  # the change must be visible before the timed call
            started = time.perf_counter()
            if follower.refresh():
                swaps.append(time.perf_counter() - started)
                break
        started = time.perf_counter()
        store.load_into(module, "bench", 4 if index % 2 else 1)
        loads.append(time.perf_counter() - started)
    results["swap_us"] = _median_us(swaps)
    results["load_into_us"] = _median_us(loads)
    results["swap_ratio"] = results["swap_us"] / results["load_into_us"]

    # move committed in another process -> refresh() sees it
    context = multiprocessing.get_context("spawn")
    commands, child_commands = context.Pipe()
    child_times, times = context.Pipe()
    process = context.Process(target=_mover, args=(url, child_commands, child_times))
    process.start()
    # A second watch of the follower's kind, on its own connection: when the change is noticed.
    watch: Any = (
        _SqliteWatch(str(store.url.database))
        if store.dialect == "sqlite"
        else _PostgresWatch(store.url, "bench", 5)
    )
    latencies, noticed = [], []
    for index in range(samples):
        target = 1 if index % 2 else 4
        commands.send(target)
        while not watch.changed():
            pass
        seen = time.monotonic_ns()
        while not follower.refresh():
            pass
        swapped = time.monotonic_ns()
        committed = times.recv()
        noticed.append((seen - committed) / 1e6)
        latencies.append((swapped - committed) / 1e6)
        time.sleep(0.005)
        watch.changed()  # the follower's swap committed nothing, but stay in step
    commands.send(None)
    process.join()
    watch.close()
    results["latency_ms"] = statistics.median(latencies)
    results["latency_p90_ms"] = statistics.quantiles(latencies, n=10)[-1]
    results["noticed_ms"] = statistics.median(noticed)

    # route picking
    router = Router("bench", "production", {12: 0.9, 13: 0.1})
    keys = [f"user-{index}" for index in range(10_000)]
    picks = []
    for _ in range(15):
        started = time.perf_counter()
        for key in keys:
            router.pick(key)
        picks.append((time.perf_counter() - started) / len(keys))
    results["pick_us"] = _median_us(picks)
    follower.close()
    other.close()
    store.close()
    return results


def bench_load_paths() -> dict[str, float]:
    """``load_state_dict`` of the 50-key module, fast path and general path (µs, best batch)."""
    module, state = _module(), _state(1)

    def best() -> float:
        batches = []
        for _ in range(15):
            started = time.perf_counter()
            for _ in range(500):
                module.load_state_dict(state)
            batches.append((time.perf_counter() - started) / 500)
        return min(batches) * 1e6

    fast = best()
    with mock.patch.object(module_state, "_plain_load_slots", return_value=None):
        general = best()
    return {"fast_us": fast, "general_us": general}


def _postgres_schema(base: str) -> tuple[str, Any]:
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()

    return f"{base}{separator}options=-csearch_path%3D{schema}", drop


def report(label: str, results: dict[str, float]) -> bool:
    target = TARGETS[label]
    rows = [
        (
            "refresh() when nothing changed",
            f"{results['refresh_us']:.2f} µs",
            f"<= {target['refresh_us']} µs",
            results["refresh_us"] <= target["refresh_us"],
        ),
        (
            "tag move in another process -> refresh() swapped it",
            f"{results['latency_ms']:.3f} ms (p90 {results['latency_p90_ms']:.3f})",
            f"<= {target['latency_ms']:g} ms",
            results["latency_ms"] <= target["latency_ms"],
        ),
        (
            "swap of a 50-key state dict / load_into",
            f"{results['swap_us']:.0f} / {results['load_into_us']:.0f} µs = "
            f"{results['swap_ratio']:.2f}x",
            f"<= {target['swap_ratio']}x",
            results["swap_ratio"] <= target["swap_ratio"],
        ),
        (
            "pick a version for a route key",
            f"{results['pick_us']:.2f} µs",
            f"<= {target['pick_us']} µs",
            results["pick_us"] <= target["pick_us"],
        ),
    ]
    print(f"\n{label}")
    for what, value, goal, met in rows:
        print(f"  {what:<52} {value:<32} {goal:<10} {'met' if met else 'MISSED'}")
    print(f"  {'(of which: the change noticed)':<52} {results['noticed_ms']:.3f} ms")
    return all(met for *_rest, met in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MSGFLUX_TEST_POSTGRES_URL"),
        help="a PostgreSQL server URL (default $MSGFLUX_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=200,
        help="swaps, loads and moves measured per backend (default 200)",
    )
    args = parser.parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    passed = True
    paths = bench_load_paths()
    print(
        f"\nload_state_dict, 50 keys (best of 15 batches): fast path {paths['fast_us']:.0f} µs, "
        f"general path {paths['general_us']:.0f} µs"
    )
    with tempfile.TemporaryDirectory(prefix="msgflux-serving-") as folder:
        passed &= report("sqlite", bench(str(Path(folder) / "serving.db"), "sqlite", args.samples))
    if args.postgres:
        url, drop = _postgres_schema(args.postgres)
        try:
            passed &= report("postgresql", bench(url, "postgresql", args.samples))
        finally:
            drop()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
