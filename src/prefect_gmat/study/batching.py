"""Points per task run, and how one task run's points run with a retry each.

A Prefect task run costs about 45 ms of CPU (client and
server), as much as a short GMAT run, and on a machine whose cores the engines
keep busy that CPU is taken from the engines. So with ``points_per_task="auto"``
:class:`BatchSizer` keeps one task run per point where that cost is small (a
small sweep, or runs of a second or more) and otherwise gives a task run
enough points to last about :data:`TARGET_TASK_SECONDS`, from the run times
measured so far, then smaller batches near the end so no engine waits (down to
batches of a quarter second). Inside a task run each point is still its own
run, record and retry unit: :func:`run_with_retries` retries a point that
failed transiently (timeout, crashed worker, I/O), never the points beside it.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

from prefect_gmat.core.layout import run_dir_name
from prefect_gmat.core.records import Outcome, RunJob

__all__ = [
    "FLUSH_MAX_SECONDS",
    "FLUSH_MIN_SECONDS",
    "PER_DASK_TASK_RUN_SECONDS",
    "PER_TASK_RUN_CPU_SECONDS",
    "TARGET_TASK_SECONDS",
    "BatchSizer",
    "batch_name",
    "flush_interval",
    "flushes_within",
    "retry_delay_seconds",
    "run_with_retries",
]

#: The sweep flow flushes its manifest (a task run, an fsync, the UI's progress artifact)
#: every second at first, then every quarter of the sweep's age, at most every 5 s. Each
#: flush takes CPU the engines need (a task run and an API call); what finishes between
#: two flushes is kept by the per-run cache, so an interrupted sweep loses none of it.
FLUSH_MIN_SECONDS = 1.0
FLUSH_MAX_SECONDS = 5.0


def flush_interval(age: float) -> float:
    """Seconds until the next manifest flush of a sweep running for ``age`` seconds."""
    return min(FLUSH_MAX_SECONDS, max(FLUSH_MIN_SECONDS, age / 4))


def flushes_within(seconds: float) -> int:
    """Manifest flushes while runs come back for ``seconds`` (the last one not counted)."""
    count, at = 0, flush_interval(0.0)
    while at < seconds:
        count += 1
        at += flush_interval(at)
    return count


#: CPU one Prefect task run costs here, client and server together (measured).
PER_TASK_RUN_CPU_SECONDS = 0.045
#: What one costs under prefect-dask, where Prefect's task engine runs in the dask worker:
#: ~0.1 s of the worker's CPU, and its engine waits 0.1-0.25 s between two task runs
#: (measured on a cluster of 2 one-thread workers).
PER_DASK_TASK_RUN_SECONDS = 0.25
#: How long a batched task run should take at least; longer where a task run costs more,
#: so that its cost stays under 5% (5 s under dask).
TARGET_TASK_SECONDS = 2.0
#: The shortest batch worth splitting at the end of a sweep: below it an engine idling
#: while its neighbour finishes costs less than the task runs a finer split needs.
_TAIL_SECONDS = 0.25
#: Below this total cost of one task run per point, a sweep is not worth batching.
_NEGLIGIBLE_SECONDS = 1.0
_RECENT = 50  # run times the median is taken over


class BatchSizer:
    """How many points the next task run takes: fixed, or from measured run times."""

    def __init__(
        self,
        setting: int | Literal["auto"],
        total: int,
        engines: int,
        task_cost: float = PER_TASK_RUN_CPU_SECONDS,
    ) -> None:
        self.setting = setting
        self.total = total
        self.engines = max(1, engines)
        self.task_cost = task_cost
        self._durations: list[float] = []

    def observe(self, outcomes: Iterable[Outcome]) -> None:
        """Learn from finished runs (their own duration, not the task run's)."""
        self._durations.extend(o.duration_s for o in outcomes if o.ok)
        del self._durations[:-_RECENT]

    @property
    def typical_run_seconds(self) -> float | None:
        return statistics.median(self._durations) if self._durations else None

    @property
    def measuring(self) -> bool:
        """True while "auto" still needs run times to size batches: until then the
        dispatcher keeps one single-point task run per engine out, no more."""
        return (
            self.setting == "auto"
            and self.total * self.task_cost > _NEGLIGIBLE_SECONDS
            and len(self._durations) < self.engines
        )

    def next_size(self, remaining: int) -> int:
        if remaining <= 0:
            return 0
        if self.setting != "auto":
            return min(int(self.setting), remaining)
        if self.total * self.task_cost <= _NEGLIGIBLE_SECONDS:
            return 1  # a small sweep keeps one task run per point
        run_seconds = self.typical_run_seconds
        if run_seconds is None or self.measuring:
            return 1  # measure first
        if run_seconds >= 20 * self.task_cost:
            return 1  # one task run per point costs under 5%
        run_seconds = max(run_seconds, 1e-3)
        target = max(TARGET_TASK_SECONDS, 20 * self.task_cost)
        size = math.ceil(target / run_seconds)
        # Near the end, each batch takes its share of what is left (guided self-scheduling),
        # so every engine has work until the last run; none shorter than _TAIL_SECONDS, or
        # than two task runs' cost.
        shortest = max(_TAIL_SECONDS, 2 * self.task_cost)
        tail = max(remaining // self.engines, math.ceil(shortest / run_seconds))
        return max(1, min(size, tail, remaining))


def batch_name(run_ids: Sequence[int]) -> str:
    """``run-7`` for one point, ``runs-40-59`` for a batch (first and last run id)."""
    if len(run_ids) == 1:
        return run_dir_name(run_ids[0])
    return f"runs-{min(run_ids)}-{max(run_ids)}"


def retry_delay_seconds(first: float, retry: int) -> float:
    """Delay before retry ``retry`` (1-based): ``first`` doubling, jittered by +-50%."""
    return float(first * 2 ** (retry - 1) * random.uniform(0.5, 1.5))


def run_with_retries(
    run_batch: Callable[[Sequence[RunJob]], Iterable[Outcome]],
    jobs: Sequence[RunJob],
    retries: int,
    retry_delay: float,
) -> Iterator[Outcome]:
    """Run ``jobs`` through ``run_batch``; retry each transient failure alone, ``retries`` times.

    Yields each job's final outcome (``attempts`` set) as soon as it is final, so
    a caller can keep it before the rest of the batch is done.
    """
    todo = list(jobs)
    for attempt in range(1, retries + 2):
        if attempt > 1:
            time.sleep(retry_delay_seconds(retry_delay, attempt - 1))
        by_id = {job.run_id: job for job in todo}
        again: list[RunJob] = []
        for outcome in run_batch(todo):
            if not outcome.ok and outcome.transient and attempt <= retries:
                again.append(by_id[outcome.run_id])
            else:
                yield outcome.with_attempts(attempt)
        todo = again
        if not todo:
            return
