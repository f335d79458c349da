"""The serving commands through the installed console script: tag --protect/--where,
untag --force, unprotect, split, watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from msgflux.store import StateStore

SCRIPT = Path(sys.executable).parent / "msgflux-store"


@pytest.fixture
def script(cli: Callable[..., Any]) -> Callable[..., Any]:
    """``script(*args, db=...)``: run the installed console script."""
    assert SCRIPT.exists(), f"no console script next to {sys.executable}"
    return lambda *args, db: cli(*args, db=db, program=[str(SCRIPT)])


def test_tag_protect_where_untag_force_unprotect_split(
    history: str, script: Callable[..., Any]
) -> None:
    # history: pipeline v1..v3 with scores 0.71, 0.78, 0.74; production -> 2
    result = script(
        "tag",
        "pipeline",
        "2",
        "production",
        "--where",
        "score>=0.75",
        "--author",
        "ops",
        db=history,
    )
    assert (result.code, result.out) == (
        0,
        "tagged pipeline@2 as production (protected, where score>=0.75)\n",
    )
    refused = script("tag", "pipeline", "3", "production", "--expect", "2", db=history)
    assert refused.code == 3 and "condition 'score>=0.75': version 3" in refused.err
    unexpected = script("tag", "pipeline", "2", "production", db=history)
    assert unexpected.code == 3 and "needs expected= (--expect)" in unexpected.err
    assert script("untag", "pipeline", "production", db=history).code == 3
    policies = script(
        "sql", "SELECT name, tag, condition, author FROM state_tag_policies", "--json", db=history
    ).json()
    assert policies == [
        {"name": "pipeline", "tag": "production", "condition": "score>=0.75", "author": "ops"}
    ]
    split = script(
        "split", "pipeline", "production", "1=0.75", "2=0.25", "--expect", "2", db=history
    )
    assert split.code == 3 and "version 1 does not satisfy" in split.err
    assert script("unprotect", "pipeline", "production", "--author", "ops", db=history).out == (
        "tag production of pipeline is no longer protected\n"
    )
    split = script("split", "pipeline", "production", "1=0.75", "2=0.25", "--json", db=history)
    assert split.json() == {
        "name": "pipeline",
        "tag": "production",
        "weights": {"1": 0.75, "2": 0.25},
    }
    script("tag", "pipeline", "2", "production", "--protect", db=history)
    forced = script("untag", "pipeline", "production", "--force", db=history)
    assert forced.code == 0 and "pointed at version 2" in forced.out
    audit = script(
        "sql", "SELECT action FROM state_tag_audit ORDER BY at", "--json", db=history
    ).json()
    assert [row["action"] for row in audit] == [
        "protect",
        "refused",
        "refused",
        "refused",
        "refused",
        "unprotect",
        "protect",
        "forced-untag",
    ]
    bad = script("split", "pipeline", "production", "1=x", db=history)
    assert bad.code == 2 and "VERSION=WEIGHT" in bad.err


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("as_json", [True, False])
def test_watch_prints_each_move_until_interrupted(history: str, as_json: bool) -> None:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("NO_COLOR", "FORCE_COLOR", "MSGFLUX_STORE", "COLUMNS")
    }
    command = [
        str(SCRIPT),
        "--db",
        history,
        "watch",
        "pipeline",
        "production",
        "--interval",
        "0.01",
        *(["--json"] if as_json else []),
    ]
    watcher = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        # Ctrl-C as at a terminal, whatever this process inherited: a shell starts
        # background jobs with SIGINT ignored, and the child would inherit that.
        preexec_fn=_default_sigint,
    )
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        assert watcher.stderr.readline().startswith("watching pipeline production")
        with StateStore(history) as store:
            store.tag("pipeline", 3, "production", author="ana")
            store.tag("pipeline", 3, "staging")  # another tag: not printed
            store.split("pipeline", "production", {1: 0.5, 3: 0.5})
            store.untag("pipeline", "production")
        lines = [watcher.stdout.readline() for _ in range(3)]
        watcher.send_signal(signal.SIGINT)
        rest, _err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0 and rest == ""
    if as_json:
        events = [json.loads(line) for line in lines]
        assert [
            (event["version"], event["previous_version"], event["weights"], event["author"])
            for event in events
        ] == [(3, 2, None, "ana"), (1, 3, {"1": 0.5, "3": 0.5}, None), (None, 1, None, None)]
        assert all(
            event["name"] == "pipeline"
            and event["moved_at"].endswith("Z")
            or "+" in event["moved_at"]
            for event in events
        )
    else:
        fields = [line.rstrip("\n").split("\t")[1:] for line in lines]
        assert fields == [
            ["production", "2", "3", "ana"],
            ["production", "3", "1=0.5 3=0.5"],
            ["production", "1", "removed"],
        ]
