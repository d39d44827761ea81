"""What the work-pool tests share: a server with a worker, and the waits on its flow runs.

``tests/test_platform.py`` (a process pool) and ``tests/test_docker.py`` (a docker
pool) each build a :class:`WorkerPlatform` in a module fixture; the helpers here
start deployment runs on it and wait for what the worker and server record.
"""

from __future__ import annotations

import re
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

from tests.support.prefect_api import finished
from tests.support.waiting import poll
from tools.local_server import LocalServer, prefect_command


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
