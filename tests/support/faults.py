"""Faults on purpose: a worker killed while it holds a run, a sweep process killed mid-sweep."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

from prefect_gmat.engine.pool import busy_worker_pids
from tests.support.paths import REPO
from tests.support.waiting import when_runs_start


@contextmanager
def killing_a_busy_worker(
    out: Path, runs_started: int, sig: int = signal.SIGKILL
) -> Iterator[list[int]]:
    """Within the block (a sweep into ``out``), send ``sig`` to one worker of this process
    while it holds a run, once ``runs_started`` run folders exist. Yields the list of the
    killed pid, complete when the block ends (the watcher is joined then)."""
    killed: list[int] = []

    def kill() -> bool:
        busy = busy_worker_pids()
        if not busy:
            return False
        os.kill(busy[0], sig)
        killed.append(busy[0])
        return True

    watcher = when_runs_start(out, runs_started, kill)
    yield killed  # a block that raised leaves the (daemon) watcher to its timeout
    watcher.join()


def kill_with_workers(
    process: subprocess.Popen[bytes], sig: int = signal.SIGKILL
) -> list[psutil.Process]:
    """Signal a sweep process and wait for it, then up to 30 s for the engines it had
    started (orphaned engines exit when their pipe closes); those engines are returned."""
    workers = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(sig)
    process.wait()
    psutil.wait_procs(workers, timeout=30)
    return workers


class SweepProcesses:
    """Starts :mod:`tests.support.sweep_main` processes; :meth:`kill_all` ends them, and
    every process they started, at a test's teardown."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, kind: str, out: Path, count: int, *extra: str) -> subprocess.Popen[bytes]:
        """``kind`` is ``grid`` (``extra``: the retries) or ``monte_carlo``."""
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.sweep_main", kind, str(out), str(count), *extra],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.started.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.started:
            try:
                family = psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                family = []
            for child in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            process.kill()
            process.wait()
