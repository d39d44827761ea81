"""The band plot's picture: a long sweep's summary is thinned before it is drawn, and the
picture stays the same."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from prefect_gmat.runtime import ui_plots

pytest.importorskip("matplotlib")

BUCKETS = 640  # the band figure's pixels across


def _summary(steps: int) -> pd.DataFrame:
    """A sweep_summary frame of an orbit-like metric: fast oscillation, slow drift, spikes,
    a gap without values, and a second field that is not drawn."""
    time = pd.date_range("2026-01-01", periods=steps, freq="1min", name="time")
    rng = np.random.default_rng(3)
    t = np.arange(steps, dtype=float)
    centre = 1e-3 + 2e-4 * np.sin(t * 2 * np.pi / 93) + 1e-8 * t
    centre[rng.integers(0, steps, 25)] += 5e-4  # single-step spikes
    centre[steps // 3 : steps // 3 + 40] = np.nan
    spread = 1e-4 * (1 + np.cos(t / 700))
    low, high = centre - spread, centre + spread * 1.5
    low[rng.integers(0, steps, 25)] -= 4e-4  # one run's excursion: the band alone spikes
    high[rng.integers(0, steps, 25)] += 4e-4
    stats = {
        ("mean", "Sat.ECC"): centre,
        ("q0.05", "Sat.ECC"): low,
        ("q0.5", "Sat.ECC"): centre,
        ("q0.95", "Sat.ECC"): high,
        ("q0.5", "Sat.SMA"): 7000 + t,
    }
    return pd.DataFrame(stats, index=time)


def _png(summary: pd.DataFrame) -> np.ndarray:
    from matplotlib.image import imread

    from prefect_gmat.analysis.plotting import sweep_band_plot

    figure = ui_plots._figure(ui_plots._BAND_WIDTH, 4)
    sweep_band_plot(summary, "Sat.ECC", ax=figure.subplots())
    return np.asarray(imread(io.BytesIO(ui_plots._png(figure))))


def test_a_long_summary_is_thinned_and_draws_the_same_picture() -> None:
    whole = _summary(20_000)
    thin = ui_plots._thinned_for_drawing(whole, "Sat.ECC", BUCKETS)
    assert len(thin) <= 2 * BUCKETS + 2
    assert thin.index.is_monotonic_increasing and thin.index.isin(whole.index).all()
    assert (thin.index[0], thin.index[-1]) == (whole.index[0], whole.index[-1])
    # the line and the band reach as far as the whole's, spikes included
    for stat, extreme in (("q0.5", "max"), ("q0.5", "min"), ("q0.05", "min"), ("q0.95", "max")):
        assert (
            getattr(thin[(stat, "Sat.ECC")], extreme)()
            == getattr(whole[(stat, "Sat.ECC")], extreme)()
        ), (stat, extreme)
    # the other columns are the whole's rows, unchanged
    kept = whole[("q0.5", "Sat.SMA")].loc[thin.index]
    pd.testing.assert_series_equal(thin[("q0.5", "Sat.SMA")], kept)
    drawn, expected = _png(thin), _png(whole)
    assert drawn.shape == expected.shape
    differ = (np.abs(drawn - expected).max(axis=2) > 0.25).mean()
    assert differ < 0.03, f"{differ:.1%} of the pixels differ"


def test_a_summary_that_fits_the_picture_is_drawn_whole() -> None:
    short = _summary(2 * BUCKETS)
    assert ui_plots._thinned_for_drawing(short, "Sat.ECC", BUCKETS) is short
    no_median = _summary(5000).drop(columns=("q0.5", "Sat.ECC"))
    assert ui_plots._thinned_for_drawing(no_median, "Sat.ECC", BUCKETS) is no_median
