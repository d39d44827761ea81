"""Reading a sweep directory the way the tests check it: records as written, executions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from prefect_gmat.core.records import sha256_file
from prefect_gmat.study.sweepdir import lock_sweep_dir


class Swept(NamedTuple):
    """A finished sweep: its directory and the frame ``sweep()`` returned."""

    out: Path
    frame: pd.DataFrame


def record_lines(out: Path) -> list[str]:
    """The manifest's record lines as written (no header); none before the manifest exists.

    A torn last line (a kill mid-append) counts: this is what is on disk, not what reads.
    """
    try:
        return (out / "manifest.jsonl").read_text().splitlines()[1:]
    except FileNotFoundError:
        return []


def recorded(out: Path) -> int:
    """How many records the manifest holds so far (a record per finished run or attempt)."""
    return len(record_lines(out))


def run_folders(out: Path) -> int:
    """How many ``run-*`` folders exist: a run's folder appears when the run starts."""
    return sum(1 for _ in out.glob("run-*")) if out.is_dir() else 0


def executions(out: Path) -> dict[int, int]:
    """How many times each run of ``out`` actually ran: worker.log gets one line per execution."""
    counts = {}
    for log in out.glob("run-*/worker.log"):
        counts[int(log.parent.name[4:])] = log.read_text().count(" run_id=")
    return counts


def file_hashes(out: Path) -> dict[str, str]:
    """SHA-256 of every file in the run folders, by path relative to ``out``."""
    return {str(p.relative_to(out)): sha256_file(p) for p in out.glob("run-*/*") if p.is_file()}


@contextmanager
def held_by_another_sweep(out: Path) -> Iterator[None]:
    """``out``'s lock held as another sweep holds it: from another thread (a thread's own
    sweep takes its lock again: the API's early start, then the flow)."""
    held, release = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def hold() -> None:
        try:
            with lock_sweep_dir(out):
                held.set()
                release.wait()
        except BaseException as exc:
            failed.append(exc)
            held.set()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    try:
        if failed:
            raise failed[0]
        yield
    finally:
        release.set()
        thread.join()
