"""A postprocess hook for the analysis tests: two extra outputs per run, with and without time."""

from __future__ import annotations

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
