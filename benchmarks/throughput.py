"""Throughput of a short-LEO sweep: the warm pool alone, then the whole Prefect flow.

Prints runs/s for N points (default 300) on W workers (default 2), and the
Prefect overhead per task run: (flow wall time - pool wall time) / N, with the
flow's start-up (ephemeral server or client connection) reported apart.
Against a running server, set PREFECT_API_URL first; otherwise Prefect runs
in ephemeral mode, as a user without a server would.

    uv run python benchmarks/throughput.py [--points 300] [--workers 2] [--dask local]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from prefect_gmat import sweep
from prefect_gmat.cli import demo_script
from prefect_gmat.engine import resolve_engine
from prefect_gmat.pool import WorkerPool
from prefect_gmat.runner import RunJob


def pool_alone(points: int, workers: int, base: Path) -> float:
    """Seconds for ``points`` runs on a warmed pool, no Prefect: the engine-side floor."""
    script = str(demo_script())
    jobs = [
        RunJob(i, script, {"Sat.SMA": 7000.0 + i}, str(base / "pool" / f"run-{i}"))
        for i in range(points)
    ]
    with WorkerPool(resolve_engine().root, workers) as pool:
        pool.warm_up()
        started = time.perf_counter()
        with ThreadPoolExecutor(4 * workers) as threads:
            outcomes = list(threads.map(pool.run, jobs))
        elapsed = time.perf_counter() - started
    assert all(o.ok for o in outcomes)
    return elapsed


def whole_flow(points: int, workers: int, base: Path, dask: str | None) -> tuple[float, float]:
    """Wall seconds of sweep() from call to frame, and of its runs (first to last record)."""
    grid = {"Sat.SMA": np.linspace(7000.0, 7000.0 + points - 1, points)}
    started = time.perf_counter()
    frame = sweep(demo_script(), grid=grid, out=base / "flow", workers=workers, dask=dask)
    total = time.perf_counter() - started
    assert (frame["__status"] == "ok").all() and frame.shape[0] == 3 * points
    import json

    lines = (base / "flow" / "manifest.jsonl").read_text().splitlines()[1:]
    from datetime import datetime

    stamps = [json.loads(line) for line in lines]
    first = min(datetime.fromisoformat(r["started_at"]) for r in stamps)
    last = max(datetime.fromisoformat(r["ended_at"]) for r in stamps)
    return total, (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dask", help="'local' (a local cluster) or a scheduler address")
    args = parser.parse_args()
    mode = (
        "server " + os.environ["PREFECT_API_URL"]
        if os.environ.get("PREFECT_API_URL")
        else "ephemeral"
    )
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        base = Path(tmp)
        pool_s = pool_alone(args.points, args.workers, base)
        total_s, runs_s = whole_flow(args.points, args.workers, base, args.dask)
    n = args.points
    runner = f"dask {args.dask}" if args.dask else "threads"
    print(f"points={n} workers={args.workers} prefect={mode} task runner={runner}")
    print(f"pool alone (warm, no Prefect):   {pool_s:6.2f} s  {n / pool_s:6.1f} runs/s")
    print(f"sweep() call to frame:           {total_s:6.2f} s  {n / total_s:6.1f} runs/s")
    print(f"  of which runs, first to last:  {runs_s:6.2f} s  {n / runs_s:6.1f} runs/s")
    print(f"  start-up, validation, frame:   {total_s - runs_s:6.2f} s")
    print(
        f"Prefect overhead per task run:   {1000 * (runs_s - pool_s) / n:6.1f} ms (wall, 2 cores)"
    )


if __name__ == "__main__":
    main()
