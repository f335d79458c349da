"""After the README's `pip install -e ".[dev]"`, type checkers see `msgflux.store`, and the
project carries its licence.

The suite runs in that install (`.ci/run` makes it). A user's script, outside the
package, is checked by `mypy --strict` and pyright both from its own folder (the
editable install's static path) and from the checkout (the `msgflux/store` symlink).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

USER_SCRIPT = """\
from msgflux.store import ChangeSummary, StateStore, Version
from msgflux.store.migrations import __name__ as migrations

store = StateStore("state.db")
version: Version = store.save("p", {"a": "x"})
changes: ChangeSummary | None = version.changes
number: int = version.number
row = store.query("SELECT 1 AS one")[0]
print(number, changes, row["one"], migrations)
"""

# A wrong type must be reported: proves the checker really resolved the package.
WRONG = (
    'from msgflux.store import StateStore\nnumber: str = StateStore("s.db").save("p", {}).number\n'
)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "user_script.py"
    path.write_text(USER_SCRIPT)
    (tmp_path / "wrong.py").write_text(WRONG)
    return path


@pytest.mark.parametrize("where", ["outside", "checkout"])
def test_mypy_strict_resolves_msgflux_store(script: Path, where: str) -> None:
    cwd = script.parent if where == "outside" else REPO
    for name, clean in (("user_script.py", True), ("wrong.py", False)):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--no-incremental",
                "--cache-dir",
                str(script.parent / ".mypy_cache"),
                str(script.parent / name),
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        output = result.stdout + result.stderr
        assert "Cannot find implementation or library stub" not in output, output
        if clean:
            assert result.returncode == 0, output
        else:
            assert result.returncode == 1 and "Incompatible types in assignment" in output, output


def test_pyright_resolves_msgflux_store_in_the_checkout(script: Path) -> None:
    # One run (pyright starts slowly); mypy above covers both places.
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    assert pyright, "pyright is in the dev extra: pip install -e '.[dev]'"
    cwd = REPO
    result = subprocess.run(
        [pyright, "--pythonpath", sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout


def test_checkout_has_the_installed_shape() -> None:
    # The symlinks that let tools inside the checkout see the installed layout.
    assert (REPO / "msgflux" / "store").resolve() == REPO / "store"
    assert (REPO / "store" / "migrations").resolve() == REPO / "migrations"


def test_mit_licence_and_license_field() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
