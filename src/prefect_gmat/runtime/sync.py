"""Type-narrow Prefect's dual sync/async functions when they are called from sync code."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

__all__ = ["sync_value"]


def sync_value[T](value: T | Coroutine[Any, Any, T]) -> T:
    """What a Prefect dual function returned in sync code (annotated "or a coroutine").

    Called from async code those functions return a coroutine instead, which this
    package never does: that is a bug, reported as one.
    """
    if isinstance(value, Coroutine):
        value.close()
        raise TypeError("a Prefect function returned a coroutine; call it from sync code")
    return value
