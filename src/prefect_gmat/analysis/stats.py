"""Statistics across a sweep's runs: quantile bands, run-to-run diffs, Monte Carlo convergence.

The three functions take the frame :func:`prefect_gmat.load_sweep`
returns (``(run_id, time)`` index, ``__status`` last) and give what gmat-sweep
0.6.0's functions of the same names give: same parameters, same output shape,
same numbers (the operations follow gmat-sweep's, so a notebook migrates by
changing its import). Failed runs are dropped through ``__status``, as there.
Errors are :class:`~prefect_gmat.errors.SweepSpecError` naming the argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from prefect_gmat.errors import SweepSpecError

__all__ = ["final_bands", "mc_convergence", "sweep_diff", "sweep_summary"]

_STATUS = "__status"
_STATUS_DIFF = "__status_diff"
_RUN_ID = "run_id"
_TIME = "time"
_VALID_BY = ("time", "run_id")
_VALID_INCLUDE = ("mean", "std", "min", "max", "count_ok")
_VALID_HOW = ("absolute", "relative", "both")
_RUNNING = ("running_mean", "running_std", "se_mean")


def sweep_summary(
    df: pd.DataFrame,
    *,
    by: str = _TIME,
    q: Sequence[float] = (0.05, 0.5, 0.95),
    include: Sequence[str] = ("mean", "std"),
    dropna: bool = True,
) -> pd.DataFrame:
    """Statistics across runs per ``time`` (or within each run, ``by="run_id"``).

    Columns are a ``("statistic", "field")`` MultiIndex: ``include`` (``mean``,
    ``std``, ``min``, ``max``, ``count_ok``) then ``q<value>`` per quantile.
    ``dropna`` drops rows whose ``__status`` is not ``ok`` first. Text columns are
    left out; an epoch column made ``object`` by a failed run's NaN row is
    summarised as the datetime it is (gmat-sweep raises on both).
    """
    if by not in _VALID_BY:
        raise SweepSpecError(
            f"sweep_summary: by={by!r} is not supported; pass one of {list(_VALID_BY)}.",
            field="by",
            value=by,
        )
    bad_q = [v for v in q if not 0.0 < float(v) < 1.0]
    if bad_q:
        raise SweepSpecError(
            f"sweep_summary: quantiles must lie strictly between 0 and 1; got {bad_q}.",
            field="q",
            value=list(q),
        )
    bad_include = [s for s in include if s not in _VALID_INCLUDE]
    if bad_include:
        raise SweepSpecError(
            f"sweep_summary: unknown statistic(s) {bad_include} in include; "
            f"allowed: {list(_VALID_INCLUDE)}.",
            field="include",
            value=list(include),
        )
    for name, values in (("q", [str(v) for v in q]), ("include", list(include))):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise SweepSpecError(
                f"sweep_summary: {name} lists {repeated} more than once; give each once.",
                field=name,
                value=values,
            )
    if df.index.nlevels < 2 or by not in (df.index.names or []):
        raise SweepSpecError(
            f"sweep_summary: the frame's index has no {by!r} level "
            f"(levels: {list(df.index.names or [])}); pass a sweep frame indexed by "
            "(run_id, time), as load_sweep returns.",
            field="df",
        )
    working = df
    if dropna and _STATUS in working.columns:
        working = working.loc[working[_STATUS] == "ok"]
    data = _summable(working.drop(columns=[_STATUS], errors="ignore"))
    columns = list(data.columns)
    grouped = data.groupby(level=by, dropna=dropna)
    blocks: list[tuple[str, pd.DataFrame]] = []
    for stat in include:
        block = grouped.count() if stat == "count_ok" else grouped.agg(stat)
        blocks.append((stat, block.reindex(columns=columns)))
    for value in q:
        block = grouped.quantile(float(value))
        blocks.append((f"q{value}", block.reindex(columns=columns)))
    if not blocks:
        return pd.DataFrame(
            index=data.index.get_level_values(by).unique(),
            columns=pd.MultiIndex.from_arrays([[], []], names=["statistic", "field"]),
        )
    return pd.concat(dict(blocks), axis=1, names=["statistic", "field"])


def final_bands(df: pd.DataFrame, q: Sequence[float] = (0.05, 0.5, 0.95)) -> pd.DataFrame:
    """Per numeric field, the spread of each ok run's last value: one row per field.

    Columns: ``ok runs``, ``min``, ``q<value>`` per quantile, ``max``, ``mean``,
    ``std``. What ``prefect-gmat summary`` prints; the per-time band of one field
    is :func:`sweep_summary`'s.
    """
    working = df
    if _STATUS in working.columns:
        working = working.loc[working[_STATUS] == "ok"]
    data = _summable(working.drop(columns=[_STATUS], errors="ignore"))
    numeric = [
        c
        for c in data.columns
        if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c])
    ]
    last = data[numeric].groupby(level=_RUN_ID).last()
    columns: dict[str, pd.Series[Any]] = {"ok runs": last.count(), "min": last.min()}
    for value in q:
        columns[f"q{value}"] = last.quantile(float(value))
    columns.update({"max": last.max(), "mean": last.mean(), "std": last.std()})
    table = pd.DataFrame(columns)
    table.index.name = "field"
    return table


def _summable(data: pd.DataFrame) -> pd.DataFrame:
    """The columns statistics apply to, with epochs that lost their dtype given it back.

    A failed run's marker row (NaN) turns an epoch column such as
    ``Sat.UTCGregorian`` into ``object`` dtype, on which gmat-sweep's
    ``sweep_summary`` raises; here it becomes datetime64 again (NaT for the
    marker). Text columns (a string field) are left out instead of failing.
    Frames gmat-sweep summarises are passed through unchanged.
    """
    fixed: dict[str, pd.Series[Any]] = {}
    dropped: list[str] = []
    for column in data.columns:
        values = data[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        present = values.dropna()
        if len(present) and all(isinstance(v, pd.Timestamp) for v in present):
            fixed[column] = pd.to_datetime(values).astype("datetime64[ns]")
        elif len(present) and all(isinstance(v, (int, float, np.number)) for v in present):
            fixed[column] = pd.to_numeric(values)
        else:
            dropped.append(column)
    if not fixed and not dropped:
        return data
    return data.assign(**fixed).drop(columns=dropped)


def sweep_diff(
    df_a: pd.DataFrame,
    df_b: pd.DataFrame,
    *,
    on: str | None = None,
    how: str = "both",
    tolerance: float | Callable[[str], float] | None = None,
) -> pd.DataFrame:
    """``b - a`` (``<col>__diff``) and ``(b - a) / a`` (``<col>__rel``) on the shared index.

    ``on="run_id"`` compares each run's last row. ``tolerance`` (a float, or a
    callable giving one per column) masks changes smaller than it to NaN.
    ``__status_diff`` is ``ok`` where both sides are ok, else ``"<a>/<b>"``.
    """
    if how not in _VALID_HOW:
        raise SweepSpecError(
            f"sweep_diff: how={how!r} is not supported; pass one of {list(_VALID_HOW)}.",
            field="how",
            value=how,
        )
    if on is not None and on != _RUN_ID:
        raise SweepSpecError(
            f"sweep_diff: on={on!r} is not supported; pass on=None or on='run_id'.",
            field="on",
            value=on,
        )
    a_names = list(df_a.index.names or [])
    b_names = list(df_b.index.names or [])
    if a_names != b_names:
        raise SweepSpecError(
            f"sweep_diff: the two frames' index levels differ ({a_names} vs {b_names}); "
            "compare frames of the same kind.",
            field="df_b",
        )
    if on == _RUN_ID:
        if _RUN_ID not in a_names:
            raise SweepSpecError(
                f"sweep_diff: on='run_id' needs a run_id index level; got {a_names}.",
                field="on",
                value=on,
            )
        if df_a.index.nlevels > 1:
            df_a = df_a.sort_index().groupby(level=_RUN_ID).last()
            df_b = df_b.sort_index().groupby(level=_RUN_ID).last()

    a_status = df_a[_STATUS] if _STATUS in df_a.columns else None
    b_status = df_b[_STATUS] if _STATUS in df_b.columns else None
    a_data = df_a.drop(columns=[_STATUS], errors="ignore")
    b_data = df_b.drop(columns=[_STATUS], errors="ignore")
    numeric = [
        c
        for c in a_data.columns
        if c in b_data.columns
        and pd.api.types.is_numeric_dtype(a_data[c])
        and pd.api.types.is_numeric_dtype(b_data[c])
    ]
    common = df_a.index.intersection(df_b.index, sort=False)
    a_data = a_data.loc[common, numeric]
    b_data = b_data.loc[common, numeric]

    diff = b_data.subtract(a_data)
    rel: pd.DataFrame | None = None
    if how in ("relative", "both"):
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = diff.divide(a_data)
        rel = rel.replace([np.inf, -np.inf], np.nan)
    if tolerance is not None:
        for column in numeric:
            cutoff = float(tolerance(column)) if callable(tolerance) else float(tolerance)
            small = diff[column].abs() < cutoff
            if how in ("absolute", "both"):
                diff.loc[small, column] = np.nan
            if rel is not None:
                rel.loc[small, column] = np.nan

    diff_named = diff.rename(columns={c: f"{c}__diff" for c in numeric})
    if how == "absolute":
        result = diff_named
    else:
        assert rel is not None
        rel_named = rel.rename(columns={c: f"{c}__rel" for c in numeric})
        if how == "relative":
            result = rel_named
        else:
            order = [name for c in numeric for name in (f"{c}__diff", f"{c}__rel")]
            result = pd.concat([diff_named, rel_named], axis=1)[order]

    if a_status is not None or b_status is not None:
        sides = [
            s.reindex(common).fillna("ok").astype(str)
            if s is not None
            else pd.Series("ok", index=common, dtype=object)
            for s in (a_status, b_status)
        ]
        both_ok = (sides[0] == "ok") & (sides[1] == "ok")
        status = (sides[0] + "/" + sides[1]).astype(object)
        status[both_ok] = "ok"
        result[_STATUS_DIFF] = status
    return result.sort_index()


def mc_convergence(
    df: pd.DataFrame,
    metric: str | Callable[[pd.DataFrame], float],
    *,
    terminal_only: bool = False,
) -> pd.DataFrame:
    """Running mean, sample std and standard error of ``metric`` over the first n ok runs.

    ``metric`` is a column (per time step, or each run's last value with
    ``terminal_only``) or a callable reducing one run's time-indexed frame to a
    number. Columns: ``n``, ``running_mean``, ``running_std``, ``se_mean``
    (with a leading ``time`` for the per-time shape).
    """
    if df.index.nlevels < 2 or _RUN_ID not in (df.index.names or []):
        raise SweepSpecError(
            f"mc_convergence: the frame's index has no run_id level "
            f"(levels: {list(df.index.names or [])}); pass a sweep frame.",
            field="df",
        )
    working = df
    if _STATUS in working.columns:
        working = working.loc[working[_STATUS] == "ok"]
    working = working.drop(columns=[_STATUS], errors="ignore")
    if callable(metric):
        return _running_stats(_per_run(working, metric).to_numpy())
    if metric not in working.columns:
        raise SweepSpecError(
            f"mc_convergence: metric {metric!r} is not a column of the frame "
            f"(columns: {list(working.columns)}) and is not callable.",
            field="metric",
            value=metric,
        )
    if terminal_only:
        last = working.groupby(level=_RUN_ID)[metric].last().sort_index()
        return _running_stats(last.to_numpy())
    return _running_stats_per_time(working[metric])


def _per_run(df: pd.DataFrame, metric: Callable[[pd.DataFrame], float]) -> pd.Series[float]:
    values: dict[int, float] = {}
    for run_id, sub in df.groupby(level=_RUN_ID, sort=True):
        result = metric(sub.droplevel(_RUN_ID))
        try:
            values[int(cast(int, run_id))] = float(result)
        except (TypeError, ValueError):
            raise SweepSpecError(
                f"mc_convergence: the metric must return a number per run; run {run_id} "
                f"gave {type(result).__name__}.",
                field="metric",
            ) from None
    return pd.Series(values, name="metric", dtype=float).sort_index()


def _running_stats(values: Any) -> pd.DataFrame:
    """Running mean / sample std / SE for k = 1..len(values), by Welford's recurrence.

    Welford, not cumulative sums: km-sized metrics with metre-sized spread would
    cancel to a zero std otherwise (and the numbers must equal gmat-sweep's).
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        empty: dict[str, pd.Series[Any]] = {"n": pd.Series([], dtype="int64")}
        empty.update({c: pd.Series([], dtype=float) for c in _RUNNING})
        return pd.DataFrame(empty)
    means = np.empty(arr.size, dtype=float)
    stds = np.empty(arr.size, dtype=float)
    mean = 0.0
    m2 = 0.0
    for i in range(arr.size):
        x = float(arr[i])
        n = i + 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
        means[i] = mean
        stds[i] = np.sqrt(m2 / (n - 1)) if n > 1 else np.nan
    counts = np.arange(1, arr.size + 1, dtype=float)
    return pd.DataFrame(
        {
            "n": np.arange(1, arr.size + 1, dtype=np.int64),
            "running_mean": means,
            "running_std": stds,
            "se_mean": stds / np.sqrt(counts),
        }
    )


def _running_stats_per_time(series: pd.Series[Any]) -> pd.DataFrame:
    levels: Any = [_TIME, _RUN_ID]
    ordered = series.reorder_levels(levels).sort_index()
    parts: list[pd.DataFrame] = []
    for when, group in ordered.groupby(level=_TIME, sort=True):
        block = _running_stats(group.to_numpy())
        block.insert(0, _TIME, when)
        parts.append(block)
    if not parts:
        empty = pd.DataFrame({c: pd.Series([], dtype=float) for c in _RUNNING})
        empty.insert(0, "n", pd.Series([], dtype="int64"))
        empty.insert(0, _TIME, pd.Series([], dtype="datetime64[ns]"))
        return empty
    joined = pd.concat(parts, axis=0, ignore_index=True)
    return joined.sort_values([_TIME, "n"], ignore_index=True)
