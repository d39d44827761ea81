"""The body of the engine worker processes started by :mod:`prefect_gmat.engine.pool`.

Run as ``python -m prefect_gmat.engine.worker --fd N``: a fresh interpreter that
imports this package and the engine, never the caller's ``__main__`` (which
``multiprocessing``'s ``spawn`` re-imports, re-running an unguarded user
script in every worker). The pool talks to it over the socket ``N`` with
pickled messages: first ``(engine_root, sys_path, pool_pid)``, then a validation job or a
batch of runs at a time, answered with one reply per run as each finishes.

With ``--template`` the process is a template instead: it imports what every
worker needs (pandas, pyarrow, gmat-run: ~1.3 s of CPU here) once, single
threaded, and forks a worker per request on its socket, so the second and
later workers (and every replacement) start in the engine's own ~0.3 s.
"""

from __future__ import annotations

import argparse
import multiprocessing.connection
import os
import pickle
import signal
import socket
import sys
import traceback
from typing import Any

__all__ = ["TEMPLATE_ENV", "main"]

#: Keeps the template single-threaded, so forking it is safe: no OpenBLAS thread pool
#: (an engine uses one core) and no jemalloc background thread in pyarrow.
TEMPLATE_ENV = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prefect_gmat.engine.worker")
    parser.add_argument("--fd", type=int, required=True, help="socket to the parent pool")
    parser.add_argument("--template", action="store_true", help="fork workers on request")
    args = parser.parse_args(argv)
    # The parent owns shutdown: Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.template:
        return _serve_template(socket.socket(fileno=args.fd))
    return _serve(multiprocessing.connection.Connection(args.fd))


def _serve(conn: multiprocessing.connection.Connection) -> int:
    """A worker's life: start the engine, then run what the pool sends until it says stop."""
    engine_root, sys_path, pool = conn.recv()
    # Import what the caller can import (a postprocess hook's module, say), as spawn does.
    sys.path.extend(p for p in sys_path if p not in sys.path)
    try:
        from prefect_gmat.core.records import ValidateJob
        from prefect_gmat.engine import run as runner
    except BaseException:
        conn.send(("error", "import", traceback.format_exc()))
        return 1
    try:
        runner.start_engine(engine_root)
    except BaseException as exc:
        conn.send(("error", "engine", f"{type(exc).__name__}: {exc}"))
        return 1
    conn.send(("ready", os.getpid(), None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return 0
        if job is None:
            os._exit(0)  # nothing to flush; skipping the engine's teardown saves ~0.2 s
        if isinstance(job, ValidateJob):
            conn.send(("done", runner.validate(job)))
            continue
        for one in job:  # a batch: one reply per run, as each finishes
            if not _alive(pool):
                return 0  # orphaned (the pool was killed): run nothing more
            conn.send(("done", runner.execute(one)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, under another user
    return True


def _serve_template(control: socket.socket) -> int:
    """Import a worker's modules, then fork one worker per ``spawn`` request.

    Requests are pickled ``(token, "spawn", cwd)`` with the worker's socket and
    output file attached, or ``(token, "poll", pid)``; each gets ``(token,
    value)``: the new pid, or the worker's exit code (None while it runs; the
    template reaps only when asked, so a pid is never reused under the pool).
    """
    import gmat_run  # noqa: F401 -- the imports every worker would otherwise repeat
    import pyarrow.parquet  # noqa: F401

    import prefect_gmat.engine.run  # noqa: F401

    exited: dict[int, int] = {}
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 65536, 2)
        except OSError:
            data = b""
        if not data:  # the pool closed or died (its workers notice it themselves)
            os._exit(0)  # nothing to flush; the interpreter's teardown would take ~0.2 s
        token, kind, arg = pickle.loads(data)
        reply: Any
        if kind == "spawn":
            reply = _fork_worker(control, fds, str(arg))
        else:
            pid = int(arg)
            if pid not in exited:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = pid, 0
                if done:
                    exited[pid] = os.waitstatus_to_exitcode(status)
            reply = exited.get(pid)
        control.send(pickle.dumps((token, reply)))


def _fork_worker(control: socket.socket, fds: list[int], cwd: str) -> int:
    """Fork a worker on ``fds`` (its socket to the pool, its output file); return its pid."""
    conn_fd, output_fd = fds
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the template's loop
        code = 1
        try:
            control.close()
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            os.close(output_fd)
            os.chdir(cwd)
            code = _serve(multiprocessing.connection.Connection(conn_fd))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(conn_fd)
    os.close(output_fd)
    return pid


if __name__ == "__main__":
    sys.exit(main())
