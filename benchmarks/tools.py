"""Peak memory of bundle export and import at optimiser scale (issue 14, item 1).

Each side runs in its own fresh process and reports ``VmHWM`` (peak resident
memory), so a figure is the whole process: interpreter, SQLAlchemy, driver and
the bundle code. The history is 50 keys x 20,000 versions by default, one key
rewritten per version with a new sentence; it is written as a bundle file
directly (hashes computed here with ``hashlib``), imported once to fill a
store, then exported and imported again, each measured.

    python benchmarks/tools.py                      # SQLite, 20,000 versions
    python benchmarks/tools.py --versions 2000 --postgres URL

From Python: ``bundle_memory(versions=20_000, keys=50)`` returns the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_CHILD = r"""
import resource, sys, time
from msgflux.store import StateStore
mode, target, path = sys.argv[1:4]
store = StateStore(target, lock_timeout=600)
started = time.perf_counter()
if mode == "import":
    store.import_bundle(path)
elif mode == "export":
    store.export_bundle(path)
seconds = time.perf_counter() - started
store.close()
# ru_maxrss survives exec (a child starts at its parent's peak); VmHWM is this process's own.
peak = next((int(line.split()[1]) for line in open("/proc/self/status")
             if line.startswith("VmHWM:")), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(peak, seconds)
"""


def _canon(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_history_bundle(
    path: Path, *, versions: int, keys: int, name: str = "optimiser", sentence_words: int = 30
) -> int:
    """Write a version-2 bundle of ``versions`` versions of ``keys`` keys; return its size in bytes.

    Version 1 sets every key; each later version rewrites one key (round robin)
    with a new sentence, as a prompt optimiser does.
    """
    words = (
        "the answer must cite its sources and stay under three sentences while "
        "keeping a friendly tone for every user question about billing"
    ).split()

    def sentence(seed: int) -> str:
        return (
            " ".join(words[(seed * 7 + i * 3) % len(words)] for i in range(sentence_words))
            + f" (variant {seed})"
        )

    state = {f"module{k % 10}.prompt{k}": sentence(k) for k in range(keys)}
    value_hashes = {key: _sha(_canon(value)) for key, value in state.items()}
    key_list = list(state)
    count = 0
    with path.open("w", encoding="utf-8") as handle:

        def emit(record: dict[str, Any]) -> None:
            nonlocal count
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1

        handle.write(
            json.dumps(
                {"format": "msgflux-store-bundle", "format_version": 2, "names": {name: versions}}
            )
            + "\n"
        )
        for number in range(1, versions + 1):
            changed = key_list if number == 1 else [key_list[number % keys]]
            for key in changed:
                if number > 1:
                    state[key] = sentence(number * keys + key_list.index(key))
                    value_hashes[key] = _sha(_canon(state[key]))
                emit(
                    {"kind": "value", "hash": value_hashes[key], "type": "str", "text": state[key]}
                )
            snapshot = _sha(_canon(value_hashes))
            emit(
                {
                    "kind": "snapshot",
                    "hash": snapshot,
                    "entries": [[key, value_hashes[key]] for key in key_list],
                }
            )
            version: dict[str, Any] = {
                "kind": "version",
                "name": name,
                "number": number,
                "snapshot": snapshot,
                "created_at": "2026-11-27T10:00:00+00:00",
                "message": f"candidate {number}",
                "metadata": json.dumps({"score": (number * 37 % 1000) / 1000}),
            }
            if number > 1:
                version["parent"] = number - 1
            emit(version)
        emit({"kind": "tags", "name": name, "tags": {"best": versions}})
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": "end", "records": count}) + "\n")
    return path.stat().st_size


def _measure(mode: str, target: str, path: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one export or import in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, target, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    peak_kb, seconds = done.stdout.split()
    return int(peak_kb) / 1024, float(seconds)


def bundle_memory(
    *,
    versions: int = 20_000,
    keys: int = 50,
    postgres_url: str | None = None,
    folder: Path | None = None,
) -> dict[str, Any]:
    """Peak RSS and time of exporting and importing ``versions`` x ``keys`` (SQLite, or PostgreSQL).

    ``postgres_url`` must name an empty database or schema for the source store;
    the import target is always a fresh SQLite file. Returns a dict of figures.
    """
    with tempfile.TemporaryDirectory(dir=folder) as temporary:
        root = Path(temporary)
        bundle = root / "history.json"
        size = write_history_bundle(bundle, versions=versions, keys=keys)
        source = postgres_url or str(root / "source.db")
        fill_peak, fill_seconds = _measure("import", source, bundle)
        exported = root / "exported.json"
        export_peak, export_seconds = _measure("export", source, exported)
        import_peak, import_seconds = _measure("import", str(root / "target.db"), exported)
        baseline_peak, _ = _measure("baseline", str(root / "empty.db"), bundle)
        return {
            "backend": "postgresql" if postgres_url else "sqlite",
            "versions": versions,
            "keys": keys,
            "bundle_mb": round(size / 2**20, 1),
            "exported_mb": round(exported.stat().st_size / 2**20, 1),
            "baseline_peak_mb": round(baseline_peak, 1),
            "fill_import_peak_mb": round(fill_peak, 1),
            "fill_import_s": round(fill_seconds, 1),
            "export_peak_mb": round(export_peak, 1),
            "export_s": round(export_seconds, 1),
            "import_peak_mb": round(import_peak, 1),
            "import_s": round(import_seconds, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MSGFLUX_BENCH_POSTGRES_URL"),
        help="PostgreSQL URL of an empty database/schema for the source store",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    figures = bundle_memory(versions=args.versions, keys=args.keys, postgres_url=args.postgres)
    figures["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
