"""What a Prefect server recorded of a flow run: its artifacts, logs and task runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, Log, TaskRun
from prefect.client.schemas.sorting import FlowRunSort

from tests.support.waiting import poll


def flow_run_artifacts(client: SyncPrefectClient, run_id: UUID) -> list[Artifact]:
    return client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )


def run_artifacts(client: SyncPrefectClient, run_id: UUID) -> dict[str, Any]:
    """The flow run's artifacts by key."""
    return {a.key: a for a in flow_run_artifacts(client, run_id) if a.key}


def run_logs(client: SyncPrefectClient, run_id: UUID) -> list[Log]:
    return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))


def logs_once(
    client: SyncPrefectClient,
    run_id: UUID,
    ready: Callable[[list[Log]], bool],
    what: str,
    *,
    timeout: float = 30,
    diagnostics: Callable[[], str] | None = None,
) -> list[Log]:
    """The flow run's logs, once ``ready`` says what the test needs has arrived.

    A flow run's process ships its last logs in batches, in any order, after its final
    state is set: they reach the server a moment after the run shows Completed.
    """

    def probe() -> list[Log] | None:
        logs = run_logs(client, run_id)
        return logs if ready(logs) else None

    return poll(what, probe, timeout=timeout, interval=0.2, diagnostics=diagnostics)


def latest_flow_run(client: SyncPrefectClient, name: str) -> FlowRun:
    """The flow run called ``name`` that started last (a sweep's is ``sweep-<script>-<N>pts``)."""
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])),
        sort=FlowRunSort.START_TIME_DESC,
        limit=1,
    )
    assert runs, f"no flow run {name}"
    return runs[0]


def task_runs_of(client: SyncPrefectClient, flow_run_name: str) -> list[TaskRun]:
    """The task runs of the latest flow run called ``flow_run_name``."""
    flow_run = latest_flow_run(client, flow_run_name)
    return client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
    )


def finished(client: SyncPrefectClient, run_id: UUID) -> FlowRun | None:
    """The flow run, once its state is final; None before."""
    run = client.read_flow_run(run_id)
    return run if run.state is not None and run.state.is_final() else None
