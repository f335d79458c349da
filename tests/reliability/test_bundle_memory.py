"""Bundles stream: export, import and copy in memory bounded by the largest version (issue 14).

The history holds 64 MB of distinct values (128 versions of a 512 KB prompt);
its largest version is 0.5 MB. An implementation that holds the history in
memory (a bundle document, its JSON text, a dict of every value) needs well
over 100 MB more than an empty run; a streaming one needs a few MB. Each
operation runs in a fresh process and reports its peak RSS (``ru_maxrss``),
compared with a process that does the same with a one-version bundle
(``VmHWM``: ``ru_maxrss`` survives ``exec``, so a child would report its parent's peak).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import record

VERSIONS = 128
VALUE_BYTES = 512 * 1024
#: Peak RSS a streaming implementation may use above the one-version baseline.
BOUND_MB = 40

_CHILD = r"""
import resource, sys
from msgflux.store import StateStore
mode, target, path, other = sys.argv[1:5]
store = StateStore(target, lock_timeout=120)
if mode == "import":
    result = store.import_bundle(path)
elif mode == "export":
    result = store.export_bundle(path)
else:
    with StateStore(other, lock_timeout=120) as destination:
        result = store.copy_to(destination)
store.close()
# ru_maxrss survives exec (a child starts at its parent's peak); VmHWM is this process's own.
peak = next((int(line.split()[1]) for line in open("/proc/self/status")
             if line.startswith("VmHWM:")), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(peak)
"""


def _sha(value: object) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def _write_bundle(path: Path, versions: int) -> None:
    """``versions`` versions of {"prompt": 512 KB of text, "k": n}: every prompt distinct."""
    filler = "Answer the question in plain words and cite the source. "
    lines = [{"format": "msgflux-store-bundle", "format_version": 2, "names": {"big": versions}}]
    for number in range(1, versions + 1):
        prompt = (f"{number:08d} " + filler * (VALUE_BYTES // len(filler) + 1))[:VALUE_BYTES]
        state = {"prompt": prompt, "k": number}
        hashes = {key: _sha(value) for key, value in state.items()}
        lines.append({"kind": "value", "hash": hashes["prompt"], "type": "str", "text": prompt})
        lines.append({"kind": "value", "hash": hashes["k"], "type": "int", "text": str(number)})
        snapshot = _sha(hashes)
        lines.append(
            {
                "kind": "snapshot",
                "hash": snapshot,
                "entries": [[key, digest] for key, digest in hashes.items()],
            }
        )
        version = {
            "kind": "version",
            "name": "big",
            "number": number,
            "snapshot": snapshot,
            "created_at": "2026-11-27T10:00:00+00:00",
            "message": f"v{number}",
            "metadata": "{}",
        }
        if number > 1:
            version["parent"] = number - 1
        lines.append(version)
    lines.append({"kind": "tags", "name": "big", "tags": {"best": versions}})
    lines.append({"kind": "end", "records": len(lines) - 1})
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")


def _peak_mb(mode: str, target: str, path: Path, other: str = "") -> float:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, target, str(path), other],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_export_import_and_copy_stay_within_a_bound(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    small, big = tmp_path / "small.json", tmp_path / "big.json"
    _write_bundle(small, 1)
    _write_bundle(big, VERSIONS)
    history_mb = big.stat().st_size / 2**20
    assert history_mb > 60
    baseline = max(
        _peak_mb("import", str(tmp_path / "baseline.db"), small),
        _peak_mb("export", str(tmp_path / "baseline.db"), small),
    )
    # import into the backend under test, export from it, copy from it to a fresh SQLite file
    imported = _peak_mb("import", store_url, big)
    exported = _peak_mb("export", store_url, tmp_path / "out.json")
    copied = _peak_mb("copy", store_url, tmp_path / "unused", str(tmp_path / "copy.db"))
    # a round trip is exact: the exported file imports into a fresh store with the same hashes
    reimported = _peak_mb("import", str(tmp_path / "again.db"), tmp_path / "out.json")
    from msgflux.store import StateStore

    with (
        StateStore(store_url) as source,
        StateStore(tmp_path / "again.db") as again,
        StateStore(tmp_path / "copy.db") as copy,
    ):
        for other in (again, copy):
            assert [v.snapshot for v in other.log("big")] == [v.snapshot for v in source.log("big")]
            assert other.tags("big") == {"best": VERSIONS}
            assert other.load("big", 77)["prompt"].startswith("00000077 ")
    figures = {"import": imported, "export": exported, "copy": copied, "re-import": reimported}
    record(
        request,
        f"{history_mb:.0f} MB history, largest version 0.5 MB: peak RSS "
        + ", ".join(f"{key} {value:.0f} MB" for key, value in figures.items())
        + f" (one-version baseline {baseline:.0f} MB)",
    )
    for operation, peak in figures.items():
        assert peak - baseline < BOUND_MB, (operation, peak, baseline)
