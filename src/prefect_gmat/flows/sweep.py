"""The sweep flow: validate, plan, one task run per point, record outcomes, archive."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_client, get_run_logger
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff
from prefect_dask.task_runners import DaskTaskRunner

from prefect_gmat.blocks.sweep_spec import SweepInputs, apply_blocks
from prefect_gmat.engine import Engine, resolve_engine
from prefect_gmat.errors import ManifestError, SweepSpecError
from prefect_gmat.events import emit_sweep_completed
from prefect_gmat.flows.naming import default_sweep_dir
from prefect_gmat.limits import engine_slots
from prefect_gmat.manifest import outcome_record
from prefect_gmat.observability import SweepProgress, publish_summary
from prefect_gmat.pool import PoolConfig, close_shared_pool, has_shared_pool, shared_pool
from prefect_gmat.runner import Outcome, RunJob, failed_outcome
from prefect_gmat.settings import get_settings
from prefect_gmat.spec import Point, SweepSpec
from prefect_gmat.sweepdir import (
    RESULTS_DIR,
    Mode,
    SweepPlan,
    lock_sweep_dir,
    outputs_intact,
    plan_sweep,
    preflight,
)
from prefect_gmat.tasks.archive import archive_sweep
from prefect_gmat.tasks.manifest import record_outcomes
from prefect_gmat.tasks.run import run_point
from prefect_gmat.validation import check_against_engine

__all__ = ["SweepOptions", "sweep_flow"]

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
    dask: str | None = None  # "local", or a scheduler address: run the tasks on dask


def _dask_runner(options: SweepOptions) -> DaskTaskRunner:
    """A dask task runner: a local cluster of one-engine processes, or a running scheduler.

    Each dask worker process runs its own engine pool, one engine per thread
    (see ``tasks.run``), so dask's worker processes must be allowed children.
    """
    import dask

    dask.config.set({"distributed.worker.daemon": False})
    if options.dask == "local":
        # Point the workers at this flow's API, so their task runs land in the same
        # server even in ephemeral mode (where each would otherwise start its own).
        with get_client(sync_client=True) as client:
            api_url = client.api_url
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": options.pool.workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                "env": {"PREFECT_API_URL": str(api_url).rstrip("/")},
            }
        )
    return DaskTaskRunner(address=options.dask)


def resolve_options(
    out: str | None,
    workers: int | None,
    timeout: float | None,
    retries: int | None,
    gmat_root: str | None,
    script: str | None,
    retry_delay: float | None = None,
    dask: str | None = None,
) -> SweepOptions:
    """Fill every unset knob from :class:`~prefect_gmat.settings.GmatSettings`."""
    _check_knobs(workers=workers, timeout=timeout, retries=retries, retry_delay=retry_delay)
    settings = get_settings()
    engine = resolve_engine(gmat_root or settings.gmat_root, prefer_pip=settings.engine == "pip")
    n_workers = workers or settings.resolved_workers()
    out_path = default_sweep_dir(settings.output_dir, script) if out is None else Path(out)
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
        retry_delay=retry_delay if retry_delay is not None else settings.retry_delay,
        max_in_flight=settings.max_in_flight or 4 * n_workers,
        dask=dask or settings.dask_address,
    )


def _check_knobs(**knobs: float | None) -> None:
    limits = {
        "workers": (1, "at least 1"),
        "timeout": (1e-9, "positive"),
        "retries": (0, "0 or more"),
        "retry_delay": (0, "0 or more"),
    }
    for name, value in knobs.items():
        low, words = limits[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise SweepSpecError(
                f"{name}={value!r} is not allowed; {name} must be {words} "
                f"(or unset, for the PREFECT_GMAT_{name.upper()} setting).",
                field=name,
                value=value,
            )
        if name in ("workers", "retries") and not float(value).is_integer():
            raise SweepSpecError(
                f"{name}={value!r} must be a whole number.", field=name, value=value
            )


def _flow_run_name() -> str:
    params = flow_run.parameters
    script = Path(params.get("script") or params.get("sweep_spec") or "sweep").stem
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
    return failed_outcome(job, "internal", f"task failed: {result!r}", time.time())


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
    progress = SweepProgress(len(plan.spec), plan.done, options.out, logger)

    dask_stack = contextlib.ExitStack()
    runner = dask_stack.enter_context(_dask_runner(options)) if options.dask else None

    def submit(point: Point, *, fresh: bool) -> None:
        job = RunJob(
            run_id=point.run_id,
            script_path=str(plan.spec.script),
            overrides=point.overrides,
            run_dir=str(options.out / f"run-{point.run_id}"),
            timeout=options.pool.timeout,
        )
        key = fingerprint(script_sha, options.engine.version, job)
        chosen = refresh if fresh else task
        future: PrefectFuture[Outcome]
        if runner is None:
            future = chosen.submit(job, options.pool, key)
        else:
            future = runner.submit(chosen, {"job": job, "pool": options.pool, "fingerprint": key})
        future.add_done_callback(lambda f: done.put((f, job, fresh)))

    def flush() -> None:
        nonlocal last_flush
        if pending:
            record_outcomes(plan.writer, list(pending), len(pending))
            pending.clear()
            progress.update(plan.done + tally.ok + tally.failed)
        last_flush = time.monotonic()

    points: Iterator[Point] = iter(plan.to_run)
    in_flight = 0
    exhausted = False
    try:
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
            cached = future.state.name == "Cached" and not was_fresh
            if cached and not outputs_intact(outcome_record(outcome)):
                logger.info("run %d: cached outputs are missing or changed; re-running", job.run_id)
                submit(Point(job.run_id, dict(job.overrides)), fresh=True)
                in_flight += 1
                continue
            tally.add(outcome)
            if not outcome.ok:
                excerpt = f"\n{outcome.log_excerpt}" if outcome.log_excerpt else ""
                logger.warning("run %d failed: %s%s", outcome.run_id, outcome.error, excerpt)
            pending.append(outcome)
            if time.monotonic() - last_flush >= _FLUSH_SECONDS:
                flush()
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM, a crash): keep what finished. Written directly,
        # not through the task, because Prefect itself may be shutting down.
        with contextlib.suppress(ManifestError):  # the original error says more
            plan.writer.append(outcome_record(o) for o in pending)
        raise
    finally:
        dask_stack.close()
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
    retry_delay: float | None = None,
    archive: bool = True,
    include_logs: bool = False,
    installation: str | None = None,
    sweep_spec: str | None = None,
    dask: str | None = None,
) -> dict[str, Any]:
    """Fly one GMAT script over a grid (or explicit samples), one task run per point.

    ``mode`` is ``new`` (continues the same sweep if ``out`` holds it, so a retried
    flow run skips finished runs, and refuses a different one), ``overwrite``
    (deletes it first), ``resume`` (runs what is not done) or ``retry_failed``.
    With ``archive`` the last task writes ``<out>/sweep_bundle.zip``. Returns a
    summary: the sweep directory, status counts, failures and the bundle.
    ``installation`` names a GmatInstallation block (instead of ``gmat_root``);
    ``sweep_spec`` names a GmatSweepSpec block that fills the parameters left unset.
    ``dask`` runs the task runs on dask.distributed: ``"local"`` (a local cluster of
    ``workers`` processes) or a scheduler address such as ``tcp://host:8786``.
    """
    logger = get_run_logger()
    if installation is not None or sweep_spec is not None:
        given = SweepInputs(script, grid, samples, out, workers, timeout, gmat_root)
        filled = apply_blocks(given, installation=installation, sweep_spec=sweep_spec)
        script, grid, samples, out, workers, timeout, gmat_root = filled
    options = resolve_options(out, workers, timeout, retries, gmat_root, script, retry_delay, dask)
    # Under dask the engines run in dask's workers; here one engine only validates.
    local_pool = options.pool if options.dask is None else replace(options.pool, workers=1)
    spec = _spec_from_parameters(script, grid, samples, mode)
    # One engine slot per engine on this machine (a remote dask cluster's run elsewhere).
    remote = options.dask not in (None, "local")
    held = contextlib.ExitStack()  # released once the sweep's engines are stopped
    held.enter_context(engine_slots(local_pool.workers if remote else options.pool.workers, logger))
    started_pool = not has_shared_pool(local_pool)
    try:
        pool = shared_pool(local_pool)
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
        with held:  # released even if stopping the engines fails
            if started_pool:
                close_shared_pool(local_pool)
    bundle = archive_sweep(str(options.out), include_logs, overwrite=True) if archive else None
    summary = {
        "out": str(options.out),
        "bundle": bundle,
        "runs": len(plan.spec),
        "ran": len(plan.to_run),
        "already_done": plan.done,
        "ok": tally.ok,
        "failed": tally.failed,
        "failures": {str(k): v for k, v in sorted(tally.failures.items())},
    }
    publish_summary(options.out, logger)
    emit_sweep_completed(summary, str(plan.spec.script))
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
