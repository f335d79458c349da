"""``benchmarks/run.py --tools``: the history tools at optimiser scale.

At ``--tools-versions`` (default 20,000) versions of 50 keys, with realistic
edits (each version rewrites one sentence in one or two prompts, see
:class:`Rewrites`), it times:

* the HTML report (``render_report``): time and page size;
* ``export_bundle`` and ``import_bundle``: time and peak resident memory, each
  in a fresh subprocess (``ru_maxrss``, so the figure is the process's own peak);
* ``verify()``;
* ``prune(keep_last=100)`` + ``gc()`` + ``gc(vacuum=True)``: time, and the
  file size (database + WAL) before and after each; then ``gc(vacuum=True)``
  with half the history kept while a thread saves and another loads;
* ``log(name, limit=20)`` and ``log(name, key=k, limit=20)`` at
  ``--log-versions`` (default 100,000) versions: medians of 30 calls.

The two histories are built once with ``StateStore.save`` and cached under
the temporary folder (``msgflux-bench-tools/``), keyed by their size, seed and
schema revision;
later runs reuse them (``--rebuild`` starts over). Every measurement runs on a
copy, so the cache stays intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAME = "pipeline"
KEEP_LAST = 100
REPORT_SECONDS = 10.0
REPORT_BYTES = 10_000_000
BUNDLE_RSS_MB = 100.0
LOG_MS = 20.0

_ROLES = ("instructions", "system_message", "expected_output", "task_template")


def cache_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "msgflux-bench-tools"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Rewrites:
    """Prompts of 4 to 14 sentences; each version rewrites whole sentences, as an optimiser does.

    A third of the prompts put one sentence per line, the rest are one
    paragraph. Each step picks one or two keys and in each replaces one
    sentence with a new one (now and then inserts or deletes one instead), so a
    diff shows rewritten sentences, not appended words. Metadata: a ``score``
    that drifts and a ``latency_ms``.
    """

    def __init__(self, keys: int = 50, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self._words = sorted(
            {"".join(self._rng.choices(letters, k=self._rng.randint(2, 10))) for _ in range(3000)}
        )
        self.keys = [
            f"blocks.{index // len(_ROLES):03d}.agent.{_ROLES[index % len(_ROLES)]}"
            for index in range(keys)
        ]
        self._sentences = {
            key: [self._sentence() for _ in range(self._rng.randint(4, 14))] for key in self.keys
        }
        self._multiline = {key: index % 3 == 0 for index, key in enumerate(self.keys)}
        self.state = {key: self._text(key) for key in self.keys}
        self._score = 0.5

    def _sentence(self) -> str:
        words = self._rng.choices(self._words, k=self._rng.randint(8, 24))
        return " ".join(words).capitalize() + self._rng.choice((".", ".", ".", "!", "?"))

    def _text(self, key: str) -> str:
        return ("\n" if self._multiline[key] else " ").join(self._sentences[key])

    def step(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The next state (a new dict; unchanged values are the same strings) and its metadata."""
        state = dict(self.state)
        for key in self._rng.sample(self.keys, self._rng.choice((1, 2))):
            sentences = self._sentences[key]
            roll = self._rng.random()
            if roll < 0.1 and len(sentences) < 16:
                sentences.insert(self._rng.randrange(len(sentences) + 1), self._sentence())
            elif roll < 0.2 and len(sentences) > 3:
                del sentences[self._rng.randrange(len(sentences))]
            else:
                sentences[self._rng.randrange(len(sentences))] = self._sentence()
            state[key] = self._text(key)
        self.state = state
        self._score = min(1.0, max(0.0, self._score + self._rng.gauss(0.0, 0.02)))
        return state, {"score": round(self._score, 4), "latency_ms": self._rng.randint(300, 1500)}


def build_history(
    target: str | Path,
    versions: int,
    keys: int = 50,
    seed: int = 0,
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Save ``versions`` versions of :class:`Rewrites` to ``NAME`` (tags every 2,500)."""
    from msgflux.store import StateStore

    stream = Rewrites(keys, seed)
    with StateStore(target) as store:
        store.save(
            NAME,
            stream.state,
            message="baseline",
            author="bench",
            metadata={"score": 0.5, "latency_ms": 900},
        )
        for number in range(2, versions + 1):
            state, metadata = stream.step()
            store.save(
                NAME,
                state,
                message=f"optimiser step {number}",
                author=("bench", "opt", "ana")[number % 3],
                metadata=metadata,
            )
            if number % 2500 == 0:
                store.tag(NAME, number, f"release-{number // 2500}")
            if progress is not None and number % 5000 == 0:
                progress(number)
        store.tag(NAME, versions // 2, "production")


def cached_history(versions: int, keys: int, seed: int, *, rebuild: bool = False) -> Path:
    """A SQLite store of :func:`build_history`, built once and kept in :func:`cache_dir`."""
    from msgflux.store.migrate import SCHEMA_HEAD

    # Keyed by the schema revision too: a cached store from an older schema would be
    # migrated on open, and then measure a migrated store instead of a fresh one.
    path = cache_dir() / f"rewrites-{versions}x{keys}-seed{seed}-schema{SCHEMA_HEAD}.db"
    if path.exists() and not rebuild:
        return path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    partial = path.with_suffix(".partial.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    print(f"  building {versions:,} versions x {keys} keys in {partial} (once; cached)", flush=True)
    build_history(
        partial,
        versions,
        keys,
        seed,
        progress=lambda number: print(
            f"    {number:>7,} versions  {time.perf_counter() - started:5.0f} s", flush=True
        ),
    )
    _checkpoint(partial)
    partial.replace(path)
    return path


def _checkpoint(path: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def copy_store(source: Path, target: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def disk(path: Path) -> int:
    """Bytes of the database file and its WAL."""
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )


def _mb(size: float) -> str:
    return f"{size / 1e6:,.2f} MB"


# --- measurements --------------------------------------------------------------------------

_CHILD = r"""
import json, resource, sys, time
from msgflux.store import StateStore
action, store_path, bundle = sys.argv[1:4]
store = StateStore(store_path)
started = time.perf_counter()
if action == "export":
    store.export_bundle(bundle)
else:
    store.import_bundle(bundle)
seconds = time.perf_counter() - started
store.close()
print(json.dumps({"seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def in_subprocess(action: str, store_path: Path, bundle: Path) -> dict[str, float]:
    """Run export or import in a fresh interpreter; its time and its peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, action, str(store_path), str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{action} failed: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_bundles(history: Path, workdir: Path) -> dict[str, Any]:
    """Export the history and import it into a new store, each in its own process."""
    source = copy_store(history, workdir / "export-source.db")
    bundle = workdir / "bundle.json"
    bundle.unlink(missing_ok=True)
    exported = in_subprocess("export", source, bundle)
    target = workdir / "import-target.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    imported = in_subprocess("import", target, bundle)
    return {
        "export_s": exported["seconds"],
        "export_peak_rss_mb": exported["peak_rss_mb"],
        "import_s": imported["seconds"],
        "import_peak_rss_mb": imported["peak_rss_mb"],
        "bundle_bytes": bundle.stat().st_size,
    }


def measure_report(history: Path, workdir: Path) -> dict[str, Any]:
    from msgflux.store import StateStore
    from msgflux.store.report import render_report

    source = copy_store(history, workdir / "report.db")
    with StateStore(source) as store:
        started = time.perf_counter()
        page = render_report(store, NAME)
        seconds = time.perf_counter() - started
    output = workdir / "history.html"
    output.write_text(page, encoding="utf-8")
    return {"report_s": seconds, "report_bytes": output.stat().st_size, "report_file": str(output)}


def measure_verify(history: Path, workdir: Path) -> dict[str, Any]:
    from msgflux.store import StateStore

    source = copy_store(history, workdir / "verify.db")
    with StateStore(source) as store:
        started = time.perf_counter()
        report = store.verify()
        seconds = time.perf_counter() - started
    return {"verify_s": seconds, "verify_ok": report.ok}


def measure_prune_gc(history: Path, workdir: Path) -> dict[str, Any]:
    """prune(keep_last=100), gc(), then gc(vacuum=True): times and file sizes."""
    from msgflux.store import StateStore

    source = copy_store(history, workdir / "prune.db")
    result: dict[str, Any] = {"size_before": disk(source)}
    with StateStore(source) as store:
        started = time.perf_counter()
        deleted = store.prune(NAME, keep_last=KEEP_LAST)
        result["prune_s"] = time.perf_counter() - started
        result["pruned_versions"] = len(deleted)
        started = time.perf_counter()
        store.gc()
        result["gc_s"] = time.perf_counter() - started
        result["size_after_gc"] = disk(source)
        started = time.perf_counter()
        store.gc(vacuum=True)
        result["vacuum_s"] = time.perf_counter() - started
        result["size_after_vacuum"] = disk(source)
    return result


def measure_vacuum_under_load(history: Path, workdir: Path) -> dict[str, Any]:
    """VACUUM with half the history kept, while one thread saves and one loads, each in a loop.

    Shows what ``gc(vacuum=True)`` costs when much remains, and that writers
    wait for it (their slowest save is about the VACUUM's duration) while
    readers go on (WAL).
    """
    import threading

    from msgflux.store import StateStore

    source = copy_store(history, workdir / "vacuum-load.db")
    with StateStore(source) as store:
        head = store.get(NAME).number
        store.prune(NAME, keep_last=head // 2)
        store.gc()
    stop = threading.Event()
    saves: list[float] = []
    loads: list[float] = []

    def write() -> None:
        stream = Rewrites(50, seed=99)
        with StateStore(source, lock_timeout=600) as writer:
            while not stop.is_set():
                state, metadata = stream.step()
                started = time.perf_counter()
                writer.save("other", state, metadata=metadata)
                saves.append(time.perf_counter() - started)

    def read() -> None:
        with StateStore(source) as reader:
            while not stop.is_set():
                started = time.perf_counter()
                reader.load(NAME, head)
                loads.append(time.perf_counter() - started)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    with StateStore(source, lock_timeout=600) as store:
        size = disk(source)
        started = time.perf_counter()
        store.gc(vacuum=True)
        seconds = time.perf_counter() - started
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    return {
        "vacuum_half_s": seconds,
        "vacuum_half_size_before": size,
        "vacuum_half_size_after": disk(source),
        "vacuum_half_slowest_save_s": max(saves),
        "vacuum_half_median_save_ms": statistics.median(saves) * 1000,
        "vacuum_half_slowest_load_s": max(loads),
        "vacuum_half_loads": len(loads),
    }


def cached_log_history(versions: int, keys: int, seed: int, *, rebuild: bool = False) -> Path:
    return cached_history(versions, keys, seed + 1, rebuild=rebuild)


def measure_log(history: Path, calls: int = 30) -> dict[str, Any]:
    """Medians of ``calls`` calls each of ``log(limit=20)`` and ``log(key=k, limit=20)``."""
    from msgflux.store import StateStore

    with StateStore(history) as store:
        key = sorted(store.load(NAME))[7]
        store.log(NAME, limit=20)
        plain: list[float] = []
        by_key: list[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            store.log(NAME, limit=20)
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.log(NAME, key=key, limit=20)
            by_key.append(time.perf_counter() - started)
        head = store.get(NAME).number
    return {
        "log_versions": head,
        "log_limit_ms": statistics.median(plain) * 1000,
        "log_key_limit_ms": statistics.median(by_key) * 1000,
    }


# --- the run -------------------------------------------------------------------------------


def run_tools(
    versions: int,
    log_versions: int,
    keys: int,
    seed: int,
    workdir: Path,
    *,
    rebuild: bool = False,
    skip_log: bool = False,
) -> tuple[dict[str, Any], list[tuple[bool, str]]]:
    """Measure every tool; return the figures and the ``(passed, line)`` checks."""
    print(
        f"--tools: {versions:,} versions x {keys} keys (rewritten sentences); "
        f"log at {log_versions:,} versions"
    )
    history = cached_history(versions, keys, seed, rebuild=rebuild)
    figures: dict[str, Any] = {"versions": versions, "keys": keys, "store_bytes": disk(history)}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("report", lambda: measure_report(history, workdir)),
        ("export/import", lambda: measure_bundles(history, workdir)),
        ("verify", lambda: measure_verify(history, workdir)),
        ("prune + gc", lambda: measure_prune_gc(history, workdir)),
        ("vacuum under load", lambda: measure_vacuum_under_load(history, workdir)),
    ]
    if not skip_log:
        steps.append(
            (
                "log",
                lambda: measure_log(cached_log_history(log_versions, keys, seed, rebuild=rebuild)),
            )
        )
    for label, step in steps:
        print(f"  {label}...", flush=True)
        figures.update(step())
    return figures, checks(figures)


def checks(figures: dict[str, Any]) -> list[tuple[bool, str]]:
    result = [
        (
            figures["report_s"] <= REPORT_SECONDS,
            f"report: {figures['report_s']:.2f} s (limit {REPORT_SECONDS:g} s)",
        ),
        (
            figures["report_bytes"] <= REPORT_BYTES,
            f"report: {_mb(figures['report_bytes'])} (limit {_mb(REPORT_BYTES)})",
        ),
        (
            figures["export_peak_rss_mb"] <= BUNDLE_RSS_MB,
            f"export: peak RSS {figures['export_peak_rss_mb']:.0f} MB (limit {BUNDLE_RSS_MB:g} MB)",
        ),
        (
            figures["import_peak_rss_mb"] <= BUNDLE_RSS_MB,
            f"import: peak RSS {figures['import_peak_rss_mb']:.0f} MB (limit {BUNDLE_RSS_MB:g} MB)",
        ),
        (
            figures["size_after_vacuum"] < figures["size_after_gc"],
            f"gc(vacuum=True) shrinks the file: {_mb(figures['size_after_gc'])} -> "
            f"{_mb(figures['size_after_vacuum'])}",
        ),
        (bool(figures["verify_ok"]), "verify: clean"),
    ]
    if "log_limit_ms" in figures:
        result += [
            (
                figures["log_limit_ms"] <= LOG_MS,
                f"log(limit=20) at {figures['log_versions']:,} versions: "
                f"{figures['log_limit_ms']:.2f} ms (limit {LOG_MS:g} ms)",
            ),
            (
                figures["log_key_limit_ms"] <= LOG_MS,
                f"log(key=k, limit=20) at {figures['log_versions']:,} versions: "
                f"{figures['log_key_limit_ms']:.2f} ms (limit {LOG_MS:g} ms)",
            ),
        ]
    return result


def table(figures: dict[str, Any]) -> str:
    rows = [
        (
            "history",
            f"{figures['versions']:,} versions x {figures['keys']} keys, "
            f"{_mb(figures['store_bytes'])} on disk",
        ),
        ("report", f"{figures['report_s']:.2f} s, {_mb(figures['report_bytes'])}"),
        (
            "export_bundle",
            f"{figures['export_s']:.1f} s, peak RSS "
            f"{figures['export_peak_rss_mb']:.0f} MB, bundle "
            f"{_mb(figures['bundle_bytes'])}",
        ),
        (
            "import_bundle",
            f"{figures['import_s']:.1f} s, peak RSS {figures['import_peak_rss_mb']:.0f} MB",
        ),
        ("verify", f"{figures['verify_s']:.1f} s"),
        (
            f"prune(keep_last={KEEP_LAST})",
            f"{figures['prune_s']:.2f} s ({figures['pruned_versions']:,} versions)",
        ),
        (
            "gc()",
            f"{figures['gc_s']:.2f} s, file {_mb(figures['size_before'])} -> "
            f"{_mb(figures['size_after_gc'])}",
        ),
        (
            "gc(vacuum=True)",
            f"{figures['vacuum_s']:.2f} s, file -> {_mb(figures['size_after_vacuum'])}",
        ),
        (
            f"gc(vacuum=True), {figures['versions'] // 2:,} versions kept",
            f"{figures['vacuum_half_s']:.1f} s, file {_mb(figures['vacuum_half_size_before'])} -> "
            f"{_mb(figures['vacuum_half_size_after'])}; meanwhile the slowest save took "
            f"{figures['vacuum_half_slowest_save_s']:.1f} s (median "
            f"{figures['vacuum_half_median_save_ms']:.1f} ms), the slowest load "
            f"{figures['vacuum_half_slowest_load_s'] * 1000:.0f} ms "
            f"({figures['vacuum_half_loads']:,} loads)",
        ),
    ]
    if "log_limit_ms" in figures:
        rows += [
            (f"log(limit=20) at {figures['log_versions']:,}", f"{figures['log_limit_ms']:.2f} ms"),
            (
                f"log(key=k, limit=20) at {figures['log_versions']:,}",
                f"{figures['log_key_limit_ms']:.2f} ms",
            ),
        ]
    return "\n".join(
        [
            "| operation | figure |",
            "|---|---|",
            *(f"| {label} | {value} |" for label, value in rows),
        ]
    )


def main_tools(args: Any, workdir: Path) -> bool:
    """The ``--tools`` entry point of ``run.py``; True if every target is met."""
    figures, outcome = run_tools(
        args.tools_versions,
        args.log_versions,
        args.keys[0],
        args.seed,
        workdir,
        rebuild=args.rebuild,
        skip_log=args.skip_log,
    )
    print()
    print(table(figures))
    print()
    for passed, line in outcome:
        print(f"{'PASS' if passed else 'FAIL'}  {line}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return all(passed for passed, _line in outcome)
