"""The body of one engine worker process, started by :mod:`prefect_gmat.pool`.

Run as ``python -m prefect_gmat.engine_worker --fd N``: a fresh interpreter that
imports this package and the engine, never the caller's ``__main__`` (which
``multiprocessing``'s ``spawn`` re-imports, re-running an unguarded user
script in every worker). The parent talks to it over the socket ``N`` with
pickled messages: first ``(engine_root, sys_path)``, then a validation job or a
batch of runs at a time, answered with one reply per run as each finishes.
"""

from __future__ import annotations

import argparse
import multiprocessing.connection
import os
import signal
import sys
import traceback

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prefect_gmat.engine_worker")
    parser.add_argument("--fd", type=int, required=True, help="socket to the parent pool")
    args = parser.parse_args(argv)
    # The parent owns shutdown: Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = multiprocessing.connection.Connection(args.fd)
    parent = os.getppid()
    engine_root, sys_path = conn.recv()
    # Import what the caller can import (a postprocess hook's module, say), as spawn does.
    sys.path.extend(p for p in sys_path if p not in sys.path)
    try:
        from prefect_gmat import runner
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
        if isinstance(job, runner.ValidateJob):
            conn.send(("done", runner.validate(job)))
            continue
        for one in job:  # a batch: one reply per run, as each finishes
            if os.getppid() != parent:
                return 0  # orphaned (the parent was killed): run nothing more
            conn.send(("done", runner.execute(one)))


if __name__ == "__main__":
    sys.exit(main())
