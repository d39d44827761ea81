"""One GMAT run inside a worker process: load fresh, override, run, write Parquet.

:func:`start_engine` is called once per worker process;
:func:`execute` once per run. ``execute`` never raises for a run fault: every
failure becomes an :class:`Outcome` with a status, a cause a user can read and
the GMAT log lines that explain it, because an exception from the engine
(``GmatRunError``) does not survive pickling and a worker must keep serving.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect_gmat.core.layout import GMAT_LOG, GMAT_LOG_MARK, WORKER_LOG
from prefect_gmat.core.records import (
    FailureKind,
    Outcome,
    Problem,
    RunJob,
    ValidateJob,
    hashed_outputs,
    log_excerpt,
    sha256_file,
)

__all__ = ["execute", "failed_outcome", "start_engine", "validate"]


def failed_outcome(
    job: RunJob,
    kind: FailureKind,
    error: str,
    started: float,
    log: str | None = None,
) -> Outcome:
    """A failed run's outcome, its cause (and GMAT log) appended to the run's worker.log."""
    worker_log = Path(job.run_dir) / WORKER_LOG
    _append_log(worker_log, f"status=failed failure={kind}: {error}")
    if log:
        _append_log(worker_log, f"{GMAT_LOG_MARK}\n{log}")
    return Outcome(
        run_id=job.run_id,
        status="failed",
        overrides=dict(job.overrides),
        started_at=started,
        ended_at=time.time(),
        error=error,
        failure=kind,
        log_excerpt=log_excerpt(log) if log else None,
        log_path=str(worker_log),
    )


# --- inside the worker process --------------------------------------------------------

_engine_root: str | None = None


_gmat: Any = None


def start_engine(engine_root: str) -> None:
    """Bootstrap GMAT from ``engine_root`` once for this process."""
    global _engine_root, _gmat
    from gmat_run import bootstrap, locate_gmat

    _gmat = bootstrap(locate_gmat(engine_root))
    _engine_root = engine_root


def _load_logged(script: str, log_path: Path) -> Any:
    """Load a script with the engine log pointed at ``log_path``.

    GMAT writes the reason a script does not parse only to its log, and only if
    a log is open while loading; gmat-run opens one only for runs.
    """
    from gmat_run import Mission

    if _gmat is not None:
        _gmat.UseLogFile(str(log_path))
    try:
        return Mission.load(script, gmat_root=_engine_root)
    finally:
        if _gmat is not None:
            _gmat.UseLogFile(os.devnull)


def _append_log(path: Path, message: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")
    except OSError:
        pass  # the log is a courtesy; the outcome carries the cause


def execute(job: RunJob) -> Outcome:
    """Run ``job`` in this (warm) worker and describe what happened."""
    from gmat_run import GmatFieldError, GmatLoadError, GmatRunError

    started = time.time()
    run_dir = Path(job.run_dir)
    worker_log = run_dir / WORKER_LOG
    gmat_log = run_dir / GMAT_LOG

    def failed(kind: FailureKind, error: str, log: str | None = None) -> Outcome:
        return failed_outcome(job, kind, error, started, log)

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _append_log(worker_log, f"run_id={job.run_id} script={job.script_path}")
        _append_log(worker_log, f"overrides={job.overrides}")
    except OSError as exc:
        return failed("io", f"cannot create the run directory {run_dir}: {exc}")

    try:
        mission = _load_logged(job.script_path, gmat_log)
    except GmatLoadError:
        log = _read_text(gmat_log)
        return failed("load", f"GMAT could not load {job.script_path}", log)
    except Exception as exc:  # never raise for a run fault (gmat-sweep's run_one catches all)
        cause = f"GMAT could not load {job.script_path}: {type(exc).__name__}: {exc}"
        return failed("load", cause, _read_text(gmat_log))
    try:
        for key, value in job.overrides.items():
            mission[key] = value
    except GmatFieldError as exc:
        return failed("field", str(exc))
    except Exception as exc:
        return failed("field", f"cannot set {key!r} to {value!r}: {type(exc).__name__}: {exc}")

    try:
        results = mission.run(working_dir=run_dir, overwrite=True)
    except GmatRunError as exc:
        log = exc.log or _read_text(gmat_log)
        cause = str(exc)
        if _disk_full(run_dir):
            return failed("io", f"{_DISK_FULL} {run_dir}: {cause}", log)
        if getattr(exc, "path", None) is not None and not exc.log:
            return failed("io", cause)
        return failed("engine", cause, log)
    except Exception as exc:
        return failed("engine", f"{type(exc).__name__}: {exc}", _read_text(gmat_log))

    try:
        output_paths: dict[str, str] = {}
        for name, frame in results.reports.items():
            output_paths[f"report__{name}"] = _write_parquet(
                run_dir / f"report__{name}.parquet", _with_time_column(frame)
            )
        for name, frame in results.ephemerides.items():
            output_paths[f"ephemeris__{name}"] = _write_parquet(
                run_dir / f"ephemeris__{name}.parquet", _with_time_column(frame)
            )
        solver_paths = {
            name: _write_parquet(run_dir / f"solver__{name}.parquet", results.solver_runs[name])
            for name in results.solver_runs
        }
        converged = {name: bool(flag) for name, flag in results.converged.items()}
    except OSError as exc:
        return failed("io", f"cannot write the run's output under {run_dir}: {exc}")
    except Exception as exc:
        if _disk_full(run_dir):  # GMAT wrote truncated output files
            return failed("io", f"{_DISK_FULL} {run_dir}: {type(exc).__name__}: {exc}")
        return failed("internal", f"{type(exc).__name__}: {exc}", traceback.format_exc())

    if results.log:
        _append_log(worker_log, f"{GMAT_LOG_MARK}\n{results.log}")
    outcome = Outcome(
        run_id=job.run_id,
        status="ok",
        overrides=dict(job.overrides),
        output_paths=output_paths,
        solver_paths=solver_paths,
        converged=converged,
        started_at=started,
        ended_at=time.time(),
        log_path=str(worker_log),
    )
    if job.postprocess is not None:
        try:
            extra = _run_postprocess(job, outcome)
        except Exception as exc:
            failure = failed(
                "postprocess",
                f"postprocess hook {job.postprocess} raised {type(exc).__name__}: {exc}",
                traceback.format_exc(),
            )
            return replace(failure, postprocess_status="failed")
        _append_log(worker_log, f"postprocess {job.postprocess} wrote {extra}")
        outcome = replace(outcome, extra_outputs=extra, postprocess_status="ok")
    files = hashed_outputs(output_paths, solver_paths, outcome.extra_outputs)
    hashes = {key: sha256_file(path) for key, path in files.items()}
    _append_log(worker_log, f"status=ok duration_s={time.time() - started:.3f}")
    return replace(outcome, output_sha256=hashes, ended_at=time.time())


def _run_postprocess(job: RunJob, outcome: Outcome) -> dict[str, str]:
    """Call the hook as gmat-sweep does, ``hook(spec, outcome)``; check what it returns.

    It must return ``{key: path}`` of files that exist (relative paths are taken in
    the run's directory). Anything else raises, and the run fails.
    """
    import importlib

    assert job.postprocess is not None
    module_name, _, name = job.postprocess.partition(":")
    hook = getattr(importlib.import_module(module_name), name)
    produced = hook(job, outcome)
    if not isinstance(produced, Mapping):
        raise TypeError(f"the hook must return a mapping {{key: path}}, not {produced!r}")
    extra: dict[str, str] = {}
    for key, raw in produced.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"the hook returned the key {key!r}; keys must be strings")
        path = Path(raw)
        path = path if path.is_absolute() else job.output_dir / path
        if not path.is_file():
            raise FileNotFoundError(f"the hook returned {key!r}: {path}, but there is no such file")
        extra[key] = str(path)
    return extra


_BUILT_IN_RESOURCES = frozenset(
    {"EarthMJ2000Eq", "EarthMJ2000Ec", "EarthFixed", "EarthICRF", "SolarSystemBarycenter"}
)


def validate(job: ValidateJob) -> list[Problem]:
    """Load the script once and try every swept field and value on it; report what fails.

    Each value is written onto the script as loaded (not in combination with the
    other fields' values), which catches misspelt resources and fields, wrong
    types, and values GMAT refuses outright, without running anything.
    """
    import difflib

    from gmat_run import GmatFieldError, GmatLoadError

    log_path = Path(job.log_dir) / f"validate-{os.getpid()}.log"
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        mission = _load_logged(job.script_path, log_path)
    except GmatLoadError:
        excerpt = log_excerpt(_read_text(log_path))
        return [
            Problem(
                "script",
                f"GMAT cannot load {job.script_path}; fix the script (the GMAT log says "
                f"why below).",
                log_excerpt=excerpt,
            )
        ]
    finally:
        log_path.unlink(missing_ok=True)
    resources = [n for group in mission.summary().resource_groups for n in group.names]
    if not set(resources) - _BUILT_IN_RESOURCES:
        return [
            Problem(
                "script",
                f"{job.script_path} defines no resources; is it a GMAT script? Pass a "
                ".script that creates the objects the sweep sets (Create Spacecraft Sat ...).",
            )
        ]
    problems: list[Problem] = []
    for field_path, values in job.values.items():
        resource = field_path.split(".", 1)[0]
        if resource not in resources:
            close = difflib.get_close_matches(resource, resources, n=3)
            hint = (
                f" Did you mean {', '.join(repr(c + field_path[len(resource) :]) for c in close)}?"
            )
            problems.append(
                Problem(
                    field_path,
                    f"{field_path!r}: the script has no resource named {resource!r}."
                    + (hint if close else f" Its resources are: {', '.join(resources)}."),
                )
            )
            continue
        try:
            original = mission[field_path]
        except GmatFieldError as exc:
            text = str(exc).split("; did you mean: ")
            message = f"{field_path!r}: {text[0]}."
            if len(text) > 1:
                names = [f"'{resource}.{name.strip()}'" for name in text[1].rstrip("?").split(",")]
                message += f" Did you mean {' or '.join(names)}?"
            problems.append(Problem(field_path, message))
            continue
        if field_path in job.drawn and isinstance(original, str):
            problems.append(
                Problem(
                    field_path,
                    f"{field_path!r} is a string field (it is {original!r} in the script); a "
                    "distribution draws numbers, so it cannot be perturbed. Perturb numeric "
                    "fields only; sweep this one with grid= or samples=.",
                )
            )
            continue
        for value in values:
            try:
                mission[field_path] = value
            except GmatFieldError as exc:
                problems.append(
                    Problem(field_path, f"{field_path!r} cannot take {value!r}: {exc}", value)
                )
        # A calculated field may not take its read-back form; every run reloads anyway.
        with contextlib.suppress(GmatFieldError):
            mission[field_path] = original
    return problems


_DISK_FULL = "no space left on the disk holding"


def _disk_full(path: Path) -> bool:
    """True when the file system under ``path`` has (almost) no space left."""
    try:
        return shutil.disk_usage(path).free < 64 * 1024
    except OSError:
        return False


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _with_time_column(frame: Any) -> Any:
    """Copy the first datetime column to ``time`` (gmat-sweep's index key), as gmat-sweep does."""
    import pandas as pd

    if "time" in frame.columns:
        return frame
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            return frame.assign(time=frame[column])
    return frame


def _write_parquet(path: Path, frame: Any) -> str:
    """Write atomically (temp file + rename) so a killed run never leaves half a Parquet."""
    if frame.columns.has_duplicates:
        taken = set(frame.columns)  # a suffixed name must not be a real column's
        seen: dict[str, int] = {}
        names = []
        for column in frame.columns:
            if column not in seen:
                seen[column] = 0
                names.append(column)
                continue
            count = seen[column] + 1
            while f"{column}.{count}" in taken:
                count += 1
            seen[column] = count
            taken.add(f"{column}.{count}")
            names.append(f"{column}.{count}")
        frame = frame.copy()
        frame.columns = names
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp)
    os.replace(tmp, path)
    return str(path)
