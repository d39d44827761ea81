"""The sweep directory: refuse to clobber it, lock it, and decide what still has to run.

No Prefect here. A directory holds at most one sweep: ``manifest.jsonl`` plus
``run-<id>/`` folders. Starting the same sweep (script and points) again
continues it, running only what is not ok, so a rerun or a retried flow run
skips finished work; starting a different one fails with the ways forward (a
new directory, ``overwrite=True``); two sweeps at once in one directory are
refused by an exclusive lock held for the sweep's life.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect_gmat.engine import Engine
from prefect_gmat.errors import SweepDirectoryError
from prefect_gmat.manifest import (
    MANIFEST_NAME,
    ManifestData,
    ManifestWriter,
    make_header,
    read_manifest,
)
from prefect_gmat.runner import sha256_file
from prefect_gmat.spec import Point, SweepSpec, canonical_script_sha256

__all__ = [
    "BUNDLE_NAME",
    "LOCK_NAME",
    "RESULTS_DIR",
    "Mode",
    "SweepPlan",
    "lock_sweep_dir",
    "no_sweep_running",
    "outputs_intact",
    "plan_sweep",
    "preflight",
]

Mode = Literal["new", "resume", "retry_failed", "overwrite"]
LOCK_NAME = ".prefect-gmat.lock"
#: Where the flow's archive task writes the sweep's bundle.
BUNDLE_NAME = "sweep_bundle.zip"
#: Prefect's persisted outcome records of the sweep's task runs.
RESULTS_DIR = ".prefect-results"


@contextmanager
def lock_sweep_dir(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` for the duration of a sweep."""
    if out.exists() and not out.is_dir():
        raise SweepDirectoryError(
            f"output path {out} is a file; pass a directory (new or holding a sweep).",
            path=str(out),
        )
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK_NAME, "a+")  # noqa: SIM115 -- held open for the lock's life
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SweepDirectoryError(
                f"another sweep is running in {out} (process {holder}); wait for it to "
                "finish, or use a different output directory.",
                path=str(out),
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


@contextmanager
def no_sweep_running(out: Path) -> Iterator[None]:
    """Hold a shared lock on ``out`` while reading it, so no sweep writes meanwhile.

    A sweep holds the lock exclusively for its life; a directory without the lock
    file (gmat-sweep made it) has nothing to lock against.
    """
    try:
        fd = os.open(out / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepDirectoryError(
                f"a sweep is still running in {out}; wait for it to finish, then try again.",
                path=str(out),
            ) from None
        yield
    finally:
        os.close(fd)


def outputs_intact(record: Mapping[str, Any]) -> bool:
    """True if every output of an ok record exists and matches its recorded SHA-256."""
    hashes: Mapping[str, str] = record.get("output_sha256") or {}
    outputs = {**record.get("output_paths", {}), **record.get("solver_paths", {})}
    for key, path in outputs.items():
        if not Path(path).is_file():
            return False
        expected = hashes.get(key)
        if expected is not None and sha256_file(path) != expected:
            return False
    return True


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What a sweep (or its resumption) will do."""

    spec: SweepSpec
    writer: ManifestWriter
    to_run: list[Point]
    done: int  # runs already finished ok and intact
    header: dict[str, Any]


def _same_sweep(header: Mapping[str, Any], spec: SweepSpec, script_sha: str) -> bool:
    return bool(
        header.get("script_sha256") == script_sha
        and header.get("parameter_spec") == spec.parameter_spec()
    )


def preflight(out: Path, spec: SweepSpec | None, mode: Mode) -> SweepSpec:
    """Every check :func:`plan_sweep` makes, writing nothing; returns the spec to run.

    Also refuses at once a directory another sweep is writing (instead of after
    Prefect has started); call it before taking the lock.
    """
    if out.is_dir():
        with no_sweep_running(out):
            pass
    return _check_sweep_dir(out, spec, mode)


def _check_sweep_dir(out: Path, spec: SweepSpec | None, mode: Mode) -> SweepSpec:
    if out.exists() and not out.is_dir():
        raise SweepDirectoryError(
            f"output path {out} is a file; pass a directory (new or holding a sweep).",
            path=str(out),
        )
    manifest_path = out / MANIFEST_NAME
    if mode in ("resume", "retry_failed"):
        return _spec_for_resume(read_manifest(manifest_path), spec)
    if spec is None:
        raise SweepDirectoryError("a new sweep needs a script and a grid", path=str(out))
    if mode == "overwrite":
        return spec
    if manifest_path.exists():
        existing = read_manifest(manifest_path)
        if _same_sweep(existing.header, spec, canonical_script_sha256(spec.script)):
            return spec  # the same sweep again: continue it (see plan_sweep)
        raise SweepDirectoryError(
            f"{out} already holds a different sweep (another script or other points). "
            "Choose a new output directory, or pass overwrite=True to delete the old sweep "
            "first.",
            path=str(out),
        )
    if out.is_dir() and any(out.glob("run-*")):
        raise SweepDirectoryError(
            f"{out} has run-* folders but no manifest.jsonl; it is not a sweep this package can "
            "continue. Choose a new output directory, or pass overwrite=True to delete them.",
            path=str(out),
        )
    return spec


def plan_sweep(out: Path, spec: SweepSpec | None, engine: Engine, mode: Mode) -> SweepPlan:
    """Prepare ``out`` for ``mode`` and list the points still to run. Call under the lock.

    A "new" sweep that finds the same sweep in ``out`` continues it like ``resume``.
    """
    spec = _check_sweep_dir(out, spec, mode)
    manifest_path = out / MANIFEST_NAME
    if mode == "new" and manifest_path.exists():
        mode = "resume"  # the same sweep again (checked above): run what is not ok
    if mode in ("resume", "retry_failed"):
        existing = read_manifest(manifest_path)
        writer = ManifestWriter.open_existing(manifest_path)
        if mode == "resume":
            todo = [p for p in spec.points() if not _finished(existing.records.get(p.run_id))]
        else:
            failed = set(existing.failed_ids())
            todo = [p for p in spec.points() if p.run_id in failed]
        return SweepPlan(spec, writer, todo, len(spec) - len(todo), existing.header)
    if mode == "overwrite":
        _clear_sweep(out)
    header = make_header(
        script_sha256=canonical_script_sha256(spec.script),
        engine_version=engine.version,
        parameter_spec=spec.parameter_spec(),
        run_count=len(spec),
        script_path=str(spec.script),
        engine_source=engine.source,
    )
    writer = ManifestWriter.create(manifest_path, header)
    return SweepPlan(spec, writer, list(spec.points()), 0, header)


def _finished(record: Mapping[str, Any] | None) -> bool:
    return record is not None and record["status"] == "ok" and outputs_intact(record)


def _spec_for_resume(existing: ManifestData, spec: SweepSpec | None) -> SweepSpec:
    header = existing.header
    if spec is None:
        script = header.get("script_path")
        if not script or not Path(script).is_file():
            raise SweepDirectoryError(
                f"{existing.path} does not say where its script is (or it moved: {script}); "
                "pass script= to resume.",
                path=str(existing.path),
            )
        spec = SweepSpec.from_parameter_spec(script, header["parameter_spec"])
    sha = canonical_script_sha256(spec.script)
    if sha != header.get("script_sha256"):
        raise SweepDirectoryError(
            f"{spec.script} has changed since the sweep in {existing.path.parent} started "
            "(its SHA-256 differs from the manifest's); resuming would mix two scripts. "
            "Restore the script, or start a new sweep in a new directory.",
            path=str(existing.path),
        )
    if spec.parameter_spec() != header.get("parameter_spec"):
        raise SweepDirectoryError(
            f"the grid differs from the one the sweep in {existing.path.parent} started with; "
            "resume without a grid (it is read from the manifest), or start a new sweep.",
            path=str(existing.path),
        )
    return spec


def _clear_sweep(out: Path) -> None:
    """Delete what a sweep wrote (manifest, run folders, bundle, results); leave anything else."""
    for child in out.iterdir():
        if child.is_dir() and (child.name.startswith("run-") or child.name == RESULTS_DIR):
            shutil.rmtree(child)
        elif child.name in (MANIFEST_NAME, BUNDLE_NAME) or (
            child.name.startswith(f".{BUNDLE_NAME}.") and child.name.endswith(".partial")
        ):
            child.unlink()  # the bundle and what a killed archive left behind
