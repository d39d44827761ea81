"""The Python API: ``sweep``, ``resume``, ``retry_failed``, ``load_sweep``.

Each call validates its input before Prefect or any engine starts, starts the
warm engine workers so their start-up overlaps Prefect's, runs the sweep flow,
and returns the per-run frame read back from the sweep directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from prefect_gmat.frame import aggregate
from prefect_gmat.manifest import read_manifest
from prefect_gmat.pool import close_shared_pool, shared_pool
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
    overwrite: bool = False,
    gmat_root: PathLike | None = None,
    report: str | None = None,
    params: bool = False,
) -> pd.DataFrame:
    """Run ``script`` once per grid point (or sample) as a Prefect flow; return the frame.

    The frame is indexed by ``(run_id, time)`` with the report's columns and
    ``__status``; ``params=True`` adds one column per swept field. The sweep
    directory ``out`` keeps ``manifest.jsonl`` and ``run-<id>/`` Parquet files.
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
    summary = _run(spec, out, mode, workers, timeout, retries, gmat_root)
    return load_sweep(summary["out"], report=report, params=params)


def resume(
    out: PathLike,
    *,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    gmat_root: PathLike | None = None,
    report: str | None = None,
    params: bool = False,
) -> pd.DataFrame:
    """Finish an interrupted sweep from its manifest alone; finished runs are not redone."""
    summary = _run(None, out, "resume", workers, timeout, retries, gmat_root)
    return load_sweep(summary["out"], report=report, params=params)


def retry_failed(
    out: PathLike,
    *,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    gmat_root: PathLike | None = None,
    report: str | None = None,
    params: bool = False,
) -> pd.DataFrame:
    """Re-run only the runs whose last record is a failure."""
    summary = _run(None, out, "retry_failed", workers, timeout, retries, gmat_root)
    return load_sweep(summary["out"], report=report, params=params)


def load_sweep(out: PathLike, *, report: str | None = None, params: bool = False) -> pd.DataFrame:
    """Read a sweep directory back into its frame, without running anything."""
    manifest = read_manifest(out)
    return aggregate(manifest.records.values(), manifest.path.parent, report=report, params=params)


def _run(
    spec: SweepSpec | None,
    out: PathLike | None,
    mode: Mode,
    workers: int | None,
    timeout: float | None,
    retries: int | None,
    gmat_root: PathLike | None,
) -> dict[str, Any]:
    from prefect_gmat.flows.sweep import resolve_options, sweep_flow

    root = None if gmat_root is None else os.fspath(gmat_root)
    script = None if spec is None else str(spec.script)
    options = resolve_options(
        None if out is None else os.fspath(out), workers, timeout, retries, root, script
    )
    preflight(options.out, spec, mode)
    shared_pool(options.pool)  # engines warm up while Prefect starts
    try:
        with quiet_prefect():
            summary: dict[str, Any] = sweep_flow(
                script=script,
                grid=None if spec is None else spec.grid,
                samples=None if spec is None else spec.samples,
                out=str(options.out),
                workers=options.pool.workers,
                timeout=options.pool.timeout,
                retries=options.retries,
                mode=mode,
                gmat_root=root,
            )
    finally:
        close_shared_pool(options.pool)
    return summary
