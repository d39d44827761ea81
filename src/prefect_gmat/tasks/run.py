"""The per-point task: one Prefect task run per GMAT run, done by a warm worker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import Task, task
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import TaskRunContext
from prefect.runtime import task_run as current_task_run

from prefect_gmat.engine import resolve_engine
from prefect_gmat.errors import RunError
from prefect_gmat.pool import PoolConfig, shared_pool
from prefect_gmat.runner import Outcome, RunJob

__all__ = ["RunFailed", "run_point"]


class RunFailed(RunError):
    """A run's failure as a task exception; ``outcome`` is the record for the manifest."""

    outcome: Outcome


def _is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a worker death, a timeout or an I/O error; never a deterministic failure."""
    error = state.data
    return isinstance(error, RunFailed) and bool(error.outcome.transient)


def _cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return str(parameters["fingerprint"])


def _pool_here(pool: PoolConfig) -> PoolConfig:
    """The pool for this process: under a dask worker, one engine per dask thread.

    A dask worker on another machine finds its own engine (the flow's engine root
    is a path on the flow's machine); it must be the same GMAT version.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return pool
    root = pool.engine_root
    if not Path(root).is_dir():
        root = str(resolve_engine().root)
    return replace(pool, engine_root=root, workers=max(1, int(worker.state.nthreads)))


@task(
    name="run-point",
    task_run_name="run-{job.run_id}",
    retry_condition_fn=_is_transient,
    cache_key_fn=_cache_key,
    persist_result=True,
    result_serializer="pickle",
)
def run_point(job: RunJob, pool: PoolConfig, fingerprint: str) -> Outcome:
    """Run one grid point; raise :class:`RunFailed` (carrying its outcome) if it failed.

    ``fingerprint`` (script SHA-256, overrides, engine version, run directory) is
    the cache key: a rerun of the same sweep returns the persisted outcome.
    """
    outcome = shared_pool(_pool_here(pool)).run(job).with_attempts(current_task_run.run_count or 1)
    if not outcome.ok:
        raise RunFailed(
            f"run {job.run_id} failed: {outcome.error}",
            run_id=job.run_id,
            cause=outcome.error,
            log_excerpt=outcome.log_excerpt,
            outcome=outcome,
        )
    return outcome
