"""A postprocess hook for the analysis tests: two extra outputs per run, with and without time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def orbit_extras(spec: Any, outcome: Any) -> dict[str, str]:
    """``final``: the last Orbit row's SMA and ECC (no time); ``track``: SMA per time step."""
    orbit = pd.read_parquet(outcome.output_paths["report__Orbit"])
    folder = Path(spec.output_dir)
    final = folder / "final.parquet"
    orbit[["Sat.Earth.SMA", "Sat.Earth.ECC"]].tail(1).reset_index(drop=True).to_parquet(final)
    track = folder / "track.parquet"
    orbit[["time", "Sat.Earth.SMA"]].rename(columns={"Sat.Earth.SMA": "sma"}).to_parquet(track)
    return {"final": str(final), "track": str(track)}
