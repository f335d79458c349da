"""The storage model's targets (key spans): disk, save and load against floors, history reads.

    python benchmarks/history.py                      # 100,000-version figures (~10 min)
    python benchmarks/history.py --versions 20000     # quicker; ratios hold
    python benchmarks/history.py --postgres URL       # also the PostgreSQL figures

In one run, interleaved where two things are compared (medians, milliseconds):

* save with one key changed, at 50, 500 and 5,000 keys: the store against the
  delta-rows floor (only changed keys written, by hand with sqlite3) and the
  per-key-rows floor (every key of every version, as the store did before);
* disk for 500 keys x 1,000 versions against ``git gc`` of one TOML file with
  one commit per version, and for 50 keys x ``--versions`` against the bytes of
  the distinct values;
* load of the latest and of random old versions (50 and 500 keys) against both
  floors, at version 200 and at ``--versions``;
* save time at the last 200 versions against the first 200;
* on the 50-key store: ``log(key=..., limit=20)``, ``state_changes`` of one
  version, ``load(at=...)``; ``blame`` of a 500-key version.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from backends import DeltaFloor, GitToml, SqliteFloor, StoreBackend  # noqa: E402
from workload import ChangeStream  # noqa: E402

from msgflux.store import StateStore  # noqa: E402


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def saves(keys: int, count: int, folder: Path) -> dict[str, float]:
    """Median save time with one key changed, each implementation on the same states."""
    folder.mkdir()
    backends = {
        "store": StoreBackend(folder),
        "delta floor": DeltaFloor(folder),
        "per-key floor": SqliteFloor(folder, hash_cache=True),
    }
    stream = ChangeStream(keys, seed=keys)
    times: dict[str, list[float]] = {label: [] for label in backends}
    for index in range(count + 20):
        state = stream.next_state()
        for label, backend in backends.items():
            took = _timed(lambda backend=backend, state=state: backend.save(state))
            if index >= 20:  # warm caches and the first version
                times[label].append(took)
    for backend in backends.values():
        backend.close()
    return {label: _ms(samples) for label, samples in times.items()}


def git_disk(folder: Path, versions: int = 1000, keys: int = 500) -> dict[str, int]:
    folder.mkdir()
    store, git = StoreBackend(folder), GitToml(folder)
    stream = ChangeStream(keys, seed=7)
    for _ in range(versions):
        state = stream.next_state()
        store.save(state)
        git.save(state)
    git.finish_saves()
    result = {"store": store.compacted_bytes(), "git gc": git.compacted_bytes()}
    store.close()
    git.close()
    return result


def deep(folder: Path, versions: int, keys: int = 50) -> dict[str, Any]:
    """Fill a 50-key store and both floors with ``versions`` one-key changes; measure."""
    folder.mkdir()
    store, delta, floor = (
        StoreBackend(folder),
        DeltaFloor(folder),
        SqliteFloor(folder, hash_cache=True),
    )
    stream = ChangeStream(keys, seed=1)
    distinct: dict[str, int] = {}
    early: list[float] = []
    late: list[float] = []
    loads_200: dict[str, list[float]] = {"store": [], "delta floor": [], "per-key floor": []}
    rng = random.Random(3)
    for number in range(1, versions + 1):
        state = stream.next_state()
        for value in state.values():
            distinct.setdefault(value, len(value.encode()))
        took = _timed(lambda state=state: store.save(state))
        delta.save(state)
        floor.save(state)
        if number <= 200:
            early.append(took)
        elif number > versions - 200:
            late.append(took)
        if number == 200:
            loads_200 = _loads(
                {"store": store, "delta floor": delta, "per-key floor": floor}, rng, 200
            )
    result: dict[str, Any] = {
        "disk store": store.compacted_bytes(),
        "disk delta floor": delta.compacted_bytes(),
        "disk per-key floor": floor.compacted_bytes(),
        "distinct value bytes": sum(distinct.values()),
        "save first 200 ms": _ms(early),
        "save last 200 ms": _ms(late),
        "loads at 200": loads_200,
        "loads at end": _loads(
            {"store": store, "delta floor": delta, "per-key floor": floor}, rng, versions
        ),
    }
    delta.close()
    floor.close()
    result.update(_history_reads(store.store, versions, rng))
    store.close()
    return result


def _loads(backends: dict[str, Any], rng: random.Random, head: int) -> dict[str, float]:
    """Median ms of the latest and of random old versions, interleaved.

    Each round runs the loads in a new random order: in a fixed order the first
    load of a round always ran after another database's work had evicted its
    pages and code from the CPU caches (in a fixed order the store's "latest",
    measured first, took 1.1x its "old").
    """
    samples: dict[str, list[float]] = {
        f"{label} {kind}": [] for label in backends for kind in ("latest", "old")
    }
    order = random.Random(head)
    for _ in range(200):
        old = rng.randint(1, head)
        calls = [
            (f"{label} {kind}", backend, number)
            for label, backend in backends.items()
            for kind, number in (("latest", head), ("old", old))
        ]
        order.shuffle(calls)
        for label, backend, number in calls:
            samples[label].append(_timed(lambda b=backend, n=number: b.load(n)))
    return {label: _ms(values) for label, values in samples.items()}


def _history_reads(store: StateStore, head: int, rng: random.Random) -> dict[str, float]:
    name = "pipeline"
    key = next(iter(store.load(name)))
    first, last = store.get(name, 1).created_at, store.get(name).created_at
    samples: dict[str, list[float]] = {
        "log key limit 20": [],
        "state_changes one version": [],
        "load at": [],
        "log limit 20": [],
    }
    for _ in range(30):
        number = rng.randint(2, head)
        moment = first + timedelta(seconds=rng.random() * (last - first).total_seconds())
        samples["log key limit 20"].append(_timed(lambda: store.log(name, key=key, limit=20)))
        samples["log limit 20"].append(_timed(lambda: store.log(name, limit=20)))
        samples["state_changes one version"].append(
            _timed(
                lambda n=number: store.query(
                    "SELECT * FROM state_changes WHERE name = :name AND version = :v",
                    {"name": name, "v": n},
                )
            )
        )
        samples["load at"].append(_timed(lambda m=moment: store.load(name, at=m)))
    return {label: _ms(values) for label, values in samples.items()}


def blame_500(folder: Path, versions: int = 1000) -> float:
    folder.mkdir()
    store = StoreBackend(folder)
    stream = ChangeStream(500, seed=5)
    for _ in range(versions):
        store.save(stream.next_state())
    rng = random.Random(4)
    numbers = [rng.randint(1, versions) for _ in range(30)]
    took = [_timed(lambda n=n: store.store.blame("pipeline", n)) for n in numbers]
    store.close()
    return _ms(took)


def postgres(url: str, versions: int) -> dict[str, float]:
    """The same reads and a one-key save on PostgreSQL (no floor: just the figures)."""
    store = StateStore(url)
    for name in store.names():
        if name.startswith("bench-"):
            store.delete_name(name, force=True)
    stream = ChangeStream(50, seed=2)
    save: list[float] = []
    for _ in range(versions):
        state = stream.next_state()
        save.append(_timed(lambda state=state: store.save("bench-history", state)))
    rng = random.Random(5)
    loads = [
        _timed(lambda: store.load("bench-history", rng.randint(1, versions))) for _ in range(100)
    ]
    result = {"save 50 keys": _ms(save[20:]), "load old 50 keys": _ms(loads)}
    key = next(iter(store.load("bench-history")))
    result["log key limit 20"] = _ms(
        [_timed(lambda: store.log("bench-history", key=key, limit=20)) for _ in range(20)]
    )
    result["blame 50 keys"] = _ms([_timed(lambda: store.blame("bench-history")) for _ in range(20)])
    # The views as a client reads them (on the store's own connection: query()
    # refuses a superuser session, which a benchmark URL often is).
    with store.engine.connect() as connection:
        for view in ("state_values", "state_changes"):
            sql = f"SELECT * FROM {view} WHERE name = %s AND version = %s"
            result[f"{view} one version"] = _ms(
                [
                    _timed(
                        lambda sql=sql: connection.exec_driver_sql(
                            sql, ("bench-history", rng.randint(2, versions))
                        ).all()
                    )
                    for _ in range(20)
                ]
            )
    store.delete_name("bench-history", force=True)
    store.gc()
    store.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--saves", type=int, default=300)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL to measure too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="msgflux-history-") as work:
        root = Path(work)
        print("## Save, one key changed (median ms)")
        for keys, count in ((50, args.saves), (500, args.saves), (5000, args.saves // 3)):
            figures = saves(keys, count, root / f"saves{keys}")
            ratio = figures["store"] / figures["delta floor"]
            print(
                f"{keys:>5} keys: "
                + ", ".join(f"{label} {value:.3f}" for label, value in figures.items())
                + f"; store / delta floor {ratio:.2f}x"
            )
        print("\n## Disk, 500 keys x 1,000 versions")
        disk = git_disk(root / "git")
        print(
            f"store {disk['store'] / 1e6:.2f} MB, git gc {disk['git gc'] / 1e6:.2f} MB: "
            f"{disk['store'] / disk['git gc']:.2f}x git"
        )
        print(f"\n## 50 keys x {args.versions:,} versions")
        result = deep(root / "deep", args.versions)
        value_bytes = result["distinct value bytes"]
        for label in ("store", "delta floor", "per-key floor"):
            size = result[f"disk {label}"]
            print(
                f"disk {label}: {size / 1e6:.1f} MB ({size / value_bytes:.2f}x the "
                f"{value_bytes / 1e6:.1f} MB of distinct values)"
            )
        print(
            f"save: first 200 {result['save first 200 ms']:.3f} ms, last 200 "
            f"{result['save last 200 ms']:.3f} ms "
            f"({result['save last 200 ms'] / result['save first 200 ms']:.2f}x)"
        )
        for at in ("loads at 200", "loads at end"):
            loads = result[at]
            for kind in ("latest", "old"):
                best = min(loads[f"delta floor {kind}"], loads[f"per-key floor {kind}"])
                print(
                    f"{at}, {kind}: store {loads[f'store {kind}']:.3f}, delta floor "
                    f"{loads[f'delta floor {kind}']:.3f}, per-key floor "
                    f"{loads[f'per-key floor {kind}']:.3f}: "
                    f"{loads[f'store {kind}'] / best:.2f}x the faster floor"
                )
        for label in ("log key limit 20", "log limit 20", "state_changes one version", "load at"):
            print(f"{label}: {result[label]:.2f} ms")
        print(f"blame of a 500-key version (1,000 versions): {blame_500(root / 'b500'):.2f} ms")
        if args.postgres:
            print(f"\n## PostgreSQL, 50 keys x {min(args.versions, 2000):,} versions")
            for label, value in postgres(args.postgres, min(args.versions, 2000)).items():
                print(f"{label}: {value:.2f} ms")


if __name__ == "__main__":
    main()
