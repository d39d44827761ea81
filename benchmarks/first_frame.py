"""Where the time of a small sweep goes, from the call to the frame: the demo, phase by phase.

Runs the walkthrough's 10-point grid in a fresh process (ephemeral Prefect, or
the server in ``PREFECT_API_URL``) with the package's own steps wrapped to
stamp the time they finish, and prints each phase: imports, options and
preflight, the engine check (workers start meanwhile), Prefect's server ready,
the flow's first line, first run start, last run end, archive, frame.

    ./dev bench first_frame [--server]   # --server: start one and use it
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

# tools/ (the local server harness) sits at the checkout's root, beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T0 = time.time()
STAMPS: list[tuple[str, float]] = [("process start", T0)]


def _stamp(name: str) -> None:
    STAMPS.append((name, time.time()))


def _wrap(module: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(module, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        finally:
            _stamp(label)

    setattr(module, name, timed)


def measure(out: Path) -> None:
    import prefect_gmat.api

    api: Any = prefect_gmat.api  # its internals are wrapped here
    from prefect_gmat.cli import DEMO_GRID, demo_script

    _stamp("imports (prefect_gmat, pandas)")
    _wrap(api, "preflight", "options and preflight")
    checked = api.check_against_engine

    def check(*args: Any, **kwargs: Any) -> None:
        checked(*args, **kwargs)
        _stamp("engine check (workers started meanwhile; the first runs start now)")

    api.check_against_engine = check
    joined = api.BackgroundImport.join

    def join(self: Any) -> None:
        joined(self)
        _stamp("flow module imported (prefect and what a flow run loads; begun at the call)")
        flow_module = importlib.import_module("prefect_gmat.flows.sweep")
        _wrap(flow_module, "get_run_logger", "flow started (first lines of the flow)")
        _wrap(flow_module, "archive_sweep", "archive written")
        _wrap(flow_module, "publish_summary", "summary artifact published")

    api.BackgroundImport.join = join
    original_use = api.EarlyServer.use

    def use(self: Any) -> Any:
        self._thread.join()
        _stamp("Prefect server ready (started at the call, in the background)")
        return original_use(self)

    api.EarlyServer.use = use
    _wrap(api, "_run", "flow returned, server stopped")
    called = time.time()
    STAMPS.append(("sweep() called", called))
    df = api.sweep(demo_script(), grid=DEMO_GRID, out=out, overwrite=True, progress=False)
    _stamp("frame returned")
    assert df.shape == (30, 5)
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    STAMPS.append(
        (
            "first run started",
            min(datetime.fromisoformat(r["started_at"]).timestamp() for r in records),
        )
    )
    STAMPS.append(
        ("last run ended", max(datetime.fromisoformat(r["ended_at"]).timestamp() for r in records))
    )
    print("STAMPS " + json.dumps(STAMPS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", action="store_true", help="start a server and use it")
    parser.add_argument("--child", metavar="OUT")
    args = parser.parse_args()
    if args.child:
        measure(Path(args.child))
        return
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with tempfile.TemporaryDirectory(prefix="bench-first-frame-") as tmp:
        if args.server:
            from tools.local_server import LocalServer

            with LocalServer(Path(tmp) / "home") as server:
                env["PREFECT_API_URL"] = server.api_url
                stamps = _child(env, Path(tmp) / "demo")
        else:
            stamps = _child(env, Path(tmp) / "demo")
    start = stamps[0][1]
    mode = "against a running server" if args.server else "ephemeral"
    print(f"the demo sweep (10 points), {mode}; seconds since the process started:")
    for name, at in sorted(stamps, key=lambda s: s[1]):
        print(f"  {at - start:6.2f}  {name}")


def _child(env: dict[str, str], out: Path) -> list[tuple[str, float]]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(out)], env=env, capture_output=True, text=True
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("STAMPS ")]
    if done.returncode or not lines:
        raise RuntimeError(done.stderr[-3000:])
    stamps: list[tuple[str, float]] = json.loads(lines[-1][len("STAMPS ") :])
    return stamps


if __name__ == "__main__":
    main()
