"""Helpers for the tuning-loop tests: the installed console script, piped or on a terminal.

A module of its own (not conftest) so that ``from cli_testkit import ...`` works
whichever test folders a run collects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_DROPPED = ("NO_COLOR", "FORCE_COLOR", "MSGFLUX_STORE", "COLUMNS", "TERM")


@dataclass
class Result:
    """What a run printed and returned."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(
    *args: str,
    db: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    program: list[str] | None = None,
    stdin_text: str | None = None,
) -> Result:
    """Run the console script with ``args`` (stdout and stderr piped) and capture it."""
    environment = {key: value for key, value in os.environ.items() if key not in _DROPPED}
    environment.update(env or {})
    command = [*(program or CONSOLE_SCRIPT), *(["--db", db] if db is not None else []), *args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        encoding="utf-8",
        env=environment,
        cwd=cwd,
        timeout=120,
        input=stdin_text,
    )
    return Result(done.returncode, done.stdout, done.stderr)


#: The installed console script, as a user runs it.
CONSOLE_SCRIPT = [str(Path(sys.executable).parent / "msgflux-store")]


def run_tty(
    *args: str,
    db: str | None = None,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    columns: int = 100,
    lines: int = 40,
    stdin_text: str | None = None,
    command: list[str] | None = None,
) -> str:
    """Run the console script on a pseudo-terminal of a fixed size; return what it showed.

    stdout and stderr are the terminal (so tables, the pager and prompts behave as for a
    person); ``NO_COLOR`` keeps the text free of escape codes. Line ends come back as ``\\n``.
    """
    import fcntl
    import pty
    import struct
    import termios

    environment = {key: value for key, value in os.environ.items() if key not in _DROPPED}
    environment.update(
        {"NO_COLOR": "1", "TERM": "xterm", "COLUMNS": str(columns), "LINES": str(lines)}
    )
    environment.update(env or {})
    if command is None:  # else: run ``command`` (e.g. a shell line) on the terminal instead
        command = [*CONSOLE_SCRIPT, *(["--db", db] if db is not None else []), *args]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    process = subprocess.Popen(
        command,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=environment,
        close_fds=True,
    )
    os.close(follower)
    if stdin_text is not None:
        os.write(leader, stdin_text.encode())
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the program exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
