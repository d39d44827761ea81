"""The docker work pool for real: dockerd, the image, a server, a docker worker, containers.

The module starts a Docker daemon if none answers (installing docker.io as root
if needed), builds the base and project images (docker keeps both between runs,
and the downloaded wheels stay in the user cache), and starts ``prefect worker
start --type docker`` on the package's Prefect server (tests/platform/conftest.py:
``prefect server start`` on 127.0.0.1, with ``prefect.yaml`` deployed), then runs
``sweep-docker``: sweeps are written by the container's non-root
user into a host directory mounted at /sweeps. Everything started here is
stopped here, the daemon only if this module started it. Without Docker the
tests skip, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest
import yaml  # type: ignore[import-untyped]
from prefect.client.orchestration import SyncPrefectClient
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL, temporary_settings

from prefect_gmat.blocks import GmatInstallation
from prefect_gmat.core.layout import BUNDLE_NAME
from prefect_gmat.deployments import ENGINE_LIMIT, SWEEP_FLOW
from prefect_gmat.flows.sweep import sweep_flow
from prefect_gmat.runtime.observability import PROGRESS_KEY, SUMMARY_KEY
from prefect_gmat.study.bundle import verify_bundle
from prefect_gmat.study.manifest import read_manifest
from prefect_gmat.tasks.archive import ARTIFACT_KEY
from tests.support.paths import DEMO_SCRIPT, REPO
from tests.support.points import SMA_GRID
from tests.support.prefect_api import finished, run_artifacts, run_logs
from tests.support.sweepdir import executions, recorded
from tests.support.waiting import poll
from tests.support.work_pool import (
    WorkerPlatform,
    assert_completed,
    retry_as_the_ui_does,
    wait_for,
    wait_for_events,
)
from tools.image import (
    DOCKER_DEPLOYMENT,
    DOCKER_POOL,
    IMAGE,
    SWEEPS_MOUNT,
    BuildReport,
    DockerDaemon,
    DockerUnavailableError,
    build_image,
    docker,
    image_user,
)
from tools.local_server import prefect_command

# A cold machine installs docker.io, debootstraps Debian and downloads the wheels first.
pytestmark = pytest.mark.timeout(1800)

_SCRIPT = f"{SWEEPS_MOUNT}/leo_short.script"  # the demo script, as the container sees it


def _docker_deployment() -> dict[str, Any]:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [found] = [d for d in config["deployments"] if d["name"] == DOCKER_DEPLOYMENT]
    return dict(found)


def test_prefect_yaml_runs_the_sweep_flow_from_the_image() -> None:
    """The docker deployment names this image, the volume, the host network and no pull step."""
    spec = _docker_deployment()
    assert load_flow_from_entrypoint(spec["entrypoint"]) is sweep_flow  # the installed module
    assert spec["pull"] == []  # the code is in the image, not in a checkout
    pool = spec["work_pool"]
    variables = pool["job_variables"]
    assert pool["name"] == DOCKER_POOL
    assert variables["image"] == IMAGE
    assert variables["network_mode"] == "host"
    assert [v.split(":")[1] for v in variables["volumes"]] == [SWEEPS_MOUNT]
    assert variables["env"]["PREFECT_GMAT_OUTPUT_DIR"] == SWEEPS_MOUNT


@dataclass
class DockerPlatform(WorkerPlatform):
    sweeps: Path  # the host directory mounted at /sweeps
    build: BuildReport

    run_timeout: ClassVar[float] = 240.0
    log_tail: ClassVar[int] = 80

    def volume(self) -> str:
        """The job variable that mounts this test's host directory instead of prefect.yaml's."""
        return json.dumps([f"{self.sweeps}:{SWEEPS_MOUNT}"])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    """A Docker daemon: the running one, or one started (and stopped) here."""
    started = DockerDaemon(log=tmp_path_factory.mktemp("dockerd") / "dockerd.log")
    try:
        started.ensure()
    except DockerUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Docker and has none: {exc}", pytrace=False)
        pytest.skip(f"no Docker daemon here and none could be started: {exc}")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def platform(
    daemon: DockerDaemon,
    shared_platform: WorkerPlatform,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DockerPlatform]:
    """The image, the installation block and a docker worker on the package's server."""
    root = tmp_path_factory.mktemp("docker")
    timings: dict[str, float] = {}
    if daemon.started is not None:
        timings["dockerd start"] = daemon.startup_seconds
    build = build_image(REPO)
    timings.update({f"image: {k}": v for k, v in build.seconds.items()})
    # The container's user writes the sweeps; the host directory must be theirs.
    sweeps = root / "sweeps"
    sweeps.mkdir()
    os.chown(sweeps, *image_user(IMAGE))
    shutil.copy(DEMO_SCRIPT, sweeps / "leo_short.script")
    # The package's server already has the docker pool, the engine limit (4: a retried
    # run's two engines fit beside those a killed container still leases), the blocks and
    # prefect.yaml's deployments (tests/platform/conftest.py); a docker worker joins it.
    server = shared_platform.server
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        GmatInstallation().save("pip-engine", overwrite=True)  # resolved in the container
    worker_log = root / "worker.log"
    worker = server.spawn(
        [*prefect_command(), "worker", "start", "--pool", DOCKER_POOL, "--type", "docker"],
        log=worker_log,
        cwd=root,
    )
    platform = DockerPlatform(server, root, worker_log, timings, sweeps=sweeps, build=build)
    try:
        yield platform
    finally:
        with platform.client() as client:
            ours = {str(run.id) for run in client.read_flow_runs()}
        server.stop_process(worker)  # the worker first: it starts no container after this
        _remove_containers(ours)
        print(
            f"\ndocker image {build.tag}: {build.size_bytes / 1e6:.0f} MB on {build.base};",
            "timings:",
            json.dumps({k: round(v, 1) for k, v in timings.items()}),
        )


def _container_of(run_id: UUID | str, *, every: bool = False) -> list[str]:
    """Ids of the flow run's containers (running ones unless ``every``); the worker labels them."""
    which = ["-a"] if every else []
    label = f"label=io.prefect.flow-run-id={run_id}"
    return docker("ps", "-q", "--no-trunc", *which, "--filter", label).stdout.split()


def _remove_containers(run_ids: set[str]) -> None:
    """Remove any container left of these flow runs (auto_remove misses a failed start)."""
    for run_id in run_ids:
        for container in _container_of(run_id, every=True):
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def _log_matching(
    client: SyncPrefectClient, run_id: UUID, pattern: str, platform: DockerPlatform
) -> str:
    """The flow run's log line matching ``pattern``, once it has reached the server."""

    def probe() -> str | None:
        logs = run_logs(client, run_id)
        return next((log.message for log in logs if re.search(pattern, log.message)), None)

    return wait_for(f"a log line matching {pattern!r}", probe, platform)


@pytest.mark.slow
def test_the_image_runs_as_a_user_with_its_engine_built_in(platform: DockerPlatform) -> None:
    """Not root, and the shim root is in the image, read-only: a first run cannot rebuild it."""
    probe = (
        "import os; from prefect_gmat.engine.install import resolve_engine; "
        "root = resolve_engine().root; "
        "print(os.getuid(), root, os.access(root.parent, os.W_OK))"
    )
    out = docker("run", "--rm", "--network", "none", IMAGE, "python", "-c", probe).stdout
    uid, root, writable = out.split()
    assert int(uid) == image_user(IMAGE)[0] != 0
    assert root.startswith("/opt/prefect-gmat/cache/shim/gmatpy-")
    assert writable == "False"


@pytest.mark.slow
def test_a_deployment_run_sweeps_in_a_container_onto_the_host_volume(
    platform: DockerPlatform,
) -> None:
    """``prefect deployment run`` with parameters: a container sweeps 10 points into /sweeps."""
    started = time.monotonic()
    run_id = platform.run_deployment(
        f"{SWEEP_FLOW}/{DOCKER_DEPLOYMENT}",
        {
            "script": _SCRIPT,
            "grid": json.dumps(SMA_GRID),
            "out": f"{SWEEPS_MOUNT}/by-hand",
            "workers": 2,
            "installation": "pip-engine",
        },
        {"volumes": platform.volume()},
    )
    with platform.client() as client:
        run = wait_for("the sweep's flow run", lambda: finished(client, run_id), platform)
        platform.timings["deployment run to Completed (10 points)"] = time.monotonic() - started
        assert_completed(run, platform)
        artifacts = run_artifacts(client, run_id)
    # On the host, written by the image's non-root user: manifest, runs and a bundle that
    # verifies. The header shows where it ran: the image's Python and its pip engine.
    out = platform.sweeps / "by-hand"
    manifest = read_manifest(out)
    assert sorted(manifest.ok_ids()) == list(range(10))
    assert manifest.header["script_path"] == _SCRIPT
    assert manifest.header["python_version"].startswith(platform.build.python + ".")
    assert manifest.header["engine_source"] == "pip"
    verify_bundle(out / BUNDLE_NAME)
    uid, gid = image_user(IMAGE)
    assert uid != 0
    assert {(p.stat().st_uid, p.stat().st_gid) for p in out.rglob("*")} == {(uid, gid)}
    # The UI's record of it: progress, summary table, and the bundle's place.
    assert artifacts[PROGRESS_KEY].data == 100.0
    table = json.loads(str(artifacts[SUMMARY_KEY].data))
    assert table == [{"status": "ok", "runs": 10, "run ids": "0-9", "cause": ""}]
    assert f"{SWEEPS_MOUNT}/by-hand/{BUNDLE_NAME}" in str(artifacts[ARTIFACT_KEY].data)
    # The engine limit on the server held the container's two engines.
    events = wait_for_events(
        platform, "prefect.concurrency-limit.acquired", related=[f"prefect.flow-run.{run_id}"]
    )
    assert events[0]["resource"]["prefect.resource.name"] == ENGINE_LIMIT


@pytest.mark.slow
def test_a_killed_container_retried_as_the_ui_does_finishes_its_sweep(
    platform: DockerPlatform,
) -> None:
    """``docker kill`` mid-sweep crashes the flow run; Retry continues it in a new container."""
    grid = {"Sat.SMA": [7000 + i for i in range(300)]}
    with platform.client() as client:
        deployment = client.read_deployment_by_name(f"{SWEEP_FLOW}/{DOCKER_DEPLOYMENT}")
        run_id = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"script": _SCRIPT, "grid": grid, "workers": 2},
            job_variables={"volumes": json.loads(platform.volume())},
        ).id

        # No out: the image's PREFECT_GMAT_OUTPUT_DIR puts the sweep under /sweeps, named
        # after the flow run, so the retry finds it.
        def sweep_dir() -> Path | None:
            found = list(platform.sweeps.glob(f"leo_short-*-{str(run_id)[:8]}"))
            return found[0] if found and (found[0] / "manifest.jsonl").is_file() else None

        out = wait_for("the sweep directory", sweep_dir, platform)
        container = _kill_when_runs_are_recorded(out, run_id, runs=30, platform=platform)
        crashed = wait_for("the killed flow run", lambda: finished(client, run_id), platform)
        assert crashed.state is not None and not crashed.state.is_completed(), crashed.state
        done_before = set(read_manifest(out).ok_ids())
        assert 30 <= len(done_before) < len(grid["Sat.SMA"]), "killed too late to prove anything"

        started = time.monotonic()
        again = retry_as_the_ui_does(client, run_id, platform)
        platform.timings["retry to Completed (300 points, some done)"] = time.monotonic() - started
        assert_completed(again, platform)
        # The retry's own log line: what the killed container finished is not run again.
        _log_matching(client, run_id, rf"300 runs, {len(done_before)} already done", platform)
    # Both containers removed themselves (auto_remove), a moment after their run finished.
    wait_for(
        "the containers gone", lambda: _container_of(run_id, every=True) == [] or None, platform
    )
    assert container not in docker("ps", "-aq", "--no-trunc").stdout
    assert sorted(read_manifest(out).ok_ids()) == list(range(300))
    runs = executions(out)
    assert all(runs[i] == 1 for i in done_before), "a run finished before the kill ran again"
    verify_bundle(out / BUNDLE_NAME)


def _kill_when_runs_are_recorded(
    out: Path, run_id: UUID, *, runs: int, platform: DockerPlatform
) -> str:
    """``docker kill`` the flow run's container once ``runs`` runs are in its manifest."""
    poll(
        f"{runs} runs recorded",
        lambda: recorded(out) >= runs or None,
        timeout=platform.run_timeout,
        interval=0.05,
        diagnostics=platform.diagnostics,
    )
    found = _container_of(run_id)
    assert len(found) == 1, found
    docker("kill", found[0])
    return found[0]
