"""Helpers for the command-line tests: run ``msgflux-store`` in a subprocess.

Every test runs the real program (``python -m msgflux.store``) the way a user
or a script would, with a clean environment: no ``NO_COLOR``, no
``MSGFLUX_STORE``, stdout and stderr piped (so: no colour, no spinner).
Subprocesses are slow (~0.4 s each), so tests group their checks per call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cli_testkit import Result
from cli_testkit import run_cli as _run

_MODULE = [sys.executable, "-m", "msgflux.store"]

Run = Callable[..., Result]


def run_cli(
    *args: str,
    db: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    program: list[str] | None = None,
) -> Result:
    """Run ``msgflux-store [--db DB] ARGS...`` (``python -m msgflux.store`` by default)."""
    return _run(*args, db=db, env=env, cwd=cwd, program=program or _MODULE)


def run_all(calls: Sequence[Sequence[str]], **options: Any) -> list[Result]:
    """Run independent command lines at once (each its own process); results in order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run_cli(*args, **options), calls))


@pytest.fixture
def cli() -> Run:
    """``cli(*args, db=..., env=...)``: run the command line once."""
    return run_cli


@pytest.fixture
def cli_all() -> Callable[..., list[Result]]:
    """``cli_all([args, args, ...], db=...)``: run independent command lines concurrently."""
    return run_all


def build_history(target: str) -> None:
    """A small history: 'pipeline' v1..v3 (tag production -> 2), 'experiment' v1."""
    from msgflux.store import StateStore

    with StateStore(target) as store:
        store.save(
            "pipeline",
            {"analyzer.instructions": "Be helpful and concise.", "analyzer.temperature": 0.2},
            message="baseline",
            author="ana",
            metadata={"score": 0.71},
        )
        store.save(
            "pipeline",
            {
                "analyzer.instructions": "Be very helpful and concise.",
                "analyzer.temperature": 0.2,
                "retriever.k": 4,
            },
            message="shorter prompt",
            author="ana",
            metadata={"score": 0.78},
        )
        store.save(
            "pipeline",
            {"analyzer.instructions": "Be very helpful and brief.", "retriever.k": 4},
            message="drop temperature",
            author="bo",
            metadata={"score": 0.74},
        )
        store.tag("pipeline", 2, "production")
        store.save(
            "experiment",
            {"analyzer.instructions": "Think step by step.", "retriever.k": 8},
            message="idea",
        )


@pytest.fixture
def make_history() -> Callable[[str], None]:
    """``make_history(target)``: write :func:`build_history` into a store."""
    return build_history


@pytest.fixture
def history(store_url: str) -> str:
    """A store (SQLite file or PostgreSQL schema) holding :func:`build_history`."""
    build_history(store_url)
    return store_url


@pytest.fixture
def sqlite_history(tmp_path: Path) -> str:
    """:func:`build_history` in a SQLite file only (for checks that don't depend on the backend)."""
    target = str(tmp_path / "history.db")
    build_history(target)
    return target
