"""study/batching.py: how many points a task run takes, batch names, and per-point retries
of transient failures through a fake ``run_batch``."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence

import pytest

from prefect_gmat.core.records import FailureKind, Outcome, RunJob, Status
from prefect_gmat.study.batching import (
    PER_DASK_TASK_RUN_SECONDS,
    PER_TASK_RUN_CPU_SECONDS,
    TARGET_TASK_SECONDS,
    BatchSizer,
    batch_name,
    retry_delay_seconds,
    run_with_retries,
)


def _ran(seconds: float, count: int, status: Status = "ok") -> list[Outcome]:
    """Runs that took ``seconds`` each (from 0, so the duration is exactly ``seconds``)."""
    return [Outcome(i, status, {}, started_at=0.0, ended_at=seconds) for i in range(count)]


def _measured(seconds: float, *, total: int = 10_000, engines: int = 2) -> BatchSizer:
    sizer = BatchSizer("auto", total=total, engines=engines)
    sizer.observe(_ran(seconds, engines))
    return sizer


# --- BatchSizer ------------------------------------------------------------------------------


def test_nothing_remaining_is_a_batch_of_none() -> None:
    for sizer in (BatchSizer(10, 100, 2), _measured(0.01)):
        assert sizer.next_size(0) == 0
        assert sizer.next_size(-3) == 0


def test_a_fixed_setting_is_kept_until_fewer_points_remain() -> None:
    sizer = BatchSizer(25, total=60, engines=4)
    sizer.observe(_ran(5.0, 10))  # run times do not matter to a fixed setting
    assert [sizer.next_size(r) for r in (60, 35, 10, 1)] == [25, 25, 10, 1]
    assert not sizer.measuring


def test_a_sweep_whose_task_runs_cost_under_a_second_is_not_batched() -> None:
    """22 points x 45 ms = 0.99 s: one task run per point, whatever the run times."""
    small = BatchSizer("auto", total=22, engines=2)
    assert not small.measuring and small.next_size(22) == 1
    small.observe(_ran(0.001, 22))
    assert small.next_size(20) == 1
    assert BatchSizer("auto", total=23, engines=2).measuring  # 1.035 s: worth measuring


def test_auto_measures_one_run_per_engine_before_batching() -> None:
    sizer = BatchSizer("auto", total=5000, engines=3)
    assert sizer.measuring and sizer.next_size(5000) == 1
    sizer.observe(_ran(0.01, 2))
    sizer.observe(_ran(0.01, 4, status="failed"))  # failures say nothing of run time
    assert sizer.measuring and sizer.next_size(4998) == 1
    sizer.observe(_ran(0.01, 1))
    assert not sizer.measuring
    assert sizer.next_size(4997) == math.ceil(TARGET_TASK_SECONDS / 0.01)


def test_runs_of_twenty_task_run_costs_or_more_keep_one_point_per_task_run() -> None:
    long_enough = 20 * PER_TASK_RUN_CPU_SECONDS  # the task run costs 5% of the run
    assert _measured(long_enough).next_size(9000) == 1
    assert _measured(long_enough * 0.99).next_size(9000) > 1


@pytest.mark.parametrize(("run_seconds", "size"), [(0.04, 50), (0.1, 20), (0.3, 7)])
def test_a_batch_lasts_about_the_target(run_seconds: float, size: int) -> None:
    sizer = _measured(run_seconds)
    assert sizer.typical_run_seconds == pytest.approx(run_seconds)
    assert sizer.next_size(9000) == size
    assert size * run_seconds >= TARGET_TASK_SECONDS > (size - 1) * run_seconds


def test_near_the_end_each_engine_gets_its_share_but_no_batch_under_a_quarter_second() -> None:
    sizer = _measured(0.01, engines=4)  # 200 points would last the 2 s target
    assert sizer.next_size(4000) == 200
    assert sizer.next_size(400) == 100  # 400 left for 4 engines
    assert sizer.next_size(120) == 30
    assert sizer.next_size(60) == 25  # not 15: 25 x 10 ms is the shortest batch worth it
    assert sizer.next_size(12) == 12  # never more than what is left


def test_run_times_of_zero_are_taken_as_a_millisecond() -> None:
    sizer = _measured(0.0)
    assert sizer.next_size(10**6) == math.ceil(TARGET_TASK_SECONDS / 1e-3)


def test_under_dask_a_task_run_costs_more_so_batches_are_longer() -> None:
    sizer = BatchSizer("auto", total=10_000, engines=2, task_cost=PER_DASK_TASK_RUN_SECONDS)
    sizer.observe(_ran(0.1, 2))
    target = 20 * PER_DASK_TASK_RUN_SECONDS  # 5 s, so the task run costs 5%
    assert sizer.next_size(9000) == math.ceil(target / 0.1)
    assert sizer.next_size(8) == 5  # the tail: two task runs' cost, 0.5 s, at the least
    dask_long = BatchSizer("auto", 10_000, 2, task_cost=PER_DASK_TASK_RUN_SECONDS)
    dask_long.observe(_ran(5.0, 2))
    assert dask_long.next_size(9000) == 1


def test_the_typical_run_time_is_the_median_of_the_last_fifty() -> None:
    sizer = BatchSizer("auto", total=10_000, engines=1)
    assert sizer.typical_run_seconds is None
    sizer.observe(_ran(9.0, 60))
    sizer.observe(_ran(0.05, 26))  # a majority of the last fifty
    assert sizer.typical_run_seconds == pytest.approx(0.05)
    assert sizer.next_size(5000) == 40


def test_no_engines_counts_as_one() -> None:
    sizer = BatchSizer("auto", total=10_000, engines=0)
    assert sizer.engines == 1
    sizer.observe(_ran(0.01, 1))
    assert not sizer.measuring


# --- batch names -----------------------------------------------------------------------------


def test_a_batch_is_named_for_its_first_and_last_point() -> None:
    assert batch_name([7]) == "run-7"  # a single point: its run folder's name
    assert batch_name([40, 41, 59]) == "runs-40-59"
    assert batch_name([59, 40, 45]) == "runs-40-59"
    assert batch_name([3, 4]) == "runs-3-4"


# --- retries ---------------------------------------------------------------------------------


def test_the_retry_delay_doubles_with_jitter_of_half_either_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for jitter in (0.5, 1.0, 1.5):
        monkeypatch.setattr(random, "uniform", lambda a, b, j=jitter: j)
        expected = [2 * jitter, 4 * jitter, 8 * jitter]
        assert [retry_delay_seconds(2.0, r) for r in (1, 2, 3)] == expected
    monkeypatch.undo()
    delays = [retry_delay_seconds(1.0, 3) for _ in range(200)]
    assert all(2.0 <= d <= 6.0 for d in delays)
    assert len(set(delays)) > 1


def _job(run_id: int) -> RunJob:
    return RunJob(run_id, "/m.script", {"Sat.SMA": 7000 + run_id}, run_dir=f"/o/run-{run_id}")


class FakeBatches:
    """``run_batch``: each run fails as scripted, one kind per attempt, then succeeds."""

    def __init__(self, script: dict[int, list[FailureKind]]) -> None:
        self.script = script
        self.calls: list[list[int]] = []
        self.consumed: list[int] = []

    def __call__(self, jobs: Sequence[RunJob]) -> Iterator[Outcome]:
        self.calls.append([job.run_id for job in jobs])
        for job in jobs:
            self.consumed.append(job.run_id)
            attempt = sum(job.run_id in call for call in self.calls)
            kinds = self.script.get(job.run_id, [])
            if attempt <= len(kinds):
                yield Outcome(job.run_id, "failed", job.overrides, failure=kinds[attempt - 1])
            else:
                yield Outcome(job.run_id, "ok", job.overrides)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(random, "uniform", lambda a, b: 1.0)
    return slept


def test_transient_failures_are_retried_alone_deterministic_ones_never(
    sleeps: list[float],
) -> None:
    runs = FakeBatches(
        {1: ["crashed"], 2: ["field"], 3: ["timeout", "io", "internal"], 4: ["io", "engine"]}
    )
    outcomes = list(run_with_retries(runs, [_job(i) for i in range(5)], 2, retry_delay=0.5))
    assert runs.calls == [[0, 1, 2, 3, 4], [1, 3, 4], [3]]
    final = {o.run_id: (o.status, o.failure, o.attempts) for o in outcomes}
    assert final == {
        0: ("ok", None, 1),
        1: ("ok", None, 2),
        2: ("failed", "field", 1),  # the same input fails again: no retry
        3: ("failed", "internal", 3),  # still transient after its two retries: given up
        4: ("failed", "engine", 2),
    }
    assert len(outcomes) == 5
    assert sleeps == [0.5, 1.0]  # before each retry round, doubling


def test_every_transient_kind_is_retried(sleeps: list[float]) -> None:
    kinds: list[FailureKind] = ["timeout", "crashed", "io", "internal"]
    runs = FakeBatches({i: [kind] for i, kind in enumerate(kinds)})
    outcomes = list(run_with_retries(runs, [_job(i) for i in range(4)], 1, retry_delay=1.0))
    assert all(o.ok and o.attempts == 2 for o in outcomes)


def test_no_retries_gives_each_first_outcome(sleeps: list[float]) -> None:
    runs = FakeBatches({0: ["crashed"]})
    (outcome,) = run_with_retries(runs, [_job(0)], 0, retry_delay=1.0)
    assert (outcome.failure, outcome.attempts) == ("crashed", 1)
    assert runs.calls == [[0]] and sleeps == []


def test_an_outcome_is_given_as_soon_as_it_is_final(sleeps: list[float]) -> None:
    """The caller records run 0 before run 1 has even started."""
    runs = FakeBatches({})
    outcomes = run_with_retries(runs, [_job(0), _job(1), _job(2)], 2, retry_delay=1.0)
    first = next(outcomes)
    assert first.run_id == 0 and runs.consumed == [0]
    assert [o.run_id for o in outcomes] == [1, 2]


def test_an_empty_batch_runs_nothing(sleeps: list[float]) -> None:
    runs = FakeBatches({})
    assert list(run_with_retries(runs, [], 3, retry_delay=1.0)) == []
    assert sleeps == []
