"""One slot of a Prefect global concurrency limit per engine process, held while a sweep runs.

A process work pool can start several sweeps on one machine at once, and each
starts ``workers`` GMAT engines. With a global concurrency limit (default name
``gmat-engines``, the ``PREFECT_GMAT_ENGINE_LIMIT`` setting) sized to the
machine's cores, a sweep waits until its engines fit, so the machine never runs
more engines than cores. Slots are leased: a sweep process that dies frees them
when its lease runs out. Without that limit on the server (ephemeral mode, the
test harness, a user who does not want it) sweeps run at once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from prefect_gmat.errors import SweepSpecError
from prefect_gmat.settings import get_settings

__all__ = ["engine_slots", "read_engine_limit"]


def read_engine_limit(name: str) -> GlobalConcurrencyLimitResponse | None:
    """The server's limit called ``name``, or None if there is none."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None


@contextmanager
def engine_slots(
    workers: int,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    on_wait: Callable[[], None] = lambda: None,
) -> Iterator[int]:
    """Hold ``workers`` slots of the engine limit for the block; yields the slots held (0: none).

    A sweep asking for more engines than the limit allows could never start, so
    it fails at once and says how to fix it. ``on_wait`` is called before waiting
    for slots other sweeps hold (the flow stops its early runs then).
    """
    name = get_settings().engine_limit
    limit = read_engine_limit(name) if name else None
    if limit is None or not limit.active:
        yield 0
        return
    if workers > limit.limit:
        raise SweepSpecError(
            f"workers={workers} is more than the {limit.limit} engines the global concurrency "
            f"limit {name!r} allows at once; pass workers={limit.limit} or fewer, or raise the "
            f"limit (prefect gcl update {name} --limit N).",
            field="workers",
            value=workers,
        )
    in_use = limit.active_slots or 0
    if in_use + workers > limit.limit:
        logger.info(
            "waiting for %d engine slot(s) of %r (%d of %d in use by other sweeps)",
            workers,
            name,
            in_use,
            limit.limit,
        )
        on_wait()
    with concurrency(name, occupy=workers):
        yield workers
