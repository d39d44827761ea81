"""Keep Prefect's own chatter out of a user's terminal when the API or CLI runs a sweep.

Ephemeral mode (no ``PREFECT_API_URL``) starts a temporary server whose
telemetry, SQLite locking and shutdown messages concern Prefect, not the user.
Warnings from the sweep itself (failed runs) still show. A user who sets
``PREFECT_LOGGING_LEVEL`` gets Prefect's logging untouched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_prefect", "settle_prefect_telemetry"]

_SILENCED = (
    "docket",
    "sqlalchemy",
    "uvicorn",
    "httpx",
    "asyncio",
    "prefect.server",
    "distributed",
)


class _DropServerLifecycle(logging.Filter):
    """Drop the ephemeral server's start/stop notices (they are logged at exit, too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "temporary server" not in record.getMessage()


_filter = _DropServerLifecycle()


@contextmanager
def quiet_prefect() -> Iterator[None]:
    """Silence Prefect's internal loggers for the block (ephemeral mode only)."""
    if os.environ.get("PREFECT_LOGGING_LEVEL") or os.environ.get("PREFECT_API_URL"):
        yield
        return
    # The ephemeral server is a subprocess: it inherits this at start.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    prefect_logger = logging.getLogger("prefect")
    if _filter not in prefect_logger.filters:
        prefect_logger.addFilter(_filter)
    saved = {name: logging.getLogger(name).level for name in _SILENCED}
    for name in _SILENCED:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # One "Finished in state ..." line (and a traceback per failure) per grid point
    # drowns the terminal; the flow logs each failed run's cause once, at WARNING.
    task_runs = logging.getLogger("prefect.task_runs")
    saved_task_runs = task_runs.level
    task_runs.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        task_runs.setLevel(saved_task_runs)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def settle_prefect_telemetry() -> None:
    """Send Prefect's pending usage events now, before the interpreter exits.

    A first import of Prefect in a terminal queues a usage event, which its analytics
    client (Amplitude) sends within 10 s or at exit; at exit it needs a new thread,
    which Python 3.12 refuses then, and a first-time user whose sweep was refused at
    once saw a "can't create new thread at interpreter shutdown" traceback under the
    one-line error. Stopping Prefect's event service and flushing the client here,
    while threads may still start, leaves nothing for exit. Prefect's internals: if
    they move, this does nothing.
    """
    if "prefect" not in sys.modules:
        return
    with contextlib.suppress(Exception):
        from prefect._internal.analytics import client
        from prefect._internal.analytics.service import AnalyticsService

        AnalyticsService.instance().shutdown(timeout=2.0)
        client.flush()
