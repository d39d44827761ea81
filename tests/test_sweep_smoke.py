"""End to end: the walkthrough's grid through the real flow and the real engine."""

from __future__ import annotations

from pathlib import Path

from prefect_gmat import load_sweep, sweep
from tests.conftest import SMA_GRID


def test_walkthrough_grid_gives_thirty_ok_rows(demo_script: Path, tmp_path: Path) -> None:
    df = sweep(demo_script, grid=SMA_GRID, out=tmp_path / "leo", workers=2)
    assert df.shape == (30, 5)
    assert df["__status"].value_counts().to_dict() == {"ok": 30}
    assert list(df.index.names) == ["run_id", "time"]
    assert sorted(df.index.unique("run_id")) == list(range(10))
    again = load_sweep(tmp_path / "leo")
    assert again.equals(df)
