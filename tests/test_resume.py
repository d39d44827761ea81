"""Interrupted sweeps: kill -9 of the flow process, SIGTERM, then resume; retry-failed."""

from __future__ import annotations

import signal
from pathlib import Path

import pandas as pd
import psutil
import pytest

from prefect_gmat import load_bundle, load_sweep, resume, retry_failed, sweep, verify_bundle
from prefect_gmat.study.manifest import read_manifest
from tests.support.faults import SweepProcesses, kill_with_workers, killing_a_busy_worker
from tests.support.paths import DEMO_SCRIPT
from tests.support.points import sma_grid
from tests.support.sweepdir import executions
from tests.support.waiting import wait_for_records

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def test_kill_9_at_half_then_resume_redoes_nothing_finished(
    sweep_processes: SweepProcesses, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    proc = sweep_processes.start("grid", out, 300)
    wait_for_records(out, 150, proc)
    workers = kill_with_workers(proc)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)

    before = read_manifest(out)  # readable after kill -9 (at most a torn last line)
    done_before = set(before.ok_ids())
    assert 150 <= len(done_before) < 300

    df = resume(out, workers=2)

    after = read_manifest(out)
    assert sorted(after.ok_ids()) == list(range(300))
    runs = executions(out)
    assert all(runs[i] == 1 for i in done_before), "a finished run was run again"
    # Only runs in flight at the kill ran again: the one each engine held, and in a batch the
    # few whose outcomes were queued for a flow process waiting for a CPU (3 on one engine in
    # a loaded CI run; ~25 ms each). Without the per-run result cache the manifest's 0.5 s
    # flush alone would redo up to ~35.
    again = sorted(i for i, n in runs.items() if n > 1)
    assert len(again) <= 10, again
    # The same points run without a kill give the same numbers (a sample: every 10th point).
    sample = {"Sat.SMA": sma_grid(300)["Sat.SMA"][::10]}
    uninterrupted = sweep(DEMO_SCRIPT, grid=sample, out=tmp_path / "whole", workers=2)
    picked = df.loc[list(range(0, 300, 10))].rename(index=lambda r: r // 10, level="run_id")
    pd.testing.assert_frame_equal(picked, uninterrupted, check_exact=True)


def test_sigterm_stops_the_sweep_with_a_valid_manifest_and_no_engines_left(
    sweep_processes: SweepProcesses, tmp_path: Path
) -> None:
    out = tmp_path / "terminated"
    proc = sweep_processes.start("grid", out, 200)
    wait_for_records(out, 40, proc)
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    manifest = read_manifest(out)
    assert manifest.torn_line is None  # a clean stop leaves no torn line
    assert 40 <= len(manifest.records) < 200
    from gmat_sweep import Manifest

    assert len(Manifest.load(out / "manifest.jsonl").entries) == len(manifest.records)
    df = resume(out, workers=2)
    assert (df["__status"] == "ok").sum() == 3 * 200


def test_retry_failed_reruns_only_the_failures(tmp_path: Path) -> None:
    out = tmp_path / "flaky"
    with killing_a_busy_worker(out, 20) as killed:
        sweep(DEMO_SCRIPT, grid=sma_grid(60), out=out, workers=2, retries=0, archive=False)
    failed = read_manifest(out).failed_ids()
    assert killed and len(failed) == 1
    df = retry_failed(out, workers=2)
    assert (df["__status"] == "ok").all()
    runs = executions(out)
    assert all(n == 1 for run_id, n in runs.items() if run_id not in failed)
    after = read_manifest(out)
    assert after.failed_ids() == []
    assert after.records[failed[0]]["status"] == "ok"
    pd.testing.assert_frame_equal(df, load_sweep(out))


def test_the_same_sweep_again_runs_only_what_is_not_ok(tmp_path: Path) -> None:
    """A rerun (or a flow run retried from the UI) continues the sweep in its directory."""
    out = tmp_path / "again"
    first = sweep(DEMO_SCRIPT, grid=sma_grid(6), out=out, workers=2)
    lost = next((out / "run-2").glob("report__*.parquet"))
    lost.unlink()
    df = sweep(DEMO_SCRIPT, grid=sma_grid(6), out=out, workers=2)
    assert executions(out) == {0: 1, 1: 1, 2: 2, 3: 1, 4: 1, 5: 1}
    pd.testing.assert_frame_equal(df, first, check_exact=True)
    verify_bundle(out / "sweep_bundle.zip")  # rebuilt with run 2's new Parquet
    pd.testing.assert_frame_equal(load_bundle(out / "sweep_bundle.zip"), df, check_exact=True)
    assert len(read_manifest(out).records) == 6  # run 2's new record wins


def test_a_second_sweep_in_a_running_sweeps_directory_is_refused(
    sweep_processes: SweepProcesses, tmp_path: Path
) -> None:
    from prefect_gmat.errors import SweepDirectoryError

    out = tmp_path / "busy"
    proc = sweep_processes.start("grid", out, 400)
    wait_for_records(out, 5, proc)
    before = (out / "manifest.jsonl").read_bytes()
    with pytest.raises(SweepDirectoryError, match="a sweep is still running in"):
        resume(out, workers=1)
    with pytest.raises(SweepDirectoryError, match="a sweep is still running in"):
        sweep(DEMO_SCRIPT, grid=sma_grid(400), out=out, workers=1)
    with pytest.raises(SweepDirectoryError, match="a sweep is still running in"):
        sweep(DEMO_SCRIPT, grid=sma_grid(400), out=out, workers=1, overwrite=True)
    assert (out / "manifest.jsonl").read_bytes().startswith(before)  # untouched, still growing
    assert proc.poll() is None
