"""A sweep's resolved knobs: the caller's arguments, else the settings, else defaults.

No Prefect here, so the API and the CLI can resolve and check every knob (and
refuse a bad one) before Prefect is imported or started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prefect_gmat.engine.install import Engine, resolve_engine
from prefect_gmat.engine.pool import PoolConfig
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.settings import get_settings

__all__ = ["PointsPerTask", "SweepOptions", "resolve_options"]

#: Points per task run: a fixed number, or "auto" (see :mod:`prefect_gmat.study.batching`).
PointsPerTask = int | Literal["auto"]


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """Resolved knobs for one sweep."""

    out: Path
    engine: Engine
    pool: PoolConfig
    retries: int
    retry_delay: float
    max_in_flight: int
    dask: str | None = None  # "local", or a scheduler address: run the tasks on dask
    points_per_task: PointsPerTask = "auto"


def resolve_options(
    out: str | None,
    workers: int | None,
    timeout: float | None,
    retries: int | None,
    gmat_root: str | None,
    script: str | None,
    retry_delay: float | None = None,
    dask: str | None = None,
    points_per_task: PointsPerTask | None = None,
) -> SweepOptions:
    """Fill every unset knob from :class:`~prefect_gmat.settings.GmatSettings`."""
    _check_knobs(workers=workers, timeout=timeout, retries=retries, retry_delay=retry_delay)
    settings = get_settings()
    per_task = points_per_task if points_per_task is not None else settings.points_per_task
    _check_points_per_task(per_task)
    engine = resolve_engine(gmat_root or settings.gmat_root, prefer_pip=settings.engine == "pip")
    n_workers = workers or settings.resolved_workers()
    if out is None:
        from prefect_gmat.runtime.naming import default_sweep_dir  # names it after the flow run

        out_path = default_sweep_dir(settings.output_dir, script)
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
        retry_delay=retry_delay if retry_delay is not None else settings.retry_delay,
        max_in_flight=settings.max_in_flight or 4 * n_workers,
        dask=dask or settings.dask_address,
        points_per_task=per_task,
    )


def _check_points_per_task(value: object) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepSpecError(
            f"points_per_task={value!r} is not allowed; pass 'auto' (batch short runs) or a "
            "whole number >= 1 (1 is one task run per point).",
            field="points_per_task",
            value=value,
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
