"""Faults during a real sweep: a worker killed mid-run, a run that never ends."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prefect_gmat import resume, sweep
from prefect_gmat.errors import ManifestError
from prefect_gmat.study.manifest import read_manifest
from prefect_gmat.study.sweepdir import outputs_intact
from tests.support.faults import killing_a_busy_worker
from tests.support.paths import DATA, DEMO_SCRIPT
from tests.support.points import sma_grid
from tests.support.sweepdir import executions

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

GRID_200 = {"Sat.SMA": np.linspace(7000.0, 7995.0, 200)}  # NumPy values, as users pass them
SMA_200 = GRID_200["Sat.SMA"]
SMA_300 = sma_grid(300, step=0.5)["Sat.SMA"]


def test_a_worker_killed_mid_sweep_fails_only_its_run_with_the_cause(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    with killing_a_busy_worker(out, 80) as killed:
        df = sweep(DEMO_SCRIPT, grid=GRID_200, out=out, workers=2, retries=0)
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
    with killing_a_busy_worker(out, 80) as killed:
        df = sweep(DEMO_SCRIPT, grid=GRID_200, out=out, workers=2, retries=2)
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


def test_an_engine_segfault_fails_only_its_run_with_the_signal(tmp_path: Path) -> None:
    out = tmp_path / "segv"
    with killing_a_busy_worker(out, 10, sig=signal.SIGSEGV) as killed:
        df = sweep(
            DEMO_SCRIPT,
            grid={"Sat.SMA": SMA_200[:40]},
            out=out,
            workers=2,
            retries=0,
            archive=False,
        )
    assert killed
    failed = {i: r for i, r in read_manifest(out).records.items() if r["status"] != "ok"}
    assert len(failed) <= 1
    for record in failed.values():
        assert record["error"] == "worker died: signal 11 (SIGSEGV)"
    assert (df["__status"] == "ok").sum() == 3 * (40 - len(failed))


def test_a_deterministic_failure_is_not_retried(tmp_path: Path) -> None:
    df = sweep(
        DATA / "missing_weather_file.script",
        grid={"Sat.Cd": [2.0, 2.2]},
        out=tmp_path / "det",
        workers=2,
        retries=3,
        retry_delay=5.0,
        archive=False,
    )
    assert df["__status"].tolist() == ["failed", "failed"]
    for record in read_manifest(tmp_path / "det").records.values():
        assert (record["failure"], record["attempts"]) == ("engine", 1)
        assert "Cannot open the CSSI space weather file" in record["stderr"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB file system (tmpfs; needs root, as in CI), so the disk really fills.

    A short-LEO run leaves about 12 KB (GMAT's text outputs, the worker log with the
    GMAT log, the Parquet, Prefect's result record): about 160 runs fit, seconds of
    runs, so manifest flushes (every second at first) land before it fills.
    """
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_stops_the_sweep_clearly_and_keeps_earlier_runs(small_disk: Path) -> None:
    out = small_disk / "sweep"
    with pytest.raises(ManifestError, match=r"No space left on device.*records already in it"):
        sweep(
            DEMO_SCRIPT,
            grid={"Sat.SMA": SMA_300},
            out=out,
            workers=2,
            retries=0,
            archive=False,
        )
    manifest = read_manifest(out)
    assert manifest.torn_line is None
    assert manifest.ok_ids(), "no run finished before the disk filled"
    for run_id in manifest.ok_ids():
        assert outputs_intact(manifest.records[run_id], out)  # paths are relative to out
    for run_id in manifest.failed_ids():
        assert "no space left on the disk" in manifest.records[run_id]["error"]
    # with room again, resume finishes the sweep without redoing the earlier runs
    subprocess.run(["mount", "-o", "remount,size=32m", str(small_disk)], check=True)
    done = set(manifest.ok_ids())
    df = resume(out, workers=2, archive=False)
    assert (df["__status"] == "ok").sum() == 3 * 300
    runs = executions(out)
    assert all(runs[run_id] == 1 for run_id in done)
