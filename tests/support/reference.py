"""gmat-sweep 0.6.0 (the reference tool) in a subprocess, on the same engine, for comparisons.

Its steps run in ``python -m tests.support.reference_main`` (see there for the steps):
a process of its own, so gmat-run bootstraps the engine there as gmat-sweep expects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from prefect_gmat.engine.install import shim_root
from tests.support.paths import REPO

Step = Mapping[str, Any]


class ReferenceSweep(NamedTuple):
    """A sweep gmat-sweep ran: its directory, its frame and the bundle it archived."""

    out: Path
    frame: pd.DataFrame
    bundle: Path


def start_reference(steps: Sequence[Step]) -> subprocess.Popen[str]:
    """Start gmat-sweep's ``steps`` in one subprocess; :func:`finish_reference` waits for it."""
    # The repository on the path: gmat-sweep's workers import the hooks (tests.support.hooks).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "GMAT_ROOT": str(shim_root()), "PYTHONPATH": path}
    args = [sys.executable, "-m", "tests.support.reference_main", json.dumps(list(steps))]
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_reference(process: subprocess.Popen[str], timeout: float = 600) -> None:
    """Wait for the steps; fail with their error output if they failed (kill on timeout)."""
    try:
        _, errors = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors[-3000:]


def run_reference(steps: Sequence[Step], timeout: float = 600) -> None:
    finish_reference(start_reference(steps), timeout)


def reference_sweep(
    script: Path,
    grid: Mapping[str, list[Any]],
    out: Path,
    *,
    bundle: Path | None = None,
) -> pd.DataFrame:
    """gmat-sweep's own sweep() frame over ``grid`` into ``out``; with ``bundle`` it also
    archives the sweep there, as gmat-sweep's ``Sweep.archive`` does."""
    frame_path = out.with_suffix(".pkl")
    steps: list[Step] = [
        {"op": "sweep", "script": str(script), "out": str(out), "grid": dict(grid),
         "frame": str(frame_path)},
    ]  # fmt: skip
    if bundle is not None:
        steps.append(
            {"op": "archive", "script": str(script), "out": str(out), "bundle": str(bundle)}
        )
    run_reference(steps)
    frame: pd.DataFrame = pd.read_pickle(frame_path)
    return frame
