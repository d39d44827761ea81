"""The sweep flow: validate, plan, one task run per point, record outcomes, archive."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import queue
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Completed
from prefect.utilities.annotations import quote

from prefect_gmat.blocks.sweep_spec import apply_blocks
from prefect_gmat.core.layout import RESULTS_DIR
from prefect_gmat.core.records import Outcome, RunJob
from prefect_gmat.engine.carry import land
from prefect_gmat.engine.pool import (
    close_shared_pool,
    has_shared_pool,
    shared_pool,
    stop_early_runs,
)
from prefect_gmat.engine.run import failed_outcome
from prefect_gmat.errors import FailureBudgetError, ManifestError
from prefect_gmat.runtime import progress
from prefect_gmat.runtime.dask_logs import drain_worker_logs
from prefect_gmat.runtime.events import emit_sweep_completed
from prefect_gmat.runtime.heartbeat import stop_heartbeat
from prefect_gmat.runtime.limits import engine_slots
from prefect_gmat.runtime.naming import default_sweep_dir
from prefect_gmat.runtime.observability import SweepProgress, publish_summary
from prefect_gmat.runtime.ui_plots import DrawnPlots, plots_on, warm_plots
from prefect_gmat.settings import get_settings
from prefect_gmat.study.batching import (
    PER_DASK_TASK_RUN_SECONDS,
    PER_TASK_RUN_CPU_SECONDS,
    BatchSizer,
    flush_interval,
)
from prefect_gmat.study.confine import Confinement
from prefect_gmat.study.convergence import ConvergingStudy, study_so_far
from prefect_gmat.study.designs import LatinHypercubeDesign, MonteCarloDesign
from prefect_gmat.study.frame import ReportFrames, ReportPrefetch
from prefect_gmat.study.manifest import outcome_record
from prefect_gmat.study.request import SweepOptions, SweepRequest
from prefect_gmat.study.spec import Point
from prefect_gmat.study.sweepdir import SweepPlan, lock_sweep_dir, plan_sweep, preflight
from prefect_gmat.study.validation import check_against_engine
from prefect_gmat.tasks.archive import archive_sweep
from prefect_gmat.tasks.manifest import record_outcomes
from prefect_gmat.tasks.run import run_points

if TYPE_CHECKING:
    from prefect_dask.task_runners import DaskTaskRunner

__all__ = ["SweepOptions", "sweep_flow"]

#: Per sweep directory, called with its reports once every run is recorded: ``sweep()``
#: builds its frame from them then, while the flow archives, draws and completes.
#: (A plain dict, not a context variable: dask's task runner pickles the context.)
on_sweep_written: dict[str, Callable[[ReportFrames], None]] = {}
#: Work left (engine-seconds per engine) when the end-of-sweep preparations start:
#: about the time matplotlib's import takes, so the plots do not wait for it.
_NEARLY_DONE_SECONDS = 2.0


def _dask_runner(options: SweepOptions) -> DaskTaskRunner:
    """A dask task runner: a local cluster, a running scheduler, or a cluster class to start.

    Each dask worker process runs its own engine pool, one engine per thread
    (see ``tasks.run``); engines are plain subprocesses, so dask's daemonic
    worker processes may start them as dask starts its workers. Imported here:
    prefect-dask brings dask.distributed, 0.7 s before a local sweep's first run.
    """
    from prefect_dask.task_runners import DaskTaskRunner

    if options.dask == "local":
        # One dask worker in this process, a thread per engine (the engines are their own
        # processes anyway). Worker processes would be started by multiprocessing's spawn,
        # which re-runs the caller's __main__: an unguarded script would sweep again in each.
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": 1,
                "threads_per_worker": options.pool.workers,
                "processes": False,
                "dashboard_address": None,
            }
        )
    if "://" in str(options.dask):
        return DaskTaskRunner(address=options.dask)
    # A cluster class to start for the sweep (dask_jobqueue.SLURMCluster, ...).
    return DaskTaskRunner(
        cluster_class=options.dask, cluster_kwargs=get_settings().dask_cluster_kwargs
    )


def _deployed() -> bool:
    """Whether a deployment started this flow run (its parameters then came from outside).

    Read from the run's context: ``prefect.runtime.deployment`` asks the API again.
    """
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def _flow_run_name() -> str:
    params = flow_run.parameters
    script = Path(params.get("script") or params.get("sweep_spec") or "sweep").stem
    grid = params.get("grid")
    samples = params.get("samples")
    design = params.get("design")
    if grid:
        count = math.prod(len(v) for v in grid.values())
    elif samples:
        count = len(samples)
    elif design:
        count = design["n"] if isinstance(design, dict) else design.n
    else:
        return f"sweep-{script}-{params.get('mode', 'new')}"
    return f"sweep-{script}-{count}pts"


def _budget_error(out: Path, tally: _Tally, budget: int | None, runs: int) -> FailureBudgetError:
    """The error of a sweep stopped by its failure budget: how many failed, the budget, the
    most common causes, and how to go on."""
    causes = tally.causes.most_common(3)
    shown = "; ".join(f"{count} x {cause}" for cause, count in causes)
    return FailureBudgetError(
        f"{tally.failed} runs failed, more than max_failures allows ({budget} of the sweep's "
        f"{runs} runs), so no new run was started; runs in flight finished and every "
        f"finished run is recorded in {out}. Most common causes: {shown}. To go on, resume "
        "the sweep with a larger max_failures, or none.",
        out=str(out),
        failed=tally.failed,
        budget=budget,
        causes=causes,
    )


def fingerprint(script_sha: str, engine_version: str, job: RunJob) -> str:
    """Cache key of a run: same script, overrides, engine and directory give the same outcome."""
    hook = [job.postprocess] if job.postprocess else []  # runs without one keep their keys
    material = json.dumps(
        [script_sha, engine_version, job.run_dir, job.overrides, *hook],
        sort_keys=True,
        default=str,
    )
    return "gmat-run-" + hashlib.sha256(material.encode()).hexdigest()


@dataclass
class _Tally:
    ok: int = 0
    failed: int = 0
    failures: dict[int, str] = field(default_factory=dict)
    causes: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.ok += 1
            self.failures.pop(outcome.run_id, None)
        else:
            self.failed += 1
            self.failures[outcome.run_id] = outcome.error or "failed"
            self.causes[_cause(outcome)] += 1


def _cause(outcome: Outcome) -> str:
    """A failure's cause in one line: GMAT's own words where its log says more than the
    run's error ("Position vector is inside central body", not "RunScript returned 0")."""
    for line in (outcome.log_excerpt or "").splitlines():
        if line.strip():
            return line.strip()
    return (outcome.error or "failed").splitlines()[0]


def _outcomes_of(future: PrefectFuture[list[Outcome]], jobs: list[RunJob]) -> list[Outcome]:
    """The points' outcomes, whether the task returned them or failed with them."""
    result = future.result(raise_on_failure=False)
    if isinstance(result, list) and all(isinstance(o, Outcome) for o in result):
        return result
    carried = getattr(result, "outcomes", None)
    if isinstance(carried, list):
        return carried
    # The task machinery itself failed (not the runs): record each point as failed.
    return [failed_outcome(j, "internal", f"task failed: {result!r}", time.time()) for j in jobs]


def _engines(runner: DaskTaskRunner | None, options: SweepOptions) -> int:
    """Engines the sweep runs on: the pool's, or one per thread of the dask cluster."""
    if runner is None:
        return options.pool.workers
    client = runner._client
    try:
        threads = client.nthreads() if client else {}  # type: ignore[no-untyped-call]
        return max(1, sum(threads.values())) if threads else options.pool.workers
    except Exception:  # an unknown cluster size only makes batches smaller
        return options.pool.workers


class _Dispatcher:
    """Runs a plan's points as task runs and records every point's outcome as it comes back.

    Steps: :meth:`fill` submits task runs (one point each, or a batch sized by
    :class:`BatchSizer`) until ``max_in_flight`` are out; :meth:`collect` takes
    one finished task run's outcomes; :meth:`record` tallies them and appends
    them to the manifest in fsynced batches (:meth:`flush`, as often as
    :func:`~prefect_gmat.study.batching.flush_interval` says), updating the UI's
    progress artifact and the terminal's progress line. On any interruption what
    finished is still written.
    """

    def __init__(
        self,
        plan: SweepPlan,
        options: SweepOptions,
        on_nearly_done: Callable[[], None] = lambda: None,
        budget: int | None = None,
        tally: _Tally | None = None,
        prefetch: ReportPrefetch | None = None,
    ) -> None:
        self.plan = plan
        self.options = options
        self.budget = budget  # failures allowed; once more fail, no new run starts
        self._on_nearly_done = on_nearly_done
        self._prefetch = prefetch  # reads the good runs' reports as they are recorded
        self.logger = get_run_logger()
        self.tally = tally if tally is not None else _Tally()  # a study's rounds share one
        self._counted_before = self.tally.ok + self.tally.failed
        self._points: Iterator[Point] = iter(plan.to_run)
        self._remaining = len(plan.to_run)
        self._done: queue.Queue[tuple[PrefectFuture[list[Outcome]], list[RunJob]]] = queue.Queue()
        self._in_flight = 0
        self._points_in_flight = 0
        self._pending: list[Outcome] = []
        self._started = self._last_flush = time.monotonic()
        self._progress = SweepProgress(len(plan.spec), plan.done, options.out, self.logger)
        self._stack = contextlib.ExitStack()
        self._runner = self._stack.enter_context(_dask_runner(options)) if options.dask else None
        self.sizer = BatchSizer(
            options.points_per_task,
            len(plan.to_run),
            _engines(self._runner, options),
            PER_DASK_TASK_RUN_SECONDS if options.dask else PER_TASK_RUN_CPU_SECONDS,
        )
        self._task = run_points.with_options(retries=0)
        self._script_sha = plan.header["script_sha256"]
        self._results_dir = str(options.out / RESULTS_DIR)

    def run(self) -> _Tally:
        try:
            while self.fill() or self._in_flight:
                self.collect()
            self.drain_remote_logs()
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM, a crash): keep what finished. Written directly,
            # not through the task, because Prefect itself may be shutting down.
            with contextlib.suppress(ManifestError):  # the original error says more
                self.plan.writer.append(outcome_record(o) for o in self._pending)
            raise
        finally:
            self._stack.close()
        self.flush()
        return self.tally

    def drain_remote_logs(self) -> None:
        """Dask workers in processes of their own send their task runs' log lines now,
        while the flow's server (perhaps a temporary one) still answers them."""
        if self._runner is not None and self.options.dask != "local" and self._runner._client:
            drain_worker_logs(self._runner._client, self.logger)

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.tally.failed > self.budget

    def fill(self) -> bool:
        """Submit task runs until enough are in flight; False once every point is out
        (or more runs failed than the budget allows: then no new run starts)."""
        while self._in_flight < self.options.max_in_flight:
            if self.over_budget:
                return False
            if self.sizer.measuring and self._in_flight >= self.sizer.engines:
                return True  # one probe per engine until run times are known
            size = self.sizer.next_size(self._remaining)
            if self.budget is not None:
                size = min(size, self._budget_room())
                if size < 1 and self._remaining:
                    return True  # near the budget: wait for what is in flight
            points = list(itertools.islice(self._points, size))
            if not points:
                return False
            self._remaining -= len(points)
            self.submit(points)
        return True

    def _budget_room(self) -> int:
        """Points that may be in flight so that, if all of them fail, the budget is exceeded
        by at most one run per engine (never fewer than one point per engine)."""
        assert self.budget is not None
        room = self.budget + 1 - self.tally.failed - self._points_in_flight
        return max(room, self.sizer.engines - self._points_in_flight)

    def submit(self, points: list[Point]) -> None:
        jobs = self.plan.jobs(points, self.options.pool.timeout)
        # Quoted for the thread runner: Prefect would otherwise walk every job looking for
        # futures (CPU the engines need). Not under dask, which unpacks a quote (a tuple).
        wrap: Callable[[Any], Any] = quote if self._runner is None else (lambda value: value)
        parameters: dict[str, Any] = {
            "jobs": wrap(jobs),
            "pool": wrap(self.options.pool),
            "fingerprints": wrap(
                [fingerprint(self._script_sha, self.options.engine.version, job) for job in jobs]
            ),
            "retries": self.options.retries,
            "retry_delay": self.options.retry_delay,
            "results_dir": self._results_dir,
        }
        future: PrefectFuture[list[Outcome]]
        if self._runner is None:
            future = self._task.submit(**parameters)
        else:
            future = self._runner.submit(self._task, parameters)
        future.add_done_callback(lambda f: self._done.put((f, jobs)))
        self._in_flight += 1
        self._points_in_flight += len(jobs)

    def collect(self) -> None:
        """Wait for one task run (flushing while waiting) and record its points."""
        try:
            future, jobs = self._done.get(timeout=self._flush_interval())
        except queue.Empty:
            self.flush()
            return
        self._in_flight -= 1
        self._points_in_flight -= len(jobs)
        if self._nearly_done():
            self._on_nearly_done()  # once
            self._on_nearly_done = lambda: None
        future.wait()
        outcomes = [land(o) for o in _outcomes_of(future, jobs)]
        self.sizer.observe(outcomes)
        self.record(outcomes)

    def record(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.tally.add(outcome)
            if not outcome.ok:
                excerpt = f"\n{outcome.log_excerpt}" if outcome.log_excerpt else ""
                self.logger.warning("run %d failed: %s%s", outcome.run_id, outcome.error, excerpt)
        self._pending.extend(outcomes)
        if self._prefetch is not None:
            self._prefetch.add(outcomes)
        progress.report(self._finished, len(self.plan.spec), self.tally.ok, self.tally.failed)
        if time.monotonic() - self._last_flush >= self._flush_interval():
            self.flush()

    def _nearly_done(self) -> bool:
        """Every point is out and what is in flight ends within ``_NEARLY_DONE_SECONDS``
        (or an engine is already free)."""
        if self._remaining > 0:
            return False
        run = self.sizer.typical_run_seconds or 0.0
        left = self._points_in_flight * run / self.sizer.engines
        return left <= _NEARLY_DONE_SECONDS or self._in_flight < self.sizer.engines

    @property
    def _finished(self) -> int:
        return self.plan.done + self.tally.ok + self.tally.failed - self._counted_before

    def _flush_interval(self) -> float:
        return flush_interval(time.monotonic() - self._started)

    def flush(self) -> None:
        if self._pending:
            pending = cast(list[Outcome], quote(list(self._pending)))  # unwrapped by Prefect
            record_outcomes(self.plan.writer, pending, len(self._pending))
            self._pending.clear()
            self._progress.update(self._finished)
        self._last_flush = time.monotonic()


@flow(name="gmat-sweep", flow_run_name=_flow_run_name, log_prints=False)
def sweep_flow(
    script: str | None = None,
    grid: dict[str, list[float | int | str | bool]] | None = None,
    samples: list[dict[str, float | int | str | bool]] | None = None,
    out: str | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    mode: Literal["new", "resume", "retry_failed", "overwrite", "extend"] = "new",
    gmat_root: str | None = None,
    retry_delay: float | None = None,
    archive: bool = True,
    include_logs: bool = False,
    installation: str | None = None,
    sweep_spec: str | None = None,
    dask: str | None = None,
    points_per_task: int | Literal["auto"] | None = None,
    design: MonteCarloDesign | LatinHypercubeDesign | None = None,
    samples_file: str | None = None,
    postprocess: str | None = None,
    extend_to: int | None = None,
    allow_script_drift: bool = False,
    plot_metric: str | None = None,
    max_failures: int | float | None = None,
    until: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fly one GMAT script over a grid, samples or a study design, as Prefect task runs.

    Every input is checked against the engine before anything is written or run.
    Returns a summary: the sweep directory, status counts, failures and the bundle.

    Args:
        script: Path of the GMAT .script on the worker machine, e.g. `/data/leo.script`
            (a relative path is taken from the flow run's working directory). Leave empty
            to resume a sweep: its manifest names the script.
        grid: Values per field; the sweep runs their cartesian product, e.g.
            `{"Sat.SMA": [7000, 7100, 7200], "Sat.ECC": [0.001, 0.01]}`. Give one of grid,
            samples, samples_file or design.
        samples: Explicit points, one mapping per run, e.g.
            `[{"Sat.SMA": 7000, "Sat.INC": 28.5}, {"Sat.SMA": 7250, "Sat.INC": 51.6}]`.
        out: The sweep directory on the worker (`manifest.jsonl`, `run-<id>/` Parquet files,
            `sweep_bundle.zip`), e.g. `/data/sweeps/leo-sma`. Empty: a new directory under
            the PREFECT_GMAT_OUTPUT_DIR setting, named after the script and this flow run.
        workers: Engine processes, each running one GMAT run at a time, e.g. `4`. Empty:
            one per core (the PREFECT_GMAT_WORKERS setting).
        timeout: Seconds one run may take before its engine is killed and the run fails,
            e.g. `600`. Empty: the PREFECT_GMAT_TIMEOUT setting.
        retries: Retries of a run that failed transiently (timeout, crashed engine, I/O),
            e.g. `2`; a run that fails the same way every time is not retried.
        mode: `new` continues this same sweep if `out` holds it and refuses a different
            one; `overwrite` deletes the sweep in `out` first; `resume` runs what is not
            done; `retry_failed` re-runs failed runs; `extend` grows the Monte Carlo study
            in `out` to `extend_to` runs.
        gmat_root: A desktop GMAT install directory (holding bin/ and api/), e.g.
            `/opt/gmat-R2026a`. Empty: GMAT_ROOT, an installed GMAT, else the pip engine.
        retry_delay: Seconds before the first retry of a run, doubling each retry
            (jittered), e.g. `1.0`.
        archive: Write `<out>/sweep_bundle.zip` at the end: every output with its
            SHA-256, verified, ready to hand on.
        include_logs: Put each run's worker.log (with GMAT's own log) into the bundle.
        installation: Name of a GMAT Installation block to run with, e.g. `lab-gmat`
            (instead of gmat_root).
        sweep_spec: Name of a GMAT Sweep Spec block, e.g. `leo-sma`; it fills every
            parameter left empty here.
        dask: Run the task runs on dask.distributed: `local` (a cluster in this process,
            one thread per engine) or a scheduler address, e.g. `tcp://10.0.0.5:8786`.
        points_per_task: Points per task run: `auto` batches many short runs (one task
            run per point otherwise), or a number, e.g. `1` for one task run per point.
        design: A Monte Carlo or Latin hypercube study, e.g. `{"kind": "monte_carlo",
            "n": 200, "seed": 42, "perturb": {"Sat.SMA": {"dist": "normal", "mu": 7000,
            "sigma": 5}}}`. Without a seed one is drawn and recorded in the manifest.
        samples_file: A CSV or Parquet file on the worker, one column per field and one
            row per run, e.g. `/data/dispersions.csv`.
        postprocess: A hook called after each good run, `package.module:function`, e.g.
            `mypkg.hooks:summarise`; it returns `{key: path}` of the files it wrote.
        extend_to: With mode `extend`: the study's new total number of runs, e.g. `400`.
        allow_script_drift: With mode `extend`: grow the study even though its script
            changed since it ran (the manifest records which runs each script made).
        plot_metric: The report column the flow run's plot artifacts show, e.g.
            `Sat.Earth.SMA`; `auto` picks one, `off` publishes none. Empty: the
            PREFECT_GMAT_PLOT_METRIC setting.
        max_failures: Stop starting runs once more runs have failed than this: a count,
            e.g. `20`, or a fraction of the sweep's runs, e.g. `0.05`. Runs in flight
            finish and are recorded, and the flow run fails naming the causes; `resume`
            goes on. Empty: run every point whatever fails.
        until: Stop a Monte Carlo design early once it has converged: the report column
            and a target for the standard error of the mean of its final value per ok
            run, `se` (in the column's unit) or `rel_se` (over the mean's magnitude), e.g.
            `{"metric": "Sat.Earth.SMA", "se": 0.5}`. The design's `n` is then the cap;
            the study grows in rounds and records each round's statistic.
    """
    parameters = dict(locals())  # every parameter by name, as given
    logger = get_run_logger()
    request = SweepRequest.from_flow_parameters(parameters)
    if installation is not None or sweep_spec is not None:
        request = apply_blocks(request, installation=installation, sweep_spec=sweep_spec)
    # A worker's flow run takes its parameters from outside: confined before anything is
    # read for the spec, written or run (the API's and the CLI's are the operator's own).
    fence = Confinement.from_settings() if _deployed() else Confinement.unconfined()
    fence.check_request(request)
    knobs = request.knobs
    options = request.resolve(default_sweep_dir)
    fence.check_out(options.out, request)
    # Under dask the engines run in dask's workers; here one engine only validates.
    local_pool = options.pool if options.dask is None else replace(options.pool, workers=1)
    spec = request.spec(options.out, note=logger.warning)
    fence.check_spec(spec)
    # One engine slot per engine on this machine (a remote dask cluster's run elsewhere).
    remote = options.dask not in (None, "local")
    held = contextlib.ExitStack()  # released once the sweep's engines are stopped
    slots = local_pool.workers if remote else options.pool.workers
    held.enter_context(engine_slots(slots, logger, on_wait=lambda: stop_early_runs(local_pool)))
    started_pool = not has_shared_pool(local_pool)
    # The frame at the end (the caller's, the plots') is read as the runs are recorded.
    wanted = plots_on(knobs.plot_metric) or str(options.out) in on_sweep_written
    prefetch = ReportPrefetch() if wanted else None
    try:
        pool = shared_pool(local_pool)
        goal, engines = request.points.target, options.pool.workers
        now = spec  # a converging study is checked and planned at its current round
        if goal is not None and spec is not None:
            now = study_so_far(options.out, spec, goal, engines, request.mode)
        if now is not None:
            preflight(options.out, now, request.mode)
            check_against_engine(now, pool)  # before anything is written or run
        with lock_sweep_dir(options.out):
            growing: ConvergingStudy | None = None
            if goal is not None and spec is not None:
                growing = ConvergingStudy(options.out, spec, goal, options.engine, engines)
                first = growing.first_plan(request.mode)
            else:
                first = plan_sweep(options.out, spec, options.engine, request.mode)
                growing = ConvergingStudy.resumed(options.out, first, options.engine, engines)
            plan: SweepPlan | None = first
            last, tally = first, _Tally()
            budget = knobs.failure_budget(growing.cap if growing else len(first.spec))
            while plan is not None:
                last = plan
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
                # matplotlib (0.75 s of CPU) is imported while the last second of runs goes on.
                warm = lambda: warm_plots(knobs.plot_metric)  # noqa: E731
                dispatcher = _Dispatcher(plan, options, warm, budget, tally, prefetch)
                dispatcher.run()
                if dispatcher.over_budget or growing is None:
                    break
                plan = growing.next_plan()
        if pool.taken_over:  # why the first runs' times precede this flow run's start
            logger.info(
                "%d runs began on the engines while Prefect started; their task runs took "
                "them over (each ran once)",
                pool.taken_over,
            )
    finally:
        if prefetch is not None:  # what it has read is kept; the rest is read at the end
            prefetch.close()
        with held:  # released even if stopping the engines fails
            if started_pool:
                close_shared_pool(local_pool)
    if dispatcher.over_budget:
        publish_summary(options.out, logger)
        raise _budget_error(options.out, tally, budget, len(last.spec))
    plan = last
    # Every run is recorded: what follows overlaps. The caller's frame and the plots share
    # one read of the reports, each in its own thread, while the archive is written here;
    # the heartbeat thread stops now, not when the flow returns (runtime/heartbeat.py).
    reports = ReportFrames.of(options.out, prefetch)
    if (written := on_sweep_written.pop(str(options.out), None)) is not None:
        written(reports)
    plots = DrawnPlots(options.out, knobs.plot_metric, reports)
    stop_heartbeat()
    bundle = (
        # the script the runs used: where the manifest says, or found by hash, or given
        archive_sweep(
            str(options.out), knobs.include_logs, overwrite=True, script=str(plan.spec.script)
        )
        if knobs.archive
        else None
    )
    summary = {
        "out": str(options.out),
        "bundle": bundle,
        "runs": len(plan.spec),
        "ran": tally.ok + tally.failed,
        "already_done": first.done,
        "ok": tally.ok,
        "failed": tally.failed,
        "failures": {str(k): v for k, v in sorted(tally.failures.items())},
    }
    if growing is not None:
        summary["until"] = growing.outcome
    publish_summary(options.out, logger)
    plots.publish(logger)  # never fails the sweep
    emit_sweep_completed(summary, str(plan.spec.script))
    if tally.failed:
        logger.warning("%d of %d runs failed; see %s", tally.failed, len(plan.to_run), options.out)
    if growing is not None:  # the flow run's state says whether the study converged
        logger.info("%s", growing.message())
        return Completed(message=growing.message(), data=summary)  # type: ignore[return-value]
    return summary
