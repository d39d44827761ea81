"""The sweep flow: validate, plan, one task run per point, record outcomes, archive."""

from __future__ import annotations

import hashlib
import json
import math
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from prefect_gmat.engine import Engine, resolve_engine
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.pool import PoolConfig, close_shared_pool, has_shared_pool, shared_pool
from prefect_gmat.runner import Outcome, RunJob
from prefect_gmat.settings import get_settings
from prefect_gmat.spec import Point, SweepSpec
from prefect_gmat.sweepdir import (
    Mode,
    SweepPlan,
    lock_sweep_dir,
    outputs_intact,
    plan_sweep,
    preflight,
)
from prefect_gmat.tasks.manifest import record_outcomes
from prefect_gmat.tasks.run import run_point
from prefect_gmat.validation import check_against_engine

__all__ = ["SweepOptions", "sweep_flow"]

RESULTS_DIR = ".prefect-results"
_FLUSH_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """Resolved knobs for one sweep: arguments, else settings, else defaults."""

    out: Path
    engine: Engine
    pool: PoolConfig
    retries: int
    retry_delay: float
    max_in_flight: int


def resolve_options(
    out: str | None,
    workers: int | None,
    timeout: float | None,
    retries: int | None,
    gmat_root: str | None,
    script: str | None,
) -> SweepOptions:
    """Fill every unset knob from :class:`~prefect_gmat.settings.GmatSettings`."""
    settings = get_settings()
    engine = resolve_engine(gmat_root or settings.gmat_root, prefer_pip=settings.engine == "pip")
    n_workers = workers or settings.resolved_workers()
    if out is None:
        stem = Path(script).stem if script else "sweep"
        out_path = settings.output_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    else:
        out_path = Path(out)
    return SweepOptions(
        out=out_path.expanduser().resolve(),
        engine=engine,
        pool=PoolConfig(
            engine_root=str(engine.root),
            workers=n_workers,
            timeout=timeout if timeout is not None else settings.timeout,
            recycle_after=settings.recycle_after,
        ),
        retries=retries if retries is not None else settings.retries,
        retry_delay=settings.retry_delay,
        max_in_flight=settings.max_in_flight or 4 * n_workers,
    )


def _flow_run_name() -> str:
    params = flow_run.parameters
    script = Path(params.get("script") or "sweep").stem
    grid = params.get("grid")
    samples = params.get("samples")
    if grid:
        count = math.prod(len(v) for v in grid.values())
    elif samples:
        count = len(samples)
    else:
        return f"sweep-{script}-{params.get('mode', 'new')}"
    return f"sweep-{script}-{count}pts"


def fingerprint(script_sha: str, engine_version: str, job: RunJob) -> str:
    """Cache key of a run: same script, overrides, engine and directory give the same outcome."""
    material = json.dumps(
        [script_sha, engine_version, job.run_dir, job.overrides], sort_keys=True, default=str
    )
    return "gmat-run-" + hashlib.sha256(material.encode()).hexdigest()


@dataclass
class _Tally:
    ok: int = 0
    failed: int = 0
    failures: dict[int, str] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.ok += 1
            self.failures.pop(outcome.run_id, None)
        else:
            self.failed += 1
            self.failures[outcome.run_id] = outcome.error or "failed"


def _outcome_of(future: PrefectFuture[Outcome], job: RunJob) -> Outcome:
    """The run's outcome, whether the task returned it or failed with it."""
    result = future.result(raise_on_failure=False)
    if isinstance(result, Outcome):
        return result
    carried = getattr(result, "outcome", None)
    if isinstance(carried, Outcome):
        return carried
    # The task machinery itself failed (not the run): record it as a failed run.
    now = time.time()
    return Outcome(
        run_id=job.run_id,
        status="failed",
        overrides=dict(job.overrides),
        started_at=now,
        ended_at=now,
        error=f"task failed: {result!r}",
        failure="internal",
    )


def _run_points(plan: SweepPlan, options: SweepOptions) -> _Tally:
    """Submit one task per point, at most ``max_in_flight`` at once, recording as they finish."""
    logger = get_run_logger()
    storage = options.out / RESULTS_DIR
    task = run_point.with_options(
        retries=options.retries,
        retry_delay_seconds=exponential_backoff(options.retry_delay),
        retry_jitter_factor=0.5,
        result_storage=storage,
    )
    refresh = task.with_options(refresh_cache=True)
    script_sha = plan.header["script_sha256"]
    done: queue.Queue[tuple[PrefectFuture[Outcome], RunJob, bool]] = queue.Queue()
    tally = _Tally()
    pending: list[Outcome] = []
    last_flush = time.monotonic()

    def submit(point: Point, *, fresh: bool) -> None:
        job = RunJob(
            run_id=point.run_id,
            script_path=str(plan.spec.script),
            overrides=point.overrides,
            run_dir=str(options.out / f"run-{point.run_id}"),
            timeout=options.pool.timeout,
        )
        key = fingerprint(script_sha, options.engine.version, job)
        future = (refresh if fresh else task).submit(job, options.pool, key)
        future.add_done_callback(lambda f: done.put((f, job, fresh)))

    def flush() -> None:
        nonlocal last_flush
        if pending:
            record_outcomes(plan.writer, list(pending), len(pending))
            pending.clear()
        last_flush = time.monotonic()

    points: Iterator[Point] = iter(plan.to_run)
    in_flight = 0
    exhausted = False
    while True:
        while not exhausted and in_flight < options.max_in_flight:
            point = next(points, None)
            if point is None:
                exhausted = True
                break
            submit(point, fresh=False)
            in_flight += 1
        if in_flight == 0:
            break
        try:
            future, job, was_fresh = done.get(timeout=_FLUSH_SECONDS)
        except queue.Empty:
            flush()
            continue
        in_flight -= 1
        future.wait()
        outcome = _outcome_of(future, job)
        if future.state.name == "Cached" and not was_fresh:
            record = {
                "output_paths": outcome.output_paths,
                "solver_paths": outcome.solver_paths,
                "output_sha256": outcome.output_sha256,
            }
            if not outputs_intact(record):
                logger.info("run %d: cached outputs are missing or changed; re-running", job.run_id)
                submit(Point(job.run_id, dict(job.overrides)), fresh=True)
                in_flight += 1
                continue
        tally.add(outcome)
        if not outcome.ok:
            logger.warning("run %d failed: %s", outcome.run_id, outcome.error)
        pending.append(outcome)
        if time.monotonic() - last_flush >= _FLUSH_SECONDS:
            flush()
    flush()
    return tally


@flow(name="gmat-sweep", flow_run_name=_flow_run_name, log_prints=False)
def sweep_flow(
    script: str | None = None,
    grid: dict[str, list[float | int | str | bool]] | None = None,
    samples: list[dict[str, float | int | str | bool]] | None = None,
    out: str | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    mode: Literal["new", "resume", "retry_failed", "overwrite"] = "new",
    gmat_root: str | None = None,
) -> dict[str, Any]:
    """Fly one GMAT script over a grid (or explicit samples), one task run per point.

    ``mode`` is ``new`` (refuses a directory that holds a sweep), ``overwrite``
    (deletes it first), ``resume`` (runs what is not done) or ``retry_failed``.
    Returns a summary: the sweep directory and status counts.
    """
    logger = get_run_logger()
    options = resolve_options(out, workers, timeout, retries, gmat_root, script)
    spec = _spec_from_parameters(script, grid, samples, mode)
    started_pool = not has_shared_pool(options.pool)
    try:
        pool = shared_pool(options.pool)
        if spec is not None:
            preflight(options.out, spec, mode)
            check_against_engine(spec, pool)  # before anything is written or run
        with lock_sweep_dir(options.out):
            plan = plan_sweep(options.out, spec, options.engine, mode)
            logger.info(
                "sweep %s: %d runs, %d already done, %d to run on %d workers (engine %s, %s)",
                options.out,
                len(plan.spec),
                plan.done,
                len(plan.to_run),
                options.pool.workers,
                options.engine.version,
                options.engine.source,
            )
            tally = _run_points(plan, options)
    finally:
        if started_pool:
            close_shared_pool(options.pool)
    summary = {
        "out": str(options.out),
        "runs": len(plan.spec),
        "ran": len(plan.to_run),
        "already_done": plan.done,
        "ok": tally.ok,
        "failed": tally.failed,
        "failures": {str(k): v for k, v in sorted(tally.failures.items())},
    }
    if tally.failed:
        logger.warning("%d of %d runs failed; see %s", tally.failed, len(plan.to_run), options.out)
    return summary


def _spec_from_parameters(
    script: str | None,
    grid: dict[str, list[Any]] | None,
    samples: list[dict[str, Any]] | None,
    mode: Mode,
) -> SweepSpec | None:
    if grid is not None and samples is not None:
        raise SweepSpecError("pass grid or samples, not both", field="grid")
    if script is None:
        if mode in ("resume", "retry_failed"):
            return None
        raise SweepSpecError(
            "script is required to start a sweep; pass the path of a GMAT .script.", field="script"
        )
    if grid is not None:
        return SweepSpec.from_grid(script, grid)
    if samples is not None:
        return SweepSpec.from_samples(script, samples)
    if mode in ("resume", "retry_failed"):
        return None
    raise SweepSpecError(
        "pass grid= (values per field) or samples= (one mapping per run) to start a sweep.",
        field="grid",
    )
