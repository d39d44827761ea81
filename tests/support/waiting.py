"""Waiting for something: polled in the test, or watched for in a thread while a sweep runs."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.sweepdir import recorded, run_folders


def poll[T](
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` every ``interval`` s until it returns something; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            detail = f"\n{diagnostics()}" if diagnostics is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def when_runs_start(
    out: Path,
    runs: int,
    act: Callable[[], bool],
    *,
    timeout: float = 120,
    interval: float = 0.005,
) -> threading.Thread:
    """A daemon thread that calls ``act`` once ``runs`` run folders exist in ``out``, again
    every ``interval`` s until it returns True (it acted), for up to ``timeout`` s.

    A run's folder appears as the run starts, so this acts while runs are in flight.
    """

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if run_folders(out) >= runs and act():
                return
            time.sleep(interval)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def wait_for_records(
    out: Path, count: int, process: subprocess.Popen[bytes], timeout: float = 180
) -> None:
    """Wait until ``out``'s manifest holds ``count`` records, while ``process`` sweeps into it."""
    deadline = time.monotonic() + timeout
    while recorded(out) < count:
        if process.poll() is not None:
            errors = process.stderr.read().decode()[-3000:] if process.stderr else ""
            raise AssertionError(f"the sweep process exited with {process.returncode}\n{errors}")
        assert time.monotonic() < deadline, f"the sweep made no progress: {recorded(out)} records"
        time.sleep(0.02)
