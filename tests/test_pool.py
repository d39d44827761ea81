"""Warm workers on the real engine: outcomes, errors with log lines, death, timeout, recycling."""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import psutil
import pytest

from prefect_gmat.core.records import RunJob
from prefect_gmat.engine.install import resolve_engine
from prefect_gmat.engine.pool import WorkerPool, describe_exit
from prefect_gmat.errors import EngineNotFoundError
from tests.support.paths import DATA, DEMO_SCRIPT
from tests.support.waiting import poll


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    with WorkerPool(resolve_engine().root, 2, timeout=60) as warm:
        warm.warm_up()
        yield warm


def _job(
    run_id: int,
    tmp: Path,
    script: Path = DEMO_SCRIPT,
    timeout: float | None = None,
    overrides: dict[str, object] | None = None,
) -> RunJob:
    return RunJob(run_id, str(script), dict(overrides or {}), str(tmp / f"run-{run_id}"), timeout)


def test_a_run_writes_its_report_as_parquet_and_returns_a_small_record(
    pool: WorkerPool, tmp_path: Path
) -> None:
    outcome = pool.run(_job(0, tmp_path, overrides={"Sat.SMA": 7100}))
    assert outcome.ok, outcome.error
    path = Path(outcome.output_paths["report__RF"])
    assert path == tmp_path / "run-0" / "report__RF.parquet"
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["Sat.UTCGregorian", "Sat.X", "Sat.Y", "Sat.Z", "time"]
    assert len(frame) == 3
    assert frame["Sat.X"].iloc[0] == pytest.approx(7100 * (1 - 0.001))  # periapsis radius
    assert len(outcome.output_sha256["report__RF"]) == 64
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    assert len(pickle.dumps(outcome)) < 2000  # a record, never a frame


def test_each_run_loads_the_script_fresh(pool: WorkerPool, tmp_path: Path) -> None:
    """An override must not leak into the next run on the same worker."""
    changed = pool.run(_job(0, tmp_path, overrides={"Sat.SMA": 7500}))
    plain = [pool.run(_job(i, tmp_path)) for i in (1, 2, 3)]
    assert changed.ok and all(o.ok for o in plain)
    x0 = [pd.read_parquet(o.output_paths["report__RF"])["Sat.X"].iloc[0] for o in plain]
    assert x0 == [pytest.approx(7000 * 0.999)] * 3


def test_a_bad_field_fails_that_run_with_a_suggestion(pool: WorkerPool, tmp_path: Path) -> None:
    outcome = pool.run(_job(0, tmp_path, overrides={"Sat.SMAA": 7000}))
    assert (outcome.status, outcome.failure) == ("failed", "field")
    assert "did you mean: SMA" in (outcome.error or "")
    assert not outcome.transient


def test_a_script_gmat_cannot_parse_carries_the_log_line_that_says_why(
    pool: WorkerPool, tmp_path: Path
) -> None:
    outcome = pool.run(_job(0, tmp_path, DATA / "parse_error.script"))
    assert outcome.failure == "load"
    assert 'The field name "Bogus Thing" on object "Prop" is not permitted' in (
        outcome.log_excerpt or ""
    )


def test_an_engine_failure_during_the_run_carries_the_gmat_log(
    pool: WorkerPool, tmp_path: Path
) -> None:
    outcome = pool.run(_job(0, tmp_path, DATA / "missing_weather_file.script"))
    assert outcome.failure == "engine"
    assert "Cannot open the CSSI space weather file" in (outcome.log_excerpt or "")
    log = Path(outcome.log_path or "").read_text()
    assert "status=failed failure=engine" in log


def _wait_for_busy_worker(pool: WorkerPool, before: set[int]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = pool.busy_pids()
        if busy:
            return busy[0]
        time.sleep(0.05)
    raise AssertionError("no worker picked up the job")


def test_a_killed_worker_fails_only_its_run_and_is_replaced(
    pool: WorkerPool, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(1) as ex:
        held = ex.submit(pool.run, _job(0, tmp_path, DATA / "never_ends.script"))
        victim = _wait_for_busy_worker(pool, set())
        os.kill(victim, signal.SIGKILL)
        outcome = held.result(timeout=30)
    assert (outcome.status, outcome.failure) == ("failed", "crashed")
    assert outcome.error == "worker died: signal 9 (SIGKILL) (killed; out of memory?)"
    assert outcome.transient
    assert victim not in pool.pids
    after = [pool.run(_job(i, tmp_path)) for i in range(1, 5)]
    assert all(o.ok for o in after)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_workers_are_single_threaded_forks_of_one_template(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """One template pays the imports; a worker that never started a thread runs the engine
    ~1.8x faster here (glibc and libstdc++ skip atomics in a single-threaded process)."""
    with ThreadPoolExecutor(2) as ex:
        assert all(o.ok for o in ex.map(pool.run, [_job(i, tmp_path) for i in range(6)]))
    parents = {_parent(pid) for pid in pool.pids}
    assert len(parents) == 1 and os.getpid() not in parents
    (template,) = parents
    assert "--template" in Path(f"/proc/{template}/cmdline").read_text()
    for pid in [template, *pool.pids]:
        assert len(os.listdir(f"/proc/{pid}/task")) == 1, f"process {pid} started a thread"


@pytest.mark.slow
def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_template_is_started_again_when_a_worker_is_needed(tmp_path: Path) -> None:
    with WorkerPool(resolve_engine().root, 1) as small:
        assert small.run(_job(0, tmp_path)).ok
        (worker,) = small.pids
        template = _parent(worker)
        os.kill(template, signal.SIGKILL)
        assert small.run(_job(1, tmp_path)).ok  # the forked worker outlives its template
        os.kill(worker, signal.SIGKILL)
        poll("the orphaned worker's end", lambda: _gone(worker) or None, timeout=10)
        # It died between runs: no run is lost, and nobody waits to ask the dead template.
        started = time.monotonic()
        assert small.run(_job(2, tmp_path)).ok
        assert time.monotonic() - started < 8
        (replacement,) = small.pids
        assert _parent(replacement) not in (template, os.getpid())


def test_a_run_that_never_ends_hits_its_timeout(pool: WorkerPool, tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = pool.run(_job(0, tmp_path, DATA / "never_ends.script", timeout=2.0))
    assert time.monotonic() - started < 10
    assert (outcome.status, outcome.failure) == ("failed", "timeout")
    assert "timeout of 2 s" in (outcome.error or "")
    assert pool.run(_job(1, tmp_path)).ok


@pytest.mark.slow
def test_workers_are_recycled_after_the_configured_number_of_runs(tmp_path: Path) -> None:
    with WorkerPool(resolve_engine().root, 1, recycle_after=3) as small:
        seen = []
        for i in range(7):
            assert small.run(_job(i, tmp_path)).ok
            seen.append(tuple(small.pids))
    # Runs 0-2, 3-5 and 6 on three processes, each successor started one run early.
    assert len(set().union(*seen)) == 3
    assert [len(pids) for pids in seen] == [1, 2, 1, 1, 2, 1, 1]


def test_many_threads_share_the_pool(pool: WorkerPool, tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as ex:
        outcomes = list(
            ex.map(
                lambda i: pool.run(_job(i, tmp_path, overrides={"Sat.SMA": 7000 + i})), range(40)
            )
        )
    assert [o.run_id for o in outcomes] == list(range(40))
    assert all(o.ok for o in outcomes)


@pytest.mark.slow
def test_an_engine_that_cannot_start_is_reported_not_hung(tmp_path: Path) -> None:
    with (
        WorkerPool(tmp_path / "no-gmat-here", 1) as broken,
        pytest.raises(EngineNotFoundError, match="could not start the engine"),
    ):
        broken.run(_job(0, tmp_path))


def test_exit_descriptions_name_the_signal() -> None:
    assert describe_exit(-11) == "worker died: signal 11 (SIGSEGV)"
    assert describe_exit(3) == "worker died: exit code 3"
