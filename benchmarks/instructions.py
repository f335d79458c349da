"""Loads counted in CPU instructions (valgrind's callgrind), not seconds.

    python benchmarks/instructions.py                  # 50 keys x 200 versions
    python benchmarks/instructions.py --versions 2000

On a shared machine the wall-clock figures of ``history.py`` move by 10-20%
between runs, which is as much as the margin to a target. Instructions do not
move: each figure is the instructions of ``--calls`` loads minus those of a run
that only opens the database, divided by ``--calls``, in a child process under
``valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0``; the same build gives
the same count on a busy machine. What they leave out is time the CPU waits
(memory, the OS page cache), so they complement ``history.py``, not replace it.

The store and both raw-``sqlite3`` floors (``backends.py``) load the same
states: the latest version and random old ones.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from backends import DeltaFloor, SqliteFloor, StoreBackend  # noqa: E402
from workload import ChangeStream  # noqa: E402

_KINDS = ("store", "delta floor", "per-key floor")


def _open(kind: str, folder: Path) -> object:
    if kind == "store":
        return StoreBackend(folder)
    if kind == "delta floor":
        return DeltaFloor(folder)
    return SqliteFloor(folder, hash_cache=True)


def _child(folder: Path, kind: str, which: str, calls: int, head: int) -> None:
    backend = _open(kind, folder)  # each opens an existing file
    rng = random.Random(1)
    backend.load(head)  # type: ignore[attr-defined]  # warm: statements prepared, pages read
    for _ in range(calls):
        number = head if which == "latest" else rng.randint(1, head)
        backend.load(number)  # type: ignore[attr-defined]


def _instructions(folder: Path, kind: str, which: str, calls: int, head: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        str(folder),
        kind,
        which,
        str(calls),
        str(head),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, kind, which, calls, head = args.child
        _child(Path(folder), kind, which, int(calls), int(head))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="msgflux-instructions-") as work:
        folder = Path(work)
        backends = [_open(kind, folder) for kind in _KINDS]
        stream = ChangeStream(50, seed=1)
        for _ in range(args.versions):
            state = stream.next_state()
            for backend in backends:
                backend.save(state)  # type: ignore[attr-defined]
        for backend in backends:
            backend.close()  # type: ignore[attr-defined]
        print(f"## Load, 50 keys x {args.versions:,} versions (instructions per load)")
        for which in ("latest", "old"):
            counts = {}
            for kind in _KINDS:
                base = _instructions(folder, kind, which, 0, args.versions)
                loaded = _instructions(folder, kind, which, args.calls, args.versions)
                counts[kind] = (loaded - base) / args.calls
            best = min(counts["delta floor"], counts["per-key floor"])
            print(
                f"{which}: "
                + ", ".join(f"{kind} {count / 1e6:.3f} M" for kind, count in counts.items())
                + f"; store / the faster floor {counts['store'] / best:.2f}x"
            )


if __name__ == "__main__":
    main()
