"""The package's exceptions: small, typed, and picklable across processes and Prefect.

Every class takes keyword payload beside its message and pickles by
reconstructing from both, so an error raised in a worker process or restored
from a Prefect result is the same error, payload included.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BundleError",
    "EngineNotFoundError",
    "FailureBudgetError",
    "ManifestError",
    "PrefectGmatError",
    "PrefectServerError",
    "RunError",
    "SweepDirectoryError",
    "SweepSpecError",
]


class PrefectGmatError(Exception):
    """Base class of every error this package raises."""

    def __init__(self, message: str, **payload: Any) -> None:
        super().__init__(message)
        self.message = message
        self.payload = payload
        for key, value in payload.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.payload))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[PrefectGmatError], message: str, payload: dict[str, Any]) -> Any:
    return cls(message, **payload)


class EngineNotFoundError(PrefectGmatError):
    """No usable GMAT engine: a named install is invalid, or the pip engine is missing."""

    engine_root: str | None = None


class SweepSpecError(PrefectGmatError, ValueError):
    """Bad sweep input, found before any run starts.

    Payload: ``field`` (the offending grid key or argument), ``value``, and for
    checks against the engine ``problems`` (every (field, message)) and ``log_excerpt``.
    """

    field: str | None = None
    value: Any = None
    problems: list[tuple[str, str]] | None = None
    log_excerpt: str | None = None


class PrefectServerError(PrefectGmatError):
    """A Prefect server could not be started or does not answer. Payload: ``url``, ``output``
    (what the server printed, when it did not come up)."""

    url: str | None = None
    output: str | None = None


class SweepDirectoryError(PrefectGmatError):
    """The output directory cannot be used as asked. Payload: ``path``."""

    path: str | None = None


class ManifestError(PrefectGmatError):
    """A manifest is missing or unreadable. Payload: ``path``, ``line``."""

    path: str | None = None
    line: int | None = None


class RunError(PrefectGmatError):
    """One GMAT run failed. Payload: ``run_id``, ``cause``, ``log_excerpt``."""

    run_id: int | None = None
    cause: str | None = None
    log_excerpt: str | None = None


class FailureBudgetError(PrefectGmatError):
    """More runs failed than ``max_failures`` allows; the sweep stopped starting runs.

    Payload: ``out`` (the sweep directory, every finished run recorded), ``failed``,
    ``budget`` (the failures allowed) and ``causes`` (the most common, with counts).
    """

    out: str | None = None
    failed: int | None = None
    budget: int | None = None
    causes: list[tuple[str, int]] | None = None


class BundleError(PrefectGmatError):
    """A bundle is corrupt or cannot be read. Payload: ``path``, ``members``."""

    path: str | None = None
    members: list[str] | None = None
    run_id: int | None = None
