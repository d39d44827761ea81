"""A real dask cluster, started the way dask's docs start one: ``dask scheduler`` and
``dask worker ADDRESS`` (nanny and all) on 127.0.0.1, from this environment.

A 120-point sweep through the scheduler's address survives one worker killed
midway (every run recorded, the frame equal to a local sweep's). A worker
that cannot write the sweep directory, in a first-time user's shell, sends its
runs' files back to the flow, and holds no log lines for the CLI's temporary
server once that has stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd
import pytest

from prefect_gmat import sweep
from prefect_gmat.core.records import sha256_file
from prefect_gmat.study.manifest import read_manifest
from tests.support.paths import DEMO_SCRIPT
from tests.support.points import sma_grid
from tests.support.users import run_cli, users_env
from tests.support.waiting import when_runs_start
from tools.local_server import free_port

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

DASK = str(Path(sys.executable).with_name("dask"))
#: Run a dask worker as root without the power to write other users' directories.
NO_OVERRIDE = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


class Cluster:
    """A scheduler and workers, each in its own process group, killed by group at the end."""

    def __init__(self, logs: Path, env: Mapping[str, str]) -> None:
        self.logs = logs
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.groups: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(env)  # the session's server: workers report their task runs to it

    def start(self, name: str, command: Sequence[str]) -> None:
        with open(self.logs / f"{name}.log", "wb") as log:
            self.groups[name] = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )

    def worker(self, name: str, prefix: Sequence[str] = ()) -> None:
        self.start(
            name,
            [*prefix, DASK, "worker", self.address, "--nthreads", "1", "--no-dashboard"],
        )

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=60) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(count, timeout=120)

    def kill(self, name: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.groups[name].pid, signal.SIGKILL)
        self.groups[name].wait()

    def interrupt(self, name: str) -> None:
        """SIGINT to the command (``kill -INT``; the nanny closes its worker), then its exit.

        Not to its group, as Ctrl-C sends: the worker process then races its nanny to the
        scheduler and may print dask's own CommClosedError traceback as it stops."""
        self.groups[name].send_signal(signal.SIGINT)
        self.groups[name].wait(timeout=60)

    def stop(self) -> None:
        for name in list(self.groups):
            self.kill(name)

    def log(self, name: str, tail: int = 3000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-tail:]


@contextlib.contextmanager
def _scheduled(logs: Path, env: Mapping[str, str]) -> Iterator[Cluster]:
    cluster = Cluster(logs, env)
    port = cluster.address.rsplit(":", 1)[1]
    try:
        cluster.start(
            "scheduler",
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
        )
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(tmp_path: Path, prefect_api_env: dict[str, str]) -> Iterator[Cluster]:
    with _scheduled(tmp_path, prefect_api_env) as cluster:
        yield cluster


@pytest.fixture
def users_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster started in a first-time user's shell: no server of theirs."""
    with _scheduled(tmp_path, users_env(tmp_path / "home")) as cluster:
        yield cluster


def _kill_when(out: Path, runs: int, cluster: Cluster, name: str, killed: list[float]) -> None:
    def kill() -> bool:
        cluster.kill(name)
        killed.append(time.monotonic())
        return True

    when_runs_start(out, runs, kill, timeout=300, interval=0.05)


def test_a_real_cluster_survives_a_killed_worker(cluster: Cluster, tmp_path: Path) -> None:
    cluster.worker("worker-a")
    cluster.worker("worker-b")
    cluster.wait_for_workers(2)
    grid = sma_grid(120, step=0.5)
    out = tmp_path / "on-dask"
    killed: list[float] = []
    _kill_when(out, 40, cluster, "worker-b", killed)
    on_dask = sweep(DEMO_SCRIPT, grid=grid, out=out, dask=cluster.address, archive=False)
    assert killed, "the sweep ended before a worker could be killed"
    manifest = read_manifest(out)
    assert sorted(manifest.ok_ids()) == list(range(120)), cluster.log("worker-a")
    # The same points run locally give the same numbers (a sample: every 10th point).
    sample = {"Sat.SMA": grid["Sat.SMA"][::10]}
    local = sweep(DEMO_SCRIPT, grid=sample, out=tmp_path / "local", workers=2, archive=False)
    picked = on_dask.loc[list(range(0, 120, 10))].rename(index=lambda r: r // 10, level="run_id")
    pd.testing.assert_frame_equal(picked, local, check_exact=True)


def test_a_walled_off_worker_in_a_users_shell_sends_back_files_and_logs(
    users_cluster: Cluster, tmp_path: Path
) -> None:
    """A worker that cannot write the sweep directory, in a first-time user's shell (the
    CLI's temporary server): it sends its runs' files back to the flow, and it has sent
    every log line before that server stops, so stopping it with Ctrl-C prints no error."""
    users_cluster.worker("walled-off", NO_OVERRIDE)
    users_cluster.wait_for_workers(1)
    # A directory the worker may read but not write (owned by another user, mode 755).
    base = Path(tempfile.mkdtemp(prefix="prefect-gmat-walled-"))
    try:
        os.chown(base, 65534, 65534)
        base.chmod(0o755)
        out = base / "sweep"
        probe = [sys.executable, "-c", f"open({str(base / 'probe')!r}, 'w')"]
        assert subprocess.run([*NO_OVERRIDE, *probe], capture_output=True).returncode != 0
        done = run_cli(
            *("run", str(DEMO_SCRIPT), "-g", "Sat.SMA=7000:7200:100", "-o", str(out)),
            *("--dask", users_cluster.address),
            cwd=tmp_path,
            env=users_cluster.env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "shape (9, 5); status counts: {'ok': 9}" in done.stdout, done.stdout
        records = read_manifest(out).records
        for run_id, record in records.items():
            for key, path in record["output_paths"].items():
                assert (out / path).parent == out / f"run-{run_id}"  # recorded relative to out
                assert sha256_file(out / path) == record["output_sha256"][key]
        assert (out / "sweep_bundle.zip").is_file()
        assert not list(Path(tempfile.gettempdir()).glob("prefect-gmat-carry-*"))
        users_cluster.interrupt("walled-off")  # after the temporary server has stopped
        log = users_cluster.log("walled-off", tail=100_000)
        assert "Finished in state Completed" in log, log[-3000:]  # its task runs logged
        assert "Error logging to API" not in log, log[-3000:]
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
