"""What a sweep shows in the Prefect UI besides its task runs: progress and a status table.

* ``sweep-progress`` (progress artifact): runs done out of the sweep's total,
  updated as the manifest is flushed, so a long sweep shows how far it is.
* ``sweep-summary`` (table artifact): one row for the runs that finished ok and
  one per distinct failure cause, with the run ids, read from the manifest at
  the end, so a resumed sweep's table covers the whole sweep, not the last leg.

A failed artifact update is logged once and never fails the sweep: the
manifest, not the UI, is the record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from prefect_gmat.runtime.sync import sync_value
from prefect_gmat.study.manifest import read_manifest

__all__ = ["PROGRESS_KEY", "SUMMARY_KEY", "SweepProgress", "publish_summary", "summary_rows"]

PROGRESS_KEY = "sweep-progress"
SUMMARY_KEY = "sweep-summary"
_MAX_ROWS = 50  # distinct failure causes listed; the rest are counted in one row

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class SweepProgress:
    """The progress artifact of one sweep: ``done`` of ``total`` runs, in percent."""

    def __init__(self, total: int, done: int, out: Path, logger: Logger) -> None:
        self.total = total
        self.done = done
        self._out = out
        self._logger = logger
        self._id: UUID | None = None
        self._broken = False
        try:
            self._id = sync_value(
                create_progress_artifact(
                    progress=self._percent(done),
                    key=PROGRESS_KEY,
                    description=self._describe(done),
                )
            )
        except Exception as exc:  # the UI is a view: never fail the sweep over it
            self._give_up(exc)

    def _percent(self, done: int) -> float:
        return 100.0 if self.total == 0 else round(100.0 * done / self.total, 1)

    def _describe(self, done: int) -> str:
        return f"{done} of {self.total} runs done ({self._out})"

    def _give_up(self, exc: Exception) -> None:
        self._broken = True
        self._logger.warning("progress artifact not updated (%s); the sweep goes on", exc)

    def update(self, done: int) -> None:
        """Show ``done`` runs finished; a no-op when nothing changed."""
        if done == self.done or self._broken or self._id is None:
            return
        self.done = done
        try:
            update_progress_artifact(
                self._id, progress=self._percent(done), description=self._describe(done)
            )
        except Exception as exc:
            self._give_up(exc)


def _ranges(ids: Iterable[int]) -> str:
    """``0-2, 4, 6-9``: run ids short enough for a table cell."""
    ordered = sorted(ids)
    parts: list[str] = []
    start = prev = None
    for run_id in [*ordered, None]:
        if start is not None and prev is not None and run_id == prev + 1:
            prev = run_id
            continue
        if start is not None and prev is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = run_id
    return ", ".join(parts)


def summary_rows(records: Mapping[int, Mapping[str, Any]], run_count: int) -> list[dict[str, Any]]:
    """Rows of the summary table: ok runs, then each failure cause, then runs not recorded."""
    ok = [run_id for run_id, record in records.items() if record.get("status") == "ok"]
    causes: dict[tuple[str, str], list[int]] = {}
    for run_id, record in records.items():
        if record.get("status") == "ok":
            continue
        kind = str(record.get("failure") or record.get("status") or "failed")
        cause = str(record.get("error") or record.get("stderr") or "no cause recorded")
        causes.setdefault((kind, cause), []).append(run_id)
    rows: list[dict[str, Any]] = []
    if ok:
        rows.append({"status": "ok", "runs": len(ok), "run ids": _ranges(ok), "cause": ""})
    grouped = sorted(causes.items(), key=lambda item: (-len(item[1]), min(item[1])))
    for (kind, cause), ids in grouped[:_MAX_ROWS]:
        rows.append(
            {
                "status": f"failed ({kind})",
                "runs": len(ids),
                "run ids": _ranges(ids),
                "cause": cause,
            }
        )
    rest = [run_id for _, ids in grouped[_MAX_ROWS:] for run_id in ids]
    if rest:
        rows.append(
            {
                "status": "failed (other causes)",
                "runs": len(rest),
                "run ids": _ranges(rest),
                "cause": f"{len(grouped) - _MAX_ROWS} more distinct causes; see the manifest",
            }
        )
    missing = run_count - len(records)
    if missing > 0:
        not_run = sorted(set(range(run_count)) - set(records))
        rows.append(
            {"status": "not run", "runs": missing, "run ids": _ranges(not_run), "cause": ""}
        )
    return rows


def publish_summary(out: Path, logger: Logger) -> list[dict[str, Any]]:
    """Publish the ``sweep-summary`` table for the sweep in ``out``; returns its rows."""
    manifest = read_manifest(out)
    run_count = int(manifest.header.get("run_count", len(manifest.records)))
    rows = summary_rows(manifest.records, run_count)
    ok = sum(row["runs"] for row in rows if row["status"] == "ok")
    failed = sum(row["runs"] for row in rows if row["status"].startswith("failed"))
    try:
        create_table_artifact(
            table=rows,
            key=SUMMARY_KEY,
            description=f"{ok} ok, {failed} failed of {run_count} runs in {out}",
        )
    except Exception as exc:
        logger.warning("summary artifact not published (%s); see %s", exc, out)
    return rows
