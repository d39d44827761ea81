"""End to end: the walkthrough's grid through the real flow and the real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prefect_gmat import load_sweep, sweep
from tests.support.sweepdir import Swept


def test_walkthrough_grid_gives_thirty_ok_rows(walkthrough: Swept) -> None:
    """The session's walkthrough sweep: SMA_GRID over the demo script, two workers."""
    out, df = walkthrough
    assert df.shape == (30, 5)
    assert df["__status"].value_counts().to_dict() == {"ok": 30}
    assert list(df.index.names) == ["run_id", "time"]
    assert sorted(df.index.unique("run_id")) == list(range(10))
    again = load_sweep(out)
    assert again.equals(df)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_numpy_numbers_and_string_values_make_a_cartesian_product(
    demo_script: Path, tmp_path: Path
) -> None:
    grid: dict[str, Any] = {
        "Sat.SMA": np.array([7000, 7200], dtype=np.int64),
        "Prop.Type": ["PrinceDormand78", "RungeKutta89"],
        "Sat.ECC": np.array([0.001], dtype=np.float32),
    }
    df = sweep(demo_script, grid=grid, out=tmp_path / "mixed", workers=2, params=True)
    runs = df.groupby(level="run_id").first()
    # keys sorted (Prop.Type, Sat.ECC, Sat.SMA): the first varies slowest, as in gmat-sweep
    assert runs["Prop.Type"].tolist() == ["PrinceDormand78"] * 2 + ["RungeKutta89"] * 2
    assert runs["Sat.SMA"].tolist() == [7000, 7200, 7000, 7200]
    assert (df["__status"] == "ok").all()
    x0 = runs["Sat.X"].to_numpy()
    assert x0[0] == x0[2] and x0[1] == x0[3]  # same start state, only the integrator differs
