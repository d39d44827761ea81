"""A sweep's first runs, started on idle engines while Prefect is still starting.

The engines are up a second or more before Prefect's import, flow run and first
task run are (a temporary server: several seconds). :class:`EarlyRuns` runs the
sweep's points in order on those engines meanwhile, one at a time per engine.
The first task run that asks the pool for points ends it: no new point starts,
and every point a task run asks for that began early is handed over (its outcome
once it is done) instead of running again. So each point still runs once, under
the task run that records it; it only started before that task run did. A point
that never began early is run by its task run as usual.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from prefect_gmat.core.records import Outcome, RunJob

__all__ = ["EarlyRuns"]


class EarlyRuns[E]:
    """Runs ``jobs`` in order on ``engines`` threads until the first claim.

    Each thread takes an idle engine first (``borrow``), and only then the next job,
    which it runs on it (``run``, which hands the engine back) or, stopped meanwhile,
    hands the engine back unused (``give_back``): a job that began is always on an
    engine, so a claim never waits for a job still waiting for one.
    """

    def __init__(
        self,
        borrow: Callable[[], E],
        run: Callable[[E, RunJob], Outcome],
        give_back: Callable[[E], None],
        jobs: Sequence[RunJob],
        engines: int,
    ) -> None:
        self._borrow = borrow
        self._run = run
        self._give_back = give_back
        self._pending = list(reversed(jobs))  # popped from the end: the first job first
        self._began: dict[int, tuple[RunJob, Future[Outcome]]] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self.handed_over = 0  # points a claim took over
        self._threads = [
            threading.Thread(target=self._serve, name=f"early-run-{i}", daemon=True)
            for i in range(max(1, engines))
        ]

    def start(self) -> EarlyRuns[E]:
        for thread in self._threads:
            thread.start()
        return self

    def _next(self) -> tuple[RunJob, Future[Outcome]] | None:
        with self._lock:
            if self._stopped or not self._pending:
                return None
            job = self._pending.pop()
            began: Future[Outcome] = Future()
            self._began[job.run_id] = (job, began)
            return job, began

    def _serve(self) -> None:
        while True:
            with self._lock:
                if self._stopped or not self._pending:
                    return
            try:
                engine = self._borrow()
            except Exception:  # the pool closed: nothing more to run
                return
            taken = self._next()
            if taken is None:
                self._give_back(engine)
                return
            job, began = taken
            try:
                began.set_result(self._run(engine, job))
            except BaseException as exc:  # the claimant runs the point again (see claim)
                began.set_exception(exc)

    def stop(self) -> None:
        """Start no new point; the ones under way finish (and can still be claimed)."""
        with self._lock:
            self._stopped = True

    def claim(self, jobs: Sequence[RunJob]) -> dict[int, Future[Outcome]]:
        """Stop, and hand over the points of ``jobs`` that began early (by run id).

        A point is handed over only for the very job it ran (same script, values,
        directory, timeout and hook), and only once: a retry runs it anew.
        """
        with self._lock:
            self._stopped = True
            taken: dict[int, Future[Outcome]] = {}
            for job in jobs:
                began = self._began.get(job.run_id)
                if began is not None and began[0] == job:
                    del self._began[job.run_id]
                    taken[job.run_id] = began[1]
            self.handed_over += len(taken)
            return taken

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)
