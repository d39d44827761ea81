"""The first runs start on the engines while Prefect starts, and the flow takes them over
(study/early_start.py, engine/early.py): each point still runs once, under its task run."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from prefect import get_client

from prefect_gmat import sweep
from prefect_gmat.deployments.build import ensure_engine_limit
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.manifest import read_manifest
from tests.support.paths import DEMO_SCRIPT, REPO
from tests.support.points import sma_grid
from tests.support.prefect_api import latest_flow_run, run_logs
from tests.support.sweepdir import executions


def test_the_first_runs_begin_before_the_flow_run_and_each_runs_once(
    tmp_path: Path, prefect_api_env: dict[str, str]
) -> None:
    """In a fresh process, as a user's script runs: Prefect's import is what they overlap."""
    out = tmp_path / "sweep"
    points = 61
    subprocess.run(
        [sys.executable, "-m", "tests.support.sweep_main", "grid", str(out), str(points)],
        cwd=REPO,
        env=prefect_api_env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    records = read_manifest(out).records
    assert len(records) == points
    assert all(r["status"] == "ok" and r.get("attempts", 1) == 1 for r in records.values())
    assert executions(out) == dict.fromkeys(range(points), 1)  # none ran twice
    with get_client(sync_client=True) as client:
        run = latest_flow_run(client, f"sweep-leo_short-{points}pts")
        assert run.start_time is not None
        early = [
            r for r in records.values() if datetime.fromisoformat(r["started_at"]) < run.start_time
        ]
        messages = [log.message for log in run_logs(client, run.id)]
    assert len(early) >= 2, "the engines waited for the flow run"
    # the flow run says so: every run that began early, some after the flow run started
    told = [m for m in messages if "began on the engines while Prefect started" in m]
    assert len(told) == 1, messages
    assert int(told[0].split()[0]) >= len(early)


@pytest.mark.usefixtures("prefect_server")
def test_a_sweep_the_flow_refuses_after_its_early_start_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the flow can read the server's engine limit, after the runs began: what the
    early start wrote goes (a directory it made; what it added to one given)."""
    name = f"test-engines-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PREFECT_GMAT_ENGINE_LIMIT", name)
    ensure_engine_limit(1, name=name)
    made = tmp_path / "new"
    empty = tmp_path / "empty"
    empty.mkdir()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.txt").write_text("the user's own file")
    for out in (made, empty, notes):
        with pytest.raises(SweepSpecError, match="workers=2 is more than the 1 engines"):
            sweep(DEMO_SCRIPT, grid=sma_grid(40), out=out, workers=2, archive=False)
    assert not made.exists()
    assert list(empty.iterdir()) == []
    assert [p.name for p in notes.iterdir()] == ["README.txt"]
    assert (notes / "README.txt").read_text() == "the user's own file"
