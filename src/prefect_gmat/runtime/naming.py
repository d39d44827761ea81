"""Where a flow run started without ``out`` writes: one directory per flow run, kept on retry."""

from __future__ import annotations

from pathlib import Path

from prefect.runtime import flow_run

from prefect_gmat.study.sweepdir import sweep_dir_name

__all__ = ["default_sweep_dir"]


def default_sweep_dir(base: Path, script: str | None) -> Path:
    """``<base>/<script stem>-<scheduled start, UTC>-<flow run id[:8]>`` (see
    :func:`~prefect_gmat.study.sweepdir.sweep_dir_name`); outside a flow run, the time now."""
    return base / sweep_dir_name(script, flow_run.scheduled_start_time, flow_run.id)
