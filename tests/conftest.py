"""Shared fixtures: one real Prefect test server for the session, and the demo script."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from prefect_gmat.engine.pool import busy_worker_pids

REPO = Path(__file__).resolve().parents[1]
DEMO_SCRIPT = REPO / "src" / "prefect_gmat" / "scripts" / "leo_short.script"
DATA = Path(__file__).resolve().parent / "data"
SMA_GRID = {"Sat.SMA": [7000 + 100 * i for i in range(10)]}


def executions(out: Path) -> dict[int, int]:
    """How many times each run of ``out`` actually ran: worker.log gets one line per execution."""
    counts = {}
    for log in out.glob("run-*/worker.log"):
        counts[int(log.parent.name[4:])] = log.read_text().count(" run_id=")
    return counts


def kill_a_busy_worker_when(
    out: Path, runs_done: int, killed: list[int], sig: int = signal.SIGKILL
) -> threading.Thread:
    """Send ``sig`` to one worker of this process while it holds a run, once ``runs_done``
    run folders exist in ``out``; the killed pid is appended to ``killed``."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.is_dir() and sum(1 for _ in out.glob("run-*")) >= runs_done:
                busy = busy_worker_pids()
                if busy:
                    os.kill(busy[0], sig)
                    killed.append(busy[0])
                    return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """A real Prefect server (temporary database) shared by every test in the session."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # its SQLite noise
    # Plot artifacts cost up to a second per sweep; tests/test_analysis.py turns them on.
    os.environ.setdefault("PREFECT_GMAT_PLOT_METRIC", "off")
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def demo_script() -> Path:
    return DEMO_SCRIPT
