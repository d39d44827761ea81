"""Scale-out through prefect-dask: the same sweep on a local dask.distributed cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client

from prefect_gmat import load_sweep, sweep
from prefect_gmat.study.manifest import read_manifest
from tests.support.paths import DATA, DEMO_SCRIPT
from tests.support.points import SMA_GRID
from tests.support.prefect_api import task_runs_of

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]  # dask clusters


def test_a_sweep_on_a_local_dask_cluster_gives_the_same_frame(tmp_path: Path) -> None:
    grid = {"Sat.SMA": SMA_GRID["Sat.SMA"][:6]}
    on_dask = sweep(DEMO_SCRIPT, grid=grid, out=tmp_path / "dask", workers=2, dask="local")
    pd.testing.assert_frame_equal(on_dask, load_sweep(tmp_path / "dask"))
    golden = pd.read_csv(DATA / "golden_leo_short_sma.csv")
    expected_x = golden[golden["run_id"] < 6]["Sat.X"].to_numpy()
    assert on_dask["Sat.X"].to_numpy() == pytest.approx(expected_x, rel=1e-12)
    records = read_manifest(tmp_path / "dask").records
    assert sorted(records) == list(range(6))
    with get_client(sync_client=True) as client:
        runs = task_runs_of(client, "sweep-leo_short-6pts")
    covered = set()  # dask workers report to the same server: run-3, or a batch runs-3-5
    for name in (r.name for r in runs if r.name.startswith("run")):
        first, _, last = name.split("-", 1)[1].partition("-")
        covered |= set(range(int(first), int(last or first) + 1))
    assert covered == set(range(6))


def test_a_cluster_class_with_kwargs_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How dask-jobqueue's SLURMCluster is used: a class path, its kwargs as JSON."""
    kwargs = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    monkeypatch.setenv("PREFECT_GMAT_DASK_CLUSTER_KWARGS", json.dumps(kwargs))
    grid = {"Sat.SMA": SMA_GRID["Sat.SMA"][:4]}
    df = sweep(
        DEMO_SCRIPT, grid=grid, out=tmp_path / "cls", dask="distributed.LocalCluster", archive=False
    )
    assert (df["__status"] == "ok").all() and df.shape == (12, 5)
