"""What the work-pool tests share: a server with a worker, and the waits on its flow runs.

:func:`process_platform` is the server of the platform tests (tests/platform/): the
process worker's deployments run on it, and test_docker.py adds a docker worker to
it. The helpers here start deployment runs and wait for what the worker and server
record.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import AwaitingRetry

from prefect_gmat.deployments import ENGINE_LIMIT, POOL
from prefect_gmat.study.confine import HOOKS_SETTING, PATHS_SETTING
from tests.support.paths import DEMO_SCRIPT, REPO
from tests.support.prefect_api import finished
from tests.support.waiting import poll
from tools.image import DOCKER_POOL
from tools.local_server import LocalServer, prefect_command

#: The postprocess hook the process worker's operator allows (a module on its PYTHONPATH).
ALLOWED_HOOK = "platform_hooks:mark"


@dataclass
class WorkerPlatform:
    """A Prefect server started by the test, with a worker whose log is ``worker_log``."""

    server: LocalServer
    root: Path
    worker_log: Path
    timings: dict[str, float]

    #: How long a flow run may take to finish, and the worker log lines shown if it does not.
    run_timeout: ClassVar[float] = 150.0
    log_tail: ClassVar[int] = 60

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """A client of this server (not of the session's test server, if one runs)."""
        with (
            temporary_settings({PREFECT_API_URL: self.server.api_url}),
            get_client(sync_client=True) as client,
        ):
            yield client

    def diagnostics(self) -> str:
        log = self.worker_log.read_text(errors="replace") if self.worker_log.exists() else ""
        return "worker log (tail):\n" + "\n".join(log.splitlines()[-self.log_tail :])

    def run_deployment(
        self,
        deployment: str,
        parameters: Mapping[str, object],
        job_variables: Mapping[str, str] | None = None,
    ) -> UUID:
        """``prefect deployment run`` with ``--param``s (and ``--job-variable``s); its flow run."""
        command = [*prefect_command(), "deployment", "run", deployment]
        for name, value in parameters.items():
            command += ["--param", f"{name}={value}"]
        for name, value in (job_variables or {}).items():
            command += ["--job-variable", f"{name}={value}"]
        done = self.server.run(command)
        match = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)
        assert match, done.stdout
        return UUID(match.group(1))

    def run_as_the_form_does(self, deployment: str, parameters: Mapping[str, Any]) -> UUID:
        """The UI's Run form: a flow run of ``deployment`` (``flow/name``) created through
        the API with JSON ``parameters`` (no ``prefect`` command started: ~3 s of CPU each)."""
        with self.client() as client:
            found = client.read_deployment_by_name(deployment)
            run = client.create_flow_run_from_deployment(found.id, parameters=dict(parameters))
        return run.id

    def events(self, name: str, **where: list[str]) -> list[dict[str, Any]]:
        """Events called ``name``, filtered e.g. by ``related=[...]`` or ``resource=[...]`` ids."""
        event_filter: dict[str, Any] = {"event": {"name": [name]}}
        event_filter.update({key: {"id": ids} for key, ids in where.items()})
        reply = httpx.post(
            f"{self.server.api_url}/events/filter",
            json={"filter": event_filter, "limit": 50},
            timeout=10,
        )
        reply.raise_for_status()
        events: list[dict[str, Any]] = reply.json()["events"]
        return events


def wait_for[T](what: str, probe: Callable[[], T | None], platform: WorkerPlatform) -> T:
    """Poll ``probe`` until it returns something, for up to the platform's run timeout."""
    return poll(
        what,
        probe,
        timeout=platform.run_timeout,
        interval=0.2,
        diagnostics=platform.diagnostics,
    )


def wait_for_events(
    platform: WorkerPlatform, name: str, **where: list[str]
) -> list[dict[str, Any]]:
    """The server records events a moment after they arrive: poll until they show."""
    return wait_for(f"{name} events", lambda: platform.events(name, **where) or None, platform)


def retry_as_the_ui_does(
    client: SyncPrefectClient, run_id: UUID, platform: WorkerPlatform
) -> FlowRun:
    """The UI's Retry of a finished flow run (AwaitingRetry, forced); the run once it has
    finished again (its second run)."""
    client.set_flow_run_state(run_id, AwaitingRetry(message="Retry from the UI"), force=True)

    def retried() -> FlowRun | None:
        run = finished(client, run_id)
        return run if run is not None and run.run_count >= 2 else None

    return wait_for("the retried flow run", retried, platform)


def assert_completed(run: FlowRun, platform: WorkerPlatform) -> None:
    assert run.state is not None
    assert run.state.is_completed(), (
        f"{run.name} ended {run.state.name}: {run.state.message}\n{platform.diagnostics()}"
    )


@contextmanager
def process_platform(base: Path) -> Iterator[WorkerPlatform]:
    """A server, the process pool, engine limit, blocks, ``prefect deploy --all`` and a
    process worker whose operator confined its runs, all under ``base``.

    The worker's flow runs may read and write under ``root`` (``base/allowed``, which
    holds the demo script and where event-started sweeps go) and the checkout (its
    scripts), and may call :data:`ALLOWED_HOOK`; ``base/outside`` is not allowed.
    Everything is stopped by process id (process groups, then any descendant left)."""
    root = base / "allowed"
    root.mkdir(parents=True)
    shutil.copy(DEMO_SCRIPT, root / DEMO_SCRIPT.name)
    hooks = base / "hooks"
    hooks.mkdir()
    (hooks / "platform_hooks.py").write_text(
        "from pathlib import Path\n\n\n"
        "def mark(spec, outcome):\n"
        "    path = Path(spec.output_dir) / 'mark.txt'\n"
        "    path.write_text('hook ran')\n"
        "    return {'mark': str(path)}\n"
    )
    timings: dict[str, float] = {}
    env = {
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # default 10 s: runs would wait to be picked up
        "PREFECT_GMAT_OUTPUT_DIR": str(root / "sweeps"),  # where event-started sweeps go
    }
    with LocalServer(base / "home", env=env) as server:
        assert server.startup_seconds is not None
        timings["server healthy"] = server.startup_seconds
        prefect = prefect_command()
        server.run([*prefect, "work-pool", "create", POOL, "--type", "process"])
        # prefect.yaml's sweep-docker needs its pool to deploy (test_docker.py runs it).
        server.run([*prefect, "work-pool", "create", DOCKER_POOL, "--type", "docker"])
        # Four engines: a retried run's two fit beside those a killed container still leases.
        server.run([*prefect, "gcl", "create", ENGINE_LIMIT, "--limit", "4"])
        server.run([*prefect, "block", "register", "-m", "prefect_gmat.blocks"])
        started = time.monotonic()
        server.run([*prefect, "--no-prompt", "deploy", "--all"], cwd=REPO)
        timings["prefect deploy --all"] = time.monotonic() - started
        worker_log = base / "worker.log"
        worker_env = {
            PATHS_SETTING: os.pathsep.join([str(root), str(REPO)]),
            HOOKS_SETTING: ALLOWED_HOOK,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])),
        }
        # Not started in the checkout: the deployment's pull step must move flow runs there.
        server.spawn(
            [*prefect, "worker", "start", "--pool", POOL], log=worker_log, cwd=root, env=worker_env
        )
        yield WorkerPlatform(server, root, worker_log, timings)
        print("\nplatform timings:", json.dumps({k: round(v, 1) for k, v in timings.items()}))
    deadline = time.monotonic() + 10
    while server.stray_pids() and time.monotonic() < deadline:
        time.sleep(0.1)  # SIGKILLed, not yet reaped
    assert not server.stray_pids()
