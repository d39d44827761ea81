"""The run task: one Prefect task run for one point, or for a batch of short ones.

Each point keeps its own cache entry: its outcome is persisted under its own
fingerprint in the sweep's result storage, so a rerun skips a finished point
whatever batch it falls in (and whatever batch ran it before), unless its
outputs are gone or changed. Each point is its own retry unit (see
:func:`prefect_gmat.study.batching.run_with_retries`), so the task run itself is not
retried by Prefect.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import LocalFileSystem
from prefect.results import ResultStore
from prefect.runtime import task_run as current_task_run
from prefect.serializers import PickleSerializer
from prefect.utilities.annotations import BaseAnnotation

from prefect_gmat.core.records import Outcome, RunJob
from prefect_gmat.engine.carry import can_write, pack, remove_scratch, scratch_jobs
from prefect_gmat.engine.install import resolve_engine
from prefect_gmat.engine.pool import PoolConfig, shared_pool
from prefect_gmat.errors import RunError
from prefect_gmat.study.batching import batch_name, run_with_retries
from prefect_gmat.study.manifest import outcome_record
from prefect_gmat.study.sweepdir import outputs_intact

__all__ = ["PointsFailed", "run_points"]

logger = logging.getLogger(__name__)


class PointsFailed(RunError):
    """Some points of a task run failed; ``outcomes`` has every point's record."""

    outcomes: list[Outcome]


def _pool_here(pool: PoolConfig) -> PoolConfig:
    """The pool for this process: under a dask worker, one engine per dask thread.

    A dask worker on another machine finds its own engine (the flow's engine root
    is a path on the flow's machine); it must be the same GMAT version.
    """
    if "distributed" not in sys.modules:
        return pool  # not in a dask worker (and importing dask here costs 0.7 s)
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return pool
    root = pool.engine_root
    if not Path(root).is_dir():
        root = str(resolve_engine().root)
    return replace(pool, engine_root=root, workers=max(1, int(worker.state.nthreads)))


def _task_run_name() -> str:
    jobs = current_task_run.parameters["jobs"]
    if isinstance(jobs, BaseAnnotation):  # the flow quotes its parameters (see submit)
        jobs = jobs.unwrap()
    return batch_name([job.run_id for job in jobs])


def _store(results_dir: str | None) -> ResultStore | None:
    """The per-point cache in the sweep's results directory (None where it is not reachable)."""
    if results_dir is None or not can_write(results_dir):
        return None
    return ResultStore(
        result_storage=LocalFileSystem(basepath=results_dir), serializer=PickleSerializer()
    )


def _cached(store: ResultStore | None, key: str) -> Outcome | None:
    """A point's persisted outcome, if it is there and its outputs are intact."""
    if store is None:
        return None
    try:
        if not store.exists(key):
            return None
        outcome = store.read(key).result
    except Exception:  # an unreadable entry is a miss, never a failure
        return None
    if not isinstance(outcome, Outcome) or not outputs_intact(outcome_record(outcome)):
        return None
    return outcome


@task(name="run-points", task_run_name=_task_run_name, cache_policy=NO_CACHE, persist_result=False)
def run_points(
    jobs: list[RunJob],
    pool: PoolConfig,
    fingerprints: list[str],
    retries: int = 0,
    retry_delay: float = 1.0,
    results_dir: str | None = None,
) -> list[Outcome]:
    """Run ``jobs`` on this process's warm engines, in order; skip points already done.

    ``fingerprints`` (script SHA-256, overrides, engine version, run directory)
    are the points' cache keys. Raises :class:`PointsFailed` naming the failed
    points (the task run's state message) and carrying every point's outcome.
    """
    store = _store(results_dir)
    keys = dict(zip((job.run_id for job in jobs), fingerprints, strict=True))
    done = {job.run_id: o for job in jobs if (o := _cached(store, keys[job.run_id])) is not None}
    todo = [job for job in jobs if job.run_id not in done]
    if todo:
        engines = shared_pool(_pool_here(pool))
        home = {job.run_id: job.run_dir for job in todo}
        scratch = None
        if not can_write(Path(todo[0].run_dir).parent):  # no shared storage: carry files back
            todo, scratch = scratch_jobs(todo)
        here = {job.run_id: job.run_dir for job in todo}
        try:
            for outcome in run_with_retries(engines.run_batch, todo, retries, retry_delay):
                if scratch is not None:
                    outcome = pack(outcome, here[outcome.run_id], home[outcome.run_id])
                done[outcome.run_id] = outcome
                if outcome.ok and store is not None:
                    try:
                        store.write(outcome, key=keys[outcome.run_id])
                    except Exception as exc:  # the manifest is the record; the cache a shortcut
                        logger.warning("run %d: outcome not cached (%s)", outcome.run_id, exc)
        finally:
            if scratch is not None:
                remove_scratch(scratch)
    outcomes = [done[job.run_id] for job in jobs]
    failed = [o for o in outcomes if not o.ok]
    if failed:
        causes = "; ".join(f"run {o.run_id}: {o.error}" for o in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        raise PointsFailed(
            f"{len(failed)} of {len(outcomes)} runs failed: {causes}{more}",
            run_id=failed[0].run_id,
            cause=failed[0].error,
            log_excerpt=failed[0].log_excerpt,
            outcomes=outcomes,
        )
    return outcomes
