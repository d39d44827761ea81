"""A real dask cluster, started the way dask's docs start one: ``dask scheduler`` and
``dask worker ADDRESS`` (nanny and all) on 127.0.0.1, from this environment.

A 200-point sweep through the scheduler's address survives one worker killed
midway (every run recorded, the frame equal to a local sweep's), and a worker
that cannot write the sweep directory sends its runs' files back to the flow.
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

    def stop(self) -> None:
        for name in list(self.groups):
            self.kill(name)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def cluster(tmp_path: Path, prefect_api_env: dict[str, str]) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, prefect_api_env)
    port = cluster.address.rsplit(":", 1)[1]
    try:
        cluster.start(
            "scheduler",
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
        )
        yield cluster
    finally:
        cluster.stop()


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
    grid = sma_grid(200, step=0.5)
    out = tmp_path / "on-dask"
    killed: list[float] = []
    _kill_when(out, 60, cluster, "worker-b", killed)
    on_dask = sweep(DEMO_SCRIPT, grid=grid, out=out, dask=cluster.address, archive=False)
    assert killed, "the sweep ended before a worker could be killed"
    manifest = read_manifest(out)
    assert sorted(manifest.ok_ids()) == list(range(200)), cluster.log("worker-a")
    # The same points run locally give the same numbers (a sample: every 10th point).
    sample = {"Sat.SMA": grid["Sat.SMA"][::10]}
    local = sweep(DEMO_SCRIPT, grid=sample, out=tmp_path / "local", workers=2, archive=False)
    picked = on_dask.loc[list(range(0, 200, 10))].rename(index=lambda r: r // 10, level="run_id")
    pd.testing.assert_frame_equal(picked, local, check_exact=True)


def test_a_worker_that_cannot_write_out_sends_the_files_back(cluster: Cluster) -> None:
    cluster.worker("walled-off", NO_OVERRIDE)
    cluster.wait_for_workers(1)
    # A directory the worker may read but not write (owned by another user, mode 755).
    base = Path(tempfile.mkdtemp(prefix="prefect-gmat-walled-"))
    try:
        os.chown(base, 65534, 65534)
        base.chmod(0o755)
        out = base / "sweep"
        probe = [sys.executable, "-c", f"open({str(base / 'probe')!r}, 'w')"]
        assert subprocess.run([*NO_OVERRIDE, *probe], capture_output=True).returncode != 0
        df = sweep(DEMO_SCRIPT, grid={"Sat.SMA": [7000, 7100, 7200]}, out=out, dask=cluster.address)
        assert (df["__status"] == "ok").all() and df.shape == (9, 5)
        records = read_manifest(out).records
        for run_id, record in records.items():
            for key, path in record["output_paths"].items():
                assert (out / path).parent == out / f"run-{run_id}"  # recorded relative to out
                assert sha256_file(out / path) == record["output_sha256"][key]
        assert (out / "sweep_bundle.zip").is_file()
        assert not list(Path(tempfile.gettempdir()).glob("prefect-gmat-carry-*"))
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
