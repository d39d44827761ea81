"""The names inside a sweep directory, in one place (gmat-sweep 0.6.0's layout, plus ours).

A leaf: it imports nothing of the package. Every module that builds or parses a
path in a sweep directory or a bundle takes the name from here::

    <out>/manifest.jsonl              MANIFEST_NAME: header + one record per run
    <out>/run-<id>/                   run_dir_name(id): the run's Parquet files and logs
    <out>/run-<id>/worker.log         WORKER_LOG: what the worker did, GMAT's log after
                                      GMAT_LOG_MARK
    <out>/run-<id>/GmatLog.txt        GMAT_LOG: the engine's own log for the run
    <out>/sweep_bundle.zip            BUNDLE_NAME: the flow's archive
    <out>/.prefect-results/           RESULTS_DIR: Prefect's persisted outcomes (the cache)
    <out>/.prefect-gmat.lock          LOCK_NAME: held by the sweep writing the directory
"""

from __future__ import annotations

__all__ = [
    "BUNDLE_NAME",
    "GMAT_LOG",
    "GMAT_LOG_MARK",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "RESULTS_DIR",
    "RUN_DIR_GLOB",
    "WORKER_LOG",
    "is_run_dir_name",
    "run_dir_name",
    "run_id_of",
    "split_gmat_log",
    "with_gmat_log",
]

MANIFEST_NAME = "manifest.jsonl"
BUNDLE_NAME = "sweep_bundle.zip"
RESULTS_DIR = ".prefect-results"
LOCK_NAME = ".prefect-gmat.lock"
WORKER_LOG = "worker.log"
GMAT_LOG = "GmatLog.txt"
#: How a worker.log, and a failed record's ``stderr``, append the GMAT log lines.
GMAT_LOG_MARK = "--- GMAT log ---"

_RUN_PREFIX = "run-"
RUN_DIR_GLOB = f"{_RUN_PREFIX}*"


def run_dir_name(run_id: int) -> str:
    """``run-<id>``: a run's folder in the sweep directory and in a bundle's ``runs/``."""
    return f"{_RUN_PREFIX}{run_id}"


def is_run_dir_name(name: str) -> bool:
    return name.startswith(_RUN_PREFIX)


def run_id_of(name: str) -> int:
    """The run id of a ``run-<id>`` folder name."""
    return int(name[len(_RUN_PREFIX) :])


def with_gmat_log(text: str, log: str) -> str:
    """``text``, then the GMAT log's lines after :data:`GMAT_LOG_MARK`."""
    return f"{text}\n{GMAT_LOG_MARK}\n{log}"


def split_gmat_log(text: str) -> tuple[str, str | None]:
    """``(cause, GMAT log lines or None)`` of a text :func:`with_gmat_log` made."""
    cause, mark, log = text.partition(GMAT_LOG_MARK)
    if not mark:
        return text, None
    return cause.rstrip("\n"), log.lstrip("\n")
