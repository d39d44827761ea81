"""The sweep manifest: JSON Lines, schema_version 1, readable by gmat-sweep 0.6.0.

Line 1 is the header (script hash, versions, the parameter
spec); every later line is one run's record, appended and fsynced as the run
finishes, so a killed sweep leaves a manifest that is valid up to, at worst, a
torn last line, which :func:`read_manifest` drops. The last record for a run
id wins, so a retried or resumed run simply appends again.

Records carry gmat-sweep's fields plus a few of ours (``attempts``,
``failure``, ``error``, ``output_sha256``); gmat-sweep ignores keys it does not
know, so both tools read each other's manifests.

A record names the files inside its sweep directory relative to it
(``run-3/report__RF.parquet``), as a bundle's manifest does; both tools resolve
relative paths against the sweep directory, so the directory can be moved or
mounted elsewhere and still be read, resumed and archived. Files outside it
(a hook's, say) keep their absolute paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prefect_gmat.core.layout import MANIFEST_NAME, portable_path, with_gmat_log
from prefect_gmat.core.records import Outcome
from prefect_gmat.errors import ManifestError

__all__ = [
    "SCHEMA_VERSION",
    "ManifestData",
    "ManifestWriter",
    "fsync_dir",
    "make_header",
    "outcome_record",
    "portable_record",
    "read_manifest",
    "rewrite_header",
]

SCHEMA_VERSION = 1
#: The gmat-sweep release whose manifest format this package writes.
GMAT_SWEEP_FORMAT = "0.6.0"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def make_header(
    *,
    script_sha256: str,
    engine_version: str,
    parameter_spec: Mapping[str, Any],
    run_count: int,
    seed: int | None = None,
    script_path: str | None = None,
    engine_source: str | None = None,
    postprocess: str | None = None,
    sweep_dir: str | None = None,
) -> dict[str, Any]:
    """The header record: gmat-sweep's fields, plus where the script and engine came from.

    ``seed`` is a design's seed (gmat-sweep's ``sweep_seed``); ``postprocess`` the
    per-run hook, so a resumed run calls it again. ``sweep_dir`` is where the sweep
    directory was when the sweep started: with ``script_path`` it says where the
    script lies relative to the directory, to find it again once both moved.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "script_sha256": script_sha256,
        "gmat_sweep_version": GMAT_SWEEP_FORMAT,
        "gmat_run_version": version("gmat-run"),
        "gmat_install_version": engine_version,
        "python_version": platform.python_version(),
        "os_platform": platform.platform(),
        "sweep_seed": seed,
        "parameter_spec": dict(parameter_spec),
        "run_count": run_count,
        "backend": "prefect",
        "postprocess": postprocess,
        "prefect_gmat_version": version("prefect-gmat"),
        "script_path": script_path,
        "sweep_dir": sweep_dir,
        "engine_source": engine_source,
        "created_at": datetime.now(UTC).isoformat(),
    }


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    """One manifest line for a run (gmat-sweep's ``ManifestEntry`` fields + ours)."""
    stderr = None
    if not outcome.ok:
        stderr = outcome.error or "failed"
        if outcome.log_excerpt:
            stderr = with_gmat_log(stderr, outcome.log_excerpt)
    return {
        "run_id": outcome.run_id,
        "overrides": dict(outcome.overrides),
        "context": {},
        "status": outcome.status,
        "output_paths": dict(outcome.output_paths),
        "extra_outputs": dict(outcome.extra_outputs),
        "solver_paths": dict(outcome.solver_paths),
        "converged": dict(outcome.converged),
        "postprocess_status": outcome.postprocess_status,
        "started_at": _iso(outcome.started_at),
        "ended_at": _iso(outcome.ended_at),
        "duration_s": outcome.duration_s,
        "stderr": stderr,
        "log_path": outcome.log_path,
        "attempts": outcome.attempts,
        "failure": outcome.failure,
        "error": outcome.error,
        "output_sha256": dict(outcome.output_sha256),
    }


_PATH_MAPS = ("output_paths", "extra_outputs", "solver_paths")


def portable_record(record: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """``record`` with the paths of files inside ``root`` made relative to it.

    What :meth:`ManifestWriter.append` writes: gmat-sweep 0.6.0 resolves a relative
    ``output_paths``/``extra_outputs``/``log_path`` against the sweep directory too,
    so neither tool depends on where the directory is.
    """
    portable = dict(record)
    for name in _PATH_MAPS:
        paths = record.get(name)
        if paths:
            portable[name] = {k: portable_path(root, str(v)) for k, v in paths.items()}
    if record.get("log_path"):
        portable["log_path"] = portable_path(root, str(record["log_path"]))
    return portable


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rewrite_header(path: Path, header: Mapping[str, Any]) -> None:
    """Replace a manifest's header atomically; every record line is kept byte for byte.

    (A :class:`ManifestWriter` opens the file for each append, so it keeps working.)
    """
    with open(path, "rb") as handle:
        handle.readline()
        records = handle.read()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write((json.dumps(dict(header), sort_keys=True) + "\n").encode("utf-8"))
            handle.write(records)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class ManifestWriter:
    """Appends records to a manifest, each fsynced before :meth:`append` returns.

    Thread-safe. ``create`` refuses an existing file: a manifest is never
    clobbered; continue one with :meth:`open_existing`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, header: Mapping[str, Any]) -> ManifestWriter:
        """Write the header to a temporary file, then link it into place.

        ``os.link`` fails if ``path`` exists, so this is atomic (never half a
        header) and exclusive (never over another manifest) at once.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(dict(header), sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ManifestError(
                    f"{path} already exists; resume that sweep, or choose a new output directory.",
                    path=str(path),
                ) from None
        finally:
            os.unlink(tmp)
        fsync_dir(path.parent)
        return cls(path)

    @classmethod
    def open_existing(cls, path: Path) -> ManifestWriter:
        """Append to an existing manifest, first cutting off a torn last line if there is one.

        A kill mid-append leaves a line without its newline; gmat-sweep's reader rejects
        such a line anywhere but at the end, so it is removed before anything follows it.
        """
        with open(path, "rb+") as handle:
            data = handle.read()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
        return cls(path)

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append whole lines or nothing: a failed write (a full disk) is rolled back.

        Paths of files in the sweep directory are written relative to it
        (:func:`portable_record`).
        """
        root = self.path.parent
        payload = "".join(
            json.dumps(portable_record(r, root), sort_keys=True) + "\n" for r in records
        )
        if not payload:
            return
        data = payload.encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise ManifestError(
                    f"cannot append to {self.path}: {exc.strerror or exc}. The records "
                    "already in it are intact; fix the cause (free disk space?), then "
                    "resume(out) to run what is missing.",
                    path=str(self.path),
                ) from None
            finally:
                os.close(fd)


@dataclass
class ManifestData:
    """A manifest as read: its header and the winning record per run id."""

    path: Path
    header: dict[str, Any]
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    torn_line: int | None = None

    def failed_ids(self) -> list[int]:
        return sorted(i for i, r in self.records.items() if r["status"] != "ok")

    def ok_ids(self) -> list[int]:
        return sorted(i for i, r in self.records.items() if r["status"] == "ok")


def read_manifest(path: str | os.PathLike[str]) -> ManifestData:
    """Read a manifest, last record per run id winning, tolerating a torn tail.

    Like gmat-sweep, a last line without its newline (a kill mid-append) is
    dropped, and its number kept in ``torn_line``; a malformed line anywhere
    else is an error, as is a bad header.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"no manifest at {path}; is this a sweep output directory? "
            "A sweep writes manifest.jsonl into its `out` directory.",
            path=str(path),
        ) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path} is not a UTF-8 text manifest: {exc}", path=str(path)) from None
    lines = raw.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    if not lines:
        raise ManifestError(
            f"{path} has no complete header line; the file is not a sweep manifest.",
            path=str(path),
            line=1,
        )
    try:
        header = json.loads(lines[0])
        if not isinstance(header, dict) or "schema_version" not in header:
            raise ValueError("the first line has no schema_version")
    except ValueError as exc:
        raise ManifestError(
            f"{path} line 1 is not a manifest header ({exc}); the file is not a sweep manifest.",
            path=str(path),
            line=1,
        ) from None
    if header["schema_version"] != SCHEMA_VERSION:
        raise ManifestError(
            f"{path} has schema_version {header['schema_version']}; this version reads "
            f"{SCHEMA_VERSION}. Upgrade prefect-gmat.",
            path=str(path),
            line=1,
        )
    data = ManifestData(path=path, header=header, torn_line=len(lines) + 1 if torn else None)
    for number, line in enumerate(lines[1:], start=2):
        try:
            record = json.loads(line)
            if "status" not in record:  # gmat-sweep refuses a record without one too
                raise KeyError("status")
            data.records[int(record["run_id"])] = record
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(
                f"{path} line {number} is not a valid run record ({exc}). "
                "The manifest was edited or damaged; restore it, or delete that line "
                "and resume to re-run the run it described.",
                path=str(path),
                line=number,
            ) from None
    return data
