"""One object for a finished sweep in a notebook: ``open_sweep(out_or_bundle)``.

The object reads lazily: nothing is aggregated until asked.
It offers gmat-sweep's ``Sweep.to_*`` readers under the same names, the
statistics of :mod:`prefect_gmat.analysis.stats`, the failures with their causes, and an
HTML view (``_repr_html_``) with the header, the design, status counts, the
failures and the bundle. A bundle is verified and unpacked into a temporary
directory that lives as long as the object (or until :meth:`SweepResults.close`).
A directory is read where it is now: its files are found in it however the
records name them (relative paths, or absolute ones from where it once was).
"""

from __future__ import annotations

import html
import os
import tempfile
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from prefect_gmat.analysis.stats import sweep_summary
from prefect_gmat.core.layout import BUNDLE_NAME, MANIFEST_NAME, find_run_file, split_gmat_log
from prefect_gmat.errors import SweepDirectoryError
from prefect_gmat.study import frame as readers
from prefect_gmat.study.bundle import BundleFacts, bundle_facts, extract_bundle
from prefect_gmat.study.manifest import ManifestData, read_manifest

__all__ = ["SweepResults", "open_sweep"]

PathLike = str | os.PathLike[str]
_FAILURES_SHOWN = 20


def open_sweep(out_or_bundle: PathLike) -> SweepResults:
    """Open a sweep directory (or its ``manifest.jsonl``), or a bundle ``.zip``, for reading."""
    path = Path(out_or_bundle).expanduser()
    if path.is_file() and zipfile.is_zipfile(path):
        return SweepResults._from_bundle(path)
    if path.is_file() and path.name == MANIFEST_NAME:
        path = path.parent
    if not (path / MANIFEST_NAME).is_file():
        raise SweepDirectoryError(
            f"{path} is neither a sweep directory (no {MANIFEST_NAME}) nor a bundle .zip; "
            "pass the `out` directory of a sweep or its sweep_bundle.zip.",
            path=str(path),
        )
    return SweepResults(path.resolve())


class SweepResults:
    """A finished (or interrupted) sweep, read on demand. Use :func:`open_sweep`."""

    def __init__(self, root: Path, *, bundle: Path | None = None) -> None:
        self.root = root
        self.manifest: ManifestData = read_manifest(root)
        found = root / BUNDLE_NAME
        self.bundle: Path | None = bundle or (found if found.is_file() else None)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def _from_bundle(cls, bundle: Path) -> SweepResults:
        tmp = tempfile.TemporaryDirectory(prefix="prefect-gmat-open-")
        try:
            root = extract_bundle(bundle, Path(tmp.name) / "sweep")
            results = cls(root, bundle=bundle.resolve())
        except BaseException:
            tmp.cleanup()
            raise
        results._tmp = tmp
        return results

    def close(self) -> None:
        """Remove the unpacked copy of a bundle (a no-op for a directory)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SweepResults:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- what the sweep was -----------------------------------------------------------

    @property
    def header(self) -> dict[str, Any]:
        """The manifest header: script hash, engine, design, versions."""
        return self.manifest.header

    @property
    def records(self) -> list[dict[str, Any]]:
        """The last record of every run, in run-id order."""
        return [self.manifest.records[i] for i in sorted(self.manifest.records)]

    @property
    def run_count(self) -> int:
        return int(self.header.get("run_count", len(self.manifest.records)))

    @property
    def design(self) -> dict[str, Any]:
        """The design as recorded (gmat-sweep's ``parameter_spec``, with ``_kind``)."""
        return dict(self.header.get("parameter_spec") or {})

    @property
    def points(self) -> pd.DataFrame:
        """Each run's swept values, indexed by run id."""
        rows = {int(r["run_id"]): r["overrides"] for r in self.records}
        points = pd.DataFrame.from_dict(rows, orient="index")
        points.index.name = "run_id"
        return points

    @property
    def status_counts(self) -> dict[str, int]:
        """``{"ok": .., "failed": .., "not run": ..}``."""
        counts = Counter(str(r["status"]) for r in self.records)
        missing = self.run_count - len(self.manifest.records)
        if missing > 0:
            counts["not run"] = missing
        return dict(counts)

    @property
    def failures(self) -> pd.DataFrame:
        """The runs whose last record failed: kind, cause, the GMAT log lines that explain it,
        attempts, the run's log file and its swept values."""
        rows = []
        for record in self.records:
            if record["status"] == "ok":
                continue
            stderr = str(record.get("stderr") or "")
            _, gmat_log = split_gmat_log(stderr)
            rows.append(
                {
                    "run_id": int(record["run_id"]),
                    "failure": record.get("failure") or record.get("postprocess_status"),
                    "cause": record.get("error") or stderr or "no cause recorded",
                    "gmat_log": (gmat_log or "").strip() or None,
                    "attempts": record.get("attempts"),
                    "log_path": self._log_path(record),
                    "overrides": dict(record["overrides"]),
                }
            )
        columns = ["run_id", "failure", "cause", "gmat_log", "attempts", "log_path", "overrides"]
        return pd.DataFrame(rows, columns=columns).set_index("run_id")

    def _log_path(self, record: Mapping[str, Any]) -> str | None:
        """The run's log where it is now (as recorded if it is not found)."""
        raw = record.get("log_path")
        if not raw:
            return None
        found = find_run_file(self.root, int(record["run_id"]), str(raw))
        return str(found) if found is not None else str(raw)

    def outputs(self) -> dict[str, list[str]]:
        """The names of each output kind the ok runs wrote, and the solvers and extra outputs."""
        records = self.records
        kinds = {k: readers.output_names(records, k) for k in ("report", "ephemeris", "contact")}
        kinds["solver"] = sorted({s for r in records for s in (r.get("solver_paths") or {})})
        kinds["extra"] = sorted({s for r in records for s in (r.get("extra_outputs") or {})})
        return kinds

    # --- the readers (gmat-sweep's Sweep.to_* names) ------------------------------------

    def frame(
        self, report: str | None = None, *, params: bool = False, converged: bool = False
    ) -> pd.DataFrame:
        """The report frame, as :func:`prefect_gmat.load_sweep` returns it."""
        return readers.aggregate(
            self.records, self.root, report=report, params=params, converged=converged
        )

    def to_dataframe(self, name: str | None = None) -> pd.DataFrame:
        """gmat-sweep's name for :meth:`frame`."""
        return self.frame(name)

    def to_ephemerides(self, name: str | None = None) -> pd.DataFrame:
        return readers.ephemerides(self.records, self.root, name=name)

    def to_contacts(self, name: str | None = None) -> pd.DataFrame:
        return readers.contacts(self.records, self.root, name=name)

    def to_solver_runs(self) -> pd.DataFrame:
        return readers.solver_runs(self.records, self.root)

    def to_solver_convergence(self) -> pd.DataFrame:
        return readers.solver_convergence(self.records)

    def to_extra_outputs(self, name: str) -> pd.DataFrame:
        return readers.extra_outputs(self.records, self.root, name)

    def to_fused_reports(
        self, names: Sequence[str], *, tolerance: str | pd.Timedelta
    ) -> pd.DataFrame:
        return readers.fused_reports(self.records, self.root, names, tolerance=tolerance)

    def summary(self, report: str | None = None, **options: Any) -> pd.DataFrame:
        """:func:`prefect_gmat.analysis.stats.sweep_summary` of the report frame (ok runs only)."""
        return sweep_summary(self.frame(report), **options)

    # --- the notebook view ----------------------------------------------------------------

    def bundle_facts(self) -> BundleFacts | None:
        return bundle_facts(self.bundle) if self.bundle is not None else None

    def __repr__(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in self.status_counts.items())
        return f"<SweepResults {self.root} ({self.run_count} runs: {counts})>"

    def _repr_html_(self) -> str:
        header = self.header
        sha = str(header.get("script_sha256", ""))
        engine = f"{header.get('gmat_install_version', '?')} ({header.get('engine_source', '?')})"
        rows = [
            ("sweep", _code(self.bundle if self._tmp is not None else self.root)),
            ("script", _code(header.get("script_path") or "(not recorded)")),
            ("script sha256", _code(sha[:12] + "...") if sha else "?"),
            ("engine", html.escape(engine)),
            ("created", html.escape(str(header.get("created_at", "?")))),
            ("runs", str(self.run_count)),
        ]
        design_rows = _design_rows(self.design, header.get("sweep_seed"))
        counts = ", ".join(f"{v} {html.escape(k)}" for k, v in self.status_counts.items())
        outputs = self.outputs()
        output_rows = [(k, html.escape(", ".join(v))) for k, v in outputs.items() if v]
        parts = [
            _table("Sweep", rows),
            _table("Design", design_rows),
            _table("Status", [("runs", counts or "none recorded")]),
            _table("Outputs", output_rows or [("outputs", "none")]),
            self._failures_html(),
            self._bundle_html(),
        ]
        return "<div>" + "".join(parts) + "</div>"

    def _failures_html(self) -> str:
        failures = self.failures
        if failures.empty:
            return _table("Failures", [("failed runs", "none")])
        body = "".join(
            "<tr>"
            f"<td>{run_id}</td><td>{html.escape(str(row['failure']))}</td>"
            f"<td>{html.escape(_first_line(str(row['cause'])))}"
            f"{_log_line(row['gmat_log'])}</td>"
            f"<td>{_overrides(row['overrides'])}</td>"
            "</tr>"
            for run_id, row in failures.head(_FAILURES_SHOWN).iterrows()
        )
        more = len(failures) - _FAILURES_SHOWN
        tail = f"<tr><td colspan=4>... and {more} more</td></tr>" if more > 0 else ""
        return (
            f"<table><caption style='text-align:left;font-weight:bold'>Failures "
            f"({len(failures)})</caption><tr><th>run</th><th>kind</th><th>cause</th>"
            f"<th>values</th></tr>{body}{tail}</table>"
        )

    def _bundle_html(self) -> str:
        facts = self.bundle_facts()
        if facts is None:
            return _table("Bundle", [("bundle", "none (archive(out, ...) writes one)")])
        return _table(
            "Bundle",
            [
                ("path", _code(facts.path)),
                ("size", f"{facts.size:,} bytes, {len(facts.members)} members"),
                ("sha256", _code(facts.sha256)),
            ],
        )


def _code(value: object) -> str:
    return f"<code>{html.escape(str(value))}</code>"


def _first_line(text: str, width: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _log_line(log: str | None) -> str:
    """The GMAT log's first line (what GMAT said went wrong), small, under the cause."""
    if not log:
        return ""
    return f"<br><small><code>{html.escape(_first_line(log))}</code></small>"


def _overrides(values: Mapping[str, Any]) -> str:
    return "<br>".join(f"{_code(k)} = {_code(repr(v))}" for k, v in sorted(values.items()))


def _table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table; values are HTML already (escaped by the caller)."""
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(label)}</th>"
        f"<td style='text-align:left'>{value}</td></tr>"
        for label, value in rows
    )
    return (
        f"<table><caption style='text-align:left;font-weight:bold'>{html.escape(title)}"
        f"</caption>{body}</table>"
    )


def _design_rows(spec: Mapping[str, Any], seed: Any) -> list[tuple[str, str]]:
    kind = str(spec.get("_kind", "grid"))
    rows = [("kind", html.escape(kind))]
    if kind == "grid":
        for name in sorted(k for k in spec if k != "_kind"):
            values = list(spec[name])
            shown = ", ".join(map(repr, values[:8])) + (" ..." if len(values) > 8 else "")
            rows.append((name, f"{len(values)} values: {html.escape(shown)}"))
    elif kind == "explicit":
        rows.append(("fields", html.escape(", ".join(map(str, spec.get("columns", []))))))
        rows.append(("samples", str(len(spec.get("rows", [])))))
    else:
        for name, dist in (spec.get("perturb") or {}).items():
            rows.append((name, _code(dist)))
        for key in ("n", "seed"):
            if key in spec:
                rows.append((key, html.escape(str(spec[key]))))
    if seed is not None and "seed" not in spec:
        rows.append(("sweep seed", html.escape(str(seed))))
    return rows
