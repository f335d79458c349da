"""Reliability suite: shared figures, process helpers, and the end-of-run summary.

Every test records what it did in :data:`FIGURES` (writers, versions, kills
survived, bad inputs tried...); ``pytest_terminal_summary`` prints them, so the
numbers show in any run, with or without ``-s``.
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

#: Figures recorded by the tests: "test id" -> "what it did".
FIGURES: dict[str, str] = {}
#: Bad-input cases tried, per backend.
BAD_INPUT_CASES: Counter[str] = Counter()
#: Bad-input cases tried through the msgflux-store command line, in-process or subprocess.
BAD_INPUT_CLI_CASES: Counter[str] = Counter()

SPAWN = multiprocessing.get_context("spawn")


def record(request: pytest.FixtureRequest, text: str) -> None:
    """Record one test's figures for the summary."""
    FIGURES[request.node.nodeid.split("::", 1)[-1]] = text


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES and not BAD_INPUT_CASES and not BAD_INPUT_CLI_CASES:
        return
    terminalreporter.section("reliability figures")
    for test, text in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{test}: {text}")
    if BAD_INPUT_CASES:
        per_backend = ", ".join(
            f"{backend} {count}" for backend, count in sorted(BAD_INPUT_CASES.items())
        )
        terminalreporter.write_line(
            f"bad-input cases tried: {sum(BAD_INPUT_CASES.values())} ({per_backend})"
        )
    if BAD_INPUT_CLI_CASES:
        per_mode = ", ".join(
            f"{mode} {count}" for mode, count in sorted(BAD_INPUT_CLI_CASES.items())
        )
        terminalreporter.write_line(
            f"bad-input CLI cases tried: {sum(BAD_INPUT_CLI_CASES.values())} ({per_mode})"
        )


@pytest.fixture
def reports(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """A factory of report-file paths inside the test's tmp folder."""
    folder = tmp_path / "reports"
    folder.mkdir()
    yield lambda label: folder / f"{label}.json"
