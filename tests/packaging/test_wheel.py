"""A non-editable install works on its own: `pip install .` must not need the source tree.

Builds the wheel with pip (as `pip install .` would), unpacks it in a temporary
folder, and imports msgflux, msgflux.nn and msgflux.store from there in a fresh
interpreter whose working directory is not the repository; opening a store then
runs the alembic migrations shipped inside the wheel.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("msgflux_state-*.whl")
    return built


def test_wheel_holds_the_store_and_its_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "msgflux/__init__.py",
        "msgflux/py.typed",
        "msgflux/nn/modules/module.py",
        "msgflux/nn/modules/container.py",
        "msgflux/nn/parameter.py",
        "msgflux/store/__init__.py",
        "msgflux/store/py.typed",
        "msgflux/store/schema.py",
        "msgflux/store/migrations/env.py",
        "msgflux/store/migrations/script.py.mako",
        "msgflux/store/migrations/versions/0001_initial.py",
        "msgflux/store/migrations/versions/0002_views.py",
        "msgflux/store/migrations/versions/0004_serving.py",
    ):
        assert expected in names, f"{expected} missing from {wheel.name}"
    assert not any(name.startswith(("store/", "migrations/", "tests/")) for name in names)
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert (
        "msgflux-store = msgflux.store.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_installed_wheel_imports_and_migrates_without_the_source_tree(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = f"""
import sys
sys.path.insert(0, {str(site)!r})
import msgflux, msgflux.nn, msgflux.store
from msgflux.store import StateStore
import msgflux.store.migrations as migrations
for module in (msgflux, msgflux.nn, msgflux.store, migrations):
    assert module.__file__.startswith({str(site)!r}), module.__file__
store = StateStore("state.db")
version = store.save("p", {{"a": "x"}})
assert store.load("p", version.number) == {{"a": "x"}}
print("ok", version.number)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 1"


def test_installed_package_type_checks_strictly(wheel: Path, tmp_path: Path) -> None:
    # py.typed promises types to users; check them as users see them (the wheel's layout).
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--ignore-missing-imports",
            "--no-incremental",
            "-p",
            "msgflux",
        ],
        cwd=site,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_source_passes_ruff() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "msgflux",
            "store",
            "migrations",
            "tests",
            "benchmarks",
            "examples",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_source_is_ruff_formatted() -> None:
    # One code style: `ruff format .` leaves the tree as it is (line length in pyproject).
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
