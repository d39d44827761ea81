"""What a sweep with failed runs shows in Prefect: progress, the summary table, warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import Log

from prefect_gmat.flows.sweep import sweep_flow
from prefect_gmat.runtime.observability import PROGRESS_KEY, SUMMARY_KEY
from tests.support.paths import DATA
from tests.support.prefect_api import logs_once, run_artifacts

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def _failure_warnings(logs: list[Log]) -> list[str]:
    return [log.message for log in logs if log.level == 30 and " failed: " in log.message]


def test_failed_runs_show_in_the_table_and_as_warnings_with_the_engine_log(tmp_path: Path) -> None:
    state = sweep_flow(
        script=str(DATA / "missing_weather_file.script"),
        grid={"Sat.Cd": [2.0, 2.2]},
        out=str(tmp_path / "det"),
        workers=2,
        retries=0,
        archive=False,
        return_state=True,
    )
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        artifacts = run_artifacts(client, run_id)
        assert artifacts[PROGRESS_KEY].data == 100.0
        table = artifacts[SUMMARY_KEY]
        assert isinstance(table.data, str)
        [row] = json.loads(table.data)
        assert (row["status"], row["runs"], row["run ids"]) == ("failed (engine)", 2, "0-1")
        assert table.description == f"0 ok, 2 failed of 2 runs in {tmp_path / 'det'}"

        # Logs are shipped to the API in batches after the flow returns, in any order:
        # wait for the count, not for one particular message.
        logs = logs_once(
            client, run_id, lambda logs: len(_failure_warnings(logs)) >= 2, "2 failure warnings"
        )
        warnings = _failure_warnings(logs)
    assert len(warnings) == 2
    for message in warnings:
        # the cause, then the GMAT log lines that explain it
        assert "Cannot open the CSSI space weather file" in message.split("\n", 1)[1]
