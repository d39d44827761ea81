"""Warm GMAT worker processes: start the engine once, run many scripts, survive crashes.

Each worker is forked from a template process, a fresh
``python -m prefect_gmat.engine.worker --template`` that has imported what a
worker needs once (never the caller's ``__main__``, so an unguarded user script
is not re-run); it bootstraps its own engine and then serves jobs over a socket,
one at a time (the engine is not thread-safe). Callers on any thread call
:meth:`WorkerPool.run` or :meth:`WorkerPool.run_batch`, which borrow an idle
worker, send the jobs and stream back one outcome per job:

* a reply within the job's timeout is the run's outcome;
* no reply within the timeout: the worker is killed and replaced, the run fails
  with status ``timeout`` and the rest of the batch goes on in another worker;
* the socket closes first (segfault, SIGKILL, out of memory): the worker is
  replaced and only this run fails, with the cause (``worker died: signal 9``).

Before Prefect is up, :meth:`WorkerPool.start_early` runs a sweep's first jobs
on the idle workers; the first :meth:`WorkerPool.run_batch` takes over those
that began (``early.py``). The template outlives the pool: the next pool in this
process with the same environment forks from it at once. A worker is retired
after ``recycle_after`` runs, which bounds state the engine leaks across runs;
its successor starts a few runs earlier, so it is warm when the old one stops.
Replacements of lost workers start at once, in the background, so the engine
warm-up of a new worker overlaps other runs.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing.connection
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from prefect_gmat.core.records import Outcome, Problem, RunJob, ValidateJob
from prefect_gmat.engine.early import EarlyRuns
from prefect_gmat.engine.run import failed_outcome
from prefect_gmat.engine.worker import TEMPLATE_ENV
from prefect_gmat.errors import EngineNotFoundError

__all__ = [
    "PoolConfig",
    "WorkerPool",
    "busy_worker_pids",
    "close_shared_pool",
    "describe_exit",
    "has_shared_pool",
    "shared_pool",
    "stop_early_runs",
]

_STARTUP_TIMEOUT = 120.0
_CLOSED_POLL_SECONDS = 0.5  # how often a caller waiting for an engine checks for close()
_EARLY_JOIN_SECONDS = 5.0  # at most, for early runs to see the pool closed (see close)
_STDERR_TAIL = 2000  # characters of a dead worker's output shown to the user
#: The directory that holds the ``prefect_gmat`` package (this module is __name__'s depth down).
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[__name__.count(".")])


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


#: The exit code of a worker that died after its template: the one process that could
#: have said how it ended is gone.
EXIT_UNKNOWN = -1000


def describe_exit(exitcode: int | None) -> str:
    """Say why a worker process ended, in words a user can act on."""
    if exitcode is None:
        return "worker died: no exit status"
    if exitcode == EXIT_UNKNOWN:
        return "worker died after its template process: its exit status is lost"
    if exitcode < 0:
        name = _signal_name(-exitcode)
        hint = " (killed; out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"worker died: signal {-exitcode} ({name}){hint}"
    return f"worker died: exit code {exitcode}"


class _Process(Protocol):
    """What the pool needs of a worker process (a :class:`subprocess.Popen` or a fork)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...


#: How long a failed start waits for a dying template's exit, to show what it printed.
_TEMPLATE_EXIT_GRACE = 2.0


class _Template:
    """A ``engine_worker --template`` process that forks workers on request.

    Requests go out at once (a spawn does not wait for the template's imports);
    one reader thread hands each reply to the :class:`Future` of its request.
    """

    def __init__(self, env: dict[str, str]) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = str(child.fileno())
        self.output = tempfile.TemporaryFile(prefix="gmat-template-")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect_gmat.engine.worker", "--template", "--fd", fd],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=self.output,
                stderr=self.output,
                env={**env, **TEMPLATE_ENV},
            )
        finally:
            child.close()
        self._sock = parent
        self._send_lock = threading.Lock()
        self._tokens = itertools.count()
        self._waiting: dict[int, Future[int | None]] = {}
        self._reader = threading.Thread(target=self._read, name="gmat-template", daemon=True)
        self._reader.start()

    def _request(self, kind: str, arg: object, fds: Sequence[int] = ()) -> Future[int | None]:
        reply: Future[int | None] = Future()
        with self._send_lock:
            token = next(self._tokens)
            self._waiting[token] = reply
            try:
                socket.send_fds(self._sock, [pickle.dumps((token, kind, arg))], list(fds))
            except OSError as exc:
                self._waiting.pop(token, None)
                reply.set_exception(exc)
        return reply

    def _read(self) -> None:
        try:
            while data := self._sock.recv(4096):
                token, value = pickle.loads(data)
                self._waiting.pop(token).set_result(value)
        except OSError:
            pass
        with self._send_lock:  # the template is gone: nothing more will be answered
            waiting, self._waiting = self._waiting, {}
        for reply in waiting.values():
            reply.set_exception(EOFError("the worker template process ended"))

    def spawn(self, conn_fd: int, output_fd: int) -> Future[int | None]:
        """Fork a worker serving ``conn_fd``; the future gets its pid."""
        return self._request("spawn", os.getcwd(), (conn_fd, output_fd))

    def exit_code(self, pid: int) -> int | None:
        """A forked worker's exit code, or None while it runs (or if nobody can tell)."""
        try:
            return self._request("poll", pid).result(timeout=10)
        except Exception:
            return None

    def alive(self) -> bool:
        return self.process.poll() is None


class _Forked:
    """A worker forked by a :class:`_Template`: pid from its reply, exit code by asking it."""

    def __init__(self, template: _Template, pid: Future[int | None]) -> None:
        self._template = template
        self._pid = pid
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        pid = self._pid.result(timeout=_STARTUP_TIMEOUT)
        assert pid is not None
        return pid

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid = self.pid
            except Exception:  # never forked: the template died, say how
                self.returncode = self._template.process.poll() or 1
                return self.returncode
            if self._template.alive():
                self.returncode = self._template.exit_code(pid)
            elif not _pid_running(pid):  # an orphan now: only the kernel can tell
                self.returncode = EXIT_UNKNOWN
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            os.kill(self.pid, signal.SIGKILL)


def _pid_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie nobody reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: the signal check (a zombie counts as running)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@dataclass(eq=False)
class _Worker:
    process: _Process
    conn: multiprocessing.connection.Connection
    output: IO[bytes]  # the process's stdout and stderr, for the cause of a failed start
    ready: bool = False
    runs: int = 0
    busy: bool = False
    pid: int | None = field(default=None)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.process.returncode

    def output_tail(self) -> str:
        """The last lines the process wrote to stdout/stderr (engine start errors land there)."""
        return _tail(self.output)


def _tail(output: IO[bytes]) -> str:
    """The last characters written to a process's output file."""
    try:
        size = os.fstat(output.fileno()).st_size
        data = os.pread(output.fileno(), _STDERR_TAIL, max(0, size - _STDERR_TAIL))
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace").strip()


_live_workers: set[_Worker] = set()  # every pool's, killed at interpreter exit
#: The template each environment's pools fork from. It outlives the pools (a later
#: sweep in this process forks at once instead of paying the template's ~1.3 s of
#: imports again) and ends with the interpreter, or when its pool process dies.
_shared_templates: dict[tuple[tuple[str, str], ...], _Template] = {}
_templates_lock = threading.Lock()


def _template_for(env: dict[str, str]) -> _Template:
    """The live template started with exactly ``env``, started now if there is none."""
    key = tuple(sorted(env.items()))
    with _templates_lock:
        template = _shared_templates.get(key)
        if template is None or not template.alive():
            template = _shared_templates[key] = _Template(env)
        return template


@atexit.register
def _kill_leftover_workers() -> None:
    for worker in list(_live_workers):
        with contextlib.suppress(OSError):
            worker.process.kill()
    for template in list(_shared_templates.values()):
        with contextlib.suppress(OSError):
            template.process.kill()


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
        self._successors: queue.Queue[_Worker] = queue.Queue()  # see _prestart_successor
        self._template: _Template | None = None
        self._early: EarlyRuns[_Worker] | None = None  # see start_early
        for _ in range(workers):
            self._idle.put(self._spawn())

    # -- lifecycle -----------------------------------------------------------------
    def _spawn(self) -> _Worker:
        """Start a worker: a fork of the template (started first if none is alive)."""
        parent, child = socket.socketpair()
        output = tempfile.TemporaryFile(prefix="gmat-worker-")  # noqa: SIM115 -- the worker's life
        with self._lock:
            template = self._template
            if template is None or not template.alive():
                env = dict(os.environ)
                env["PYTHONPATH"] = os.pathsep.join(
                    [_PACKAGE_PARENT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
                )
                template = self._template = _template_for(env)
        try:
            pid = template.spawn(child.fileno(), output.fileno())
        finally:
            child.close()
        conn = multiprocessing.connection.Connection(parent.detach())
        with contextlib.suppress(OSError):  # no worker (its template died): _await_ready says why
            conn.send((self.engine_root, list(sys.path), os.getpid()))
        worker = _Worker(process=_Forked(template, pid), conn=conn, output=output)
        with self._lock:
            self._live.add(worker)
            _live_workers.add(worker)
        return worker

    def _discard(self, worker: _Worker, *, kill: bool) -> None:
        """Stop and forget ``worker``, once: close() and the thread running on it may both."""
        with self._lock:
            if worker not in self._live:
                return
            self._live.discard(worker)
            _live_workers.discard(worker)
        if kill and worker.alive():
            with contextlib.suppress(OSError):
                worker.process.kill()
        worker.wait(10)
        worker.conn.close()
        worker.output.close()

    def _replace(self, worker: _Worker, *, kill: bool) -> None:
        self._discard(worker, kill=kill)
        if not self._closed:
            self._idle.put(self._spawn())

    def close(self) -> None:
        """Stop every worker; runs in flight are killed."""
        self._closed = True
        self.stop_early()
        with self._lock:
            workers = list(self._live)
        stopping = []
        for worker in workers:
            if not worker.ready or worker.busy:  # starting up or running: nothing to wait for
                self._discard(worker, kill=True)
                continue
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            stopping.append(worker)
        deadline = time.monotonic() + 2.0
        for worker in stopping:
            worker.wait(max(0.0, deadline - time.monotonic()))
            self._discard(worker, kill=True)
        if self._early is not None:  # their runs were killed above; they end now
            self._early.join(_EARLY_JOIN_SECONDS)
        with self._lock:
            self._template = None  # it stays for the next pool (see _shared_templates)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        with self._lock:
            return [w.process.pid for w in self._live]

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

    def _start_failed(self, worker: _Worker, stage: str, detail: str) -> EngineNotFoundError:
        """The error for a worker that never became ready, with advice that fits the cause."""
        if stage == "engine":
            advice = (
                "Check the GMAT install (GMAT_ROOT) or reinstall the pip engine "
                "(`pip install --force-reinstall gmatpy`)."
            )
            return EngineNotFoundError(
                f"a GMAT worker could not start the engine at {self.engine_root}: {detail}. "
                + advice,
                engine_root=self.engine_root,
            )
        tail = detail or worker.output_tail() or self._template_tail() or "(it printed nothing)"
        return EngineNotFoundError(
            f"a GMAT worker process failed before starting the engine "
            f"({describe_exit(worker.process.returncode)}); its output ends with:\n{tail}",
            engine_root=self.engine_root,
        )

    def _template_tail(self) -> str:
        """What a template that died before forking printed (an import error, say)."""
        template = self._template
        if template is None:
            return ""
        # The worker's death can be seen before its dying template's exit (a loaded machine).
        with contextlib.suppress(subprocess.TimeoutExpired):
            template.process.wait(timeout=_TEMPLATE_EXIT_GRACE)
        return "" if template.alive() else _tail(template.output)

    def _await_ready(self, worker: _Worker) -> None:
        if worker.ready:
            return
        if not worker.conn.poll(_STARTUP_TIMEOUT):
            raise EngineNotFoundError(
                f"a GMAT worker did not start its engine within {_STARTUP_TIMEOUT:.0f} s",
                engine_root=self.engine_root,
            )
        try:
            kind, detail, stage_detail = worker.conn.recv()
        except (EOFError, OSError):
            worker.wait(10)
            raise self._start_failed(worker, "process", "") from None
        if kind != "ready":
            worker.wait(10)
            raise self._start_failed(worker, str(detail), str(stage_detail))
        worker.ready = True
        worker.pid = int(detail)

    # -- running -------------------------------------------------------------------
    def _ready_worker(self) -> _Worker:
        """Borrow an idle worker whose engine is up; one that died while idle is replaced."""
        while True:
            try:
                worker = self._idle.get(timeout=_CLOSED_POLL_SECONDS)
            except queue.Empty:
                if self._closed:  # a caller still waiting (early runs) is let go
                    raise RuntimeError("the worker pool is closed") from None
                continue
            try:
                self._await_ready(worker)
            except EngineNotFoundError:
                self._replace(worker, kill=True)
                raise
            if worker.alive():
                return worker
            self._replace(worker, kill=True)  # died between jobs: no run was lost

    def _prestart_successor(self, worker: _Worker) -> None:
        """Start the process that will take over from ``worker`` a little before it retires,
        so its engine is warm when the old one stops (no engine missing meanwhile)."""
        if self.recycle_after is None or self._closed:
            return
        lead = max(1, min(50, self.recycle_after // 10))
        if worker.runs == max(1, self.recycle_after - lead):
            self._successors.put(self._spawn())

    def _give_back(self, worker: _Worker) -> None:
        worker.busy = False
        if self.recycle_after is not None and worker.runs >= self.recycle_after:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            self._discard(worker, kill=False)
            if not self._closed:
                try:
                    self._idle.put(self._successors.get_nowait())
                except queue.Empty:
                    self._idle.put(self._spawn())
        else:
            self._idle.put(worker)

    def run(self, job: RunJob) -> Outcome:
        """Run one job on a warm worker and return its outcome; never raises for run faults."""
        return next(self.run_batch([job]))

    def start_early(self, jobs: Sequence[RunJob]) -> None:
        """Run ``jobs`` on idle engines until the first :meth:`run_batch`, which takes over
        the ones that began (see ``engine/early.py``).

        One core is left to Prefect's start, which runs meanwhile: on 2 cores one engine
        starts early. Both would get no further (they and Prefect's import would share the
        2 cores) and would only slow the flow run's start.
        """
        self.stop_early()
        engines = max(1, min(self.size, (os.cpu_count() or 1) - 1))
        self._early = EarlyRuns(
            self._ready_worker, self._run_on, self._idle.put, jobs, engines
        ).start()

    def _run_on(self, worker: _Worker, job: RunJob) -> Outcome:
        """Run one job on a borrowed worker (it is given back, or replaced if lost)."""
        return next(self._on_worker(worker, [job]))

    @property
    def taken_over(self) -> int:
        """Early runs that :meth:`run_batch` took over instead of running them again."""
        return self._early.handed_over if self._early is not None else 0

    def stop_early(self) -> None:
        """Start no more early runs (those under way finish and can still be taken over)."""
        if self._early is not None:
            self._early.stop()

    def run_batch(self, jobs: Sequence[RunJob]) -> Iterator[Outcome]:
        """Run ``jobs`` in order on one warm worker, yielding each outcome as it finishes.

        The whole batch goes to the worker in one message, so the engine never
        waits on this process between runs. A run that times out or kills its
        worker fails alone; the rest continue on a replacement. Jobs that began
        early (:meth:`start_early`) are not run again: their outcomes come first.
        """
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        began = self._early.claim(jobs) if self._early is not None else {}
        rest = []
        for job in jobs:
            if job.run_id not in began:
                rest.append(job)
                continue
            try:
                yield began[job.run_id].result()
            except Exception:  # the early run broke (the pool closed under it): run it here
                rest.append(job)
        yield from self._run_now(rest)

    def _run_now(self, jobs: Sequence[RunJob]) -> Iterator[Outcome]:
        remaining = list(jobs)
        while remaining:
            yield from self._on_worker(self._ready_worker(), remaining)

    def _on_worker(self, worker: _Worker, remaining: list[RunJob]) -> Iterator[Outcome]:
        """Send ``remaining`` to a borrowed worker and yield its outcomes (popped as they
        come) until it is done with them or lost; what is left goes to another worker."""
        worker.busy = True
        try:
            worker.conn.send(remaining)
        except OSError:
            yield self._died(worker, remaining.pop(0), time.time())
            return
        try:
            yield from self._outcomes(worker, remaining)
        except GeneratorExit:  # the caller stopped listening: the rest is not wanted
            if remaining:
                self._replace(worker, kill=True)
            raise

    def _outcomes(self, worker: _Worker, remaining: list[RunJob]) -> Iterator[Outcome]:
        """Receive ``worker``'s outcomes for ``remaining`` (popped as they come) until it is
        done with them (then it is given back) or is lost to a timeout or a death."""
        while remaining:
            job = remaining[0]
            started = time.time()
            timeout = job.timeout if job.timeout is not None else self.timeout
            if not worker.conn.poll(timeout):
                self._replace(worker, kill=True)
                remaining.pop(0)
                yield failed_outcome(
                    job,
                    "timeout",
                    f"run exceeded its timeout of {timeout:g} s; the worker was killed",
                    started,
                )
                return
            try:
                kind, outcome = worker.conn.recv()
            except (EOFError, OSError):
                remaining.pop(0)
                yield self._died(worker, job, started)
                return
            assert kind == "done"
            remaining.pop(0)
            worker.runs += 1
            self._prestart_successor(worker)
            if not remaining:
                self._give_back(worker)
            result: Outcome = outcome
            yield result

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
                    f"{describe_exit(worker.process.returncode)} while loading it",
                )
            ]
        self._idle.put(worker)
        result: list[Problem] = problems
        return result

    def _died(self, worker: _Worker, job: RunJob, started: float) -> Outcome:
        cause = describe_exit(worker.wait(10))
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


def stop_early_runs(config: PoolConfig) -> None:
    """Start no more early runs on this process's pool for ``config`` (see ``start_early``)."""
    with _shared_lock:
        pool = _shared.get(config)
    if pool is not None:
        pool.stop_early()


def busy_worker_pids() -> list[int]:
    """Process ids of this process's workers that are running a job now (diagnostics, tests)."""
    with _shared_lock:
        pools = list(_shared.values())
    return [pid for pool in pools for pid in pool.busy_pids()]
