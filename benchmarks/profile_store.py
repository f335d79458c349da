"""Profile StateStore.save and StateStore.load on the benchmark workload (cProfile).

Usage::

    python benchmarks/profile_store.py --keys 50 --versions 400 --loads 400
    python benchmarks/profile_store.py --keys 500 --what save --sort tottime --top 40

Prints the top functions of the saves and, separately, of the loads. The
initial save (all keys new) runs before the profiler starts.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends import NAME  # noqa: E402
from workload import make_workload, states  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--versions", type=int, default=400)
    parser.add_argument("--loads", type=int, default=400)
    parser.add_argument("--what", choices=("save", "load", "both"), default="both")
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (or tottime)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--dump",
        type=Path,
        default=None,
        help="write the raw profiles to DUMP.save / DUMP.load (snakeviz etc.)",
    )
    args = parser.parse_args()

    from msgflux.store import StateStore

    workload = make_workload(args.keys, args.versions, args.loads)
    with tempfile.TemporaryDirectory(prefix="msgflux-profile-") as folder:
        store = StateStore(Path(folder) / "store.db")
        history = states(workload)
        store.save(NAME, next(history))
        profiles: dict[str, cProfile.Profile] = {}
        if args.what in ("save", "both"):
            profiles["save"] = profile = cProfile.Profile()
            for state in history:
                profile.runcall(store.save, NAME, state)
        else:
            for state in history:
                store.save(NAME, state)
        if args.what in ("load", "both"):
            profiles["load"] = profile = cProfile.Profile()
            for number in workload.load_versions:
                profile.runcall(store.load, NAME, number)
        store.close()
    for what, profile in profiles.items():
        count = args.versions if what == "save" else args.loads
        print(f"\n===== {what}: {count} calls, {args.keys} keys =====")
        if args.dump:
            profile.dump_stats(f"{args.dump}.{what}")
        pstats.Stats(profile).strip_dirs().sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
