"""Points per task run: how many (auto and fixed), and each point still its own record,
retry unit and cache entry inside a batch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import TaskRun

from prefect_gmat import sweep
from prefect_gmat.core.records import Outcome
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.batching import BatchSizer, batch_name
from prefect_gmat.study.manifest import read_manifest
from tests.support.faults import killing_a_busy_worker
from tests.support.paths import DEMO_SCRIPT
from tests.support.points import sma_grid
from tests.support.prefect_api import task_runs_of
from tests.support.sweepdir import executions


def _ran(seconds: float, count: int) -> list[Outcome]:
    return [Outcome(i, "ok", {}, started_at=0.0, ended_at=seconds) for i in range(count)]


def test_auto_keeps_one_point_per_task_run_for_a_small_sweep_or_long_runs() -> None:
    small = BatchSizer("auto", total=10, engines=2)
    small.observe(_ran(0.04, 10))
    assert small.next_size(10) == 1  # the walkthrough's demo keeps run-0 ... run-9
    long_runs = BatchSizer("auto", total=5000, engines=2)
    long_runs.observe(_ran(2.0, 4))
    assert long_runs.next_size(4996) == 1


def test_auto_batches_many_short_runs_to_about_two_seconds() -> None:
    sizer = BatchSizer("auto", total=1000, engines=2)
    assert sizer.measuring and sizer.next_size(1000) == 1  # nothing measured yet
    sizer.observe(_ran(0.04, 1))
    assert sizer.measuring  # one run time for two engines
    sizer.observe(_ran(0.04, 1))
    assert not sizer.measuring
    assert sizer.next_size(998) == 50  # 2 s / 40 ms
    assert sizer.next_size(40) == 20  # the tail: a share of what is left per engine
    assert sizer.next_size(10) == 7  # ... but none shorter than a quarter second
    assert sizer.next_size(3) == 3


def test_a_fixed_size_is_kept() -> None:
    sizer = BatchSizer(20, total=50, engines=2)
    assert [sizer.next_size(r) for r in (50, 30, 10)] == [20, 20, 10]
    assert batch_name([40, 41, 59]) == "runs-40-59" and batch_name([7]) == "run-7"


def _task_runs(flow_run_name: str) -> list[TaskRun]:
    with get_client(sync_client=True) as client:
        return task_runs_of(client, flow_run_name)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_batch_is_named_for_its_points_and_each_point_is_recorded(tmp_path: Path) -> None:
    script = tmp_path / "batched.script"
    shutil.copy(DEMO_SCRIPT, script)
    grid = {"Sat.SMA": [7000.0 + 10 * i for i in range(12)]}
    df = sweep(script, grid=grid, out=tmp_path / "out", points_per_task=5, archive=False)
    assert df.shape == (36, 5)
    records = read_manifest(tmp_path / "out").records
    assert sorted(records) == list(range(12))
    names = {t.name for t in _task_runs("sweep-batched-12pts") if t.name.startswith("run")}
    assert names == {"runs-0-4", "runs-5-9", "runs-10-11"}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_crash_in_a_batch_retries_that_point_alone(tmp_path: Path) -> None:
    out = tmp_path / "crash"
    grid = sma_grid(60)
    with killing_a_busy_worker(out, 30) as killed:
        sweep(DEMO_SCRIPT, grid=grid, out=out, workers=2, points_per_task=20, retries=1)
    assert killed
    records = read_manifest(out).records
    assert all(r["status"] == "ok" for r in records.values())
    retried = [i for i, r in records.items() if r["attempts"] == 2]
    assert len(retried) == 1
    runs = executions(out)
    # The killed attempt may die before its first log line; the points beside it ran once.
    assert all(n == 1 for i, n in runs.items() if i != retried[0]), "a neighbour ran again"
    assert runs[retried[0]] in (1, 2)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_failed_points_show_in_their_batchs_state_message(tmp_path: Path) -> None:
    out = tmp_path / "failed"
    script = tmp_path / "failing.script"
    shutil.copy(DEMO_SCRIPT, script)
    grid = sma_grid(20)
    with killing_a_busy_worker(out, 6) as killed:
        sweep(script, grid=grid, out=out, workers=1, points_per_task=10, retries=0, archive=False)
    assert killed
    [failed_id] = [i for i, r in read_manifest(out).records.items() if r["status"] != "ok"]
    failed_runs = [t for t in _task_runs("sweep-failing-20pts") if t.state_name == "Failed"]
    assert len(failed_runs) == 1
    message = failed_runs[0].state.message if failed_runs[0].state else ""
    assert f"run {failed_id}: worker died: signal 9" in (message or "")
    assert "1 of 10 runs failed" in (message or "")


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("value", [0, -3, 2.5, "many", True])
def test_a_bad_points_per_task_is_refused(value: object, tmp_path: Path) -> None:
    with pytest.raises(SweepSpecError, match="points_per_task"):
        sweep(DEMO_SCRIPT, grid={"Sat.SMA": [7000]}, out=tmp_path, points_per_task=value)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())
