"""Defaults for every sweep, from ``PREFECT_GMAT_*`` environment variables or a ``.env`` file.

An argument passed to a sweep always wins over a setting; a setting wins over
the built-in default.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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

    # Read by the flow only when a worker started it (a deployment's flow run): its
    # parameters come from whoever can reach the server, so the worker's operator says
    # what they may touch. The Python API and the CLI are not confined (see study.confine).
    allowed_paths: Annotated[list[Path] | None, NoDecode] = Field(
        default=None,
        description=(
            "Directories under which a deployment's flow run may read scripts, samples "
            "files and GMAT installs and write sweeps: os.pathsep-separated, or a JSON "
            "list. Unset or empty: the flow run's working directory."
        ),
    )
    allowed_hooks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Postprocess hooks ('module:function') a deployment's flow run may call: "
            "comma- or os.pathsep-separated, or a JSON list. Empty: none."
        ),
    )

    @field_validator("allowed_paths", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        """Environment text as a JSON list, or os.pathsep-separated as PATH is."""
        if not isinstance(value, str):
            return value
        entries = _json_list(value, "PREFECT_GMAT_ALLOWED_PATHS")
        if entries is None:
            entries = value.split(os.pathsep)
        kept = [entry.strip() for entry in entries if entry.strip()]
        return kept or None

    @field_validator("allowed_hooks", mode="before")
    @classmethod
    def _split_hooks(cls, value: Any) -> Any:
        """Environment text as a JSON list, or separated by commas, whitespace or os.pathsep.

        On POSIX os.pathsep is ':', the hook's own separator: a hook always has exactly
        one, so ``a.b:f:c.d:g`` still reads as two hooks, pair by pair.
        """
        if isinstance(value, str):
            listed = _json_list(value, "PREFECT_GMAT_ALLOWED_HOOKS")
            if listed is None:
                listed = _paired_hooks(value)
            value = listed
        if not isinstance(value, list):
            return value
        hooks = [str(hook).strip() for hook in value if str(hook).strip()]
        for hook in hooks:
            if not _HOOK.fullmatch(hook):
                raise ValueError(
                    f"PREFECT_GMAT_ALLOWED_HOOKS: {hook!r} is not 'package.module:function'."
                )
        return hooks

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


_HOOK = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def _json_list(text: str, name: str) -> list[str] | None:
    """``text`` as a JSON list of strings; None when it is not JSON (plain separated text)."""
    if not text.lstrip().startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} starts with '[' but is not a JSON list: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a JSON list of strings.")
    return value


def _paired_hooks(text: str) -> list[str]:
    """Hooks separated by commas, whitespace, ';' or ':' (pairs of module and function)."""
    hooks: list[str] = []
    for chunk in re.split(r"[,;\s]+", text):
        parts = chunk.split(":") if chunk else []
        if len(parts) % 2:
            raise ValueError(
                f"PREFECT_GMAT_ALLOWED_HOOKS: {chunk!r} is not a list of 'module:function'."
            )
        hooks += [f"{module}:{name}" for module, name in zip(parts[::2], parts[1::2], strict=True)]
    return hooks


def get_settings() -> GmatSettings:
    """Read the settings now (the environment may change between sweeps)."""
    return GmatSettings()
