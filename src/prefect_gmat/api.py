"""The Python API: ``sweep``, ``resume``, ``retry_failed``, ``load_sweep``, and the designs
``monte_carlo``, ``latin_hypercube``, ``explicit`` (samples from a file) and ``extend``.

Each call checks its input (the script and every swept value against the
engine, too) before Prefect starts, with the engines and Prefect's server
warming up meanwhile, runs the sweep flow, and returns the per-run frame read
back from the sweep directory. Each builds one
:class:`~prefect_gmat.study.request.SweepRequest`; the knobs they share are
:class:`~prefect_gmat.study.request.Knobs`, typed here as :class:`SweepKnobs`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal, TypedDict, Unpack, cast

import pandas as pd

from prefect_gmat.engine.pool import PoolConfig, close_shared_pool, shared_pool
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.runtime.ephemeral import EarlyServer
from prefect_gmat.runtime.imports import BackgroundImport
from prefect_gmat.runtime.progress import terminal_progress
from prefect_gmat.runtime.quiet import quiet_prefect, settle_prefect_telemetry
from prefect_gmat.study.convergence import study_so_far
from prefect_gmat.study.early_start import EarlyStart
from prefect_gmat.study.frame import ReportFrames, aggregate
from prefect_gmat.study.manifest import read_manifest
from prefect_gmat.study.plan import SweepCost, plan_request
from prefect_gmat.study.request import Knobs, Points, StudyDesign, SweepRequest
from prefect_gmat.study.sweepdir import new_sweep_dir, preflight
from prefect_gmat.study.validation import check_against_engine

__all__ = [
    "SweepKnobs",
    "explicit",
    "extend",
    "latin_hypercube",
    "load_sweep",
    "monte_carlo",
    "plan",
    "resume",
    "retry_failed",
    "run_request",
    "sweep",
]

PathLike = str | os.PathLike[str]
_log = logging.getLogger(__name__)
#: Knobs that shape what a call returns and shows, not how the sweep runs (not the flow's).
_FRAME_KNOBS = ("progress", "report", "params", "converged")


class SweepKnobs(TypedDict, total=False):
    """How a sweep runs and what it returns; every entry point takes these keywords.

    The run knobs are :class:`~prefect_gmat.study.request.Knobs`' fields (a test keeps
    the two in step), then the four that shape the returned frame. A knob left out (or
    None) comes from the ``PREFECT_GMAT_*`` settings (see the README).
    """

    workers: int | None
    """Engine processes (default: one per core)."""
    timeout: float | None
    """Seconds one run may take before its worker is killed and the run fails."""
    retries: int | None
    """Retries of a run that failed transiently (timeout, crashed worker, I/O)."""
    retry_delay: float | None
    """First retry delay in seconds; doubles each retry, jittered."""
    points_per_task: int | Literal["auto"] | None
    """Points per Prefect task run: "auto" batches many short runs; 1 is one per point."""
    gmat_root: PathLike | None
    """A GMAT install to use instead of the one found (or the pip engine)."""
    archive: bool
    """Write ``<out>/sweep_bundle.zip`` at the end (default True)."""
    include_logs: bool
    """Put each run's worker.log into the bundle."""
    dask: str | None
    """Run the task runs on dask.distributed: "local" or a scheduler address."""
    plot_metric: str | None
    """The report column the flow run's plot artifacts show: "auto", a column, or "off"."""
    max_failures: int | float | None
    """Stop starting runs once more fail than this: a count, or a fraction of the runs."""
    progress: bool | None
    """Show a live progress line on stderr (default: when stderr is a terminal)."""
    report: str | None
    """The report to return when the script writes several."""
    params: bool
    """Add one column per swept field to the returned frame."""
    converged: bool
    """Add ``__converged`` (solver convergence) per run to the returned frame."""


def sweep(
    script: PathLike,
    grid: Mapping[str, Iterable[Any]] | None = None,
    out: PathLike | None = None,
    *,
    samples: Sequence[Mapping[str, Any]] | PathLike | pd.DataFrame | None = None,
    postprocess: str | None = None,
    overwrite: bool = False,
    **knobs: Unpack[SweepKnobs],
) -> pd.DataFrame:
    """Run ``script`` once per grid point (or sample) as a Prefect flow; return the frame.

    ``samples`` are mappings, one per run, or (as gmat-sweep's) a DataFrame or a CSV or
    Parquet file with one column per field (see :func:`explicit`).

    The frame is indexed by ``(run_id, time)`` with the report's columns and
    ``__status``. The sweep directory ``out`` keeps ``manifest.jsonl``,
    ``run-<id>/`` Parquet files and, with ``archive`` (the default),
    ``sweep_bundle.zip``. If ``out`` already holds this same sweep (script and
    points), only the runs that are not ok run again; a different sweep there is
    refused unless ``overwrite``. Every input is checked (against the engine too)
    before Prefect starts. ``postprocess`` names a per-run hook,
    ``"package.module:function"``. See :class:`SweepKnobs` for the keywords.
    """
    if (grid is None) == (samples is None):
        raise SweepSpecError(
            "pass exactly one of grid= (values per field) or samples= (one mapping per run).",
            field="grid",
        )
    points = Points(grid=grid, samples=samples)
    return _start(script, points, postprocess, out, overwrite, knobs)


def resume(
    out: PathLike, *, script: PathLike | None = None, **knobs: Unpack[SweepKnobs]
) -> pd.DataFrame:
    """Finish an interrupted sweep from its manifest alone; finished runs are not redone.

    ``out`` may have moved since: its runs are found in it, and its script by its
    SHA-256 (recorded path, in or beside ``out``); ``script`` names it otherwise.
    """
    where = None if script is None else os.fspath(script)
    return run_request(SweepRequest(script=where, out=os.fspath(out), mode="resume"), knobs)


def retry_failed(
    out: PathLike, *, script: PathLike | None = None, **knobs: Unpack[SweepKnobs]
) -> pd.DataFrame:
    """Re-run only the runs whose last record is a failure (``script`` as for :func:`resume`)."""
    where = None if script is None else os.fspath(script)
    return run_request(SweepRequest(script=where, out=os.fspath(out), mode="retry_failed"), knobs)


def monte_carlo(
    script: PathLike,
    n: int,
    perturb: Mapping[str, Any],
    seed: int | None = None,
    out: PathLike | None = None,
    *,
    until: Mapping[str, Any] | None = None,
    postprocess: str | None = None,
    overwrite: bool = False,
    **knobs: Unpack[SweepKnobs],
) -> pd.DataFrame:
    """A Monte Carlo study: ``n`` runs, each field drawn from its distribution.

    ``perturb`` maps a field to ``("normal", mu, sigma)``, ``("uniform", lo, hi)``,
    ``("lognormal", mu, sigma)`` or a frozen ``scipy.stats`` distribution. The draws
    equal gmat-sweep 0.6.0's for the same ``perturb``, ``n`` and ``seed``; ``seed=None``
    draws a seed from the OS and records it, so the study still resumes and grows with
    the same draws (:func:`extend`). ``postprocess`` names a per-run hook,
    ``"package.module:function"``. See :class:`SweepKnobs` for the other keywords.

    ``until={"metric": "Sat.X", "se": 20.0}`` (or ``"rel_se"``) stops the study once
    the standard error of the mean of the metric's final value per ok run is that
    small: ``n`` is then the cap, the study grows in rounds, and the manifest header's
    ``until`` records each round's statistic and why it stopped. A study stopped at
    ``k`` runs is ``monte_carlo(n=k)``, draw for draw.
    """
    design = StudyDesign("monte_carlo", perturb, n, seed)
    points = Points(design=design, until=until)
    return _start(script, points, postprocess, out, overwrite, knobs)


def latin_hypercube(
    script: PathLike,
    n: int,
    perturb: Mapping[str, Any],
    seed: int | None = None,
    out: PathLike | None = None,
    *,
    postprocess: str | None = None,
    overwrite: bool = False,
    **knobs: Unpack[SweepKnobs],
) -> pd.DataFrame:
    """A Latin hypercube study: ``n`` runs, one in each of ``n`` strata per field.

    Same arguments and draws as gmat-sweep 0.6.0's ``latin_hypercube``; see
    :func:`monte_carlo`. A Latin hypercube cannot be extended (see the README).
    """
    design = StudyDesign("latin_hypercube", perturb, n, seed)
    return _start(script, Points(design=design), postprocess, out, overwrite, knobs)


def explicit(
    script: PathLike,
    samples: PathLike | pd.DataFrame | Sequence[Mapping[str, Any]],
    out: PathLike | None = None,
    *,
    postprocess: str | None = None,
    overwrite: bool = False,
    **knobs: Unpack[SweepKnobs],
) -> pd.DataFrame:
    """Explicit samples: a CSV or Parquet file, a DataFrame or mappings, one row per run.

    Every cell is checked against its column's type before anything runs (an error
    names the row and the column), as gmat-sweep's ``explicit`` command reads a file.
    """
    return _start(script, Points(samples=samples), postprocess, out, overwrite, knobs)


def plan(
    script: PathLike,
    grid: Mapping[str, Iterable[Any]] | None = None,
    out: PathLike | None = None,
    *,
    samples: Sequence[Mapping[str, Any]] | PathLike | pd.DataFrame | None = None,
    design: StudyDesign | Mapping[str, Any] | None = None,
    postprocess: str | None = None,
    overwrite: bool = False,
    pilots: int | None = None,
    **knobs: Unpack[SweepKnobs],
) -> SweepCost:
    """What a sweep will cost, before it runs: runs, wall time, task runs and disk.

    Takes what :func:`sweep` takes (one of ``grid``, ``samples`` or a Monte Carlo or Latin
    hypercube ``design``: ``StudyDesign("monte_carlo", perturb, n, seed)`` or the flow's
    form, ``{"kind": "monte_carlo", "perturb": {...}, "n": 200, "seed": 42}``), checks
    it as the sweep would, and runs ``pilots`` of its own points per engine (default 3)
    on the engines the sweep would use, in a temporary directory that is removed:
    nothing is recorded, nothing is written under ``out``. The returned
    :class:`~prefect_gmat.study.plan.SweepCost` has ``seconds`` (the call to the frame),
    ``task_runs``, ``bytes`` and how each was got; ``print(cost.describe())`` or
    ``cost.to_dict()``. The frame keywords (``progress``, ``report``, ...) are ignored.
    """
    request = SweepRequest(
        script=os.fspath(script),
        # Points takes a design's JSON form too (it validates a mapping into the model).
        points=Points(grid=grid, samples=samples, design=cast(Any, design)),
        postprocess=postprocess,
        out=None if out is None else os.fspath(out),
        mode="overwrite" if overwrite else "new",
    )
    given = {k: v for k, v in knobs.items() if k not in _FRAME_KNOBS}
    request = replace(request, knobs=Knobs.from_mapping(given))
    # Whether the sweep would find a running server: Prefect's settings say (a profile, a
    # test harness), read while the pilots run (importing Prefect takes a second or two).
    answer: list[bool] = []
    asking = threading.Thread(target=lambda: answer.append(_server_configured()))
    asking.start()

    def server() -> bool:
        asking.join()
        return bool(answer and answer[0])

    try:
        # A process that has run a sweep holds Prefect and the flow: its next one starts in
        # about half a second against a server (tests/test_plan.py plans a second sweep).
        warm = "prefect_gmat.flows.sweep" in sys.modules
        return plan_request(request, server=server, warm=warm, pilots_per_engine=pilots)
    finally:
        asking.join()


def _server_configured() -> bool:
    """True when a sweep here would run against a running Prefect server, not a temporary
    one (``PREFECT_API_URL`` in the environment, a profile or the active settings)."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def extend(
    out: PathLike,
    n: int,
    *,
    script: PathLike | None = None,
    allow_script_drift: bool = False,
    **knobs: Unpack[SweepKnobs],
) -> pd.DataFrame:
    """Grow the Monte Carlo study in ``out`` to ``n`` runs in total; return the whole frame.

    The new runs are drawn as a fresh ``n``-run study would draw them (gmat-sweep's
    ``monte_carlo_extend``, which counts the runs added instead) and run as a new
    flow run; the existing runs are not touched. ``script`` is needed for a study
    gmat-sweep wrote (its manifest does not record the script's path).
    """
    request = SweepRequest(
        script=None if script is None else os.fspath(script),
        points=Points(extend_to=n, allow_script_drift=allow_script_drift),
        out=os.fspath(out),
        mode="extend",
    )
    return run_request(request, knobs)


def _start(
    script: PathLike,
    points: Points,
    postprocess: str | None,
    out: PathLike | None,
    overwrite: bool,
    knobs: SweepKnobs,
) -> pd.DataFrame:
    request = SweepRequest(
        script=os.fspath(script),
        points=points,
        postprocess=postprocess,
        out=None if out is None else os.fspath(out),
        mode="overwrite" if overwrite else "new",
    )
    return run_request(request, knobs)


def run_request(request: SweepRequest, knobs: SweepKnobs) -> pd.DataFrame:
    """Run a request with the caller's knobs; return the frame. The one way every entry
    point runs a sweep from Python."""
    given = dict(knobs)
    shown = {name: given.pop(name) for name in _FRAME_KNOBS if name in given}
    request = replace(request, knobs=Knobs.from_mapping(given))
    frame = _FrameReader(cast(SweepKnobs, shown))
    summary = _run(request, frame, cast(SweepKnobs, shown))
    return frame.result(summary["out"])


class _FrameReader:
    """Builds the finished sweep's frame in a thread from the moment its runs are recorded.

    The flow calls :meth:`start` (through ``on_sweep_written``) with the sweep's
    reports before it archives and draws, so the frame is built meanwhile, from the
    same read of the run files as the plots.
    """

    def __init__(self, knobs: SweepKnobs) -> None:
        self._knobs = knobs
        self._thread: threading.Thread | None = None
        self._frame: pd.DataFrame | None = None
        self._error: BaseException | None = None

    def start(self, reports: ReportFrames) -> None:
        self._thread = threading.Thread(target=self._read, args=(reports,), name="frame-read")
        self._thread.start()

    def _read(self, reports: ReportFrames) -> None:
        try:
            self._frame = reports.frame(
                self._knobs.get("report"),
                params=self._knobs.get("params", False),
                converged=self._knobs.get("converged", False),
            )
        except BaseException as exc:  # raised to the caller by result()
            self._error = exc

    def result(self, out: str) -> pd.DataFrame:
        if self._thread is None:  # the flow did not get to its end
            self._read(ReportFrames.of(out))
        else:
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._frame is not None
        return self._frame


def load_sweep(
    out: PathLike,
    *,
    report: str | None = None,
    params: bool = False,
    converged: bool = False,
) -> pd.DataFrame:
    """Read a sweep directory back into its frame, without running anything.

    ``report`` picks one report when the script writes several; ``params`` adds
    the swept fields as columns; ``converged`` adds ``__converged`` per run.
    """
    manifest = read_manifest(out)
    return aggregate(
        manifest.records.values(),
        manifest.path.parent,
        report=report,
        params=params,
        converged=converged,
    )


@contextmanager
def _stop_on_signals(pool: PoolConfig) -> Iterator[None]:
    """Make SIGTERM and SIGINT stop the sweep now: kill the engines, then unwind.

    The flow's records of finished runs are kept (see the flow); runs in flight
    are lost and will run again on resume. Only the main thread can do this.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        close_shared_pool(pool)
        raise KeyboardInterrupt(f"sweep stopped by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: What a flow run imports on first use (measured), so it is loaded before the call too.
_FLOW_RUN_IMPORTS = (
    "prefect_gmat.flows.sweep",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "fastapi.encoders",
)


def _run(request: SweepRequest, frame: _FrameReader, shown: SweepKnobs) -> dict[str, Any]:
    """Check everything, then run the flow; Prefect starts only once the checks pass.

    The engines start first, and Prefect's temporary server (without
    ``PREFECT_API_URL``) in the background, so both warm up while the sweep is
    checked against the engine; a refused sweep stops them and writes nothing.
    """
    options = request.resolve(new_sweep_dir)
    spec = request.spec(options.out, note=_log.warning)
    now, goal = spec, request.points.target
    if goal is not None and spec is not None:  # checked at the round it starts with
        now = study_so_far(options.out, spec, goal, options.pool.workers, request.mode)
    checked = preflight(options.out, now, request.mode)
    # Under dask the engines run in dask's workers; here one engine only checks the sweep.
    local = options.pool if options.dask is None else replace(options.pool, workers=1)
    server = EarlyServer()
    pool = shared_pool(local)
    # The one thread that imports Prefect in the background (see runtime/imports.py).
    flow_import = BackgroundImport(_FLOW_RUN_IMPORTS)
    try:
        try:
            check_against_engine(checked, pool)
            # The engines run the first points while Prefect starts (study/early_start.py).
            early = EarlyStart.begin(
                options.out,
                checked,
                request.mode,
                options.engine,
                pool,
                options.pool.timeout,
                dask=options.dask,
                converging=goal is not None,
            )
        except BaseException:
            flow_import.cancel()  # a refused sweep imports no more than the module under way
            flow_import.join()
            settle_prefect_telemetry()  # the caller may well exit next
            raise
        finally:
            # Refused or not, go on (or return) only once nothing imports in the
            # background: an interpreter that exits under that import breaks it.
            flow_import.join()
        from prefect_gmat.flows.sweep import on_sweep_written, sweep_flow

        pinned = replace(request.pinned(spec, options), mode=early.mode)
        with (
            early,
            server.use(),
            quiet_prefect(),
            _stop_on_signals(local),
            terminal_progress(shown.get("progress")),
        ):
            if (
                server.api_url is not None
                and pinned.knobs.plot_metric is None
                and "PREFECT_GMAT_PLOT_METRIC" not in os.environ
            ):  # nobody sees a temporary server's plots
                pinned = replace(pinned, knobs=replace(pinned.knobs, plot_metric="off"))
            on_sweep_written[str(options.out)] = frame.start
            try:
                summary: dict[str, Any] = sweep_flow(**pinned.flow_parameters())
            finally:
                on_sweep_written.pop(str(options.out), None)
    finally:
        close_shared_pool(local)
        server.stop()
    return summary
