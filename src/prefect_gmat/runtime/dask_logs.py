"""Send the log lines dask workers still hold for the flow's server before the flow ends.

A task run in a dask worker logs to the Prefect API through Prefect's log worker, which
sends a batch every 2 s (``PREFECT_LOGGING_TO_API_BATCH_INTERVAL``). A sweep on a
cluster started by hand (``dask scheduler``, ``dask worker``) with no server of the
user's own goes through a temporary server that stops when the flow returns; the
workers outlive it, and each printed ``--- Error logging to API ---`` when it was later
stopped, holding the last task runs' lines. Draining the workers' log queues while the
flow still runs delivers those lines, and leaves nothing for a worker's exit.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from prefect_gmat.runtime.observability import Logger

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["drain_worker_logs"]

#: Longest wait for one worker's queue to be sent: a stuck API never holds up the sweep.
DRAIN_SECONDS = 10.0


async def _drain_this_worker() -> None:
    """Runs in a dask worker's event loop: send its queued log lines, then return."""
    from prefect.logging.handlers import APILogHandler

    await asyncio.wait_for(APILogHandler.aflush(), DRAIN_SECONDS)


def drain_worker_logs(client: Client, logger: Logger) -> None:
    """Have every worker of ``client``'s cluster send its queued Prefect log lines now.

    A worker that fails to (the API is down, the worker is gone) is logged at debug and
    skipped: the lines are Prefect's record of the runs, not their results.
    """
    try:
        results = client.run(_drain_this_worker, on_error="return")
    except Exception as exc:  # the scheduler itself is gone; the sweep's results are in
        logger.debug("could not reach the dask workers to send their logs: %r", exc)
        return
    for worker, result in results.items():
        if isinstance(result, BaseException):
            logger.debug("dask worker %s did not send its logs: %r", worker, result)
