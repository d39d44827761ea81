"""Bring a run's files to the sweep directory when the machine that ran it cannot write there.

A dask worker on another machine sees the flow's sweep
directory only through shared storage. Where it can write it (the default, and
any shared file system) runs write straight into it. Where it cannot,
:func:`scratch_jobs` sends the runs to a local scratch directory,
:func:`pack` puts their files into the outcome (with paths rewritten to where
they belong), and the flow's :func:`land` writes each file there atomically,
checks it against the SHA-256 the run recorded, and drops the bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from prefect_gmat.core.records import Outcome, RunJob, sha256_file

__all__ = ["can_write", "land", "pack", "remove_scratch", "scratch_jobs"]


def can_write(directory: str | os.PathLike[str]) -> bool:
    """True if this process can create ``directory`` (or write into it)."""
    path = Path(directory)
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def scratch_jobs(jobs: Sequence[RunJob]) -> tuple[list[RunJob], Path]:
    """The same jobs, writing under a new local scratch directory (the caller removes it)."""
    scratch = Path(tempfile.mkdtemp(prefix="prefect-gmat-carry-"))
    moved = [replace(job, run_dir=str(scratch / Path(job.run_dir).name)) for job in jobs]
    return moved, scratch


def pack(outcome: Outcome, scratch_run_dir: str, home_run_dir: str) -> Outcome:
    """The outcome with its files' bytes attached and every path pointing at ``home_run_dir``."""
    here, home = Path(scratch_run_dir), Path(home_run_dir)

    def homed(path: str) -> str:
        return str(home / Path(path).relative_to(here))

    carried: dict[str, bytes] = {}
    if here.is_dir():
        for file in sorted(p for p in here.rglob("*") if p.is_file()):
            carried[homed(str(file))] = file.read_bytes()
    return replace(
        outcome,
        output_paths={k: homed(v) for k, v in outcome.output_paths.items()},
        solver_paths={k: homed(v) for k, v in outcome.solver_paths.items()},
        extra_outputs={k: homed(v) for k, v in outcome.extra_outputs.items()},
        log_path=homed(outcome.log_path) if outcome.log_path else None,
        carried=carried,
    )


def land(outcome: Outcome) -> Outcome:
    """Write a packed outcome's files where they belong (atomically), verified; drop the bytes."""
    if not outcome.carried:
        return outcome
    for path, content in outcome.carried.items():
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.landing")
        with open(tmp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    paths = {**outcome.output_paths, **outcome.solver_paths, **outcome.extra_outputs}
    for key, expected in outcome.output_sha256.items():
        if key in paths and sha256_file(paths[key]) != expected:
            return replace(
                outcome,
                status="failed",
                failure="io",
                error=f"{paths[key]} arrived damaged (its SHA-256 differs from the run's)",
                carried={},
            )
    return replace(outcome, carried={})


def remove_scratch(scratch: Path) -> None:
    """Delete a scratch directory once its runs' files are packed."""
    shutil.rmtree(scratch, ignore_errors=True)
