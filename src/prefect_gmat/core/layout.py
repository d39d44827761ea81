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

and in a bundle (unzipped, a sweep directory too)::

    runs/run-<id>/...                 BUNDLE_RUNS_DIR: each run's files
    script/<name>                     BUNDLE_SCRIPT_DIR: the script the sweep ran

A record names its files relative to the sweep directory (or absolute, as older
records and gmat-sweep's do); :func:`run_file_candidates` lists where such a file
may be once the directory moved, :func:`find_run_file` picks the one there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "BUNDLE_NAME",
    "BUNDLE_RUNS_DIR",
    "BUNDLE_SCRIPT_DIR",
    "GMAT_LOG",
    "GMAT_LOG_MARK",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "RESULTS_DIR",
    "RUN_DIR_GLOB",
    "WORKER_LOG",
    "find_run_file",
    "is_run_dir_name",
    "portable_path",
    "run_dir_name",
    "run_file_candidates",
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
BUNDLE_RUNS_DIR = "runs"
BUNDLE_SCRIPT_DIR = "script"

_RUN_PREFIX = "run-"
RUN_DIR_GLOB = f"{_RUN_PREFIX}*"


def run_dir_name(run_id: int) -> str:
    """``run-<id>``: a run's folder in the sweep directory and in a bundle's ``runs/``."""
    return f"{_RUN_PREFIX}{run_id}"


def is_run_dir_name(name: str) -> bool:
    """Whether ``name`` is a run folder's: ``run-`` then decimal digits (not ``run-notes``)."""
    digits = name[len(_RUN_PREFIX) :]
    return name.startswith(_RUN_PREFIX) and digits.isascii() and digits.isdigit()


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


def run_file_candidates(root: Path, run_id: int, recorded: str) -> list[Path]:
    """Where a file run ``run_id``'s record names may be, best first, for the sweep in ``root``.

    A relative path is taken from ``root``, as both tools write and read them. Then the
    same file inside ``root``, however the recorded path was rooted: its part from
    ``run-<id>/`` on, under ``root`` or a bundle's ``runs/`` (a directory moved, mounted
    elsewhere, or unzipped), and ``run-<id>/<name>``. A recorded absolute path comes
    last: the directory's own copy wins over a file left where the sweep once was.
    """
    return list(dict.fromkeys(_candidates(root, run_id, recorded)))


def _candidates(root: Path, run_id: int, recorded: str) -> Iterator[Path]:
    """:func:`run_file_candidates` one at a time (repeats possible): the common case, a
    relative path found where recorded, costs one path and one stat for each of 1000s."""
    path = Path(recorded)
    if not path.is_absolute():
        yield root / path
    parts = [part for part in recorded.replace("\\", "/").split("/") if part]
    folder = run_dir_name(run_id)
    if folder in parts:
        tail = parts[len(parts) - 1 - parts[::-1].index(folder) :]
        yield root.joinpath(*tail)
        yield root.joinpath(BUNDLE_RUNS_DIR, *tail)
    if parts:
        yield root / folder / parts[-1]
        yield root / BUNDLE_RUNS_DIR / folder / parts[-1]
    if path.is_absolute():
        yield path


def find_run_file(root: Path, run_id: int, recorded: str) -> Path | None:
    """The first of :func:`run_file_candidates` that is a file, or None."""
    return next((p for p in _candidates(root, run_id, recorded) if p.is_file()), None)


def portable_path(root: Path, path: str) -> str:
    """``path`` relative to ``root`` (POSIX separators) if it lies inside it, else as given.

    What a record written into ``root``'s manifest says, so the directory can move.
    """
    if not os.path.isabs(path):
        return path
    # The root as given first: resolving it (system calls) is for the rare miss, not for
    # each of the thousands of paths one manifest flush can write.
    inside = _inside(root, path)
    if inside is None:
        inside = _inside(Path(os.path.realpath(root)), path)
    return path if inside is None else inside


def _inside(base: Path, path: str) -> str | None:
    """``path`` relative to ``base`` (POSIX separators) if it lies inside it, else None."""
    prefix = os.path.join(os.fspath(base), "")
    if path.startswith(prefix) and os.path.normpath(path) == path:
        # A normal path under the prefix: pathlib's answer, as a string, ~40x faster here.
        return path[len(prefix) :].replace(os.sep, "/")
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return None
