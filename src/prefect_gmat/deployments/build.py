"""Build, deploy and serve the sweep and follower deployments from Python.

``prefect.yaml`` is the CLI route (``prefect deploy --all``); these functions
are the same deployments for code: :func:`deploy_all` registers them to the
process work pool (a worker runs them), :func:`serve_all` runs them in this
process with no work pool or worker, which is handy on a laptop.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Flow, deploy, serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron

from prefect_gmat.deployments.names import (
    ENGINE_LIMIT,
    EVENT_TAGS,
    FOLLOWER_DEPLOYMENT,
    FOLLOWER_ENTRYPOINT,
    FOLLOWER_TAGS,
    JOB_ENV,
    LEO_GRID,
    LEO_SCRIPT,
    NIGHTLY_CRON,
    NIGHTLY_SLUG,
    POOL,
    SCRIPT_TRIGGERED_DEPLOYMENT,
    SWEEP_DEPLOYMENT,
    SWEEP_ENTRYPOINT,
    SWEEP_TAGS,
)
from prefect_gmat.runtime.events import (
    SCRIPT_PATH_LABEL,
    SCRIPT_UPDATED,
    SWEEP_COMPLETED,
    SWEEP_OUT_LABEL,
)
from prefect_gmat.runtime.sync import sync_value

__all__ = [
    "deploy_all",
    "ensure_engine_limit",
    "ensure_work_pool",
    "runner_deployments",
    "script_updated_trigger",
    "serve_all",
    "sweep_completed_trigger",
]

PathLike = str | os.PathLike[str]


def script_updated_trigger() -> DeploymentEventTrigger:
    """Start a sweep of the script a ``gmat.script.updated`` event names."""
    return DeploymentEventTrigger(
        name="gmat-script-updated",
        description="Sweep a script whenever it is updated.",
        match={"prefect.resource.id": "gmat.script.*"},
        expect={SCRIPT_UPDATED},
        for_each={"prefect.resource.id"},
        parameters={"script": f"{{{{ event.resource['{SCRIPT_PATH_LABEL}'] }}}}"},
    )


def sweep_completed_trigger() -> DeploymentEventTrigger:
    """Start the follower for the sweep directory a ``gmat.sweep.completed`` event names."""
    return DeploymentEventTrigger(
        name="gmat-sweep-completed",
        description="Summarise every sweep that completes.",
        match={"prefect.resource.id": "gmat.sweep.*"},
        expect={SWEEP_COMPLETED},
        for_each={"prefect.resource.id"},
        parameters={"out": f"{{{{ event.resource['{SWEEP_OUT_LABEL}'] }}}}"},
    )


def _load(checkout: Path | None, entrypoint: str) -> Flow[..., Any]:
    """The flow at ``entrypoint``: from the checkout (a worker will chdir there) or imported."""
    if checkout is not None:
        return Flow.from_source(source=str(checkout), entrypoint=entrypoint)  # type: ignore[return-value]
    path, _, name = entrypoint.partition(":")
    module = path.removeprefix("src/").removesuffix(".py").replace("/", ".")
    flow: Flow[..., Any] = getattr(importlib.import_module(module), name)
    return flow


def runner_deployments(
    checkout: PathLike | None = None, *, work_pool: str | None = POOL
) -> list[RunnerDeployment]:
    """The three deployments of ``prefect.yaml``.

    ``checkout``: the directory holding ``src/prefect_gmat`` whose code a worker
    runs (it becomes the flow runs' working directory); None serves the
    imported package from the current directory.
    """
    root = None if checkout is None else Path(checkout).expanduser().resolve()
    job_variables: dict[str, Any] = {"env": dict(JOB_ENV)} if work_pool else {}
    sweep = _load(root, SWEEP_ENTRYPOINT)
    follower = _load(root, FOLLOWER_ENTRYPOINT)
    common: dict[str, Any] = {"work_pool_name": work_pool, "job_variables": job_variables}
    built = [
        sweep.to_deployment(
            name=SWEEP_DEPLOYMENT,
            tags=SWEEP_TAGS,
            schedules=[
                Cron(
                    NIGHTLY_CRON,
                    timezone="UTC",
                    active=False,
                    slug=NIGHTLY_SLUG,
                    parameters={"script": LEO_SCRIPT, "grid": LEO_GRID},
                )
            ],
            **common,
        ),
        sweep.to_deployment(
            name=SCRIPT_TRIGGERED_DEPLOYMENT,
            tags=EVENT_TAGS,
            parameters={"grid": LEO_GRID},
            triggers=[script_updated_trigger()],
            **common,
        ),
        follower.to_deployment(
            name=FOLLOWER_DEPLOYMENT,
            tags=FOLLOWER_TAGS,
            triggers=[sweep_completed_trigger()],
            **common,
        ),
    ]
    return [sync_value(deployment) for deployment in built]


def ensure_work_pool(name: str = POOL) -> None:
    """Create the process work pool if the server does not have it yet."""
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def ensure_engine_limit(slots: int | None = None, name: str = ENGINE_LIMIT) -> None:
    """Create or resize the engine limit to ``slots`` engines at once (default: the cores)."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, slots or os.cpu_count() or 1)


def deploy_all(checkout: PathLike = ".", *, work_pool: str = POOL) -> list[UUID]:
    """Register the deployments to ``work_pool`` (created if missing) for ``checkout``'s code."""
    ensure_work_pool(work_pool)
    deployments = runner_deployments(checkout, work_pool=work_pool)
    return sync_value(
        deploy(
            *deployments,
            work_pool_name=work_pool,
            build=False,
            push=False,
            print_next_steps_message=False,
            ignore_warnings=True,
        )
    )


def serve_all() -> None:
    """Run the deployments in this process (no work pool, no worker) until interrupted."""
    serve(*runner_deployments(None, work_pool=None))
