"""prefect-gmat: GMAT parameter sweeps as Prefect flows.

One Prefect task run per grid point, GMAT run in warm engine processes,
Parquet per run, and a JSON Lines manifest compatible with gmat-sweep 0.6.0.
"""

import sys

from prefect_gmat.analysis.handle import SweepResults, open_sweep
from prefect_gmat.analysis.sensitivity import sobol_analyze, sobol_sample
from prefect_gmat.analysis.stats import mc_convergence, sweep_diff, sweep_summary
from prefect_gmat.api import (
    explicit,
    extend,
    latin_hypercube,
    load_sweep,
    monte_carlo,
    plan,
    resume,
    retry_failed,
    sweep,
)
from prefect_gmat.core import records as _records
from prefect_gmat.errors import (
    BundleError,
    EngineNotFoundError,
    FailureBudgetError,
    ManifestError,
    PrefectGmatError,
    RunError,
    SweepDirectoryError,
    SweepSpecError,
)
from prefect_gmat.study.bundle import archive, extract_bundle, load_bundle, verify_bundle
from prefect_gmat.study.spec import uniform_samples

# Outcomes persisted in a sweep's .prefect-results before the layers moved name their
# class prefect_gmat.runner.Outcome: this alias keeps such a sweep resumable.
sys.modules.setdefault(f"{__name__}.runner", _records)

__all__ = [
    "BundleError",
    "EngineNotFoundError",
    "FailureBudgetError",
    "ManifestError",
    "PrefectGmatError",
    "RunError",
    "SweepDirectoryError",
    "SweepResults",
    "SweepSpecError",
    "archive",
    "explicit",
    "extend",
    "extract_bundle",
    "latin_hypercube",
    "load_bundle",
    "load_sweep",
    "mc_convergence",
    "monte_carlo",
    "open_sweep",
    "plan",
    "resume",
    "retry_failed",
    "sobol_analyze",
    "sobol_sample",
    "sweep",
    "sweep_diff",
    "sweep_summary",
    "uniform_samples",
    "verify_bundle",
]
