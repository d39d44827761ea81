"""Refresh the README's Prefect UI screenshots: a real server, a deployed sweep, headless Chromium.

    uv run python scripts/screenshot_ui.py   # docs/flow-run{,-artifacts,-plots}.png, run-form.png

It follows the README's "Deploy to a work pool" steps against a throw-away
server (its own PREFECT_HOME, a free 127.0.0.1 port): work pool, engine limit,
``prefect deploy --all``, a process worker, ``prefect deployment run`` of a
12-point sweep. Then it drives headless Chromium (Debian's ``chromium``
package) over the DevTools protocol: opens the flow run page, waits for the
run graph, and captures the "Task Runs" and "Artifacts" tabs, then the Artifacts
tab's list view, where the sweep's plot artifacts show as pictures. Last, the
``sweep`` deployment's custom-run form ("Run > Custom run"), filled in with the
README's example parameters: each parameter with the description the flow's
docstring gives it. Everything it started is stopped by process id when it ends,
even on failure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from websockets.sync.client import ClientConnection, connect

from prefect_gmat.deployments import ENGINE_LIMIT, POOL, SWEEP_DEPLOYMENT, SWEEP_FLOW

# tools/ (the local server harness) sits at the checkout's root, beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.image import DOCKER_POOL
from tools.local_server import LocalServer, prefect_command

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "src" / "prefect_gmat" / "scripts" / "leo_short.script"
GRID = {"Sat.ECC": [0.001, 0.01], "Sat.SMA": [7000, 7100, 7200, 7300, 7400, 7500]}
WIDTH, HEIGHT = 1600, 1000
PLOTS_HEIGHT = 1500
#: What the run form shows filled in: the README's "Deploy to a work pool" example, with
#: paths relative to the checkout (the flow run's working directory). Nothing is submitted.
RUN_FORM_PARAMETERS: dict[str, Any] = {
    "script": "src/prefect_gmat/scripts/leo_short.script",
    "grid": {"Sat.SMA": [7000, 7100, 7200], "Sat.ECC": [0.001, 0.01]},
    "out": "gmat-sweeps/leo-by-hand",
    "workers": 2,
}
#: The run form's picture ends just above this parameter (the 8th): the first seven show.
RUN_FORM_STOP = "mode"


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, chromium: str, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its temporary files (a singleton socket's folder, left when it is killed) go
            # beside the profile, into the caller's temporary directory, not /tmp.
            env={**os.environ, "TMPDIR": str(profile.parent)},
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            targets = json.load(reply)
        page = next(t for t in targets if t["type"] == "page")
        self.ws: ClientConnection = connect(page["webSocketDebuggerUrl"], max_size=None)
        self._ids = itertools.count(1)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; events that arrive meanwhile are skipped."""
        call = next(self._ids)
        self.ws.send(json.dumps({"id": call, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == call:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never satisfied {expression!r}")
            time.sleep(0.25)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")

    def close(self) -> None:
        self.ws.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def run_sweep(server: LocalServer, work: Path) -> UUID:
    """The README's steps against ``server``; returns the id of the finished sweep's flow run."""
    prefect = prefect_command()
    server.run([*prefect, "work-pool", "create", POOL, "--type", "process"])
    # prefect.yaml's sweep-docker needs its pool to deploy (as in tests/platform/test_platform.py).
    server.run([*prefect, "work-pool", "create", DOCKER_POOL, "--type", "docker"])
    server.run([*prefect, "gcl", "create", ENGINE_LIMIT, "--limit", "2"])
    server.run([*prefect, "block", "register", "-m", "prefect_gmat.blocks"])
    server.run([*prefect, "--no-prompt", "deploy", "--all"], cwd=REPO)
    server.spawn([*prefect, "worker", "start", "--pool", POOL], log=work / "worker.log", cwd=work)
    done = server.run(
        [
            *prefect,
            "deployment",
            "run",
            f"{SWEEP_FLOW}/{SWEEP_DEPLOYMENT}",
            "--param",
            f"script={SCRIPT}",
            "--param",
            f"grid={json.dumps(GRID)}",
            "--param",
            f"out={work / 'leo-sweep'}",
            "--param",
            "workers=2",
        ]
    )
    match = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)
    if match is None:
        raise RuntimeError(f"no flow run id in:\n{done.stdout}")
    run_id = UUID(match.group(1))
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as c:
        deadline = time.monotonic() + 300
        while True:
            state = c.read_flow_run(run_id).state
            if state is not None and state.is_final():
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {run_id} did not finish; see {work}/worker.log")
            time.sleep(1)
    if not state.is_completed():
        raise RuntimeError(f"flow run {run_id} ended {state.name}: {state.message}")
    time.sleep(3)  # let the server record the last task-run states and artifacts
    return run_id


def run_form_url(server: LocalServer) -> str:
    """The ``sweep`` deployment's custom-run page, its form filled with ``RUN_FORM_PARAMETERS``."""
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as c:
        deployment = c.read_deployment_by_name(f"{SWEEP_FLOW}/{SWEEP_DEPLOYMENT}")
    # The page decodes the (already URL-decoded) query value once more, as the UI's own
    # "run with these parameters" links encode it twice.
    once = urllib.parse.quote(json.dumps(RUN_FORM_PARAMETERS), safe="")
    query = urllib.parse.quote(once, safe="")
    return f"{server.url}/deployments/deployment/{deployment.id}/run?parameters={query}"


def capture_run_form(browser: Browser, url: str, docs: Path) -> None:
    """The custom-run form: the first parameters' fields, each under its description."""
    browser.send("Page.navigate", url=url)
    # The workers field's description, and the last prefilled value in its field.
    browser.wait_for("document.body.innerText.includes('PREFECT_GMAT_WORKERS')")
    out = json.dumps(RUN_FORM_PARAMETERS["out"])
    fields = "[...document.querySelectorAll('input, textarea')]"
    browser.wait_for(f"{fields}.some(e => e.value === {out})")
    time.sleep(2)  # the grid's JSON editor lays out its lines
    stop = json.dumps(f"{RUN_FORM_STOP} ")
    top = browser.evaluate(
        "[...document.querySelectorAll('.schema-form-property__label')]"
        f".find(e => e.textContent.trim().startsWith({stop}))?.getBoundingClientRect().top"
    )
    if not isinstance(top, int | float):
        raise RuntimeError(f"no {RUN_FORM_STOP!r} parameter on the run form at {url}")
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        width=WIDTH,
        height=int(top) - 14,
        deviceScaleFactor=1,
        mobile=False,
    )
    time.sleep(1)
    browser.screenshot(docs / "run-form.png")


def capture(url: str, form_url: str, docs: Path, chromium: str, work: Path) -> None:
    profile = work / "chromium-profile"
    profile.mkdir()
    browser = Browser(chromium, profile)
    try:
        browser.send("Page.enable")
        browser.send("Page.navigate", url=url)
        browser.wait_for("document.getElementById('task-runs') !== null")
        browser.wait_for("document.querySelector('canvas') !== null")
        time.sleep(5)  # the run graph lays out and draws its nodes
        browser.evaluate("document.getElementById('task-runs').click()")
        browser.wait_for("document.body.innerText.includes('run-11')")
        time.sleep(2)
        browser.screenshot(docs / "flow-run.png")
        browser.evaluate("document.getElementById('artifacts').click()")
        browser.wait_for("document.body.innerText.includes('sweep-summary')")
        time.sleep(2)
        browser.screenshot(docs / "flow-run-artifacts.png")
        # The list view renders each artifact's description: the plots' PNGs themselves.
        browser.evaluate("document.querySelectorAll('.p-button-group__button')[1].click()")
        picture = "document.querySelector('img[src^=\"data:image/png\"]')"
        browser.wait_for(f"{picture} !== null && {picture}.complete")
        # A taller page, from the tabs down: the band and the corner plot in one picture.
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=PLOTS_HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        browser.evaluate("document.getElementById('artifacts').scrollIntoView({block: 'start'})")
        time.sleep(2)
        browser.screenshot(docs / "flow-run-plots.png")
        capture_run_form(browser, form_url, docs)
    finally:
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", default=str(REPO / "docs"), help="where the PNGs go")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found; install it (apt-get install -y chromium)", file=sys.stderr)
        return 2
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prefect-gmat-ui-") as tmp:
        work = Path(tmp)
        env = {
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            # A deployment's flow run reads and writes only here (the checkout: its scripts).
            "PREFECT_GMAT_ALLOWED_PATHS": os.pathsep.join([str(work), str(REPO)]),
        }
        with LocalServer(work / "home", env=env) as server:
            print(f"server healthy after {server.startup_seconds:.1f} s at {server.url}")
            run_id = run_sweep(server, work)
            form_url = run_form_url(server)
            capture(f"{server.url}/runs/flow-run/{run_id}", form_url, docs, chromium, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
