"""Run one demo-script sweep in its own process, so a test can kill or signal it.

Usage: python -m tests.sweep_subprocess OUT POINTS [RETRIES]
The grid is Sat.SMA over POINTS values from 7000 km in 5 km steps.
"""

from __future__ import annotations

import sys

from prefect_gmat import sweep
from tests.conftest import DEMO_SCRIPT


def grid(points: int) -> dict[str, list[float]]:
    return {"Sat.SMA": [7000.0 + 5.0 * i for i in range(points)]}


if __name__ == "__main__":
    out, points = sys.argv[1], int(sys.argv[2])
    retries = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    sweep(DEMO_SCRIPT, grid=grid(points), out=out, workers=2, retries=retries, archive=False)
