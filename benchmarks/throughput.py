"""Throughput side by side in one run: prefect-gmat, gmat-sweep 0.6.0 and the bare engine limit.

Cases: the demo's short LEO script at 1000 points (runs of tens of ms),
``benchmarks/leo_gravity_drag.script`` at 300 points (100-300 ms runs), each as
prefect-gmat in ephemeral mode and against a running server (started here), and
``benchmarks/leo_gravity_drag_10d.script`` at 40 points (runs of about a second,
one task run each) against the server,
gmat-sweep with its default 2-process pool, and the limit: 2 warm ``spawn`` processes
looping load, set, run, write Parquet with no orchestration (warm-up untimed). A
second limit runs the same loop in 2 processes that never start a thread, as
prefect-gmat's workers now are: the engine runs ~1.8x faster there (glibc and
libstdc++ skip their atomics in a single-threaded process), so that limit is the
true ceiling, and the issue's limit is kept for its goals. Then the short case on a
real dask cluster (``dask scheduler`` and 2 one-thread ``dask worker`` processes
started here). Every tool runs in a fresh process; "while running" is runs/s from
the first run's start to the last run's end, read from the manifests; "end to end"
is from the call to the returned frame. The rounds are interleaved (each tool once
per round, every other round in reverse order, so a machine that slows or speeds up
through a case favours no tool's place in line) and each cell keeps its fastest
round. Also
timed: Prefect's own no-op flow in ephemeral mode and the archive alone, for the
fixed-cost goals. Prints the table and each goal of the scale-and-speed issue, met
or not.

    ./dev bench [throughput] [--short 1000] [--long 300] [--slow 40] [--no-dask]
        [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))  # tools/ (the local server harness) sits at the checkout's root
LONG_SCRIPT = BENCH / "leo_gravity_drag.script"
SLOW_SCRIPT = BENCH / "leo_gravity_drag_10d.script"
WORKERS = 2


def _script(case: str) -> Path:
    if case == "short":
        from prefect_gmat.cli import demo_script

        return demo_script()
    return LONG_SCRIPT if case == "long" else SLOW_SCRIPT


#: Points per task run by case: the flow's own sizing, except for the long runs, where the
#: issue asks for one task run per point (the case where a task run's cost shows).
POINTS_PER_TASK: dict[str, int | None] = {"short": None, "long": None, "slow": 1}


def _grid(case: str, points: int) -> dict[str, list[float]]:
    start = 7000.0 if case == "short" else 6878.0
    return {"Sat.SMA": [start + 0.25 * i for i in range(points)]}


def _span(manifest: Path) -> tuple[float, float]:
    """First run's start and last run's end (epoch seconds) from a JSON Lines manifest."""
    records = [json.loads(line) for line in manifest.read_text().splitlines()[1:] if line]
    starts = [datetime.fromisoformat(r["started_at"]).timestamp() for r in records]
    ends = [datetime.fromisoformat(r["ended_at"]).timestamp() for r in records]
    return min(starts), max(ends)


# --- one measurement, in its own process ------------------------------------------------


def _limit_worker(engine_root: str, jobs: list[Any], ready: Any, go: Any, out: Any) -> None:
    from prefect_gmat.engine import run as runner

    runner.start_engine(engine_root)
    ready.put(True)
    go.wait()
    spans = []
    for job in jobs:
        outcome = runner.execute(job)
        assert outcome.ok, outcome.error
        spans.append((outcome.started_at, outcome.ended_at))
    out.put(spans)


def measure_limit(script: Path, grid: dict[str, list[float]], base: Path) -> dict[str, float]:
    import multiprocessing

    from prefect_gmat.core.records import RunJob
    from prefect_gmat.engine.install import resolve_engine

    ctx = multiprocessing.get_context("spawn")
    values = grid["Sat.SMA"]
    jobs = [
        RunJob(i, str(script), {"Sat.SMA": v}, str(base / f"run-{i}")) for i, v in enumerate(values)
    ]
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    root = str(resolve_engine().root)
    procs = [
        ctx.Process(target=_limit_worker, args=(root, jobs[w::WORKERS], ready, go, out))
        for w in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)
    go.set()
    spans = [span for _ in procs for span in out.get(timeout=3600)]
    for proc in procs:
        proc.join()
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    return {"running": len(values) / (last - first)}


#: A limit process that never starts a thread (no multiprocessing queue, no feeder thread).
_SINGLE_THREADED_LIMIT = """
import json, sys
from prefect_gmat.engine import run as runner

root, jobs = json.loads(sys.stdin.readline())
runner.start_engine(root)
print("ready", flush=True)
sys.stdin.readline()
spans = []
for job in jobs:
    outcome = runner.execute(runner.RunJob(*job))
    assert outcome.ok, outcome.error
    spans.append((outcome.started_at, outcome.ended_at))
print(json.dumps(spans), flush=True)
"""


def measure_single_threaded_limit(
    script: Path, grid: dict[str, list[float]], base: Path
) -> dict[str, float]:
    from prefect_gmat.engine.install import resolve_engine
    from prefect_gmat.engine.worker import TEMPLATE_ENV

    values = grid["Sat.SMA"]
    jobs = [(i, str(script), {"Sat.SMA": v}, str(base / f"run-{i}")) for i, v in enumerate(values)]
    env = {**os.environ, **TEMPLATE_ENV}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SINGLE_THREADED_LIMIT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(WORKERS)
    ]
    root = str(resolve_engine().root)
    for w, proc in enumerate(procs):
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps([root, jobs[w::WORKERS]]) + "\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    spans = [span for proc in procs for span in json.loads(proc.communicate()[0])]
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    return {"running": len(values) / (last - first)}


def _timed(run: Callable[[], Any], grid: dict[str, list[float]], base: Path) -> dict[str, float]:
    """Time one sweep call; read its runs' span from the manifest it wrote in ``base``."""
    called = time.time()
    frame = run()
    returned = time.time()
    assert (frame["__status"] == "ok").all()
    first, last = _span(base / "manifest.jsonl")
    n = len(grid["Sat.SMA"])
    return {
        "end_to_end": n / (returned - called),
        "running": n / (last - first),
        "before_first_run": first - called,
        "after_last_run": returned - last,
    }


def measure_gmat_sweep(script: Path, grid: dict[str, list[float]], base: Path) -> dict[str, float]:
    from gmat_sweep import sweep as their_sweep

    return _timed(lambda: their_sweep(script, grid=grid, out=base, progress=False), grid, base)


def measure_ours(
    script: Path,
    grid: dict[str, list[float]],
    base: Path,
    dask: str | None,
    points_per_task: int | None = None,
) -> dict[str, float]:
    from prefect_gmat import archive, sweep

    result = _timed(
        lambda: sweep(
            script,
            grid=grid,
            out=base,
            workers=WORKERS,
            dask=dask,
            points_per_task=points_per_task,
            progress=False,
        ),
        grid,
        base,
    )
    started = time.time()  # the archive alone, as the sweep's last task built it
    archive(base, overwrite=True)
    result["archive"] = time.time() - started
    return result


def measure_noop_flow() -> dict[str, float]:
    """Prefect's own fixed cost: import Prefect, run a flow that does nothing, return."""
    called = time.time()
    from prefect import flow

    @flow
    def noop() -> None:
        pass

    noop()
    return {"noop_flow": time.time() - called}


def _one(tool: str, case: str, points: int, out: str, dask: str | None) -> None:
    if tool == "noop":
        print("RESULT " + json.dumps(measure_noop_flow()))
        return
    script = _script(case)
    grid = _grid(case, points)
    base = Path(out)
    if tool == "limit":
        result = measure_limit(script, grid, base)
    elif tool == "limit-1t":
        result = measure_single_threaded_limit(script, grid, base)
    elif tool == "gmat-sweep":
        result = measure_gmat_sweep(script, grid, base)
    else:
        result = measure_ours(script, grid, base, dask, POINTS_PER_TASK[case])
    print("RESULT " + json.dumps(result))


def run_one(
    tool: str, case: str, points: int, env: dict[str, str], dask: str | None = None
) -> dict[str, float]:
    """One measurement in a fresh process (its own imports, its own Prefect start-up)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{tool}-") as tmp:
        args = [sys.executable, __file__, "--one", tool, case, str(points), str(Path(tmp) / "s")]
        if dask:
            args += ["--dask-address", dask]
        done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{tool} {case} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(lines[-1][len("RESULT ") :])
    return result


# --- the whole comparison ------------------------------------------------------------------

#: The goals: (case, our row, measure, compared with, at least). The scale-and-speed issue's
#: first (kept: nothing met may get worse), then the fixed-costs issue's, where the true
#: ceiling is the single-threaded limit.
CEILING = "limit, single-threaded"
GOALS: list[tuple[str, str, str, str, float]] = [
    ("short", "ours, server", "end_to_end", "gmat-sweep", 1.0),
    ("short", "ours, server", "running", "gmat-sweep", 1.05),
    ("short", "ours, server", "running", "limit", 0.92),
    ("short", "ours, ephemeral", "running", "gmat-sweep", 1.05),
    ("short", "ours, ephemeral", "running", "limit", 0.92),
    ("short", "ours, ephemeral", "end_to_end", "gmat-sweep", 0.8),
    ("short", "ours, dask cluster, server", "running", "limit", 0.8),
    # the fixed-costs issue
    ("short", "ours, server", "running", CEILING, 0.95),
    ("long", "ours, server", "end_to_end", "gmat-sweep", 1.0),
    ("long", "ours, server", "running", "gmat-sweep", 1.0),
    ("long", "ours, server", "running", CEILING, 0.95),
    ("long", "ours, ephemeral", "end_to_end", "gmat-sweep", 0.85),
    ("slow", "ours, server", "end_to_end", "gmat-sweep", 1.0),
    ("slow", "ours, server", "running", CEILING, 0.92),
]


@dataclass
class Row:
    case: str
    tool: str
    result: dict[str, float]


def _dask_cluster(env: dict[str, str], logs: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    from distributed import Client

    from tools.local_server import free_port

    dask = str(Path(sys.executable).with_name("dask"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=open(logs / "scheduler.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ]
    for i in range(WORKERS):
        procs.append(
            subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--no-dashboard"],
                env=env,
                stdout=open(logs / f"worker-{i}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    with Client(address, timeout=60) as client:  # type: ignore[no-untyped-call]
        client.wait_for_workers(WORKERS, timeout=120)
    return address, procs


def _show_round(tool: str, result: dict[str, float]) -> None:
    """Every round as it ends, on stderr: the table keeps only the fastest, and the spread
    between rounds is how far this machine drifted."""
    shown = "  ".join(f"{key} {value:.2f}" for key, value in result.items())
    print(f"   {tool}: {shown}", file=sys.stderr, flush=True)


def _best(results: list[dict[str, float]]) -> dict[str, float]:
    """The repetition that ran fastest (noise on a shared machine only slows things down)."""
    return max(results, key=lambda r: r["running"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--short", type=int, default=1000, help="points of the short case (0: skip)"
    )
    parser.add_argument(
        "--long", type=int, default=300, help="points of the 100-300 ms case (0: skip)"
    )
    parser.add_argument(
        "--slow", type=int, default=40, help="points of the ~1 s-run case (0: skip)"
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the dask cluster case")
    parser.add_argument("--one", nargs=4, metavar=("TOOL", "CASE", "POINTS", "OUT"))
    parser.add_argument("--dask-address")
    parser.add_argument(
        "--repeat", type=int, default=2, help="rounds per measurement; the fastest is kept"
    )
    args = parser.parse_args()
    if args.one:
        tool, case, points, out = args.one
        _one(tool, case, int(points), out, args.dask_address)
        return

    from prefect_gmat.engine.install import shim_root
    from tools.local_server import LocalServer

    base_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    base_env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    base_env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    their_env = {**base_env, "GMAT_ROOT": str(shim_root())}
    rows: list[Row] = []
    started = time.monotonic()
    print("-- a no-op Prefect flow, ephemeral", file=sys.stderr, flush=True)
    # A fresh Prefect home (./dev makes one per checkout) has no database yet: the first
    # temporary server creates it, past Prefect's 20 s start-up timeout here. Once, unmeasured.
    first = {**base_env, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}
    run_one("noop", "short", 0, first)
    noop = run_one("noop", "short", 0, base_env)["noop_flow"]
    with (
        tempfile.TemporaryDirectory(prefix="bench-server-") as tmp,
        LocalServer(Path(tmp) / "home") as server,
    ):
        server_env = {**base_env, "PREFECT_API_URL": server.api_url}
        tools = [
            ("limit", "limit", base_env),
            ("limit, single-threaded", "limit-1t", base_env),
            ("gmat-sweep", "gmat-sweep", their_env),
            ("ours, ephemeral", "ours", base_env),
            ("ours, server", "ours", server_env),
        ]
        # The ~1 s runs: the ceiling, gmat-sweep and ours against the server (the goals').
        slow_tools = [t for t in tools if t[0] in (CEILING, "gmat-sweep", "ours, server")]
        cases = (("short", args.short, tools), ("long", args.long, tools))
        for case, points, used in (*cases, ("slow", args.slow, slow_tools)):
            if points <= 0:
                continue
            tries: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in used}
            for attempt in range(args.repeat):  # rounds interleaved: drift hits every tool
                print(f"-- {case}: {points} points, round {attempt + 1}", file=sys.stderr)
                # ABC then CBA: in a fixed order the last tool always ran latest in a round
                for name, tool, env in used if attempt % 2 == 0 else used[::-1]:
                    tries[name].append(run_one(tool, case, points, env))
                    _show_round(name, tries[name][-1])
            rows.extend(Row(case, name, _best(tries[name])) for name, _, _ in used)
        if not args.no_dask:
            print("-- dask cluster", file=sys.stderr, flush=True)
            address, procs = _dask_cluster(server_env, Path(tmp))
            try:
                results = []
                for _ in range(args.repeat):
                    results.append(run_one("ours", "short", args.short, server_env, dask=address))
                    _show_round("ours, dask cluster, server", results[-1])
                rows.append(Row("short", "ours, dask cluster, server", _best(results)))
            finally:
                for proc in procs:
                    os.killpg(proc.pid, 9)
                    proc.wait()
    _report(rows, args, time.monotonic() - started, noop)


def _report(rows: list[Row], args: argparse.Namespace, elapsed: float, noop: float) -> None:
    def get(case: str, tool: str, key: str) -> float:
        for row in rows:
            if row.case == case and row.tool == tool:
                return row.result.get(key, float("nan"))
        return float("nan")

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\n{stamp}, {platform.node()}: {os.cpu_count()} cores, {WORKERS} engines, "
        f"Python {platform.python_version()}; best of {args.repeat} rounds; "
        f"{elapsed:.0f} s for the whole comparison\n"
    )
    print(
        "| case | tool | end to end (runs/s) | while running (runs/s) | before first run (s) "
        "| after last run (s) |"
    )
    print("|---|---|---|---|---|---|")
    names = {
        "short": f"short LEO, {args.short} pts",
        "long": f"gravity+drag LEO, {args.long} pts",
        "slow": f"gravity+drag LEO over 10 days, {args.slow} pts, 1 per task run",
    }
    for row in rows:
        r = row.result
        print(
            f"| {names[row.case]} | {row.tool} | {r.get('end_to_end', float('nan')):.1f} "
            f"| {r['running']:.1f} | {r.get('before_first_run', float('nan')):.1f} "
            f"| {r.get('after_last_run', float('nan')):.1f} |"
        )

    print("\n| goal | measured | met |\n|---|---|---|")
    for case, tool, key, against, target in GOALS:
        value = get(case, tool, key) / get(case, against, key)
        if value != value:  # NaN: that case was skipped
            continue
        text = f"{case}, {tool}: {key.replace('_', ' ')} >= {target}x {against}"
        print(f"| {text} | {value:.2f}x | {'yes' if value >= target else 'no'} |")
    print("\n| against the single-threaded limit (the engine's true ceiling) | ratio |\n|---|---|")
    for case in names:
        for tool in ("ours, server", "ours, ephemeral", "ours, dask cluster, server", "gmat-sweep"):
            value = get(case, tool, "running") / get(case, CEILING, "running")
            if value == value:
                print(f"| {names[case]}, {tool}: while running | {value:.2f}x |")
    print("\n| fixed cost | measured (s) |\n|---|---|")
    print(f"| Prefect alone: a no-op flow, ephemeral, from import to return | {noop:.1f} |")
    for tool in ("ours, ephemeral", "ours, server", "gmat-sweep"):
        print(
            f"| {tool}: call to first run (short) | {get('short', tool, 'before_first_run'):.1f} |"
        )
        print(f"| {tool}: last run to frame (short) | {get('short', tool, 'after_last_run'):.1f} |")
    print("\n| fixed-cost goal (short case) | limit (s) | measured (s) | met |\n|---|---|---|---|")
    fixed = [
        ("ephemeral: call to first run", "ours, ephemeral", "before_first_run", noop + 1.5),
        ("server: call to first run", "ours, server", "before_first_run", 3.0),
        (
            "server: call to first run <= gmat-sweep's + 1.0 s",
            "ours, server",
            "before_first_run",
            get("short", "gmat-sweep", "before_first_run") + 1.0,
        ),
    ]
    for tool in ("ours, ephemeral", "ours, server"):
        limit = 1.0 + get("short", tool, "archive")
        fixed.append((f"{tool[6:]}: last run to frame", tool, "after_last_run", limit))
    fixed.append(
        (
            "server: last run to frame <= 0.3 s + the archive",
            "ours, server",
            "after_last_run",
            0.3 + get("short", "ours, server", "archive"),
        )
    )
    for text, tool, key, limit in fixed:
        value = get("short", tool, key)
        print(f"| {text} | {limit:.1f} | {value:.1f} | {'yes' if value <= limit else 'no'} |")


if __name__ == "__main__":
    main()
