"""A first-time user's shell, and the command line as they type it in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: What Prefect or a thread prints when an import races the interpreter's exit, or another
#: import: none of it may reach a user's terminal.
STRAY = (
    "Traceback",
    "Failed to initialize plugins",
    "Exception in thread",
    "can't register atexit",
    "partially initialized module",
    "Encountered exception",
)


def users_env(home: Path) -> dict[str, str]:
    """A first-time user's shell: no PREFECT_API_URL, a fresh PREFECT_HOME of their own."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "PREFECT_HOME": str(home)}


def run_cli(
    *args: str, cwd: Path, env: dict[str, str], tty: bool = False
) -> subprocess.CompletedProcess[str]:
    """``prefect-gmat ARGS``: the console script as installed, as a user types it; in a
    real pseudo-terminal (util-linux ``script``) with ``tty``, which puts the terminal's
    output on stdout."""
    command = [str(Path(sys.executable).with_name("prefect-gmat")), *args]
    if tty:  # a real pseudo-terminal, as a user's shell gives it
        command = ["script", "-qefc", " ".join(command), "/dev/null"]
    return subprocess.run(
        command,
        cwd=cwd,
        env={**env, "COLUMNS": "160", "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
