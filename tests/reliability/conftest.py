"""Reliability suite: shared figures and process helpers.

Every test records what it did with :func:`record` (writers, versions, kills
survived...) and the bad-input tests count their cases; both travel on the
test's report (``user_properties``), so ``tests/conftest.py`` prints them at
the end of any run, with or without ``-s``, in one process or under xdist.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: Bad-input cases tried, per backend.
BAD_INPUT_CASES: Counter[str] = Counter()
#: Bad-input cases tried through the msgflux-store command line, in-process or subprocess.
BAD_INPUT_CLI_CASES: Counter[str] = Counter()

SPAWN = multiprocessing.get_context("spawn")


def record(request: pytest.FixtureRequest, text: str) -> None:
    """Record one test's figures for the end-of-run summary."""
    request.node.user_properties.append(("figure", text))


@pytest.fixture(autouse=True)
def _count_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    """Put the bad-input cases this test tried on its report, for the summary."""
    before = Counter(BAD_INPUT_CASES), Counter(BAD_INPUT_CLI_CASES)
    yield
    for label, counter, old in (
        ("bad-input cases tried", BAD_INPUT_CASES, before[0]),
        ("bad-input CLI cases tried", BAD_INPUT_CLI_CASES, before[1]),
    ):
        tried = counter - old
        if tried:
            request.node.user_properties.append((f"count:{label}", dict(tried)))


def run_processes(
    targets: list[tuple[Callable[..., None], tuple[Any, ...]]], timeout: float
) -> None:
    """Start every ``(function, args)`` in its own spawned process and wait for all."""
    processes = [SPAWN.Process(target=function, args=args) for function, args in targets]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
    stuck = [process for process in processes if process.is_alive()]
    for process in stuck:
        process.kill()
        process.join()
    assert not stuck, f"{len(stuck)} worker process(es) did not finish in {timeout} s"
    failed = [process.exitcode for process in processes if process.exitcode != 0]
    assert not failed, f"worker processes exited with {failed}"


def read_report(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def reports(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """A factory of report-file paths inside the test's tmp folder."""
    folder = tmp_path / "reports"
    folder.mkdir()
    yield lambda label: folder / f"{label}.json"
