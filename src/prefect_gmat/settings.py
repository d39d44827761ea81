"""Defaults for every sweep, from ``PREFECT_GMAT_*`` environment variables or a ``.env`` file.

An argument passed to a sweep always wins over a setting; a setting wins over
the built-in default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GmatSettings", "get_settings"]


class GmatSettings(BaseSettings):
    """prefect-gmat settings (environment prefix ``PREFECT_GMAT_``)."""

    model_config = SettingsConfigDict(
        env_prefix="PREFECT_GMAT_", env_file=".env", extra="ignore", validate_default=True
    )

    gmat_root: Path | None = Field(
        default=None,
        description=(
            "A GMAT install to use. Unset: GMAT_ROOT, an installed GMAT, else the pip engine."
        ),
    )
    engine: Literal["auto", "pip"] = Field(
        default="auto",
        description="'auto' finds an installed GMAT first; 'pip' always uses the gmatpy wheel.",
    )
    workers: int | None = Field(
        default=None, ge=1, description="Engine processes per sweep. Unset: the number of cores."
    )
    timeout: float | None = Field(
        default=600.0, gt=0, description="Seconds one run may take before its worker is killed."
    )
    retries: int = Field(default=2, ge=0, description="Retries of a run that failed transiently.")
    retry_delay: float = Field(
        default=1.0, ge=0, description="First retry delay in seconds; doubles each retry, jittered."
    )
    # An engine's memory is flat after its first runs (195 MB from run 500 to 3000, measured),
    # so a recycle, ~1.5 s of CPU for a fresh engine, is kept rare.
    recycle_after: int | None = Field(
        default=5000, ge=1, description="Runs before a worker process is replaced by a fresh one."
    )
    output_dir: Path = Field(
        default=Path("gmat-sweeps"),
        description="Base directory for sweeps started without an explicit `out`.",
    )
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="Task runs submitted at once. Unset: 4 per worker (bounds server load).",
    )
    engine_limit: str = Field(
        default="gmat-engines",
        description=(
            "Prefect global concurrency limit a sweep takes one slot of per engine process "
            "while its engines run; a limit that does not exist is skipped. Empty: never."
        ),
    )

    points_per_task: int | Literal["auto"] = Field(
        default="auto",
        description=(
            "Points one task run executes: 'auto' batches many short runs (one task run per "
            "point otherwise); a number fixes it (1: one task run per point)."
        ),
    )

    dask_address: str | None = Field(
        default=None,
        description=(
            "Run task runs on dask.distributed: 'local' for a local cluster, a scheduler "
            "address (tcp://host:8786), or a cluster class to start (for example "
            "dask_jobqueue.SLURMCluster). Unset: threads in the flow process."
        ),
    )
    dask_cluster_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Keyword arguments for the cluster class in dask_address (JSON in the "
            "environment), as prefect-dask's cluster_kwargs."
        ),
    )

    plot_metric: str = Field(
        default="auto",
        description=(
            "The report column a finished sweep's plot artifacts show (band over time, "
            "corner, Monte Carlo convergence): 'auto' (the first numeric column that is not "
            "a swept field), a column name, or 'off'."
        ),
    )

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


def get_settings() -> GmatSettings:
    """Read the settings now (the environment may change between sweeps)."""
    return GmatSettings()
