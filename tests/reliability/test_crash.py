"""SIGKILL a process in the middle of saving, 50 times, and check nothing is ever half-written.

The child (``_workers.py crash``) saves ``crash_state(seed, counter)`` for
increasing counters and prints ``counter number snapshot`` after each save
returns. The parent kills it at random moments (mostly while saving, every
10th time while it is still starting up and opening/creating the schema) and
restarts it from the last printed counter. After every kill: the store opens,
``verify()`` is clean (on SQLite that includes ``PRAGMA integrity_check``),
no snapshot, version or value row is half-written, every printed version
loads exactly, and every version in the store holds the state of its counter.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from msgflux.store import StateStore

from ._support import crash_state, expected_snapshot, raw_engine, structure_problems
from .conftest import record

KILLS = 50
WORKER = Path(__file__).with_name("_workers.py")


class _Child:
    """The crash child with its stdout collected by a thread (lines survive the kill)."""

    def __init__(self, url: str, seed: int, start: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), "crash", url, str(seed), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "ready":
                self.ready.set()
            else:
                self.lines.append(line)

    def kill(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(30)
        assert self.process.stderr is not None
        return self.process.returncode, self.process.stderr.read()


@pytest.mark.slow
def test_sigkill_during_saves_never_leaves_a_half_written_version(store_url, request):
    rng = random.Random(20240611)
    seed = rng.randrange(1_000_000)
    printed: dict[int, tuple[int, str]] = {}  # counter -> (version number, snapshot)
    expected: dict[int, str] = {}  # counter -> snapshot hash of its state (cached)
    loaded: set[int] = set()
    start, during_startup = 0, 0
    engine = raw_engine(store_url)
    started = time.monotonic()
    for kill in range(KILLS):
        child = _Child(store_url, seed, start)
        if kill % 10 == 0:  # kill while importing, opening or creating the schema
            time.sleep(rng.uniform(0.0, 0.8))
            during_startup += not child.ready.is_set()
        else:
            assert child.ready.wait(60), "the child never opened the store"
            time.sleep(rng.uniform(0.0, 0.25))
        returncode, stderr = child.kill()
        assert returncode == -signal.SIGKILL, f"the child died on its own:\n{stderr}"
        for line in child.lines:
            if not line.endswith("\n"):
                continue  # cut off by the kill
            counter, number, snapshot = line.split()
            printed[int(counter)] = (int(number), snapshot)
        if printed:
            start = max(printed) + 1

        # -- after every kill ---------------------------------------------------------
        with StateStore(store_url) as store:
            # verify() rehashes every version's content, so its cost grows with the
            # history (hundreds of saves per kill): run it after every 10th kill and
            # the last. Damage persists, so a half-written version is still caught,
            # within 10 kills; the structure checks and loads below run every time.
            if kill % 10 == 9 or kill == KILLS - 1:
                report = store.verify()
                assert report.ok, f"after kill {kill + 1}: {report}"
            assert structure_problems(engine) == [], f"after kill {kill + 1}"
            try:
                history = {version.number: version for version in store.log("crash")}
            except LookupError:
                history = {}
            for number, version in history.items():
                counter = int(version.message.split()[1])
                if counter not in expected:
                    expected[counter] = expected_snapshot(crash_state(seed, counter))
                assert version.snapshot == expected[counter], f"version {number} is not its state"
            for counter, (number, snapshot) in printed.items():
                assert history[number].snapshot == snapshot, f"printed version {number} lost"
                if counter not in loaded:  # load each printed version exactly once
                    assert store.load("crash", number) == crash_state(seed, counter)
                    loaded.add(counter)
    engine.dispose()
    versions = len(history)
    record(
        request,
        f"{KILLS} SIGKILLs survived ({during_startup} during start-up/open) in "
        f"{time.monotonic() - started:.0f} s: {len(printed)} printed saves, "
        f"{versions} versions, structure checked after each kill, verify() after every "
        "10th, every printed version loaded exactly",
    )
    assert versions >= 20, "too few saves completed for the test to mean much"
