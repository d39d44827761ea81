"""What crosses the engine boundary: a run's job, its outcome, a validation problem.

A leaf that imports nothing of the package, as gmat-sweep's ``spec.py`` is: the
engine workers, the sweep directory, the manifest, the bundle and the Prefect
tasks all speak in these small, picklable records. Prefect persists
:class:`Outcome` in a sweep's ``.prefect-results``; outcomes pickled by older
versions (as ``prefect_gmat.runner.Outcome``) load as this class (see the
package's ``__init__``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "TRANSIENT_FAILURES",
    "FailureKind",
    "Outcome",
    "PostprocessStatus",
    "Problem",
    "RunJob",
    "Status",
    "ValidateJob",
    "hash_key",
    "hashed_outputs",
    "log_excerpt",
    "sha256_file",
]

Status = Literal["ok", "failed"]
#: Why a run failed. ``timeout``, ``crashed`` and ``io`` are transient (worth a retry);
#: ``load``, ``field``, ``engine`` and ``postprocess`` (the per-run hook raised) are
#: deterministic (the same input fails again).
FailureKind = Literal[
    "timeout", "crashed", "io", "load", "field", "engine", "postprocess", "internal"
]
#: What became of a run's postprocess hook, as gmat-sweep records it.
PostprocessStatus = Literal["none", "ok", "failed"]
TRANSIENT_FAILURES: frozenset[str] = frozenset({"timeout", "crashed", "io", "internal"})


@dataclass(frozen=True, slots=True)
class RunJob:
    """Everything a worker needs for one run; small and picklable."""

    run_id: int
    script_path: str
    overrides: dict[str, Any]
    run_dir: str
    timeout: float | None = None
    postprocess: str | None = None  # "module:function", called after a successful run

    @property
    def output_dir(self) -> Path:
        """The run's directory, under gmat-sweep's ``RunSpec`` name (for postprocess hooks)."""
        return Path(self.run_dir)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The small record a run returns (never a DataFrame), persisted and put in the manifest."""

    run_id: int
    status: Status
    overrides: dict[str, Any]
    output_paths: dict[str, str] = field(default_factory=dict)
    output_sha256: dict[str, str] = field(default_factory=dict)
    solver_paths: dict[str, str] = field(default_factory=dict)
    converged: dict[str, bool] = field(default_factory=dict)
    started_at: float = 0.0
    ended_at: float = 0.0
    error: str | None = None
    failure: FailureKind | None = None
    log_excerpt: str | None = None
    log_path: str | None = None
    attempts: int = 1
    extra_outputs: dict[str, str] = field(default_factory=dict)
    postprocess_status: PostprocessStatus = "none"
    #: Files on their way to the sweep directory from a machine that cannot write it
    #: (path there -> content); see :mod:`prefect_gmat.engine.carry`. Empty once landed.
    carried: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def transient(self) -> bool:
        """True when the same run may well succeed if tried again."""
        return self.failure in TRANSIENT_FAILURES

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    def with_attempts(self, attempts: int) -> Outcome:
        return replace(self, attempts=attempts)

    def __setstate__(self, state: list[Any]) -> None:
        """Unpickle; a field added since the outcome was persisted gets its default.

        Prefect keeps outcomes in the sweep's result storage, so a sweep resumed by a
        newer version reads outcomes pickled without, e.g., ``extra_outputs``.
        """
        for index, spec in enumerate(fields(self)):
            if index < len(state):
                value = state[index]
            elif spec.default_factory is not MISSING:
                value = spec.default_factory()
            else:
                value = spec.default
            object.__setattr__(self, spec.name, value)


def hashed_outputs(
    output_paths: Mapping[str, str],
    solver_paths: Mapping[str, str],
    extra_outputs: Mapping[str, str],
) -> dict[str, str]:
    """Every output file of a run by its key in ``output_sha256``.

    Reports and solver histories keep their own keys; a hook's outputs are keyed
    ``extra:<key>``, which no GMAT resource name can collide with.
    """
    return {
        **output_paths,
        **solver_paths,
        **{hash_key("extra_outputs", key): path for key, path in extra_outputs.items()},
    }


def hash_key(record_field: str, key: str) -> str:
    """The ``output_sha256`` key of output ``key`` in a record's ``record_field``."""
    return f"extra:{key}" if record_field == "extra_outputs" else key


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_FLAGGED = re.compile(r"ERROR|Exception|Error:|Warning|failed|Cannot|cannot open", re.I)
_NOISE = re.compile(r"^(Logging to|\*{5} file:|GMAT Build Date|GMAT API Log)")


def log_excerpt(log: str, *, limit: int = 20) -> str:
    """The GMAT log lines that say what went wrong (with the script line GMAT quotes).

    Falls back to the log's tail when nothing is flagged.
    """
    lines = [line.rstrip() for line in log.splitlines() if line.strip()]
    lines = [line for line in lines if not _NOISE.match(line)]
    chosen: list[int] = []  # indices into lines, so a quoted line that is flagged too shows once
    for index, line in enumerate(lines):
        if _FLAGGED.search(line) and index not in chosen[-1:]:
            chosen.append(index)
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if following.lstrip().startswith('"'):  # GMAT quotes the offending script line
                chosen.append(index + 1)
    picked = [lines[index] for index in chosen]
    return "\n".join(picked[-limit:] if picked else lines[-limit:])


@dataclass(frozen=True, slots=True)
class ValidateJob:
    """Check, before a sweep, that a script loads and takes every swept value."""

    script_path: str
    values: dict[str, list[Any]]  # field -> distinct values to try
    log_dir: str
    drawn: tuple[str, ...] = ()  # fields a distribution draws numbers for


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a sweep cannot run: the field (or ``script``), what is wrong, the fix."""

    field: str
    message: str
    value: Any = None
    log_excerpt: str | None = None
