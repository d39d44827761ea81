"""Early runs (engine/early.py): the first points run in order until a task run claims them."""

from __future__ import annotations

import threading
import time

import pytest

from prefect_gmat.core.records import Outcome, RunJob
from prefect_gmat.engine.early import EarlyRuns


def _job(run_id: int, timeout: float | None = None) -> RunJob:
    return RunJob(run_id, "mission.script", {"Sat.SMA": 7000 + run_id}, f"run-{run_id}", timeout)


class _Engines:
    """Runs a job when the test lets it: ``ran`` lists what ran, in order."""

    def __init__(self) -> None:
        self.began: list[int] = []
        self.ran: list[int] = []
        self.go = threading.Semaphore(0)
        self.lock = threading.Lock()

    def run(self, job: RunJob) -> Outcome:
        with self.lock:
            self.began.append(job.run_id)
        self.go.acquire()
        with self.lock:
            self.ran.append(job.run_id)
        if job.run_id == 13:
            raise RuntimeError("the pool closed under it")
        return Outcome(job.run_id, "ok", job.overrides)


def _early(engines: _Engines, jobs: list[RunJob], threads: int) -> EarlyRuns[None]:
    return EarlyRuns(
        lambda: None, lambda _engine, job: engines.run(job), lambda _e: None, jobs, threads
    )


def test_points_run_in_order_until_the_first_claim_which_takes_what_began() -> None:
    engines = _Engines()
    jobs = [_job(i) for i in range(10)]
    early = _early(engines, jobs, 2).start()
    for _ in range(3):  # three runs finish; two more have begun and wait
        engines.go.release()
    deadline = time.monotonic() + 10
    while (len(engines.ran), len(engines.began)) != (3, 5) and time.monotonic() < deadline:
        time.sleep(0.01)
    taken = early.claim([jobs[i] for i in (0, 1, 2, 3, 4, 5)])
    assert sorted(taken) == [0, 1, 2, 3, 4]  # point 5 never began: its task run runs it
    engines.go.release()
    engines.go.release()
    assert [taken[i].result(timeout=5).run_id for i in range(5)] == [0, 1, 2, 3, 4]
    early.join(5)
    assert sorted(engines.began) == [0, 1, 2, 3, 4]  # nothing began after the first claim
    assert early.handed_over == 5
    assert early.claim(jobs) == {}  # each only once: a retry runs anew


def test_only_the_very_job_that_ran_is_handed_over() -> None:
    engines = _Engines()
    early = _early(engines, [_job(0)], 1).start()
    engines.go.release()
    early.join(5)
    assert early.claim([_job(0, timeout=5.0)]) == {}  # another timeout: another job
    assert list(early.claim([_job(0)])) == [0]


def test_a_broken_early_run_hands_over_its_error() -> None:
    engines = _Engines()
    early = _early(engines, [_job(13)], 1).start()
    engines.go.release()
    early.join(5)
    with pytest.raises(RuntimeError, match="closed under it"):
        early.claim([_job(13)])[13].result(timeout=5)


def test_stop_starts_nothing_more() -> None:
    engines = _Engines()
    early = _early(engines, [_job(i) for i in range(4)], 1).start()
    early.stop()
    engines.go.release()  # the one that may have begun before stop()
    early.join(5)
    assert len(engines.ran) <= 1


def test_a_job_begins_only_on_an_engine_so_a_claim_never_waits_for_one() -> None:
    """Stopped while it waited for an engine, a thread gives the engine back unused."""
    engines = _Engines()
    free = threading.Event()
    given_back: list[str] = []

    def borrow() -> str:
        free.wait(5)
        return "engine"

    early = EarlyRuns(
        borrow, lambda _e, job: engines.run(job), given_back.append, [_job(0), _job(1)], 1
    ).start()
    assert early.claim([_job(0)]) == {}  # nothing began: the task run runs point 0 itself
    free.set()
    early.join(5)
    assert engines.began == [] and given_back == ["engine"]
