"""Per-run postprocess hooks for the engine tests, importable as ``tests.unit.hooks:<name>``."""

from __future__ import annotations

from typing import Any

from prefect_gmat.core.records import Outcome, RunJob


def write_summary(job: RunJob, outcome: Outcome) -> dict[str, str]:
    """Writes ``summary.txt`` in the run's directory; returns it by a relative path."""
    reports = ",".join(sorted(outcome.output_paths))
    (job.output_dir / "summary.txt").write_text(f"run {job.run_id}: {reports}\n")
    return {"summary": "summary.txt"}


def raise_error(job: RunJob, outcome: Outcome) -> dict[str, str]:
    raise RuntimeError(f"no miss distance for run {job.run_id}")


def return_a_list(job: RunJob, outcome: Outcome) -> Any:
    return ["summary.txt"]


def return_a_missing_file(job: RunJob, outcome: Outcome) -> dict[str, str]:
    return {"summary": "never-written.txt"}


NOT_CALLABLE = "a module attribute that is not a function"
