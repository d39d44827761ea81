"""Re-aggregate a sweep's per-run Parquet into one frame, exactly as gmat-sweep 0.6.0 does.

The frame has a ``(run_id, time)`` MultiIndex, the report's
columns in file order (``time`` moved into the index), and ``__status`` last.
A run that did not produce the report keeps one ``(run_id, NaT)`` row with its
status, so failures stay visible. The operations (not just the result) follow
gmat-sweep's so dtypes agree under any pandas version; ``params=True`` adds the
swept fields as columns, joined from the manifest.

Each file is looked for in the sweep directory first (relative paths, and a
directory moved, mounted elsewhere or unzipped since it ran: see
:func:`prefect_gmat.core.layout.find_run_file`), then where it was recorded.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefect_gmat.core.layout import find_run_file
from prefect_gmat.core.records import Outcome
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.manifest import ManifestData, read_manifest

__all__ = [
    "ReportFrames",
    "ReportPrefetch",
    "aggregate",
    "contacts",
    "ephemerides",
    "extra_outputs",
    "fused_reports",
    "lazy_contacts",
    "lazy_ephemerides",
    "lazy_extra_outputs",
    "lazy_fused_reports",
    "lazy_multiindex",
    "lazy_solver_convergence",
    "lazy_solver_runs",
    "output_names",
    "report_names",
    "solver_convergence",
    "solver_runs",
]

_TIME = "time"
_INTERVAL = "interval_id"
_LABELS = {"report": "report", "ephemeris": "ephemeris", "contact": "contact locator"}


def output_names(records: Iterable[Mapping[str, Any]], kind: str) -> list[str]:
    """Names of one kind's outputs the ok runs wrote (``RF`` for ``report__RF``)."""
    prefix = f"{kind}__"
    return sorted(
        {
            key[len(prefix) :]
            for r in records
            if r["status"] == "ok"
            for key in r["output_paths"]
            if key.startswith(prefix)
        }
    )


def report_names(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the reports the ok runs wrote (``RF`` for ``report__RF``)."""
    return output_names(records, "report")


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
    return ReportFrames(records, root).frame(report, params=params, converged=converged)


class ReportFrames:
    """A sweep's reports, each stacked from its run files once, for every frame made of it.

    A finished sweep needs its frame twice at once (the plots and the caller's return,
    from two threads): the first :meth:`frame` reads the files, the other waits for it
    and shares the stack. The frames it returns are new objects but for the plain one
    (no ``params``, no ``converged``), which is the stack itself: read it, do not change it.
    """

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]],
        root: str | os.PathLike[str],
        prefetched: ReportPrefetch | None = None,
    ) -> None:
        self.records = sorted(records, key=lambda r: int(r["run_id"]))
        self.root = root
        self._prefetched = prefetched
        self._stacks: dict[str | None, pd.DataFrame] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(
        cls, out: str | os.PathLike[str], prefetched: ReportPrefetch | None = None
    ) -> ReportFrames:
        """The reports of the sweep in ``out`` (its manifest read now), with the run files
        ``prefetched`` read while it ran."""
        manifest = read_manifest(out)
        return cls(manifest.records.values(), manifest.path.parent, prefetched)

    def frame(
        self, report: str | None = None, *, params: bool = False, converged: bool = False
    ) -> pd.DataFrame:
        """:func:`aggregate`'s frame of ``report`` (the only one, when None)."""
        names = report_names(self.records)
        key = names[0] if report is None and len(names) == 1 else report
        with self._lock:
            stack = self._stacks.get(key)
            if stack is None:
                stack = _per_run_outputs(
                    self.records,
                    self.root,
                    kind="report",
                    name=report,
                    argument="report",
                    prefetched=self._prefetched,
                )
                self._stacks[key] = stack
        result = stack
        if params:
            result = _with_params(result, self.records)
        if converged:
            result = _with_convergence(result, self.records)
        return result


def ephemerides(
    records: Iterable[Mapping[str, Any]],
    root: str | os.PathLike[str],
    *,
    name: str | None = None,
) -> pd.DataFrame:
    """The EphemerisFile outputs, ``(run_id, time)`` indexed, as gmat-sweep's ``lazy_ephemerides``.

    ``time`` is the ephemeris epoch (the first datetime column, copied by the
    worker); a run without the ephemeris keeps one ``(run_id, NaT)`` row.
    """
    records = sorted(records, key=lambda r: int(r["run_id"]))
    return _per_run_outputs(records, root, kind="ephemeris", name=name, argument="name")


def contacts(
    records: Iterable[Mapping[str, Any]],
    root: str | os.PathLike[str],
    *,
    name: str | None = None,
) -> pd.DataFrame:
    """ContactLocator outputs, ``(run_id, interval_id)`` indexed, as gmat-sweep's ``lazy_contacts``.

    The pip engine has no ContactLocator (no plugins ship in the wheel), so only
    sweeps run on a desktop GMAT by gmat-sweep write ``contact__<name>`` files;
    this reads those. A run without one keeps one ``(run_id, <NA>)`` row.
    """
    records = sorted(records, key=lambda r: int(r["run_id"]))
    return _per_run_outputs(records, root, kind="contact", name=name, argument="name")


def _resolve(root: str | os.PathLike[str], raw: str, run_id: int) -> Path:
    """The file run ``run_id``'s record names: found in ``root`` (or as recorded), else
    where it was recorded (relative to ``root``), for the error that follows."""
    found = find_run_file(Path(root), run_id, str(raw))
    if found is not None:
        return found
    path = Path(raw)
    return path if path.is_absolute() else Path(root) / path


def _read(path: Path) -> pa.Table:
    """One run's Parquet file. Read as a file, not as a dataset (``pq.read_table``):
    that skips dataset discovery and halves the time for a sweep's many small files."""
    with pq.ParquetFile(path) as handle:
        return handle.read()


_COMPACT_EVERY = 256  # per-run tables read before they are merged into one
_READERS = 4  # threads reading one sweep's files


def _with_run_id(table: pa.Table, run_id: int) -> pa.Table:
    return table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.int64()))


def _compact(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="default").combine_chunks()


def _same_file(path: Path, other: str) -> bool:
    if os.path.abspath(path) == os.path.abspath(other):
        return True
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


class ReportPrefetch:
    """Reads good runs' report files while the sweep still runs, so the frame at its end
    reads only the last few.

    The flow hands it each batch of outcomes as it records them; one background thread
    reads their reports and compacts them as :func:`_per_run_outputs` does. At the end
    :meth:`take` stops the thread and gives the frame what was read for the runs the
    manifest names, with the same files; the frame reads the rest itself (a file this
    thread could not read included: that read reports why). A short run's report takes
    0.5-1 ms to read: spent while the engines run, not after the last run, where the
    archive and the plots wait for it.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[int, str, str] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Per output key: compacted groups with the runs they hold, runs not yet compacted.
        self._groups: dict[str, list[tuple[pa.Table, dict[int, str]]]] = {}
        self._loose: dict[str, list[tuple[pa.Table, int, str]]] = {}
        self._columns: dict[str, dict[int, tuple[str, ...]]] = {}  # each run's, in order
        self._twice: dict[str, set[int]] = {}  # recorded twice: read again at the end

    def add(self, outcomes: Iterable[Outcome]) -> None:
        """Queue the reports of the good runs among ``outcomes``."""
        if self._stop.is_set():
            return
        for outcome in outcomes:
            if not outcome.ok:
                continue
            for key, path in outcome.output_paths.items():
                if key.startswith("report__"):
                    self._queue.put((outcome.run_id, key, path))
                    if self._thread is None:
                        # Not a daemon (an exit during a read could crash): close() ends it.
                        self._thread = threading.Thread(
                            target=self._read_queued, name="report-prefetch"
                        )
                        self._thread.start()

    def close(self) -> None:
        """Stop reading (what was read is kept for :meth:`take`)."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def take(
        self, key: str, wanted: Sequence[tuple[Path, int]]
    ) -> tuple[list[pa.Table], list[tuple[Path, int]], dict[int, tuple[str, ...]]]:
        """The tables read for ``key`` that hold only ``wanted`` runs (their files), the
        wanted runs they do not hold, and the columns of each run they hold."""
        self.close()
        files = {run_id: path for path, run_id in wanted}
        twice = self._twice.get(key, set())

        def usable(run_id: int, path: str) -> bool:
            mine = files.get(run_id)
            return mine is not None and run_id not in twice and _same_file(mine, path)

        tables: list[pa.Table] = []
        held: set[int] = set()
        for group, runs in self._groups.pop(key, []):
            if all(usable(run_id, path) for run_id, path in runs.items()):
                tables.append(group)
                held.update(runs)
        for table, run_id, path in self._loose.pop(key, []):
            if usable(run_id, path):
                tables.append(table)
                held.add(run_id)
        columns = self._columns.pop(key, {})
        rest = [(path, run_id) for path, run_id in wanted if run_id not in held]
        return tables, rest, {run_id: columns[run_id] for run_id in held}

    def _read_queued(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            run_id, key, path = item
            columns = self._columns.setdefault(key, {})
            if run_id in columns:
                self._twice.setdefault(key, set()).add(run_id)
                continue
            try:
                table = _with_run_id(_read(Path(path)), run_id)
            except Exception:  # read again at the end, where the error is reported
                continue
            columns[run_id] = tuple(table.column_names)
            loose = self._loose.setdefault(key, [])
            loose.append((table, run_id, path))
            if len(loose) == _COMPACT_EVERY:
                runs = {r: p for _, r, p in loose}
                self._groups.setdefault(key, []).append((_compact([t for t, _, _ in loose]), runs))
                loose.clear()


def _read_runs(
    runs: list[tuple[Path, int]], prefetched: ReportPrefetch | None, key: str
) -> pa.Table:
    """The runs' files as one table with a ``run_id`` column, each file's rows in their
    order, and columns as if each run's table had been appended in turn, whatever was
    read ahead by ``prefetched``."""
    tables: list[pa.Table] = []
    rest, columns = runs, dict[int, tuple[str, ...]]()
    if prefetched is not None:
        tables, rest, columns = prefetched.take(key, runs)
    # Compacted in groups: 10,000 runs' small tables, each with its own schema and
    # metadata, held at once cost far more memory than their rows.
    # Read by a few threads (Parquet decoding releases the GIL): 300 small files take
    # 0.11-0.16 s instead of 0.23-0.30 s here.
    groups = list(tables)
    with ThreadPoolExecutor(_READERS, thread_name_prefix="parquet-read") as readers:
        for start in range(0, len(rest), _COMPACT_EVERY):
            chunk = rest[start : start + _COMPACT_EVERY]
            read = readers.map(_read, [path for path, _ in chunk])
            chunk_tables = [
                _with_run_id(table, run_id) for table, (_, run_id) in zip(read, chunk, strict=True)
            ]
            columns.update(
                (r, tuple(t.column_names)) for t, (_, r) in zip(chunk_tables, chunk, strict=True)
            )
            full = len(chunk_tables) == _COMPACT_EVERY
            groups.extend([_compact(chunk_tables)] if full else chunk_tables)
    merged = pa.concat_tables(groups, promote_options="default")
    if not tables:
        return merged  # all read here, in run order
    # Rows are put in run order by the caller's stable sort; columns as the first run's,
    # then each new one where a later run brought it.
    order = list(dict.fromkeys(name for _, run_id in runs for name in columns[run_id]))
    return merged if merged.column_names == order else merged.select(order)


def _per_run_outputs(
    records: list[Mapping[str, Any]],
    root: str | os.PathLike[str],
    *,
    kind: str,
    name: str | None,
    argument: str,
    prefetched: ReportPrefetch | None = None,
) -> pd.DataFrame:
    """Stack one output kind's per-run Parquet files; marker rows for runs without it."""
    secondary = _INTERVAL if kind == "contact" else _TIME
    names = output_names(records, kind)
    label = _LABELS[kind]
    if name is None:
        if len(names) > 1:
            raise SweepSpecError(
                f"the sweep wrote {len(names)} {label}s ({', '.join(names)}); "
                f"pass {argument}= to choose one, e.g. {argument}={names[0]!r}.",
                field=argument,
            )
        name = names[0] if names else None
    elif names and name not in names:
        raise SweepSpecError(
            f"no {label} named {name!r}; this sweep wrote: {', '.join(names)}.",
            field=argument,
            value=name,
        )
    key = f"{kind}__{name}" if name is not None else None
    ok: list[tuple[Path, int]] = []
    other: list[Mapping[str, Any]] = []
    for record in records:
        if record["status"] == "ok" and key is not None and key in record["output_paths"]:
            run_id = int(record["run_id"])
            ok.append((_resolve(root, record["output_paths"][key], run_id), run_id))
        else:
            other.append(record)

    parts: list[pd.DataFrame] = []
    data_columns: list[str] = []
    if ok:
        assert key is not None
        merged = _read_runs(ok, prefetched, key).to_pandas()
        if secondary not in merged.columns:
            hint = (
                "add an epoch column such as Sat.UTCGregorian to the ReportFile"
                if kind == "report"
                else "the files were not written by a sweep"
            )
            raise SweepSpecError(
                f"{label} {name!r} has no {secondary} column; {hint}.",
                field=argument,
                value=name,
            )
        merged[secondary] = _index_values(merged[secondary], secondary)
        merged["__status"] = "ok"
        frame = merged.set_index(["run_id", secondary])
        data_columns = [c for c in frame.columns if c != "__status"]
        parts.append(frame)
    if other:
        rows: dict[str, Any] = {c: [np.nan] * len(other) for c in data_columns}
        rows["run_id"] = [int(r["run_id"]) for r in other]
        rows[secondary] = [pd.NaT if secondary == _TIME else pd.NA] * len(other)
        rows["__status"] = [r["status"] for r in other]
        markers = pd.DataFrame(rows)
        markers[secondary] = _index_values(markers[secondary], secondary)
        parts.append(markers.set_index(["run_id", secondary]))
    parts = [p for p in parts if not p.empty]
    if not parts:
        index = pd.MultiIndex.from_arrays(
            [pd.Series([], dtype="int64"), _index_values(pd.Series([], dtype=object), secondary)],
            names=["run_id", secondary],
        )
        return pd.DataFrame({"__status": pd.Series([], dtype="object")}, index=index)
    return pd.concat(parts, axis=0).sort_index()


def _index_values(values: pd.Series[Any], secondary: str) -> pd.Series[Any]:
    """``time`` as datetime64[ns] (NaT for markers); ``interval_id`` as nullable Int64."""
    if secondary == _TIME:
        return pd.to_datetime(values).astype("datetime64[ns]")
    return values.astype("Int64")


def solver_runs(records: Iterable[Mapping[str, Any]], root: str | os.PathLike[str]) -> pd.DataFrame:
    """Every Target/Optimize iteration, ``(run_id, solver, iteration)`` indexed.

    As gmat-sweep's ``lazy_solver_runs``: one column per Vary variable and goal
    (value, desired, residual, tolerance) plus ``status`` (``running`` until the
    last iteration: ``converged``, ``max_iter`` or ``failed``). Only ok runs with
    a solver contribute rows; no marker rows.
    """
    tables: list[pa.Table] = []
    for record in sorted(records, key=lambda r: int(r["run_id"])):
        if record["status"] != "ok":
            continue
        run_id = int(record["run_id"])
        for solver, raw in (record.get("solver_paths") or {}).items():
            path = _resolve(root, raw, run_id)
            if not path.is_file():
                raise SweepSpecError(
                    f"run {run_id}'s solver history {solver!r} is missing ({path}); "
                    "resume the sweep to re-run that run.",
                    field="solver_paths",
                    value=str(path),
                )
            table = _read(path)
            if table.num_rows == 0:
                continue
            table = table.drop_columns([c for c in ("run_id", "solver") if c in table.column_names])
            table = table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.int64()))
            tables.append(
                table.append_column("solver", pa.array([solver] * table.num_rows, pa.string()))
            )
    index_names = ["run_id", "solver", "iteration"]
    if not tables:
        return pd.DataFrame(
            {"status": pd.Series([], dtype="string")},
            index=pd.MultiIndex.from_arrays(
                [
                    pd.Series([], dtype="int64"),
                    pd.Series([], dtype="object"),
                    pd.Series([], dtype="int64"),
                ],
                names=index_names,
            ),
        )
    merged: pd.DataFrame = pa.concat_tables(tables, promote_options="default").to_pandas()
    return merged.set_index(index_names).sort_index()


def solver_convergence(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Did each run's solver converge: ``(run_id, solver)`` indexed, one bool ``converged`` column.

    Read from the records alone (no Parquet), as gmat-sweep's
    ``lazy_solver_convergence``; runs without a solver have no rows.
    """
    run_ids: list[int] = []
    solvers: list[str] = []
    flags: list[bool] = []
    for record in records:
        for solver, flag in (record.get("converged") or {}).items():
            run_ids.append(int(record["run_id"]))
            solvers.append(solver)
            flags.append(bool(flag))
    index = pd.MultiIndex.from_arrays(
        [pd.Series(run_ids, dtype="int64"), pd.Series(solvers, dtype="object")],
        names=["run_id", "solver"],
    )
    series = pd.Series(flags, index=index, dtype="bool", name="converged")
    return series.to_frame().sort_index()


def extra_outputs(
    records: Iterable[Mapping[str, Any]], root: str | os.PathLike[str], name: str
) -> pd.DataFrame:
    """A postprocess hook's per-run output ``name`` (the records' ``extra_outputs``), stacked.

    As gmat-sweep's ``lazy_extra_outputs``: ``(run_id, time)`` indexed when the
    files have a ``time`` column, else ``run_id``; a run without the output
    keeps one marker row with its status.
    """
    records = sorted(records, key=lambda r: int(r["run_id"]))
    seen = sorted({key for r in records for key in (r.get("extra_outputs") or {})})
    if name not in seen:
        raise SweepSpecError(
            f"no extra output named {name!r} in this sweep; it has: "
            f"{', '.join(seen) if seen else 'none (no postprocess hook wrote any)'}.",
            field="name",
            value=name,
        )
    tables: list[pa.Table] = []
    produced: set[int] = set()
    for record in records:
        outputs = record.get("extra_outputs") or {}
        if record["status"] != "ok" or name not in outputs:
            continue
        run_id = int(record["run_id"])
        path = _resolve(root, outputs[name], run_id)
        if not path.is_file():
            raise SweepSpecError(
                f"run {run_id}'s extra output {name!r} is missing ({path}); resume the "
                "sweep to re-run that run.",
                field="extra_outputs",
                value=str(path),
            )
        table = _read(path)
        if table.num_rows == 0:
            continue
        table = table.drop_columns([c for c in ("run_id", "__status") if c in table.column_names])
        tables.append(
            table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.int64()))
        )
        produced.add(run_id)
    merged = pa.concat_tables(tables, promote_options="default").to_pandas() if tables else None
    timed = merged is not None and _TIME in merged.columns
    index_names = ["run_id", _TIME] if timed else ["run_id"]
    parts: list[pd.DataFrame] = []
    data_columns: list[str] = []
    if merged is not None:
        if timed:
            merged[_TIME] = _index_values(merged[_TIME], _TIME)
        merged["__status"] = "ok"
        ok_part = merged.set_index(index_names)
        data_columns = [c for c in ok_part.columns if c != "__status"]
        parts.append(ok_part)
    other = [r for r in records if int(r["run_id"]) not in produced]
    if other:
        rows: dict[str, Any] = {c: [np.nan] * len(other) for c in data_columns}
        rows["run_id"] = [int(r["run_id"]) for r in other]
        rows["__status"] = [r["status"] for r in other]
        markers = pd.DataFrame(rows)
        if timed:
            markers[_TIME] = _index_values(pd.Series([pd.NaT] * len(other)), _TIME)
        parts.append(markers.set_index(index_names))
    return pd.concat(parts, axis=0).sort_index()


def fused_reports(
    records: Iterable[Mapping[str, Any]],
    root: str | os.PathLike[str],
    names: Sequence[str],
    *,
    tolerance: str | pd.Timedelta,
) -> pd.DataFrame:
    """Several ReportFiles of each run side by side, as gmat-sweep's ``lazy_fused_reports``.

    The first name is the anchor; the others join it per run on ``time``
    exactly (``tolerance="exact"``) or to the nearest earlier row within a
    :class:`pandas.Timedelta`. Columns are ``(report, field)`` plus a run-level
    ``("__status", "")``; a run whose anchor report is missing keeps one NaT row.
    """
    if len(names) < 2 or len(set(names)) != len(names):
        raise SweepSpecError(
            f"fused_reports needs two or more distinct report names, got {list(names)}; "
            "for one report use load_sweep(out, report=...).",
            field="names",
            value=list(names),
        )
    if isinstance(tolerance, str) and tolerance != "exact":
        raise SweepSpecError(
            f"tolerance must be 'exact' or a pandas.Timedelta, got {tolerance!r}.",
            field="tolerance",
            value=tolerance,
        )
    asof = None if isinstance(tolerance, str) else tolerance
    records = sorted(records, key=lambda r: int(r["run_id"]))
    frames = [aggregate(records, root, report=n) for n in names]
    flat: dict[str, tuple[str, str]] = {}
    renames: list[dict[str, str]] = []
    for i, (report, frame) in enumerate(zip(names, frames, strict=True)):
        rename = {
            c: (f"_s{i}" if c == "__status" else f"_d{i}_{j}") for j, c in enumerate(frame.columns)
        }
        flat.update({v: (report, k) for k, v in rename.items()})
        renames.append(rename)
    flats = [f.reset_index().rename(columns=renames[i]) for i, f in enumerate(frames)]
    by_run = [
        {int(cast(int, rid)): sub.drop(columns=["run_id"]) for rid, sub in f.groupby("run_id")}
        for f in flats
    ]
    empties = [f.iloc[0:0].drop(columns=["run_id"]) for f in flats]
    parts: list[pd.DataFrame] = []
    for record in records:
        run_id = int(record["run_id"])
        per_run = [by_run[i].get(run_id, empties[i]) for i in range(len(names))]
        anchor = per_run[0]
        if not anchor.empty and bool(anchor[_TIME].notna().any()):
            fused = _fuse_run(per_run, asof, renames)
        else:
            row: dict[str, Any] = {_TIME: pd.NaT}
            for i, part in enumerate(per_run):
                for column, label in renames[i].items():
                    if column == "__status":
                        row[label] = part[label].iloc[0] if not part.empty else record["status"]
                    else:
                        row[label] = np.nan
            fused = pd.DataFrame([row])
        fused["run_id"] = run_id
        fused["__status"] = record["status"]
        parts.append(fused)
    result = pd.concat(parts, axis=0, ignore_index=True, sort=False)
    result[_TIME] = pd.to_datetime(result[_TIME]).astype("datetime64[ns]")
    result = result.set_index(["run_id", _TIME]).sort_index()
    result.columns = pd.MultiIndex.from_tuples(
        [("__status", "") if c == "__status" else flat[c] for c in result.columns],
        names=["report", "field"],
    )
    return result


def _fuse_run(
    per_run: list[pd.DataFrame], asof: pd.Timedelta | None, renames: list[dict[str, str]]
) -> pd.DataFrame:
    """Join one run's later reports onto its anchor report (gmat-sweep's merge, step for step)."""
    anchor = per_run[0].dropna(subset=[_TIME]).sort_values(_TIME).reset_index(drop=True)
    for i in range(1, len(per_run)):
        right = per_run[i]
        if not right.empty and bool(right[_TIME].notna().any()):
            right_ok = right.dropna(subset=[_TIME]).sort_values(_TIME).reset_index(drop=True)
            if asof is None:
                anchor = anchor.merge(right_ok, on=_TIME, how="inner")
            else:
                anchor = pd.merge_asof(anchor, right_ok, on=_TIME, tolerance=asof)
        else:
            for column, label in renames[i].items():
                if column == "__status":
                    anchor[label] = right[label].iloc[0] if not right.empty else pd.NA
                else:
                    anchor[label] = np.nan
    return anchor


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
    """Insert one column per swept field, before the report columns.

    A field the report also records (``Sat.SMA`` swept and reported) keeps the
    report's column, the value over time; the commanded value per run comes in as
    ``"Sat.SMA (swept)"``, so no two columns share a name. ``attrs["params"]``
    names the columns that hold the swept values.
    """
    overrides = pd.DataFrame(
        [r["overrides"] for r in records], index=pd.Index([int(r["run_id"]) for r in records])
    )
    overrides = overrides.rename(columns=lambda f: f"{f} (swept)" if f in frame.columns else f)
    run_ids = frame.index.get_level_values("run_id")
    joined = overrides.reindex(run_ids)
    joined.index = frame.index
    result = pd.concat([joined, frame], axis=1)
    result.attrs["params"] = list(overrides.columns)  # which columns are swept, for plots
    return result


# --- gmat-sweep's lazy_* call shapes, for notebooks that migrate -------------------------

ManifestSource = ManifestData | str | os.PathLike[str]


def _source(
    manifest: ManifestSource, output_dir: str | os.PathLike[str] | None
) -> tuple[list[dict[str, Any]], Path]:
    """Records and root from a read manifest or a path (sweep directory or manifest.jsonl)."""
    data = manifest if isinstance(manifest, ManifestData) else read_manifest(manifest)
    root = Path(output_dir) if output_dir is not None else data.path.parent
    return list(data.records.values()), root


def lazy_multiindex(
    manifest: ManifestSource,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
) -> pd.DataFrame:
    """gmat-sweep's ``lazy_multiindex(manifest, output_dir, name=)``: the report frame."""
    records, root = _source(manifest, output_dir)
    return aggregate(records, root, report=name)


def lazy_ephemerides(
    manifest: ManifestSource,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
) -> pd.DataFrame:
    """gmat-sweep's ``lazy_ephemerides(manifest, output_dir, name=)``."""
    records, root = _source(manifest, output_dir)
    return ephemerides(records, root, name=name)


def lazy_contacts(
    manifest: ManifestSource,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
) -> pd.DataFrame:
    """gmat-sweep's ``lazy_contacts(manifest, output_dir, name=)``."""
    records, root = _source(manifest, output_dir)
    return contacts(records, root, name=name)


def lazy_solver_runs(manifest_path: ManifestSource) -> pd.DataFrame:
    """gmat-sweep's ``lazy_solver_runs(manifest_path)``."""
    records, root = _source(manifest_path, None)
    return solver_runs(records, root)


def lazy_solver_convergence(manifest_path: ManifestSource) -> pd.DataFrame:
    """gmat-sweep's ``lazy_solver_convergence(manifest_path)``."""
    records, _ = _source(manifest_path, None)
    return solver_convergence(records)


def lazy_extra_outputs(manifest_path: ManifestSource, name: str) -> pd.DataFrame:
    """gmat-sweep's ``lazy_extra_outputs(manifest_path, name)``."""
    records, root = _source(manifest_path, None)
    return extra_outputs(records, root, name)


def lazy_fused_reports(
    manifest: ManifestSource,
    output_dir: str | os.PathLike[str] | None,
    names: Sequence[str],
    *,
    tolerance: str | pd.Timedelta,
) -> pd.DataFrame:
    """gmat-sweep's ``lazy_fused_reports(manifest, output_dir, names, tolerance=)``."""
    records, root = _source(manifest, output_dir)
    return fused_reports(records, root, names, tolerance=tolerance)
