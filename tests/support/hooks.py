"""Postprocess hooks the test sweeps name (``tests.support.hooks:<name>``).

They run in the workers (ours and gmat-sweep's), as gmat-sweep's hooks do: module-level
functions taking the run's spec and outcome, returning ``{name: path}`` of extra outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def orbit_extras(spec: Any, outcome: Any) -> dict[str, str]:
    """From the run's first report: ``final``, its last row's numbers (no time column), and
    ``track``, its first number per time step (a ``time`` column)."""
    key = sorted(k for k in outcome.output_paths if k.startswith("report__"))[0]
    report = pd.read_parquet(outcome.output_paths[key])
    numbers = [c for c in report.columns if pd.api.types.is_float_dtype(report[c])]
    folder = Path(spec.output_dir)
    final = folder / "final.parquet"
    report[numbers].tail(1).reset_index(drop=True).to_parquet(final)
    track = folder / "track.parquet"
    report[["time", numbers[0]]].rename(columns={numbers[0]: "value"}).to_parquet(track)
    return {"final": str(final), "track": str(track)}


def injection_summary(spec: Any, outcome: Any) -> dict[str, str]:
    """The orbit after injection (last report row), written beside the run's report."""
    last = pd.read_parquet(outcome.output_paths["report__RF"]).iloc[-1]
    path = Path(spec.output_dir) / "injection.json"
    summary = {"run_id": spec.run_id, "sma": last["Sat.Earth.SMA"], "ecc": last["Sat.Earth.ECC"]}
    path.write_text(json.dumps(summary, sort_keys=True))
    return {"injection": str(path)}


def refuses_late_launches(spec: Any, outcome: Any) -> dict[str, str]:
    """Like :func:`injection_summary`, but raises for a launch slip over 300 s."""
    if spec.overrides["LaunchDelay.Value"] > 300:
        raise ValueError(f"launch slipped {spec.overrides['LaunchDelay.Value']:.0f} s")
    return injection_summary(spec, outcome)
