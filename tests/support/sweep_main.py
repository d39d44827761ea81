"""One sweep or study in its own process, so a test can kill or signal it.

Usage: python -m tests.support.sweep_main grid OUT POINTS [RETRIES]
       python -m tests.support.sweep_main monte_carlo OUT N

``grid``: the demo script over :func:`tests.support.points.sma_grid` (POINTS values from
7000 km in 5 km steps), two workers. ``monte_carlo``: the dispersion script perturbed by
:data:`tests.support.points.DISPERSION_PERTURB`, ``seed=None``, two workers. Neither
archives. Started by :class:`tests.support.faults.SweepProcesses`.
"""

from __future__ import annotations

import sys

from prefect_gmat import monte_carlo, sweep
from tests.support.paths import DEMO_SCRIPT, DISPERSION
from tests.support.points import DISPERSION_PERTURB, sma_grid

if __name__ == "__main__":
    kind, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if kind == "grid":
        retries = int(sys.argv[4]) if len(sys.argv) > 4 else 0
        sweep(DEMO_SCRIPT, grid=sma_grid(count), out=out, workers=2, retries=retries, archive=False)
    elif kind == "monte_carlo":
        perturb = DISPERSION_PERTURB
        monte_carlo(
            DISPERSION, n=count, perturb=perturb, seed=None, out=out, workers=2, archive=False
        )
    else:
        raise SystemExit(f"unknown kind {kind!r}: grid or monte_carlo")
