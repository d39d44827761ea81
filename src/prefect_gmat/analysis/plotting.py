"""Plots of a sweep: corner, heatmap, quantile band, Monte Carlo convergence (``plot`` extra).

The four functions take gmat-sweep 0.6.0's arguments, so a
notebook migrates by changing its import, and draw more honestly:

- axes are labelled with the GMAT name and its unit where GMAT documents one
  (``Sat.Earth.SMA [km]``, ``Sat.INC [deg]``);
- failed runs are drawn, not dropped: red crosses at their parameters in the
  corner plot, hatched cells in the heatmap, and a count in the band and
  convergence plots' titles.

Parameters come from the frame (``load_sweep(out, params=True)`` adds them and
remembers which columns they are) or from the sweep directory, passed as
``manifest=out`` (a directory, a ``manifest.jsonl`` or a read manifest). Matplotlib
is imported on first use, with a clear error if the extra is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.manifest import ManifestData, read_manifest

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import NDArray

__all__ = [
    "band_statistics",
    "gmat_unit",
    "mc_convergence_plot",
    "require_matplotlib",
    "sweep_band_plot",
    "sweep_corner",
    "sweep_heatmap",
]

ManifestLike = ManifestData | str | os.PathLike[str]
Metric = str | Callable[[pd.DataFrame], "pd.Series[Any]"]

_HEXBIN_ABOVE = 2000  # runs; a scatter of more saturates every pixel
FAILED_COLOR = "tab:red"
_LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85}

#: Units of GMAT's parameters and fields, by their last name component (GMAT User Guide,
#: "Calculation Parameters" and the Spacecraft/ImpulsiveBurn field references).
_UNITS: dict[str, str] = {
    **dict.fromkeys(["X", "Y", "Z", "RMAG", "SMA", "RadPer", "RadApo", "Altitude"], "km"),
    **dict.fromkeys(["VX", "VY", "VZ", "VMAG", "Element1", "Element2", "Element3"], "km/s"),
    **dict.fromkeys(
        ["INC", "RAAN", "AOP", "TA", "MA", "EA", "HA", "Latitude", "Longitude", "RA", "DEC"],
        "deg",
    ),
    **dict.fromkeys(["BetaAngle", "RAV", "DECV", "AZI", "FPA"], "deg"),
    **dict.fromkeys(["C3Energy", "Energy"], "km²/s²"),
    "HMAG": "km²/s",
    "OrbitPeriod": "s",
    "MeanMotion": "rad/s",
    "ElapsedSecs": "s",
    "ElapsedDays": "days",
    **dict.fromkeys(["DryMass", "TotalMass", "FuelMass"], "kg"),
    **dict.fromkeys(["DragArea", "SRPArea"], "m²"),
    "Epoch": "",
}


def gmat_unit(name: str) -> str | None:
    """The unit of a GMAT parameter or field (``Sat.Earth.SMA`` -> ``km``), if GMAT documents one.

    Ephemeris columns (``X`` .. ``VZ``, CCSDS-OEM) are in km and km/s too.
    """
    unit = _UNITS.get(str(name).rsplit(".", 1)[-1])
    return unit or None


def _label(name: str) -> str:
    unit = gmat_unit(name)
    return f"{name} [{unit}]" if unit else str(name)


def require_matplotlib() -> None:
    """Fail with the fix when the ``plot`` extra is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'prefect-gmat[plot]'.") from None


def _subplots(nrows: int, ncols: int, figsize: tuple[float, float]) -> NDArray[Any]:
    """A new pyplot figure's axes (pyplot only when the caller gave no axes)."""
    import matplotlib.pyplot as plt

    _, grid = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    result: NDArray[Any] = grid
    return result


def _as_manifest(manifest: ManifestLike | None) -> ManifestData | None:
    if manifest is None or isinstance(manifest, ManifestData):
        return manifest
    return read_manifest(manifest)


def _spec_fields(spec: Mapping[str, Any]) -> list[str]:
    """The swept fields a manifest's ``parameter_spec`` names, for every design kind."""
    kind = spec.get("_kind")
    if kind is None or kind == "grid":
        return sorted(k for k in spec if k != "_kind")
    if kind == "explicit":
        return [str(c) for c in spec["columns"]]
    if kind in ("monte_carlo", "latin_hypercube"):
        return list(spec["perturb"])
    raise SweepSpecError(
        f"parameter_spec kind {kind!r} is not one this version knows; pass params= explicitly.",
        field="params",
    )


def _resolve_params(
    df: pd.DataFrame, params: Sequence[str] | None, manifest: ManifestData | None, caller: str
) -> list[str]:
    if params is not None:
        names = list(params)
        if not names:
            raise SweepSpecError(f"{caller}: params is empty.", field="params")
        return names
    if manifest is not None:
        return _spec_fields(manifest.header.get("parameter_spec") or {})
    remembered = df.attrs.get("params")
    if remembered:
        return list(remembered)
    raise SweepSpecError(
        f"{caller}: which fields were swept? Pass params=[...], load the frame with "
        "load_sweep(out, params=True), or pass manifest=out (the sweep directory).",
        field="params",
    )


def _param_values(
    df: pd.DataFrame, params: Sequence[str], manifest: ManifestData | None, caller: str
) -> pd.DataFrame:
    """Per-run values of ``params``: the design values from the manifest, else the frame's columns.

    The manifest's overrides win over a report column of the same name (the
    commanded value, not the measured one), as in gmat-sweep.
    """
    swept: set[str] = set()
    if manifest is not None:
        try:
            swept = set(_spec_fields(manifest.header.get("parameter_spec") or {}))
        except SweepSpecError:
            swept = set()
    columns: dict[str, pd.Series[Any]] = {}
    missing: list[str] = []
    for name in params:
        if manifest is not None and (name in swept or name not in df.columns):
            try:
                columns[name] = pd.Series(
                    {i: r["overrides"][name] for i, r in manifest.records.items()}, name=name
                )
            except KeyError:
                missing.append(name)
        elif name in df.columns:
            columns[name] = df.groupby(level="run_id")[name].first()
        else:
            missing.append(name)
    if missing:
        raise SweepSpecError(
            f"{caller}: no values for {missing}: they are not columns of the frame"
            + (" nor in every run's overrides." if manifest is not None else ".")
            + " Load the frame with params=True, or pass manifest=out.",
            field="params",
            value=missing,
        )
    values = pd.DataFrame(columns)
    values.index.name = "run_id"
    return values.sort_index()


def _metric(df: pd.DataFrame, metric: Metric, caller: str) -> pd.Series[Any]:
    """One number per run: a column's last value, or a callable's Series indexed by run_id."""
    if callable(metric):
        result = metric(df)
        if not isinstance(result, pd.Series) or result.index.name != "run_id":
            raise SweepSpecError(
                f"{caller}: a metric callable must return a pandas Series indexed by run_id.",
                field="metric",
            )
        return result
    if metric not in df.columns:
        raise SweepSpecError(
            f"{caller}: metric {metric!r} is not a column of the frame "
            f"(columns: {[c for c in df.columns if c != '__status']}).",
            field="metric",
            value=metric,
        )
    return df.groupby(level="run_id")[metric].last()


def _status(df: pd.DataFrame, manifest: ManifestData | None) -> pd.Series[Any]:
    """Each run's status: from the frame's ``__status``, else the manifest, else all ok."""
    if "__status" in df.columns:
        return df.groupby(level="run_id")["__status"].first()
    if manifest is not None:
        return pd.Series({i: r["status"] for i, r in manifest.records.items()}, name="__status")
    ids = df.index.get_level_values("run_id").unique()
    return pd.Series("ok", index=ids, name="__status")


def _metric_name(metric: Metric) -> str:
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")


def sweep_corner(
    df: pd.DataFrame,
    params: Sequence[str] | None = None,
    metric: Metric | None = None,
    *,
    manifest: ManifestLike | None = None,
    axes: NDArray[Any] | None = None,
    kind: str = "auto",
    **kwargs: Any,
) -> NDArray[Any]:
    """A corner plot: each pair of swept fields, one point per run coloured by ``metric``.

    The diagonal holds each field's histogram (ok runs). Failed runs are red
    crosses at their parameter values. ``kind`` is ``scatter``, ``hexbin`` or
    ``auto`` (hexbin above 2000 runs). Returns the ``(N, N)`` array of Axes.
    """
    require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    read = _as_manifest(manifest)
    names = _resolve_params(df, params, read, "sweep_corner")
    if metric is None:
        raise SweepSpecError(
            "sweep_corner needs metric= (a column, or a callable giving one number per run).",
            field="metric",
        )
    if len(names) < 2:
        raise SweepSpecError(
            f"sweep_corner needs at least two swept fields, got {names}; for one field "
            "plot the metric against it directly.",
            field="params",
        )
    if kind not in ("scatter", "hexbin", "auto"):
        raise SweepSpecError(
            f"sweep_corner: kind must be 'scatter', 'hexbin' or 'auto', got {kind!r}.",
            field="kind",
            value=kind,
        )
    values = _param_values(df, names, read, "sweep_corner")
    status = _status(df, read).reindex(values.index)
    failed = values.loc[status.notna() & (status != "ok")]
    joined = values.join(_metric(df, metric, "sweep_corner").rename("__metric"), how="inner")
    joined = joined.loc[status.reindex(joined.index).fillna("ok") == "ok"]
    if joined.empty:
        raise SweepSpecError(
            "sweep_corner: no ok run to plot; every run failed (see prefect-gmat show OUT).",
            field="df",
        )
    n = len(names)
    if axes is None:
        grid = _subplots(n, n, (2.6 * n + 1.2, 2.6 * n))
    else:
        grid = np.asarray(axes)
        if grid.shape != (n, n):
            raise SweepSpecError(
                f"sweep_corner: axes has shape {grid.shape}; it needs ({n}, {n}).",
                field="axes",
            )
    hexbin = kind == "hexbin" or (kind == "auto" and len(joined) > _HEXBIN_ABOVE)
    cmap = kwargs.pop("cmap", "viridis")
    colours = joined["__metric"].to_numpy(dtype=float)
    mappable = None
    for i, row in enumerate(names):
        for j, col in enumerate(names):
            ax = grid[i, j]
            if i < j:
                ax.set_visible(False)
                continue
            if i == j:
                _histogram(ax, joined[row].to_numpy(dtype=float))
                ax.set_ylabel("runs" if j == 0 else "")
            elif hexbin:
                options: dict[str, Any] = {"gridsize": 30, "mincnt": 1, **kwargs}
                mappable = ax.hexbin(
                    joined[col].to_numpy(dtype=float),
                    joined[row].to_numpy(dtype=float),
                    C=colours,
                    reduce_C_function=np.mean,
                    cmap=cmap,
                    **options,
                )
            else:
                options = {"s": 18, "alpha": 0.8, **kwargs}
                mappable = ax.scatter(
                    joined[col].to_numpy(dtype=float),
                    joined[row].to_numpy(dtype=float),
                    c=colours,
                    cmap=cmap,
                    **options,
                )
            if i != j and not failed.empty:
                ax.scatter(
                    failed[col].to_numpy(dtype=float),
                    failed[row].to_numpy(dtype=float),
                    marker="x",
                    s=40,
                    color=FAILED_COLOR,
                    label=f"failed ({len(failed)})",
                    zorder=3,
                )
            if i == n - 1:
                ax.set_xlabel(_label(col))
            if j == 0 and i != j:
                ax.set_ylabel(_label(row))
            # Few, slanted ticks: long GMAT values (0.0075, 7400.5) must not run together.
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_major_locator(MaxNLocator(5, integer=i == j))  # counts are whole
            ax.tick_params(axis="x", labelrotation=30)
    figure = grid[0, 0].figure
    if mappable is not None:
        figure.colorbar(mappable, ax=grid.ravel().tolist(), label=_label(_metric_name(metric)))
    title = f"{len(joined)} ok runs"
    if not failed.empty:
        title += f"; {len(failed)} failed (red crosses)"
        grid[1, 0].legend(loc="best", fontsize="small")
    figure.suptitle(title)
    result: NDArray[Any] = grid
    return result


def _histogram(ax: Axes, values: NDArray[Any]) -> None:
    """A grid's few levels as one bar each (with gaps); a dispersion's as numpy's auto bins."""
    levels, counts = np.unique(values, return_counts=True)
    if len(levels) > 20:
        ax.hist(values, bins="auto", color="steelblue")
        return
    width = 0.6 * (float(np.min(np.diff(levels))) if len(levels) > 1 else 1.0)
    ax.bar(levels, counts, width=width, color="steelblue")


def sweep_heatmap(
    df: pd.DataFrame,
    x: str,
    y: str,
    z: Metric,
    *,
    manifest: ManifestLike | None = None,
    ax: Axes | None = None,
    **kwargs: Any,
) -> Axes:
    """``z`` (one number per run) over a two-field grid; failed runs are hatched grey cells.

    With ``manifest=`` the sweep must be a grid of exactly the fields ``x`` and
    ``y`` (a Monte Carlo study goes to :func:`sweep_corner`).
    """
    require_matplotlib()
    import matplotlib as mpl
    from matplotlib.patches import Rectangle

    read = _as_manifest(manifest)
    if read is not None:
        spec = read.header.get("parameter_spec") or {}
        if spec.get("_kind", "grid") != "grid":
            raise SweepSpecError(
                f"sweep_heatmap needs a grid sweep; this one is {spec.get('_kind')!r}. "
                "Use sweep_corner for Monte Carlo, Latin hypercube or explicit samples.",
                field="manifest",
            )
        axes_names = _spec_fields(spec)
        if len(axes_names) != 2 or {x, y} != set(axes_names):
            raise SweepSpecError(
                f"sweep_heatmap needs the grid's two fields as x and y; the grid sweeps "
                f"{axes_names}, asked for x={x!r}, y={y!r}.",
                field="x",
            )
    values = _param_values(df, [x, y], read, "sweep_heatmap")
    joined = values.join(_metric(df, z, "sweep_heatmap").rename("__metric"), how="left")
    status = _status(df, read).reindex(joined.index)
    bad = status.notna() & (status != "ok")
    joined.loc[bad, "__metric"] = np.nan
    joined["__failed"] = bad.astype(float)
    for axis, name in (("x", x), ("y", y)):
        if not pd.api.types.is_numeric_dtype(joined[name]):
            raise SweepSpecError(
                f"sweep_heatmap needs numeric axes; {axis}={name!r} holds "
                f"{joined[name].dtype}. Use sweep_corner for other fields.",
                field=axis,
                value=name,
            )
    pivot = joined.pivot_table(index=y, columns=x, values="__metric", aggfunc="first", dropna=False)
    fails = joined.pivot_table(index=y, columns=x, values="__failed", aggfunc="max", dropna=False)
    if pivot.empty and fails.empty:
        raise SweepSpecError(
            f"sweep_heatmap: no runs at the axes x={x!r}, y={y!r}.", field="x", value=x
        )
    pivot = pivot.reindex(index=fails.index, columns=fails.columns)
    if ax is None:
        ax = _subplots(1, 1, (8, 5))[0, 0]
    cmap_name = kwargs.pop("cmap", "viridis")
    cmap = (mpl.colormaps[cmap_name] if isinstance(cmap_name, str) else cmap_name).copy()
    cmap = cmap.with_extremes(bad="lightgray")
    # One cell per grid value, equally wide, labelled with the value: a grid's levels
    # are read as levels, and an outlying value does not squeeze the others.
    columns = np.arange(len(pivot.columns) + 1) - 0.5
    rows = np.arange(len(pivot.index) + 1) - 0.5
    mesh = ax.pcolormesh(
        columns, rows, np.ma.masked_invalid(pivot.to_numpy(dtype=float)), cmap=cmap, **kwargs
    )
    ax.set_xticks(range(len(pivot.columns)), [f"{v:g}" for v in pivot.columns])
    ax.set_yticks(range(len(pivot.index)), [f"{v:g}" for v in pivot.index])
    failed_cells = np.argwhere(np.nan_to_num(fails.to_numpy(dtype=float)) > 0)
    for row, col in failed_cells:
        ax.add_patch(
            Rectangle(
                (col - 0.5, row - 0.5),
                1,
                1,
                facecolor="lightgray",
                edgecolor=FAILED_COLOR,
                hatch="xx",
                linewidth=0.0,
            )
        )
        ax.text(col, row, "failed", ha="center", va="center", color=FAILED_COLOR, bbox=_LABEL_BOX)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(y))
    title = f"{_metric_name(z)}: last value of each run"
    if len(failed_cells):
        title += f"; {len(failed_cells)} failed run(s) hatched"
    ax.set_title(title, fontsize="medium")
    ax.figure.colorbar(mesh, ax=ax, label=_label(_metric_name(z)))
    return ax


def _title_failures(ax: Axes, failed_runs: Sequence[int] | None) -> None:
    if not failed_runs:
        return
    shown = ", ".join(str(i) for i in list(failed_runs)[:8])
    more = " ..." if len(failed_runs) > 8 else ""
    ax.set_title(
        f"{len(failed_runs)} failed run(s) left out (run {shown}{more})",
        color=FAILED_COLOR,
        fontsize="small",
    )


def band_statistics(summary: pd.DataFrame) -> tuple[str | None, list[str]]:
    """What :func:`sweep_band_plot` draws from a ``sweep_summary`` frame: the centre line's
    statistic (the median, else the mean, else None) and the quantiles, lowest first (the
    band spans the first and the last)."""
    quantiles: list[tuple[float, str]] = []
    for stat in dict.fromkeys(summary.columns.get_level_values(0)):
        if isinstance(stat, str) and stat.startswith("q"):
            try:
                quantiles.append((float(stat[1:]), stat))
            except ValueError:
                continue
    quantiles.sort()
    centre = next((s for v, s in quantiles if v == 0.5), None)
    if centre is None and "mean" in set(summary.columns.get_level_values(0)):
        centre = "mean"
    return centre, [s for _, s in quantiles]


def sweep_band_plot(
    summary: pd.DataFrame,
    column: str,
    *,
    ax: Axes | None = None,
    failed_runs: Sequence[int] | None = None,
    **kwargs: Any,
) -> Axes:
    """The median (or mean) of ``column`` and its widest quantile band, from ``sweep_summary``.

    ``failed_runs`` (run ids) puts the runs the summary left out in the title.
    Extra keywords go to the centre line's ``plot``.
    """
    require_matplotlib()
    if not isinstance(summary.columns, pd.MultiIndex) or summary.columns.nlevels != 2:
        raise SweepSpecError(
            "sweep_band_plot needs a sweep_summary frame (columns: statistic, field).",
            field="summary",
        )
    fields = summary.columns.get_level_values(1)
    if column not in fields:
        raise SweepSpecError(
            f"sweep_band_plot: no field {column!r} in the summary; it has "
            f"{sorted(set(map(str, fields)))}.",
            field="column",
            value=column,
        )
    centre, quantiles = band_statistics(summary)
    if centre is None:
        raise SweepSpecError(
            f"sweep_band_plot: {column!r} has no centre statistic; summarise with q "
            "including 0.5, or include 'mean'.",
            field="summary",
        )
    if ax is None:
        ax = _subplots(1, 1, (8, 4))[0, 0]
    x = summary.index.to_numpy()
    options: dict[str, Any] = {"label": f"{column} ({_stat_label(centre)})", **kwargs}
    (line,) = ax.plot(x, summary[(centre, column)].to_numpy(dtype=float), **options)
    if len(quantiles) >= 2:
        low, high = quantiles[0], quantiles[-1]
        ax.fill_between(
            x,
            summary[(low, column)].to_numpy(dtype=float),
            summary[(high, column)].to_numpy(dtype=float),
            color=line.get_color(),
            alpha=0.25,
            label=f"{_stat_label(low)} to {_stat_label(high)}",
        )
    index_name = str(summary.index.name or "index")
    ax.set_xlabel("time (UTC)" if index_name == "time" and _utc(fields) else index_name)
    ax.set_ylabel(_label(column))
    ax.legend(loc="best", fontsize="small")
    if index_name == "time":
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    _title_failures(ax, failed_runs)
    return ax


def _stat_label(stat: str) -> str:
    """``q0.05`` -> ``5th percentile``; ``mean`` stays."""
    if stat.startswith("q"):
        try:
            value = float(stat[1:]) * 100
        except ValueError:
            return stat
        return "median" if value == 50 else f"{value:g}th percentile"
    return stat


def _utc(fields: pd.Index[Any]) -> bool:
    return any(str(f).endswith("UTCGregorian") or str(f).endswith("UTCModJulian") for f in fields)


def mc_convergence_plot(
    conv: pd.DataFrame,
    *,
    ax: Axes | None = None,
    metric: str | None = None,
    failed_runs: Sequence[int] | None = None,
    target: tuple[str, float] | None = None,
    **kwargs: Any,
) -> Axes:
    """The running mean of a Monte Carlo metric with its ±1 standard-error band, over n runs.

    ``conv`` is :func:`mc_convergence`'s terminal shape (``terminal_only=True``
    or a callable metric). ``metric`` names the y axis (with its unit);
    ``failed_runs`` are counted in the title. ``target`` (``("se", x)`` or
    ``("rel_se", x)``, a study's ``until``) adds that error over n on a right-hand axis
    with the target as a dashed line.
    """
    require_matplotlib()
    missing = {"n", "running_mean", "se_mean"} - set(conv.columns)
    if missing:
        raise SweepSpecError(
            f"mc_convergence_plot needs mc_convergence's columns; missing {sorted(missing)}.",
            field="conv",
        )
    if "time" in conv.columns:
        raise SweepSpecError(
            "mc_convergence_plot takes one curve: pass mc_convergence(..., terminal_only=True), "
            "or select one time (conv[conv['time'] == t].drop(columns='time')).",
            field="conv",
        )
    if ax is None:
        ax = _subplots(1, 1, (8, 4))[0, 0]
    n = conv["n"].to_numpy()
    mean = conv["running_mean"].to_numpy(dtype=float)
    se = conv["se_mean"].to_numpy(dtype=float)
    (line,) = ax.plot(n, mean, **{"label": "running mean", **kwargs})
    ax.fill_between(
        n, mean - se, mean + se, color=line.get_color(), alpha=0.25, label="±1 standard error"
    )
    ax.set_xlabel("n (ok runs, in run-id order)")
    ax.set_ylabel(f"running mean of {_label(metric)}" if metric else "running mean")
    handles, labels = ax.get_legend_handles_labels()
    if target is not None:
        kind, value = target
        error = se if kind == "se" else se / np.abs(mean)
        right = ax.twinx()
        (err,) = right.plot(n, error, color="tab:red", linewidth=1, label=f"{kind} of the mean")
        goal = right.axhline(
            value, color="tab:red", linestyle="--", label=f"target {kind} {value:g}"
        )
        right.set_ylabel(f"{kind} of the mean")
        handles, labels = [*handles, err, goal], [*labels, err.get_label(), goal.get_label()]
    ax.legend(handles, labels, loc="best", fontsize="small")
    _title_failures(ax, failed_runs)
    return ax
