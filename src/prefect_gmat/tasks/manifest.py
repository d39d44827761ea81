"""The manifest task: append finished runs' records to the manifest, fsynced."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_gmat.core.records import Outcome
from prefect_gmat.study.manifest import ManifestWriter, outcome_record

__all__ = ["record_outcomes"]


@task(
    name="record-outcomes",
    task_run_name="record-{count}-runs",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def record_outcomes(writer: ManifestWriter, outcomes: list[Outcome], count: int) -> int:
    """Append ``outcomes`` in one fsynced write; returns how many were recorded."""
    writer.append(outcome_record(o) for o in outcomes)
    return len(outcomes)
