"""prefect-gmat: GMAT parameter sweeps as Prefect flows.

One Prefect task run per grid point, GMAT run in warm engine processes,
Parquet per run, and a JSON Lines manifest compatible with gmat-sweep 0.6.0.
"""

from prefect_gmat.api import (
    explicit,
    extend,
    latin_hypercube,
    load_sweep,
    monte_carlo,
    resume,
    retry_failed,
    sweep,
)
from prefect_gmat.bundle import archive, extract_bundle, load_bundle, verify_bundle
from prefect_gmat.errors import (
    BundleError,
    EngineNotFoundError,
    ManifestError,
    PrefectGmatError,
    RunError,
    SweepDirectoryError,
    SweepSpecError,
)
from prefect_gmat.handle import SweepResults, open_sweep
from prefect_gmat.sensitivity import sobol_analyze, sobol_sample
from prefect_gmat.spec import uniform_samples
from prefect_gmat.stats import mc_convergence, sweep_diff, sweep_summary

__all__ = [
    "BundleError",
    "EngineNotFoundError",
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
