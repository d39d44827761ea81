"""Sobol sensitivity through SALib (the ``sensitivity`` extra), as gmat-sweep 0.6.0 does it.

:func:`sobol_sample` lays out a Saltelli design on the unit
cube with SALib and lifts each column through its field's distribution, so any
``perturb`` spec works, not only SALib's own few; the rows run as a sweep of
explicit samples. :func:`sobol_analyze` reduces the sweep's frame to one number
per run and hands it to SALib. For the same inputs and seeds both give
gmat-sweep's numbers exactly.

The design is only valid whole: a failed run leaves a hole SALib cannot
analyse, so :func:`sobol_analyze` refuses a frame with failed runs and names
them (re-run them with ``retry_failed(out)``), instead of returning NaNs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.designs import _to_frozen, check_n, check_seed, parse_perturb

__all__ = ["sobol_analyze", "sobol_sample"]

#: A field's distribution, as ``perturb`` takes it everywhere (see prefect_gmat.study.designs):
#: ("normal", mu, sigma), ("uniform", lo, hi), ("lognormal", mu, sigma) or a frozen
#: scipy.stats distribution.
DistSpec = Any


def _salib(module: str) -> Any:
    """Import a SALib submodule, or say which extra to install."""
    import importlib

    try:
        return importlib.import_module(f"SALib.{module}")
    except ImportError:
        raise ImportError(
            "Sobol sensitivity needs SALib: pip install 'prefect-gmat[sensitivity]'."
        ) from None


def _problem(fields: list[str]) -> dict[str, Any]:
    # The unit cube: each column is lifted through its own distribution afterwards.
    return {"num_vars": len(fields), "names": list(fields), "bounds": [[0.0, 1.0]] * len(fields)}


def _fields(perturb: Mapping[str, DistSpec], caller: str) -> list[str]:
    if not perturb:
        raise SweepSpecError(
            f"{caller} needs perturb: a mapping of field to distribution, e.g. "
            "{'Sat.SMA': ('uniform', 7000, 7200)}.",
            field="perturb",
        )
    return sorted(perturb)


def sobol_sample(
    perturb: Mapping[str, DistSpec],
    n: int,
    *,
    seed: int | None = None,
    calc_second_order: bool = True,
) -> pd.DataFrame:
    """A Saltelli design: ``n * (2D + 2)`` rows (``n * (D + 2)`` without second order).

    One column per field, sorted, one row per run; run it with
    ``sweep(script, samples=design, out=...)``. The same
    arguments (and ``seed``) give the same rows, equal to gmat-sweep's.
    """
    fields = _fields(perturb, "sobol_sample")
    n = check_n(n)
    seed = check_seed(seed)
    recorded = parse_perturb(perturb)
    frozen = [_to_frozen(f, recorded[f]) for f in fields]
    sampler = _salib("sample.sobol")
    unit = sampler.sample(_problem(fields), n, calc_second_order=calc_second_order, seed=seed)
    return pd.DataFrame({f: frozen[i].ppf(unit[:, i]) for i, f in enumerate(fields)})


def sobol_analyze(
    df: pd.DataFrame,
    perturb: Mapping[str, DistSpec],
    metric: str | Callable[[pd.DataFrame], pd.Series[Any]],
    *,
    calc_second_order: bool = True,
    seed: int | None = None,
) -> pd.DataFrame:
    """Sobol indices of ``metric`` over a sweep of :func:`sobol_sample`'s design.

    ``metric`` is a column (each run's last value) or a callable giving one
    number per run (a Series in run order). Returns rows ``kind`` (S1, ST, S2),
    ``param_a``, ``param_b`` (S2 only), ``value`` and ``conf`` (SALib's 95 %
    bootstrap half-width, resampled with ``seed``).
    """
    fields = _fields(perturb, "sobol_analyze")
    if "__status" in df.columns:
        statuses = df["__status"].astype(str)
        failed = sorted({int(i) for i in df.index.get_level_values("run_id")[statuses != "ok"]})
        if failed:
            shown = ", ".join(map(str, failed[:20])) + (" ..." if len(failed) > 20 else "")
            raise SweepSpecError(
                f"sobol_analyze needs every run of the Saltelli design; run(s) {shown} "
                "failed. Re-run them (prefect_gmat.retry_failed(out)) and load the sweep "
                "again. Dropping them would break the design, so SALib's indices would be "
                "wrong.",
                field="df",
                value=failed,
            )
    if isinstance(metric, str):
        if metric not in df.columns:
            raise SweepSpecError(
                f"sobol_analyze: metric {metric!r} is not a column of the frame "
                f"(columns: {[c for c in df.columns if c != '__status']}).",
                field="metric",
                value=metric,
            )
        if "run_id" not in (df.index.names or ()):
            raise SweepSpecError(
                "sobol_analyze with a column metric needs the frame indexed by run_id, "
                "as load_sweep returns it.",
                field="df",
            )
        y = df.groupby(level="run_id")[metric].last()
    else:
        y = metric(df)
        if not isinstance(y, pd.Series):
            raise SweepSpecError(
                f"sobol_analyze: the metric callable must return a pandas Series (one value "
                f"per run), got {type(y).__name__}.",
                field="metric",
            )
    if bool(y.isna().any()):
        missing = [int(i) for i in y.index[y.isna()]][:20]
        raise SweepSpecError(
            f"sobol_analyze: the metric is NaN for run(s) {missing}; SALib cannot analyse "
            "NaN. Check the metric column for those runs.",
            field="metric",
        )
    per_row = 2 * len(fields) + 2 if calc_second_order else len(fields) + 2
    if len(y) % per_row:
        raise SweepSpecError(
            f"sobol_analyze: {len(y)} runs is not a Saltelli design over {len(fields)} "
            f"field(s) (a multiple of {per_row}); analyse the whole sweep of "
            "sobol_sample's rows, with the same perturb and calc_second_order.",
            field="df",
            value=len(y),
        )
    analyzer = _salib("analyze.sobol")
    result = analyzer.analyze(
        _problem(fields),
        np.asarray(y, dtype=float),
        calc_second_order=calc_second_order,
        seed=seed,
    )
    rows: list[dict[str, Any]] = []
    for kind in ("S1", "ST"):
        for i, field in enumerate(fields):
            rows.append(
                {
                    "kind": kind,
                    "param_a": field,
                    "param_b": pd.NA,
                    "value": float(result[kind][i]),
                    "conf": float(result[f"{kind}_conf"][i]),
                }
            )
    if calc_second_order:
        for i in range(len(fields)):
            for j in range(i + 1, len(fields)):
                rows.append(
                    {
                        "kind": "S2",
                        "param_a": fields[i],
                        "param_b": fields[j],
                        "value": float(result["S2"][i, j]),
                        "conf": float(result["S2_conf"][i, j]),
                    }
                )
    return pd.DataFrame(rows, columns=["kind", "param_a", "param_b", "value", "conf"])
