"""Where a sweep started without ``out`` writes: one directory per flow run, kept on retry."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from prefect.runtime import flow_run

__all__ = ["default_sweep_dir"]


def default_sweep_dir(base: Path, script: str | None) -> Path:
    """``<base>/<script stem>-<scheduled start, UTC>-<flow run id[:8]>``.

    Named after the flow run, not the clock, so a flow run retried from the UI
    (same id, same scheduled start) finds and continues its own sweep, while two
    runs scheduled in the same second still get their own directories. Outside a
    flow run: the current time, no id.
    """
    stem = Path(script).stem if script else "sweep"
    started = flow_run.scheduled_start_time.astimezone(UTC)
    name = f"{stem}-{started:%Y%m%d-%H%M%S}"
    run_id = flow_run.id
    return base / (f"{name}-{run_id[:8]}" if run_id else name)
