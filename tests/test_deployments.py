"""Deployments, engine slots, events and the summary table against the session's real server."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from prefect.client.orchestration import get_client
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.events.schemas.events import ResourceSpecification
from prefect.settings import PREFECT_API_URL, temporary_settings

from prefect_gmat.deployments import (
    ENGINE_LIMIT,
    FOLLOWER_DEPLOYMENT,
    FOLLOWER_ENTRYPOINT,
    FOLLOWER_FLOW,
    LEO_GRID,
    NIGHTLY_CRON,
    POOL,
    SCRIPT_TRIGGERED_DEPLOYMENT,
    SWEEP_DEPLOYMENT,
    SWEEP_ENTRYPOINT,
    SWEEP_FLOW,
)
from prefect_gmat.deployments.build import deploy_all, ensure_engine_limit, runner_deployments
from prefect_gmat.deployments.names import JOB_ENV, LEO_SCRIPT
from prefect_gmat.errors import PrefectGmatError, SweepSpecError
from prefect_gmat.runtime.events import emit_script_updated, script_resource
from prefect_gmat.runtime.limits import engine_slots, read_engine_limit
from prefect_gmat.runtime.observability import summary_rows
from tests.support.paths import DEMO_SCRIPT, REPO

LOGGER = logging.getLogger("test")


def _yaml_deployments() -> dict[str, dict[str, Any]]:
    """prefect.yaml's process-pool deployments (tests/platform/test_docker.py: the docker one)."""
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return {d["name"]: d for d in config["deployments"] if d["work_pool"]["name"] == POOL}


def test_prefect_yaml_and_the_python_deployments_agree() -> None:
    """Two routes to the same deployments: names, entrypoints, pool, triggers, schedule."""
    from_yaml = _yaml_deployments()
    from_python = {d.name: d for d in runner_deployments(REPO)}
    assert (
        set(from_yaml)
        == set(from_python)
        == {
            SWEEP_DEPLOYMENT,
            SCRIPT_TRIGGERED_DEPLOYMENT,
            FOLLOWER_DEPLOYMENT,
        }
    )
    for name, spec in from_yaml.items():
        built = from_python[name]
        assert spec["entrypoint"] == built.entrypoint
        assert spec["work_pool"]["name"] == built.work_pool_name == POOL
        assert spec["work_pool"]["job_variables"] == built.job_variables == {"env": JOB_ENV}
        assert spec["tags"] == built.tags
        assert spec.get("parameters", {}) == built.parameters
        triggers = spec.get("triggers", [])
        assert len(triggers) == len(built.triggers)
        for raw, trigger in zip(triggers, built.triggers, strict=True):
            assert isinstance(trigger, DeploymentEventTrigger)
            assert set(raw["expect"]) == trigger.expect
            assert ResourceSpecification.model_validate(raw["match"]) == trigger.match
            assert raw["parameters"] == trigger.parameters
    assert from_yaml[SWEEP_DEPLOYMENT]["entrypoint"] == SWEEP_ENTRYPOINT
    assert from_yaml[FOLLOWER_DEPLOYMENT]["entrypoint"] == FOLLOWER_ENTRYPOINT
    [schedule] = from_yaml[SWEEP_DEPLOYMENT]["schedules"]
    assert (schedule["cron"], schedule["active"]) == (NIGHTLY_CRON, False)
    assert schedule["parameters"] == {"script": LEO_SCRIPT, "grid": LEO_GRID}
    assert (REPO / LEO_SCRIPT).is_file()


@pytest.mark.usefixtures("prefect_server")
def test_deploy_all_registers_the_deployments_with_their_triggers() -> None:
    deploy_all(REPO)
    with get_client(sync_client=True) as client:
        sweep = client.read_deployment_by_name(f"{SWEEP_FLOW}/{SWEEP_DEPLOYMENT}")
        assert sweep.work_pool_name == POOL
        assert [s.active for s in sweep.schedules] == [False]
        assert sweep.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]
        assert sweep.parameter_openapi_schema is not None
        form = sweep.parameter_openapi_schema["properties"]
        assert {"script", "grid", "samples", "out", "workers", "installation", "sweep_spec"} <= set(
            form
        )
        follower = client.read_deployment_by_name(f"{FOLLOWER_FLOW}/{FOLLOWER_DEPLOYMENT}")
        automations = client.read_resource_related_automations(f"prefect.deployment.{follower.id}")
        assert [a.name for a in automations] == ["gmat-sweep-completed"]


@pytest.mark.usefixtures("prefect_server")
def test_engine_slots_are_held_while_the_block_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"test-engines-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PREFECT_GMAT_ENGINE_LIMIT", name)
    with engine_slots(2, LOGGER) as held:  # no such limit: nothing to hold
        assert held == 0
    ensure_engine_limit(2, name=name)
    with engine_slots(2, LOGGER) as held:
        assert held == 2
        limit = read_engine_limit(name)
        assert limit is not None and limit.active_slots == 2
    limit = read_engine_limit(name)
    assert limit is not None and limit.active_slots == 0
    with (
        pytest.raises(SweepSpecError, match="workers=3 is more than the 2 engines"),
        engine_slots(3, LOGGER),
    ):
        pass
    assert ENGINE_LIMIT == "gmat-engines"


@pytest.mark.usefixtures("prefect_server")
def test_script_updated_event_names_the_script_as_its_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = emit_script_updated(DEMO_SCRIPT)
    assert event.event == "gmat.script.updated"
    assert event.resource.id == f"gmat.script.{DEMO_SCRIPT}"
    assert event.resource["gmat.script.path"] == str(DEMO_SCRIPT)
    assert len(event.payload["sha256"]) == 64
    monkeypatch.chdir(REPO)  # a relative path names the same resource as the absolute one
    assert script_resource(LEO_SCRIPT) == script_resource(DEMO_SCRIPT)
    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(PrefectGmatError, match="PREFECT_API_URL is not set"),
    ):
        emit_script_updated(DEMO_SCRIPT)


def test_summary_rows_group_failures_by_cause() -> None:
    records = {
        0: {"status": "ok"},
        1: {"status": "ok"},
        2: {"status": "failed", "failure": "timeout", "error": "run exceeded its timeout"},
        3: {"status": "ok"},
        5: {"status": "failed", "failure": "timeout", "error": "run exceeded its timeout"},
        6: {"status": "failed", "failure": "field", "error": "Sat.SMAA is not a field"},
    }
    assert summary_rows(records, 8) == [
        {"status": "ok", "runs": 3, "run ids": "0-1, 3", "cause": ""},
        {
            "status": "failed (timeout)",
            "runs": 2,
            "run ids": "2, 5",
            "cause": "run exceeded its timeout",
        },
        {"status": "failed (field)", "runs": 1, "run ids": "6", "cause": "Sat.SMAA is not a field"},
        {"status": "not run", "runs": 2, "run ids": "4, 7", "cause": ""},
    ]
