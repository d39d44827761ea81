"""A finished sweep's plots on its flow run page: PNG pictures as Prefect artifacts.

* ``sweep-band``: the median and 5-95 % band of a metric over time, across ok runs;
* ``sweep-corner``: the swept fields' corner plot, coloured by the metric's last value;
* ``sweep-convergence``: the running mean of the metric's last value, for a Monte
  Carlo or Latin hypercube study.

Each is a markdown artifact whose description is the PNG as a ``data:`` URI: the
flow run's Artifacts tab (list view) and the artifact's page show it as a picture,
with nothing to host. The metric is the flow's ``plot_metric`` (or the
``PREFECT_GMAT_PLOT_METRIC`` setting): a report column, ``auto`` (the first
numeric column that is not a swept field) or ``off``. Plotting is a view: any
failure here is logged once and never fails the sweep.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.frame import ReportFrames, report_names
from prefect_gmat.study.manifest import ManifestData, read_manifest

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "BAND_KEY",
    "CONVERGENCE_KEY",
    "CORNER_KEY",
    "HEATMAP_KEY",
    "PLOT_KINDS",
    "DrawnPlots",
    "PlotImage",
    "publish_plots",
    "render_plot",
    "sweep_plots",
]

BAND_KEY = "sweep-band"
CORNER_KEY = "sweep-corner"
CONVERGENCE_KEY = "sweep-convergence"
HEATMAP_KEY = "sweep-heatmap"
PLOT_KINDS = ("band", "corner", "heatmap", "convergence")
OFF = ("off", "none", "false", "")
_DPI = 80  # a few tens of kB of PNG per plot: artifacts live in the server's database
_BAND_WIDTH = 8.0  # inches: the band plot's figure, so _DPI * _BAND_WIDTH pixels across

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class PlotImage:
    """One rendered plot: its artifact key, a caption, and the PNG bytes."""

    def __init__(self, key: str, caption: str, png: bytes) -> None:
        self.key = key
        self.caption = caption
        self.png = png

    def image_markdown(self) -> str:
        """The picture inline, as a ``data:`` URI (the UI renders it; nothing to host)."""
        data = base64.b64encode(self.png).decode("ascii")
        return f"![{self.key}](data:image/png;base64,{data})"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _choose(
    manifest: ManifestData, metric: str, report: str | None, reports: ReportFrames
) -> tuple[str, str, pd.DataFrame]:
    """The report, the metric column in it (``auto``: the first numeric non-field), its frame."""
    records = list(manifest.records.values())
    names = report_names(records)
    if not names:
        raise SweepSpecError("no ok run wrote a report; nothing to plot.", field="report")
    if report is not None and report not in names:
        raise SweepSpecError(
            f"no report named {report!r}; this sweep wrote: {', '.join(names)}.",
            field="report",
            value=report,
        )
    for name in [report] if report is not None else names:
        frame = reports.frame(name, params=True)
        # Neither a swept value nor a report column that records a swept field.
        swept = {k for r in records for k in r["overrides"]} | set(frame.attrs["params"])
        numeric = [
            c
            for c in frame.columns
            if c != "__status" and c not in swept and pd.api.types.is_numeric_dtype(frame[c])
        ]
        if metric == "auto" and numeric:
            return name, numeric[0], frame
        if metric in frame.columns and metric not in swept:
            return name, metric, frame
    if metric == "auto":
        raise SweepSpecError(f"no numeric column in the reports {names}.", field="metric")
    raise SweepSpecError(
        f"no report has a column {metric!r} (reports: {', '.join(names)}); pass a column "
        "of the report, for example one listed by `prefect-gmat summary OUT`.",
        field="metric",
        value=metric,
    )


class _Sweep:
    """What every plot of one sweep needs, read once."""

    def __init__(
        self, out: str | Path, metric: str, report: str | None, reports: ReportFrames | None = None
    ) -> None:
        self.manifest = read_manifest(out)
        if reports is None:
            reports = ReportFrames(self.manifest.records.values(), self.manifest.path.parent)
        self.report, self.column, self.df = _choose(self.manifest, metric, report, reports)
        self.failed = sorted(i for i, r in self.manifest.records.items() if r["status"] != "ok")
        self.ok = len(self.manifest.records) - len(self.failed)
        spec: dict[str, Any] = self.manifest.header.get("parameter_spec") or {}
        self.kind = str(spec.get("_kind", "grid"))

    @property
    def fields(self) -> list[str]:
        """The swept fields that vary and are numbers (what a corner plot can show)."""
        df = self.df
        return [
            f
            for f in df.attrs.get("params", [])
            if pd.api.types.is_numeric_dtype(df[f]) and df[f].nunique() > 1
        ]

    def shares_time_steps(self) -> bool:
        """Several time steps, each held by most runs (fixed-step output, not adaptive steps).

        A band across runs per time needs runs that report the same epochs; with an
        adaptive integrator's own steps each epoch has one run and the "band" is noise.
        """
        ok = self.df.loc[self.df["__status"] == "ok"]
        per_step = ok.groupby(level="time").size()
        return len(per_step) > 1 and float(per_step.median()) >= max(1.0, 0.5 * self.ok)

    def left_out(self, what: str) -> str:
        n = len(self.failed)
        return f"; {n} failed runs {what}." if n else "."

    def band(self) -> PlotImage:
        from prefect_gmat.analysis.plotting import sweep_band_plot
        from prefect_gmat.analysis.stats import sweep_summary

        figure = _figure(_BAND_WIDTH, 4)
        summary = sweep_summary(self.df, q=(0.05, 0.5, 0.95))
        summary = _thinned_for_drawing(summary, self.column, int(_BAND_WIDTH * _DPI))
        sweep_band_plot(summary, self.column, ax=figure.subplots(), failed_runs=self.failed)
        caption = (
            f"**{self.column}** over time in report `{self.report}`: median and 5-95 % band "
            f"across {self.ok} ok runs" + self.left_out("left out")
        )
        return PlotImage(BAND_KEY, caption, _png(figure))

    def corner(self) -> PlotImage:
        from prefect_gmat.analysis.plotting import sweep_corner

        fields = self.fields
        size = 2.6 * max(len(fields), 2)
        figure = _figure(size + 1.2, size)
        axes = figure.subplots(len(fields), len(fields), squeeze=False) if fields else None
        sweep_corner(self.df, fields, self.column, axes=axes)
        caption = (
            f"Swept fields of the {self.ok} ok runs, coloured by the last **{self.column}** "
            "of each run" + self.left_out("are red crosses")
        )
        return PlotImage(CORNER_KEY, caption, _png(figure))

    def heatmap(self, x: str | None, y: str | None) -> PlotImage:
        from prefect_gmat.analysis.plotting import sweep_heatmap

        if x is None or y is None:
            fields = self.fields
            if len(fields) != 2:
                raise SweepSpecError(
                    f"a heatmap needs two swept fields; this sweep varies {fields}. Pass "
                    "--x and --y (fields of the sweep).",
                    field="x",
                )
            x, y = x or fields[0], y or fields[1]
        figure = _figure(8, 5)
        sweep_heatmap(self.df, x, y, self.column, manifest=self.manifest, ax=figure.subplots())
        caption = f"Last **{self.column}** of each run over {x} and {y}" + self.left_out(
            "are hatched"
        )
        return PlotImage(HEATMAP_KEY, caption, _png(figure))

    def convergence(self) -> PlotImage:
        from prefect_gmat.analysis.plotting import mc_convergence_plot
        from prefect_gmat.analysis.stats import mc_convergence

        figure = _figure(8, 4)
        until = self.manifest.header.get("until") or {}
        goal = until.get("target") or {}
        column = str(goal["metric"]) if goal.get("metric") in self.df.columns else self.column
        target = next(((k, float(goal[k])) for k in ("se", "rel_se") if k in goal), None)
        mc_convergence_plot(
            mc_convergence(self.df, column, terminal_only=True),
            ax=figure.subplots(),
            metric=column,
            failed_runs=self.failed,
            target=target if column == goal.get("metric") else None,
        )
        stopped = f"; stopped: {until['stopped']}" if until.get("stopped") else ""
        caption = (
            f"Running mean of the last **{column}** of each run (±1 standard error), "
            f"{self.kind.replace('_', ' ')} design, {self.ok} ok runs{stopped}"
            + self.left_out("left out")
        )
        return PlotImage(CONVERGENCE_KEY, caption, _png(figure))


def _thinned_for_drawing(summary: pd.DataFrame, column: str, buckets: int) -> pd.DataFrame:
    """A ``sweep_summary`` frame of at most ``2 * buckets + 2`` time steps that draws as the
    whole does at ``buckets`` pixels across: per bucket of consecutive steps, the steps where
    ``column``'s centre line is lowest and highest (the line spans the same range), with the
    band's edges widened to the bucket's envelope (the band covers the same area).

    Ten days of one-minute steps (14,401) took 1.0-1.9 s to draw; about 1,260 steps take
    0.3-0.4 s, and the pictures differ in about 1 % of their pixels.
    """
    from prefect_gmat.analysis.plotting import band_statistics

    centre_stat, quantiles = band_statistics(summary)
    steps = len(summary)
    if steps <= 2 * buckets or centre_stat is None or (centre_stat, column) not in summary:
        return summary
    bucket = np.arange(steps) // -(-steps // buckets)
    centre = summary[(centre_stat, column)].to_numpy(dtype=float)
    # a step without a value is picked only in a bucket without any (and draws as a gap)
    lowest = pd.Series(np.where(np.isnan(centre), np.inf, centre)).groupby(bucket).idxmin()
    highest = pd.Series(np.where(np.isnan(centre), -np.inf, centre)).groupby(bucket).idxmax()
    keep = np.unique(np.concatenate([lowest, highest, [0, steps - 1]]).astype(np.int64))
    thin = summary.iloc[keep].copy()
    if len(quantiles) >= 2:  # the band: its lowest edge at its lowest, its highest at its highest
        for stat, widest in ((quantiles[0], "min"), (quantiles[-1], "max")):
            if (stat, column) in summary:
                values = pd.Series(summary[(stat, column)].to_numpy(dtype=float))
                envelope = values.groupby(bucket).agg(widest).to_numpy()
                thin[(stat, column)] = envelope[bucket[keep]]
    return thin


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def render_plot(
    out: str | Path,
    kind: str,
    *,
    metric: str = "auto",
    report: str | None = None,
    x: str | None = None,
    y: str | None = None,
) -> PlotImage:
    """One plot of the sweep in ``out``: ``band``, ``corner``, ``heatmap`` or ``convergence``.

    Uses matplotlib's object API (no pyplot), so it is safe in a flow's threads.
    """
    if kind not in PLOT_KINDS:
        raise SweepSpecError(
            f"unknown plot {kind!r}; choose one of {', '.join(PLOT_KINDS)}.",
            field="kind",
            value=kind,
        )
    from prefect_gmat.analysis.plotting import require_matplotlib

    require_matplotlib()
    swept = _Sweep(out, metric, report)
    if kind == "heatmap":
        return swept.heatmap(x, y)
    image: PlotImage = getattr(swept, kind)()
    return image


def sweep_plots(
    out: str | Path, metric: str = "auto", reports: ReportFrames | None = None
) -> list[PlotImage]:
    """The plots a finished sweep publishes: band (when its runs share several time steps),
    corner (two or more swept fields), convergence (Monte Carlo or Latin hypercube).
    ``reports``: the sweep's reports when already read (the flow shares them)."""
    swept = _Sweep(out, metric, None, reports)
    images: list[PlotImage] = []
    if swept.shares_time_steps():
        images.append(swept.band())
    if len(swept.fields) >= 2:
        images.append(swept.corner())
    if swept.kind in ("monte_carlo", "latin_hypercube") and swept.ok >= 2:
        images.append(swept.convergence())
    return images


def _plot_metric(metric: str | None) -> str | None:
    """The metric the plots show (None: the setting), or None when plots are off."""
    if metric is None:
        from prefect_gmat.settings import get_settings

        metric = get_settings().plot_metric
    return None if metric.strip().lower() in OFF else metric.strip()


def plots_on(metric: str | None) -> bool:
    """Whether a sweep run with this ``plot_metric`` (None: the setting) draws plots."""
    return _plot_metric(metric) is not None


def warm_plots(metric: str | None) -> None:
    """Import matplotlib in the background (0.75 s here) while the last runs finish, so
    the plots after the last run do not wait for it (nor slow the archive, whose thread
    it would share the GIL with). Nothing when plots are off."""
    if plots_on(metric):
        # Not a daemon: an exit during a daemon thread's import can crash the interpreter.
        threading.Thread(target=_import_plotting, name="warm-plots").start()


def _import_plotting() -> None:
    with contextlib.suppress(ImportError):
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401

        import prefect_gmat.analysis.plotting  # noqa: F401


class DrawnPlots:
    """A finished sweep's plots, drawn in a thread from the start (beside the archive) and
    published as artifacts on the flow's own thread (:meth:`publish`).

    Drawing is 0.3-0.5 s of CPU for a few hundred runs, most of it matplotlib's with the
    GIL held; the archive's hashing and deflating mostly release it, so the two overlap.
    """

    def __init__(
        self, out: str | Path, metric: str | None = None, reports: ReportFrames | None = None
    ) -> None:
        self._metric = _plot_metric(metric)
        self._images: Future[list[PlotImage]] = Future()
        if self._metric is None:
            self._images.set_result([])
            return
        chosen = self._metric

        def draw() -> None:
            try:
                from prefect_gmat.analysis.plotting import require_matplotlib

                require_matplotlib()
                self._images.set_result(sweep_plots(out, chosen, reports))
            except Exception as exc:  # reported by publish()
                self._images.set_exception(exc)

        # Not a daemon, as every thread this package starts (see warm_plots).
        threading.Thread(target=draw, name="draw-plots").start()

    def publish(self, logger: Logger) -> list[str]:
        """Publish the plots as artifacts of the current flow run; their keys. Never raises:
        a sweep's result does not depend on its pictures."""
        try:
            images = self._images.result()
            from prefect.artifacts import create_markdown_artifact

            published: list[str] = []
            for image in images:
                # The picture is the description: the flow run's Artifacts tab (list view)
                # renders a description's first paragraph, so the plot shows right there;
                # the artifact's own page shows it above the caption.
                create_markdown_artifact(
                    markdown=image.caption, key=image.key, description=image.image_markdown()
                )
                published.append(image.key)
            return published
        except Exception as exc:  # the UI is a view: never fail the sweep over it
            logger.warning("sweep plots not published (%s); the sweep's results are intact", exc)
            return []


def publish_plots(out: Path, logger: Logger, metric: str | None = None) -> list[str]:
    """Publish the sweep's plots as artifacts of the current flow run; returns their keys.

    ``metric`` is a report column, ``auto`` or ``off`` (publish nothing); None
    takes the ``plot_metric`` setting. Never raises: a sweep's result does not
    depend on its pictures.
    """
    return DrawnPlots(out, metric).publish(logger)
