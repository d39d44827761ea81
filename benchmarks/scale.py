"""10,000 points: every run recorded, flat memory in the calling process, server database growth.

Runs the short LEO sweep at 1,000 and at 10,000 points against a Prefect server
started here (its own ``PREFECT_HOME``), each in a fresh process, and prints the
calling process's peak RSS (the sweep() caller: flow, task runs, manifest and
the returned frame; the engine workers are separate processes), the runs
recorded, runs/s, the task runs the flow made, and how much the server's SQLite
database grew.

    ./dev bench scale [--points 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# tools/ (the local server harness) sits at the checkout's root, beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _child(points: int, out: Path) -> None:
    from prefect_gmat import sweep
    from prefect_gmat.cli import demo_script
    from prefect_gmat.study.manifest import read_manifest

    grid = {"Sat.SMA": [7000.0 + 0.05 * i for i in range(points)]}
    started = time.time()
    frame = sweep(demo_script(), grid=grid, out=out, workers=2, archive=False, progress=False)
    elapsed = time.time() - started
    records = read_manifest(out).records
    result = {
        "points": points,
        "recorded_ok": sum(1 for r in records.values() if r["status"] == "ok"),
        "frame_rows": len(frame),
        "seconds": elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print("RESULT " + json.dumps(result))


def _database(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("prefect.db*"))


def _task_runs(api_url: str) -> int:
    import httpx

    reply = httpx.post(f"{api_url}/task_runs/count", json={}, timeout=30)
    reply.raise_for_status()
    return int(reply.json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--child", nargs=2, metavar=("POINTS", "OUT"))
    args = parser.parse_args()
    if args.child:
        _child(int(args.child[0]), Path(args.child[1]))
        return
    from tools.local_server import LocalServer

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        home = Path(tmp) / "home"
        with LocalServer(home) as server:
            env = {**os.environ, "PREFECT_API_URL": server.api_url}
            print(
                "| points | recorded ok | runs/s end to end | peak RSS of the caller (MB) "
                "| task runs | server DB growth (MB) |"
            )
            print("|---|---|---|---|---|---|")
            for points in args.points:
                db_before, tasks_before = _database(home), _task_runs(server.api_url)
                out = Path(tmp) / f"sweep-{points}"
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(points), str(out)],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                if done.returncode or not lines:
                    raise RuntimeError(done.stderr[-3000:])
                r = json.loads(lines[-1][len("RESULT ") :])
                time.sleep(2)  # the server records the last states a moment later
                grown = (_database(home) - db_before) / 1e6
                tasks = _task_runs(server.api_url) - tasks_before
                print(
                    f"| {points} | {r['recorded_ok']} | {points / r['seconds']:.1f} "
                    f"| {r['peak_rss_mb']:.0f} | {tasks} | {grown:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
