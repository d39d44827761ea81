"""Run one Monte Carlo study in its own process, so a test can kill it.

Usage: python -m tests.designs_subprocess OUT N
Perturbs the dispersion script as tests.test_designs.PERTURB does, seed=None.
"""

from __future__ import annotations

import sys

from prefect_gmat import monte_carlo
from tests.test_designs import DISPERSION, PERTURB

if __name__ == "__main__":
    out, n = sys.argv[1], int(sys.argv[2])
    monte_carlo(DISPERSION, n=n, perturb=PERTURB, seed=None, out=out, workers=2, archive=False)
