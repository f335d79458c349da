"""The prompt-tuning loop as a person sees it, against a transcript recorded in tmux.

``golden/tuning_loop.txt`` was captured from a real terminal (100 columns) by
``golden/record_tuning_loop.sh``: checkout, edit a multi-line prompt, save, annotate,
log, diff, tag, report. This test needs no tmux: it replays every ``$ `` line of the
transcript on a pseudo-terminal of the same width, in a fresh folder holding
``golden/pipeline.toml``, and compares the screens after normalising what differs
between runs (times, the folder, the report's size).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from cli_testkit import run_tty

GOLDEN = Path(__file__).parent / "golden"


_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _as_shown(raw: str) -> str:
    """What a terminal leaves on screen: a line redrawn after ``\\r`` keeps its last drawing,
    and a cursor-up erases the line above (how ``report``'s spinner on stderr disappears)."""
    lines: list[str] = []
    for line in raw.split("\n"):
        for _ in range(line.count("\x1b[1A")):
            if lines:
                lines.pop()
        lines.append(_CSI.sub("", line.rsplit("\r", 1)[-1]))
    return "\n".join(lines)


def _normalise(text: str, folder: str) -> str:
    text = text.replace(folder, "<folder>")
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "<time>", text)
    text = re.sub(r"\d[\d,]* KiB", "<size> KiB", text)
    text = re.sub(r"/tmp/\S+?/(?=msgflux_state\.db)", "<folder>/", text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip() + "\n"


def test_the_tuning_loop_matches_the_recorded_terminal(tmp_path: Path) -> None:
    golden = (GOLDEN / "tuning_loop.txt").read_text()
    commands = [line[2:] for line in golden.splitlines() if line.startswith("$ ") and line[2:]]
    assert len(commands) >= 10 and any("annotate" in command for command in commands)
    shutil.copy(GOLDEN / "pipeline.toml", tmp_path / "pipeline.toml")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    screen = []
    for command in commands:
        screen.append(f"$ {command}\n")
        screen.append(
            _as_shown(
                run_tty(
                    command=["bash", "--norc", "--noprofile", "-c", command],
                    cwd=tmp_path,
                    columns=100,
                    lines=60,
                    env={"PATH": path},
                )
            )
        )
    screen.append("$\n")
    replayed = _normalise("".join(screen), str(tmp_path))
    expected = _normalise(golden, "/tmp/golden/work")
    assert replayed == expected
    # What the loop left behind is real: the report exists, the edit was saved.
    assert (tmp_path / "history.html").stat().st_size > 1000
    assert "Answer briefly and cite sources." in (tmp_path / "pipeline.toml").read_text()
