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
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from prefect_gmat.frame import aggregate, report_names
from prefect_gmat.manifest import ManifestData, read_manifest

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BAND_KEY", "CONVERGENCE_KEY", "CORNER_KEY", "PlotImage", "publish_plots", "sweep_plots"]

BAND_KEY = "sweep-band"
CORNER_KEY = "sweep-corner"
CONVERGENCE_KEY = "sweep-convergence"
OFF = ("off", "none", "false", "")
_DPI = 80  # a few tens of kB of PNG per plot: artifacts live in the server's database

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


def _choose(manifest: ManifestData, metric: str) -> tuple[str | None, str]:
    """The report to read and the metric column in it (``auto``: the first numeric non-field)."""
    records = list(manifest.records.values())
    names = report_names(records)
    if not names:
        raise ValueError("no ok run wrote a report")
    swept = {k for r in records for k in r["overrides"]}
    for name in names:
        frame = aggregate(records, manifest.path.parent, report=name)
        numeric = [
            c
            for c in frame.columns
            if c != "__status" and c not in swept and pd.api.types.is_numeric_dtype(frame[c])
        ]
        if metric == "auto" and numeric:
            return name, numeric[0]
        if metric in frame.columns:
            return name, metric
    if metric == "auto":
        raise ValueError(f"no numeric column in the reports {names}")
    raise ValueError(f"no report has a column {metric!r} (reports: {', '.join(names)})")


def sweep_plots(out: str | Path, metric: str = "auto") -> list[PlotImage]:
    """Render the band, corner and (for Monte Carlo) convergence plots of the sweep in ``out``.

    Uses matplotlib's object API (no pyplot), so it is safe in a flow's threads.
    """
    from matplotlib.figure import Figure

    from prefect_gmat.plotting import (
        mc_convergence_plot,
        sweep_band_plot,
        sweep_corner,
    )
    from prefect_gmat.stats import mc_convergence, sweep_summary

    manifest = read_manifest(out)
    report, column = _choose(manifest, metric)
    records = list(manifest.records.values())
    df = aggregate(records, manifest.path.parent, report=report, params=True)
    failed = sorted(i for i, r in manifest.records.items() if r["status"] != "ok")
    ok = len(manifest.records) - len(failed)
    spec: dict[str, Any] = manifest.header.get("parameter_spec") or {}
    kind = spec.get("_kind", "grid")
    images: list[PlotImage] = []

    times = df.index.get_level_values("time").dropna().unique()
    if len(times) > 1:
        figure = Figure(figsize=(8, 4))
        sweep_band_plot(
            sweep_summary(df, q=(0.05, 0.5, 0.95)),
            column,
            ax=figure.subplots(),
            failed_runs=failed,
        )
        caption = (
            f"**{column}** over time in report `{report}`: median and 5-95 % band across "
            f"{ok} ok runs" + (f"; {len(failed)} failed runs left out." if failed else ".")
        )
        images.append(PlotImage(BAND_KEY, caption, _png(figure)))

    fields = [
        f
        for f in df.attrs.get("params", [])
        if pd.api.types.is_numeric_dtype(df[f]) and df[f].nunique() > 1
    ]
    if len(fields) >= 2:
        size = 2.6 * len(fields)
        figure = Figure(figsize=(size + 1.2, size))
        axes = figure.subplots(len(fields), len(fields), squeeze=False)
        sweep_corner(df, fields, column, axes=axes)
        caption = (
            f"Swept fields of the {ok} ok runs, coloured by the last **{column}** of each run"
            + (f"; {len(failed)} failed runs are red crosses." if failed else ".")
        )
        images.append(PlotImage(CORNER_KEY, caption, _png(figure)))

    if kind in ("monte_carlo", "latin_hypercube") and ok >= 2:
        figure = Figure(figsize=(8, 4))
        mc_convergence_plot(
            mc_convergence(df, column, terminal_only=True),
            ax=figure.subplots(),
            metric=column,
            failed_runs=failed,
        )
        caption = (
            f"Running mean of the last **{column}** of each run (±1 standard error), "
            f"{kind.replace('_', ' ')} study, {ok} ok runs."
        )
        images.append(PlotImage(CONVERGENCE_KEY, caption, _png(figure)))
    return images


def publish_plots(out: Path, logger: Logger, metric: str | None = "auto") -> list[str]:
    """Publish the sweep's plots as artifacts of the current flow run; returns their keys.

    ``metric`` ``off`` (or None) publishes nothing. Never raises: a sweep's
    result does not depend on its pictures.
    """
    if metric is None or metric.strip().lower() in OFF:
        return []
    try:
        from prefect.artifacts import create_markdown_artifact

        from prefect_gmat.plotting import require_matplotlib

        require_matplotlib()
        published = []
        for image in sweep_plots(out, metric.strip()):
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
