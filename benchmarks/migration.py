"""How long migration 0006 (entries -> key spans) takes on a large store, and back.

    python benchmarks/migration.py                     # 50 keys x 100,000 versions
    python benchmarks/migration.py --versions 20000

Builds the history with this release (one-key changes of the benchmark
workload), downgrades it to 0005 (the per-key ``entries`` model, as a store
written by the previous release holds it), then times the upgrade to 0006 in
place, and the downgrade once more. Prints the file sizes too (checkpointed,
after VACUUM, so the two models compare fairly).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sqlalchemy as sa  # noqa: E402
from alembic import command  # noqa: E402
from workload import ChangeStream  # noqa: E402

from msgflux.store import StateStore  # noqa: E402
from msgflux.store.migrate import alembic_config  # noqa: E402


def _alembic(path: Path, action: str, revision: str) -> float:
    engine = sa.create_engine(f"sqlite:///{path}")
    start = time.perf_counter()
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)
    took = time.perf_counter() - start
    engine.dispose()
    return took


def _size(path: Path) -> int:
    connection = sqlite3.connect(path)
    connection.execute("VACUUM")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path.stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="msgflux-migration-") as work:
        path = Path(work) / "store.db"
        stream = ChangeStream(args.keys, seed=9)
        start = time.perf_counter()
        with StateStore(path) as store:
            for _ in range(args.versions):
                store.save("pipeline", stream.next_state())
            latest = store.load("pipeline")
        print(
            f"filled {args.versions:,} versions x {args.keys} keys in "
            f"{time.perf_counter() - start:.0f} s; spans file {_size(path) / 1e6:.1f} MB"
        )
        down = _alembic(path, "downgrade", "0005")
        print(
            f"downgrade 0006 -> 0005 (spans -> entries): {down:.1f} s; "
            f"entries file {_size(path) / 1e6:.1f} MB"
        )
        up = _alembic(path, "upgrade", "0006")
        print(
            f"upgrade 0005 -> 0006 (entries -> spans): {up:.1f} s; "
            f"spans file {_size(path) / 1e6:.1f} MB"
        )
        with StateStore(path) as store:
            assert store.load("pipeline") == latest
            report = store.verify()
            assert report.ok, str(report)
        print("after the round trip: the latest version loads identically and verify() is ok")


if __name__ == "__main__":
    main()
