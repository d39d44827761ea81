"""A failure budget: once more runs fail than ``max_failures`` allows, no new run starts,
the runs in flight are recorded, the call raises, and resume goes on. Real engine runs
that fail at run time (a semi-major axis below the Earth's radius), not in validation."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from prefect import get_client

from prefect_gmat import FailureBudgetError, resume, sweep
from prefect_gmat.study.manifest import read_manifest
from tests.support.paths import DATA
from tests.support.prefect_api import latest_flow_run
from tests.support.sweepdir import executions

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

DRAG = DATA / "drag_leo.script"
#: 150 orbits inside the Earth: each run fails at its first step (the budget of 20 stops
#: the sweep well before its end; resume then runs the other ~120).
INSIDE = {"Sat.SMA": [5000.0 + i for i in range(150)]}


def test_a_failure_budget_stops_the_sweep_and_resume_finishes_it(tmp_path: Path) -> None:
    out = tmp_path / "budget"
    with pytest.raises(FailureBudgetError) as caught:
        sweep(DRAG, grid=INSIDE, out=out, workers=2, max_failures=20, archive=False)
    error = caught.value
    recorded = read_manifest(out).records
    # Stopped within 10 runs of its limit; every run that ran is recorded.
    assert 20 < len(recorded) <= 30, len(recorded)
    assert all(r["status"] == "failed" for r in recorded.values())
    assert sorted(executions(out)) == sorted(recorded)
    assert (error.failed, error.budget, error.out) == (len(recorded), 20, str(out))
    assert error.causes and "inside central body" in error.causes[0][0]
    assert "max_failures" in str(error) and "inside central body" in str(error)
    assert pickle.loads(pickle.dumps(error)).causes == error.causes

    with get_client(sync_client=True) as client:  # the flow run ended Failed, saying why
        run = latest_flow_run(client, "sweep-drag_leo-150pts")
        assert run.state is not None and run.state.is_failed()
        assert "max_failures" in str(run.state.message)

    df = resume(out, workers=2, archive=False)  # no budget: every point
    assert df.index.get_level_values("run_id").nunique() == 150
    assert (df["__status"] == "failed").all()
    # Nothing already recorded ran again: the deterministic failures are settled.
    assert set(executions(out).values()) == {1}


def test_a_fraction_budget_counts_the_sweeps_runs(tmp_path: Path) -> None:
    out = tmp_path / "fraction"
    grid = {"Sat.SMA": [5000.0 + i for i in range(40)]}  # 5 % of 40: 2 may fail
    with pytest.raises(FailureBudgetError) as caught:
        sweep(DRAG, grid=grid, out=out, workers=2, max_failures=0.05, archive=False)
    assert caught.value.budget == 2
    assert 2 < len(read_manifest(out).records) <= 2 + 10
