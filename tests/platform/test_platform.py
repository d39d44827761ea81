"""The Prefect platform for real: a server, ``prefect deploy --all``, a process worker, events.

One server (its own ``PREFECT_HOME``, a free 127.0.0.1 port) and one worker for
the package, started as a user would from the README, and stopped by process id
(process groups, then any descendant left) even when a test fails. The worker's
operator confined its flow runs (``PREFECT_GMAT_ALLOWED_PATHS``/``_HOOKS``): the last
test runs the ``sweep`` deployment with parameters inside and outside those bounds.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun, Log

from prefect_gmat.core.layout import BUNDLE_NAME
from prefect_gmat.deployments import (
    ENGINE_LIMIT,
    FOLLOWER_DEPLOYMENT,
    FOLLOWER_FLOW,
    LEO_GRID,
    SCRIPT_TRIGGERED_DEPLOYMENT,
    SWEEP_DEPLOYMENT,
    SWEEP_FLOW,
)
from prefect_gmat.flows.followers import VERIFIED_KEY
from prefect_gmat.runtime.events import SCRIPT_UPDATED, SWEEP_COMPLETED
from prefect_gmat.runtime.observability import PROGRESS_KEY, SUMMARY_KEY
from prefect_gmat.study.bundle import verify_bundle
from prefect_gmat.study.confine import HOOKS_SETTING, PATHS_SETTING
from prefect_gmat.study.manifest import read_manifest
from prefect_gmat.tasks.archive import ARTIFACT_KEY
from tests.support.paths import DATA, DEMO_SCRIPT
from tests.support.prefect_api import finished, logs_once, run_artifacts
from tests.support.secrets import SECRET, secret_file
from tests.support.sweepdir import executions
from tests.support.work_pool import (
    ALLOWED_HOOK,
    WorkerPlatform,
    assert_completed,
    retry_as_the_ui_does,
    wait_for,
    wait_for_events,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


@pytest.fixture
def platform(shared_platform: WorkerPlatform) -> WorkerPlatform:
    """The package's server with its confined process worker (tests/platform/conftest.py)."""
    return shared_platform


def _finished_run_of(
    client: SyncPrefectClient, deployment: str, parameter: str, value: str
) -> FlowRun | None:
    """The deployment's flow run with ``parameter == value``, once it has finished."""
    dep = client.read_deployment_by_name(deployment)
    runs = [
        r
        for r in client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id]))
        )
        if r.parameters.get(parameter) == value
    ]
    return runs[0] if runs and runs[0].state and runs[0].state.is_final() else None


def _logs_once(
    client: SyncPrefectClient, run_id: UUID, needle: str, platform: WorkerPlatform
) -> list[Log]:
    """The flow run's logs, once one containing ``needle`` is in."""
    return logs_once(
        client,
        run_id,
        lambda logs: any(needle in log.message for log in logs),
        f"a log line with {needle!r}",
        timeout=platform.run_timeout,
        diagnostics=platform.diagnostics,
    )


def test_deployment_run_with_parameters(platform: WorkerPlatform) -> None:
    """``prefect deployment run`` with typed parameters: a sweep in the worker, and its record."""
    out = platform.root / "by-hand"
    started = time.monotonic()
    run_id = platform.run_deployment(
        f"{SWEEP_FLOW}/{SWEEP_DEPLOYMENT}",
        {
            "script": DEMO_SCRIPT,
            "grid": '{"Sat.SMA": [7000, 7100, 7200]}',
            "out": out,
            "workers": 2,
        },
    )
    with platform.client() as client:
        run = wait_for("the sweep's flow run", lambda: finished(client, run_id), platform)
        platform.timings["deployment run to Completed (3 points)"] = time.monotonic() - started
        assert_completed(run, platform)
        assert run.name == "sweep-leo_short-3pts"
        assert run.parameters["grid"] == {"Sat.SMA": [7000, 7100, 7200]}

        # The record on disk: three ok runs and a bundle that verifies.
        manifest = read_manifest(out)
        assert sorted(manifest.records) == [0, 1, 2]
        assert {r["status"] for r in manifest.records.values()} == {"ok"}
        assert manifest.header["script_path"] == str(DEMO_SCRIPT)
        verify_bundle(out / BUNDLE_NAME)

        # What the UI shows: one task run per point, progress, summary table, bundle.
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
        assert {"run-0", "run-1", "run-2"} <= {t.name for t in tasks}
        artifacts = run_artifacts(client, run_id)
        assert {PROGRESS_KEY, SUMMARY_KEY, ARTIFACT_KEY} <= set(artifacts)
        assert artifacts[PROGRESS_KEY].data == 100.0
        table = json.loads(artifacts[SUMMARY_KEY].data)
        assert table == [{"status": "ok", "runs": 3, "run ids": "0-2", "cause": ""}]
        assert str(out / BUNDLE_NAME) in artifacts[ARTIFACT_KEY].data

        # The job's environment keeps per-point "Finished in state" lines out of the logs.
        logs = _logs_once(client, run_id, "3 runs, 0 already done", platform)
        assert not [log for log in logs if log.task_run_id and log.level < 30]

    # The sweep held its two engine slots, and announced itself when done.
    this_run = [f"prefect.flow-run.{run_id}"]
    acquired = wait_for_events(platform, "prefect.concurrency-limit.acquired", related=this_run)
    assert acquired[0]["resource"]["prefect.resource.name"] == ENGINE_LIMIT
    completed = wait_for_events(platform, SWEEP_COMPLETED, related=this_run)
    assert len(completed) == 1
    assert completed[0]["resource"]["gmat.sweep.out"] == str(out)
    payload = completed[0]["payload"]
    assert (payload["ok"], payload["failed"], payload["runs"]) == (3, 0, 3)
    assert payload["bundle"] == str(out / BUNDLE_NAME)


def test_deployment_run_of_a_monte_carlo_study_from_the_run_forms_design(
    platform: WorkerPlatform,
) -> None:
    """The ``design`` parameter as the UI's Run form sends it, unseeded: drawn and recorded."""
    from prefect_gmat.study.designs import monte_carlo_points, parse_perturb

    out = platform.root / "dispersion"
    perturb = {
        "TOI.Element1": {"dist": "normal", "mu": 0.1, "sigma": 0.002},
        "LaunchDelay.Value": {"dist": "uniform", "lo": 0, "hi": 600},
    }
    design = {"kind": "monte_carlo", "perturb": perturb, "n": 4, "seed": None}
    run_id = platform.run_as_the_form_does(
        f"{SWEEP_FLOW}/{SWEEP_DEPLOYMENT}",
        {
            "script": str(DATA / "launch_dispersion.script"),
            "design": design,
            "out": str(out),
            "workers": 2,
        },
    )
    with platform.client() as client:
        run = wait_for("the study's flow run", lambda: finished(client, run_id), platform)
        assert_completed(run, platform)
        assert run.name == "sweep-launch_dispersion-4pts"
        logs = _logs_once(client, run_id, "seed not given: drew seed", platform)
    header = read_manifest(out).header
    seed = header["sweep_seed"]
    assert header["parameter_spec"]["_kind"] == "monte_carlo" and isinstance(seed, int)
    assert any(f"seed={seed}" in log.message for log in logs)
    drawn = monte_carlo_points(parse_perturb(perturb), 4, seed)
    assert [read_manifest(out).records[i]["overrides"] for i in range(4)] == drawn


def test_script_event_starts_sweep_and_follower(platform: WorkerPlatform) -> None:
    """``prefect-gmat emit-script-updated`` starts a sweep; its completion starts the follower."""
    watched = (platform.root / "watched" / "leo_short.script").resolve()
    watched.parent.mkdir()
    shutil.copy(DEMO_SCRIPT, watched)
    started = time.monotonic()
    platform.server.run(
        [sys.executable, "-m", "prefect_gmat.cli", "emit-script-updated", str(watched)]
    )
    emitted = wait_for_events(platform, SCRIPT_UPDATED, resource=[f"gmat.script.{watched}"])
    assert len(emitted) == 1
    assert emitted[0]["resource"]["gmat.script.path"] == str(watched)
    with platform.client() as client:
        triggered = f"{SWEEP_FLOW}/{SCRIPT_TRIGGERED_DEPLOYMENT}"
        sweep = wait_for(
            "the event-triggered sweep",
            lambda: _finished_run_of(client, triggered, "script", str(watched)),
            platform,
        )
        platform.timings["event to sweep Completed (10 points)"] = time.monotonic() - started
        assert_completed(sweep, platform)
        assert sweep.parameters["grid"] == LEO_GRID  # the deployment's own grid
        [out] = (platform.root / "sweeps").glob(f"leo_short-*-{str(sweep.id)[:8]}")
        manifest = read_manifest(out)
        assert manifest.header["script_path"] == str(watched)
        assert len(manifest.ok_ids()) == len(LEO_GRID["Sat.SMA"])
        follower = wait_for(
            "the chained follower",
            lambda: _finished_run_of(
                client, f"{FOLLOWER_FLOW}/{FOLLOWER_DEPLOYMENT}", "out", str(out)
            ),
            platform,
        )
        platform.timings["event to follower Completed"] = time.monotonic() - started
        assert_completed(follower, platform)
        assert follower.name == f"summarise-{out.name}"
        verified = run_artifacts(client, follower.id)[VERIFIED_KEY].data
        assert "verified" in verified and f"{len(LEO_GRID['Sat.SMA'])} ok, 0 failed" in verified


def test_a_flow_run_retried_as_the_ui_does_continues_its_own_sweep(
    platform: WorkerPlatform,
) -> None:
    """The UI's Retry reruns the flow run: same directory (named after it), only what is not ok."""
    script = platform.root / "retried.script"
    shutil.copy(DEMO_SCRIPT, script)
    grid = {"Sat.SMA": [7000, 7100, 7200]}
    with platform.client() as client:
        deployment = client.read_deployment_by_name(f"{SWEEP_FLOW}/{SWEEP_DEPLOYMENT}")
        run_id = client.create_flow_run_from_deployment(
            deployment.id, parameters={"script": str(script), "grid": grid, "workers": 2}
        ).id
        first = wait_for("the sweep", lambda: finished(client, run_id), platform)
        assert_completed(first, platform)
        # No out: the flow run named its directory after itself.
        [out] = (platform.root / "sweeps").glob(f"retried-*-{str(run_id)[:8]}")
        next((out / "run-1").glob("report__*.parquet")).unlink()  # one run's output lost

        started = time.monotonic()
        again = retry_as_the_ui_does(client, run_id, platform)
        platform.timings["UI retry to Completed"] = time.monotonic() - started
        assert_completed(again, platform)
        _logs_once(client, run_id, "3 runs, 2 already done, 1 to run", platform)
    assert [p.name for p in (platform.root / "sweeps").glob("retried-*")] == [out.name]
    assert executions(out) == {0: 1, 1: 2, 2: 1}
    assert sorted(read_manifest(out).ok_ids()) == [0, 1, 2]
    verify_bundle(out / BUNDLE_NAME)


def test_a_refused_sweep_fails_its_flow_run_once_with_the_reason(platform: WorkerPlatform) -> None:
    """The up-front checks inside a deployment's flow run: Failed once, the fix in its message."""
    out = platform.root / "refused"
    with platform.client() as client:
        deployment = client.read_deployment_by_name(f"{SWEEP_FLOW}/{SWEEP_DEPLOYMENT}")
        run_id = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"script": str(DEMO_SCRIPT), "grid": {"Sat.SMAA": [7000]}, "out": str(out)},
        ).id
        run = wait_for("the refused sweep", lambda: finished(client, run_id), platform)
    assert run.state is not None and run.state.is_failed(), run.state
    assert "Did you mean 'Sat.SMA'?" in (run.state.message or "")
    assert run.run_count == 1
    assert not out.exists(), "a refused sweep wrote its directory"


# --- a deployment's parameters are confined (tests/test_confinement.py checks the rules) -----

#: A hook the worker does not allow.
UNLISTED_HOOK = "os.path:join"


def _final_with_logs(platform: WorkerPlatform, run_id: UUID) -> tuple[FlowRun, list[str]]:
    """The finished flow run, and its log messages once its last one ("Finished in state")
    has reached the server."""
    with platform.client() as client:
        run = wait_for("the flow run to finish", lambda: finished(client, run_id), platform)
        logs = logs_once(
            client,
            run_id,
            lambda found: any("Finished in state" in log.message for log in found),
            "the flow run's last log line",
            diagnostics=platform.diagnostics,
        )
    return run, [log.message for log in logs]


def test_a_confined_deployment_run_refuses_what_is_outside(platform: WorkerPlatform) -> None:
    """Four runs of the ``sweep`` deployment with parameters from the Run form, against one
    worker: inside the allowed directories a sweep completes (with an allowed hook); a
    script outside, an ``out`` outside and an unlisted hook fail at once, named, nothing
    shown or written."""
    allowed = platform.root
    secret = secret_file(platform.root.parent / "outside" / "token.script")
    outside_out = platform.root.parent / "outside" / "sweep"
    base = {"grid": {"Sat.SMA": [7000, 7100]}, "workers": 1, "archive": False}
    cases: dict[str, dict[str, object]] = {
        "inside": {
            "script": allowed / DEMO_SCRIPT.name,
            "out": allowed / "ok",
            "postprocess": ALLOWED_HOOK,
        },
        "script outside": {"script": secret, "out": allowed / "secret"},
        "out outside": {"script": allowed / DEMO_SCRIPT.name, "out": outside_out},
        "unlisted hook": {
            "script": allowed / DEMO_SCRIPT.name,
            "out": allowed / "hooked",
            "postprocess": UNLISTED_HOOK,
        },
    }
    deployment = f"{SWEEP_FLOW}/{SWEEP_DEPLOYMENT}"
    started = time.monotonic()
    ids = {
        case: platform.run_as_the_form_does(
            deployment, {**base, **{k: str(v) for k, v in given.items()}}
        )
        for case, given in cases.items()
    }
    done = {case: _final_with_logs(platform, run_id) for case, run_id in ids.items()}
    platform.timings["four deployment runs to their final states"] = time.monotonic() - started

    run, _ = done["inside"]
    assert run.state is not None and run.state.is_completed(), (
        f"{run.state}\n{platform.diagnostics()}"
    )
    manifest = read_manifest(allowed / "ok")
    assert sorted(manifest.ok_ids()) == [0, 1]
    assert manifest.header["postprocess"] == ALLOWED_HOOK
    assert (allowed / "ok" / "run-0" / "mark.txt").read_text() == "hook ran"

    for case, field, value in (
        ("script outside", "script", secret),
        ("out outside", "out", outside_out),
        ("unlisted hook", "postprocess", UNLISTED_HOOK),
    ):
        run, logs = done[case]
        assert run.state is not None and run.state.is_failed(), f"{case}: {run.state}"
        message = run.state.message or ""
        assert "SweepSpecError" in message and f"{field}='{value}'" in message, message
        setting = HOOKS_SETTING if field == "postprocess" else PATHS_SETTING
        assert setting in message, message
        assert any(f"{field}='{value}'" in line for line in logs)

    # The secret shows nowhere: not in the state message, the run's logs, or the worker's
    # own output (which carries the flow run process's).
    run, logs = done["script outside"]
    assert SECRET not in ((run.state.message or "") if run.state else "")
    assert not [line for line in logs if SECRET in line]
    assert SECRET not in platform.worker_log.read_text(errors="replace")
    # Nothing was written for the refused runs.
    assert not (allowed / "secret").exists()
    assert not outside_out.exists()
    assert not (allowed / "hooked").exists()
