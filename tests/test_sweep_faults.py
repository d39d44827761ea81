"""Faults during a real sweep: a worker killed mid-run, a run that never ends."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from prefect_gmat import sweep
from prefect_gmat.manifest import read_manifest
from prefect_gmat.pool import busy_worker_pids
from tests.conftest import DATA, DEMO_SCRIPT

GRID_200 = {"Sat.SMA": np.linspace(7000.0, 7995.0, 200)}


def _kill_a_busy_worker_when(out: Path, runs_done: int, killed: list[int]) -> threading.Thread:
    """SIGKILL one worker while it holds a run, once ``runs_done`` run folders exist."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.is_dir() and sum(1 for _ in out.glob("run-*")) >= runs_done:
                busy = busy_worker_pids()
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
                    return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_worker_killed_mid_sweep_fails_only_its_run_with_the_cause(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    killed: list[int] = []
    watcher = _kill_a_busy_worker_when(out, 80, killed)
    df = sweep(DEMO_SCRIPT, grid=GRID_200, out=out, workers=2, retries=0)
    watcher.join()
    assert killed, "the worker was never killed"
    records = read_manifest(out).records
    assert sorted(records) == list(range(200))
    failed = {i: r for i, r in records.items() if r["status"] != "ok"}
    assert len(failed) <= 1
    for record in failed.values():
        assert record["error"].startswith("worker died: signal 9 (SIGKILL)")
        assert record["failure"] == "crashed"
    assert (df["__status"] == "ok").sum() == 3 * (200 - len(failed))


def test_a_killed_workers_run_is_retried_and_the_sweep_completes(tmp_path: Path) -> None:
    out = tmp_path / "retried"
    killed: list[int] = []
    watcher = _kill_a_busy_worker_when(out, 80, killed)
    df = sweep(DEMO_SCRIPT, grid=GRID_200, out=out, workers=2, retries=2)
    watcher.join()
    assert killed
    records = read_manifest(out).records
    assert all(r["status"] == "ok" for r in records.values())
    assert df.shape == (600, 5)
    attempts = sorted(r["attempts"] for r in records.values())
    assert attempts[-1] == 2  # the held run, retried once
    assert attempts[-2] == 1


def test_a_run_that_never_ends_is_stopped_by_its_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    df = sweep(
        DATA / "never_ends.script",
        grid={"Sat.SMA": [7000, 7100]},
        out=tmp_path / "t",
        workers=2,
        timeout=3,
        retries=0,
    )
    assert time.monotonic() - started < 60
    assert df["__status"].tolist() == ["failed", "failed"]
    records = read_manifest(tmp_path / "t").records
    assert {r["failure"] for r in records.values()} == {"timeout"}
    assert all("timeout of 3 s" in r["error"] for r in records.values())
