"""Re-aggregate a sweep's per-run Parquet into one frame, exactly as gmat-sweep 0.6.0 does.

No Prefect here. The frame has a ``(run_id, time)`` MultiIndex, the report's
columns in file order (``time`` moved into the index), and ``__status`` last.
A run that did not produce the report keeps one ``(run_id, NaT)`` row with its
status, so failures stay visible. The operations (not just the result) follow
gmat-sweep's so dtypes agree under any pandas version; ``params=True`` adds the
swept fields as columns, joined from the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefect_gmat.errors import SweepSpecError

__all__ = ["aggregate", "report_names"]

_PREFIX = "report__"


def report_names(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the reports the ok runs wrote (``RF`` for ``report__RF``)."""
    return sorted(
        {
            key[len(_PREFIX) :]
            for r in records
            if r["status"] == "ok"
            for key in r["output_paths"]
            if key.startswith(_PREFIX)
        }
    )


def aggregate(
    records: Iterable[Mapping[str, Any]],
    root: str | os.PathLike[str],
    *,
    report: str | None = None,
    params: bool = False,
    converged: bool = False,
) -> pd.DataFrame:
    """One frame from manifest records; relative output paths resolve against ``root``.

    ``converged=True`` adds ``__converged``: False for a run whose Target/Optimize
    solver stopped without converging, True if all converged, <NA> without a solver.
    """
    records = sorted(records, key=lambda r: int(r["run_id"]))
    names = report_names(records)
    if report is None:
        if len(names) > 1:
            raise SweepSpecError(
                f"the sweep wrote {len(names)} reports ({', '.join(names)}); "
                f"pass report= to choose one, e.g. report={names[0]!r}.",
                field="report",
            )
        report = names[0] if names else None
    elif names and report not in names:
        raise SweepSpecError(
            f"no report named {report!r}; this sweep wrote: {', '.join(names)}.",
            field="report",
            value=report,
        )
    key = _PREFIX + report if report is not None else None
    ok: list[tuple[Path, int]] = []
    other: list[Mapping[str, Any]] = []
    for record in records:
        if record["status"] == "ok" and key is not None and key in record["output_paths"]:
            path = Path(record["output_paths"][key])
            ok.append((path if path.is_absolute() else Path(root) / path, int(record["run_id"])))
        else:
            other.append(record)

    parts: list[pd.DataFrame] = []
    data_columns: list[str] = []
    if ok:
        tables = []
        for path, run_id in ok:
            table = pq.read_table(path)
            ids = pa.array([run_id] * table.num_rows, type=pa.int64())
            tables.append(table.append_column("run_id", ids))
        merged = pa.concat_tables(tables, promote_options="default").to_pandas()
        if "time" not in merged.columns:
            raise SweepSpecError(
                f"report {report!r} has no time column (no epoch column such as "
                "Sat.UTCGregorian); add one to the ReportFile to aggregate by time.",
                field="report",
                value=report,
            )
        merged["time"] = pd.to_datetime(merged["time"]).astype("datetime64[ns]")
        merged["__status"] = "ok"
        frame = merged.set_index(["run_id", "time"])
        data_columns = [c for c in frame.columns if c != "__status"]
        parts.append(frame)
    if other:
        rows: dict[str, Any] = {c: [np.nan] * len(other) for c in data_columns}
        rows["run_id"] = [int(r["run_id"]) for r in other]
        rows["time"] = [pd.NaT] * len(other)
        rows["__status"] = [r["status"] for r in other]
        markers = pd.DataFrame(rows)
        markers["time"] = pd.to_datetime(markers["time"]).astype("datetime64[ns]")
        parts.append(markers.set_index(["run_id", "time"]))
    parts = [p for p in parts if not p.empty]
    if not parts:
        index = pd.MultiIndex.from_arrays(
            [pd.Series([], dtype="int64"), pd.Series([], dtype="datetime64[ns]")],
            names=["run_id", "time"],
        )
        result = pd.DataFrame({"__status": pd.Series([], dtype="object")}, index=index)
    else:
        result = pd.concat(parts, axis=0).sort_index()
    if params:
        result = _with_params(result, records)
    if converged:
        result = _with_convergence(result, records)
    return result


def _with_convergence(frame: pd.DataFrame, records: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Add ``__converged`` per run (nullable boolean), joined on ``run_id``."""
    flags: dict[int, bool | None] = {}
    for record in records:
        solvers: Mapping[str, bool] = record.get("converged") or {}
        flags[int(record["run_id"])] = all(solvers.values()) if solvers else None
    run_ids = frame.index.get_level_values("run_id")
    values = pd.array([flags.get(int(i)) for i in run_ids], dtype="boolean")
    return frame.assign(**{"__converged": values})


def _with_params(frame: pd.DataFrame, records: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Insert one column per swept field, before the report columns."""
    overrides = pd.DataFrame(
        [r["overrides"] for r in records], index=pd.Index([int(r["run_id"]) for r in records])
    )
    run_ids = frame.index.get_level_values("run_id")
    joined = overrides.reindex(run_ids)
    joined.index = frame.index
    return pd.concat([joined, frame], axis=1)
