"""The Python API: ``sweep``, ``resume``, ``retry_failed``, ``load_sweep``.

Each call validates its input before Prefect or any engine starts, starts the
warm engine workers so their start-up overlaps Prefect's, runs the sweep flow,
and returns the per-run frame read back from the sweep directory.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from prefect_gmat.frame import aggregate
from prefect_gmat.manifest import read_manifest
from prefect_gmat.pool import PoolConfig, close_shared_pool, shared_pool
from prefect_gmat.quiet import quiet_prefect
from prefect_gmat.spec import SweepSpec
from prefect_gmat.sweepdir import Mode, preflight

__all__ = ["load_sweep", "resume", "retry_failed", "sweep"]

PathLike = str | os.PathLike[str]


def sweep(
    script: PathLike,
    grid: Mapping[str, Iterable[Any]] | None = None,
    out: PathLike | None = None,
    *,
    samples: Sequence[Mapping[str, Any]] | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    overwrite: bool = False,
    gmat_root: PathLike | None = None,
    archive: bool = True,
    include_logs: bool = False,
    dask: str | None = None,
    report: str | None = None,
    params: bool = False,
    converged: bool = False,
) -> pd.DataFrame:
    """Run ``script`` once per grid point (or sample) as a Prefect flow; return the frame.

    The frame is indexed by ``(run_id, time)`` with the report's columns and
    ``__status``; ``params=True`` adds one column per swept field. The sweep
    directory ``out`` keeps ``manifest.jsonl``, ``run-<id>/`` Parquet files and,
    with ``archive`` (the default), ``sweep_bundle.zip``. Transient failures are
    retried ``retries`` times, ``retry_delay`` seconds apart, doubling. ``dask``
    runs the task runs on dask.distributed: ``"local"`` or a scheduler address.
    If ``out`` already holds this same sweep (script and points), only the runs
    that are not ok run again; a different sweep there is refused unless
    ``overwrite``.
    """
    if (grid is None) == (samples is None):
        from prefect_gmat.errors import SweepSpecError

        raise SweepSpecError(
            "pass exactly one of grid= (values per field) or samples= (one mapping per run).",
            field="grid",
        )
    spec = (
        SweepSpec.from_grid(script, grid)
        if grid is not None
        else SweepSpec.from_samples(script, samples or [])
    )
    mode: Mode = "overwrite" if overwrite else "new"
    knobs = _Knobs(workers, timeout, retries, retry_delay, gmat_root, archive, include_logs, dask)
    summary = _run(spec, out, mode, knobs)
    return load_sweep(summary["out"], report=report, params=params, converged=converged)


def resume(
    out: PathLike,
    *,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    gmat_root: PathLike | None = None,
    archive: bool = True,
    include_logs: bool = False,
    dask: str | None = None,
    report: str | None = None,
    params: bool = False,
    converged: bool = False,
) -> pd.DataFrame:
    """Finish an interrupted sweep from its manifest alone; finished runs are not redone."""
    knobs = _Knobs(workers, timeout, retries, retry_delay, gmat_root, archive, include_logs, dask)
    summary = _run(None, out, "resume", knobs)
    return load_sweep(summary["out"], report=report, params=params, converged=converged)


def retry_failed(
    out: PathLike,
    *,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    gmat_root: PathLike | None = None,
    archive: bool = True,
    include_logs: bool = False,
    dask: str | None = None,
    report: str | None = None,
    params: bool = False,
    converged: bool = False,
) -> pd.DataFrame:
    """Re-run only the runs whose last record is a failure."""
    knobs = _Knobs(workers, timeout, retries, retry_delay, gmat_root, archive, include_logs, dask)
    summary = _run(None, out, "retry_failed", knobs)
    return load_sweep(summary["out"], report=report, params=params, converged=converged)


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


@dataclass(frozen=True, slots=True)
class _Knobs:
    workers: int | None
    timeout: float | None
    retries: int | None
    retry_delay: float | None
    gmat_root: PathLike | None
    archive: bool
    include_logs: bool
    dask: str | None


def _run(spec: SweepSpec | None, out: PathLike | None, mode: Mode, knobs: _Knobs) -> dict[str, Any]:
    from prefect_gmat.flows.sweep import resolve_options, sweep_flow

    root = None if knobs.gmat_root is None else os.fspath(knobs.gmat_root)
    script = None if spec is None else str(spec.script)
    options = resolve_options(
        None if out is None else os.fspath(out),
        knobs.workers,
        knobs.timeout,
        knobs.retries,
        root,
        script,
        knobs.retry_delay,
        knobs.dask,
    )
    preflight(options.out, spec, mode)
    if options.dask is None:
        shared_pool(options.pool)  # engines warm up while Prefect starts
    try:
        with quiet_prefect(), _stop_on_signals(options.pool):
            summary: dict[str, Any] = sweep_flow(
                script=script,
                grid=None if spec is None else spec.grid,
                samples=None if spec is None else spec.samples,
                out=str(options.out),
                workers=options.pool.workers,
                timeout=options.pool.timeout,
                retries=options.retries,
                retry_delay=options.retry_delay,
                mode=mode,
                gmat_root=root,
                archive=knobs.archive,
                include_logs=knobs.include_logs,
                dask=options.dask,
            )
    finally:
        close_shared_pool(options.pool)
    return summary
