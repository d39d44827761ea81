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
    "ManifestError",
    "PrefectGmatError",
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


class SweepSpecError(PrefectGmatError, ValueError):
    """Bad sweep input, found before any run starts.

    Payload: ``field`` (the offending grid key or argument), ``value``.
    """


class SweepDirectoryError(PrefectGmatError):
    """The output directory cannot be used as asked. Payload: ``path``."""


class ManifestError(PrefectGmatError):
    """A manifest is missing or unreadable. Payload: ``path``, ``line``."""


class RunError(PrefectGmatError):
    """One GMAT run failed. Payload: ``run_id``, ``cause``, ``log_excerpt``."""


class BundleError(PrefectGmatError):
    """A bundle is corrupt or cannot be read. Payload: ``path``, ``members``."""
