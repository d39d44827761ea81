"""Warm GMAT worker processes: start the engine once, run many scripts, survive crashes.

No Prefect here. Each worker is a ``spawn``ed process that bootstraps the engine
at start and then serves jobs over a pipe, one at a time (the engine is not
thread-safe). Callers on any thread call :meth:`WorkerPool.run`, which borrows an
idle worker, sends the job and waits for the reply:

* a reply within the timeout is the run's outcome;
* no reply within the timeout: the worker is killed and replaced, the run fails
  with status ``timeout``;
* the pipe closes first (segfault, SIGKILL, out of memory): the worker is
  replaced and only this run fails, with the cause (``worker died: signal 9``).

A worker is retired after ``recycle_after`` runs, which bounds state the engine
leaks across runs. Replacements start at once, in the background, so the
engine warm-up of a new worker overlaps other runs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

from prefect_gmat.errors import EngineNotFoundError
from prefect_gmat.runner import Outcome, Problem, RunJob, ValidateJob, failed_outcome

__all__ = [
    "PoolConfig",
    "WorkerPool",
    "busy_worker_pids",
    "close_shared_pool",
    "describe_exit",
    "has_shared_pool",
    "shared_pool",
]

_CTX = multiprocessing.get_context("spawn")
_STARTUP_TIMEOUT = 120.0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(exitcode: int | None) -> str:
    """Say why a worker process ended, in words a user can act on."""
    if exitcode is None:
        return "worker died: no exit status"
    if exitcode < 0:
        name = _signal_name(-exitcode)
        hint = " (killed; out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"worker died: signal {-exitcode} ({name}){hint}"
    return f"worker died: exit code {exitcode}"


def _worker_main(conn: multiprocessing.connection.Connection, engine_root: str) -> None:
    """Process body: start the engine once, then serve jobs until told to stop."""
    # Ignore Ctrl-C here: the parent owns shutdown and kills workers it no longer needs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from prefect_gmat import runner

    try:
        runner.start_engine(engine_root)
    except BaseException as exc:  # report any start failure to the parent, then exit
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        if isinstance(job, runner.ValidateJob):
            conn.send(("done", runner.validate(job)))
        else:
            conn.send(("done", runner.execute(job)))


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: multiprocessing.connection.Connection
    ready: bool = False
    runs: int = 0
    busy: bool = False
    pid: int | None = field(default=None)


class WorkerPool:
    """A fixed number of warm engine processes shared by any number of caller threads."""

    def __init__(
        self,
        engine_root: str | os.PathLike[str],
        workers: int,
        *,
        timeout: float | None = None,
        recycle_after: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.engine_root = os.fspath(engine_root)
        self.size = workers
        self.timeout = timeout
        self.recycle_after = recycle_after
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self._closed = False
        for _ in range(workers):
            self._idle.put(self._spawn())

    # -- lifecycle -----------------------------------------------------------------
    def _spawn(self) -> _Worker:
        parent, child = _CTX.Pipe(duplex=True)
        process = _CTX.Process(
            target=_worker_main, args=(child, self.engine_root), daemon=True, name="gmat-worker"
        )
        process.start()
        child.close()
        worker = _Worker(process=process, conn=parent)
        with self._lock:
            self._live.add(worker)
        return worker

    def _discard(self, worker: _Worker, *, kill: bool) -> None:
        with self._lock:
            self._live.discard(worker)
        if kill and worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=10)
        worker.conn.close()

    def _replace(self, worker: _Worker, *, kill: bool) -> None:
        self._discard(worker, kill=kill)
        if not self._closed:
            self._idle.put(self._spawn())

    def close(self) -> None:
        """Stop every worker; runs in flight are killed."""
        self._closed = True
        with self._lock:
            workers = list(self._live)
        for worker in workers:
            try:
                if worker.ready:
                    worker.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for worker in workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._discard(worker, kill=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        with self._lock:
            return [w.process.pid for w in self._live if w.process.pid is not None]

    def busy_pids(self) -> list[int]:
        """Process ids of workers running a job right now."""
        with self._lock:
            return [w.pid for w in self._live if w.busy and w.pid is not None]

    def warm_up(self) -> None:
        """Block until every worker has started its engine (or raise why one cannot)."""
        taken = [self._idle.get() for _ in range(self.size)]
        try:
            for worker in taken:
                self._await_ready(worker)
        finally:
            for worker in taken:
                self._idle.put(worker)

    def _await_ready(self, worker: _Worker) -> None:
        if worker.ready:
            return
        if not worker.conn.poll(_STARTUP_TIMEOUT):
            raise EngineNotFoundError(
                f"a GMAT worker did not start its engine within {_STARTUP_TIMEOUT:.0f} s",
                engine_root=self.engine_root,
            )
        try:
            kind, detail = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=10)
            raise EngineNotFoundError(
                f"a GMAT worker could not start the engine at {self.engine_root}: "
                f"{describe_exit(worker.process.exitcode)}. Check the GMAT install "
                "(GMAT_ROOT) or reinstall the pip engine (`pip install gmatpy`).",
                engine_root=self.engine_root,
            ) from None
        if kind != "ready":
            raise EngineNotFoundError(
                f"a GMAT worker could not start the engine at {self.engine_root}: {detail}",
                engine_root=self.engine_root,
            )
        worker.ready = True
        worker.pid = int(detail)

    # -- running -------------------------------------------------------------------
    def _ready_worker(self) -> _Worker:
        """Borrow an idle worker whose engine is up; one that died while idle is replaced."""
        while True:
            worker = self._idle.get()
            try:
                self._await_ready(worker)
            except EngineNotFoundError:
                self._replace(worker, kill=True)
                raise
            if worker.process.is_alive():
                return worker
            self._replace(worker, kill=True)  # died between jobs: no run was lost

    def run(self, job: RunJob) -> Outcome:
        """Run one job on a warm worker and return its outcome; never raises for run faults."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        worker = self._ready_worker()
        started = time.time()
        worker.busy = True
        try:
            worker.conn.send(job)
        except OSError:
            return self._died(worker, job, started)
        timeout = job.timeout if job.timeout is not None else self.timeout
        if not worker.conn.poll(timeout):
            self._replace(worker, kill=True)
            return failed_outcome(
                job,
                "timeout",
                f"run exceeded its timeout of {timeout:g} s; the worker was killed",
                started,
            )
        try:
            kind, outcome = worker.conn.recv()
        except (EOFError, OSError):
            return self._died(worker, job, started)
        assert kind == "done"
        worker.busy = False
        worker.runs += 1
        if self.recycle_after is not None and worker.runs >= self.recycle_after:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            self._replace(worker, kill=False)
        else:
            self._idle.put(worker)
        result: Outcome = outcome
        return result

    def validate(self, job: ValidateJob) -> list[Problem]:
        """Check a script and its swept values on a warm worker; nothing is run."""
        worker = self._ready_worker()
        try:
            worker.conn.send(job)
            if not worker.conn.poll(_STARTUP_TIMEOUT):
                raise TimeoutError
            _, problems = worker.conn.recv()
        except (EOFError, OSError, TimeoutError):
            self._replace(worker, kill=True)
            return [
                Problem(
                    "script",
                    f"GMAT could not load {job.script_path}: "
                    f"{describe_exit(worker.process.exitcode)} while loading it",
                )
            ]
        self._idle.put(worker)
        result: list[Problem] = problems
        return result

    def _died(self, worker: _Worker, job: RunJob, started: float) -> Outcome:
        worker.process.join(timeout=10)
        cause = describe_exit(worker.process.exitcode)
        self._replace(worker, kill=True)
        return failed_outcome(job, "crashed", cause, started)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """What identifies a pool: runs with equal configs can share warm workers."""

    engine_root: str
    workers: int
    timeout: float | None = None
    recycle_after: int | None = None


_shared: dict[PoolConfig, WorkerPool] = {}
_shared_lock = threading.Lock()


def shared_pool(config: PoolConfig) -> WorkerPool:
    """This process's pool for ``config``, started on first use.

    Tasks call this rather than receive a pool: a pool cannot cross a process
    boundary, and under a distributed task runner each process gets its own.
    """
    with _shared_lock:
        pool = _shared.get(config)
        if pool is None:
            pool = WorkerPool(
                config.engine_root,
                config.workers,
                timeout=config.timeout,
                recycle_after=config.recycle_after,
            )
            _shared[config] = pool
        return pool


def has_shared_pool(config: PoolConfig) -> bool:
    """True if this process already runs a pool for ``config`` (so someone else owns it)."""
    with _shared_lock:
        return config in _shared


def close_shared_pool(config: PoolConfig) -> None:
    """Stop this process's pool for ``config``, if one was started."""
    with _shared_lock:
        pool = _shared.pop(config, None)
    if pool is not None:
        pool.close()


def busy_worker_pids() -> list[int]:
    """Process ids of this process's workers that are running a job now (diagnostics, tests)."""
    with _shared_lock:
        pools = list(_shared.values())
    return [pid for pool in pools for pid in pool.busy_pids()]
