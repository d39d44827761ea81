"""Postprocess hooks for the design tests: they run in the workers, as gmat-sweep's do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


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
