"""The points the tests sweep: the walkthrough grid, longer SMA grids, the dispersion study."""

from __future__ import annotations

from typing import Any

#: The walkthrough grid: Sat.SMA 7000, 7100, ..., 7900 km (10 runs).
SMA_GRID = {"Sat.SMA": [7000 + 100 * i for i in range(10)]}

#: A launch slip (s) and the injection burn's three components (km/s), as tuples: the
#: perturbation of ``DISPERSION`` in the design tests and the killable study process.
DISPERSION_PERTURB: dict[str, Any] = {
    "LaunchDelay.Value": ("uniform", 0.0, 600.0),
    "TOI.Element1": ("normal", 0.1, 0.002),
    "TOI.Element2": ("normal", 0.0, 0.001),
    "TOI.Element3": ("lognormal", -9.0, 0.5),
}


def sma_grid(points: int, step: float = 5.0) -> dict[str, list[float]]:
    """Sat.SMA over ``points`` values from 7000 km in ``step`` km steps (floats)."""
    return {"Sat.SMA": [7000.0 + step * i for i in range(points)]}
