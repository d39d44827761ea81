"""A throw-away Prefect server and worker on this machine, started and stopped by process id.

For the platform tests and the UI screenshot script, and for trying the
deployments without touching a shared server: :class:`LocalServer` starts
``prefect server start`` on a free 127.0.0.1 port with its own ``PREFECT_HOME``;
:meth:`LocalServer.spawn` starts any command (``prefect worker start ...``)
against it. Each child runs in its own process group, and leaving the ``with``
block kills every group it started, and every process that inherited this
server's ``PREFECT_HOME`` (flow runs a worker started), even when the block failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from prefect_gmat.runtime.ephemeral import answers, free_port

__all__ = ["LocalServer", "free_port", "prefect_command"]

_HEALTH_TIMEOUT = 120.0


def prefect_command() -> list[str]:
    """``prefect`` of this interpreter's environment (not whatever is first on PATH)."""
    return [sys.executable, "-m", "prefect"]


class LocalServer:
    """``prefect server start`` in a new process group, with its own home and port."""

    def __init__(
        self, home: Path, *, port: int | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.home = Path(home).resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.env = {
            **os.environ,
            **(env or {}),
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
        }
        self.startup_seconds: float | None = None
        self._children: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until ``/api/health`` answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        server = self.spawn(
            [
                *prefect_command(),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            log=self.home / "server.log",
        )
        while time.monotonic() - started < _HEALTH_TIMEOUT:
            if server.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with {server.returncode}; see {self.home}/server.log"
                )
            if answers(self.api_url):
                self.startup_seconds = time.monotonic() - started
                return
            time.sleep(0.25)
        raise TimeoutError(f"prefect server not healthy after {_HEALTH_TIMEOUT:.0f} s")

    def spawn(
        self,
        command: Sequence[str],
        *,
        log: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` against this server in its own process group, output to ``log``."""
        handle = open(log, "ab")  # noqa: SIM115 (closed in stop())
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._children.append((process, handle))
        return process

    def run(
        self, command: Sequence[str], *, cwd: Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` against this server to completion; raise with its output if it fails."""
        done = subprocess.run(
            list(command),
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def stop(self, grace: float = 5.0) -> None:
        """Stop every process group started here, newest first (the worker before its server).

        SIGTERM, ``grace`` seconds to exit, then SIGKILL for whatever of the group is left.
        """
        while self._children:
            self.stop_process(self._children[-1][0], grace)
        for pid in self.stray_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop_process(self, process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """Stop one process group :meth:`spawn` started (a worker, before the server stops)."""
        found = [i for i, (child, _) in enumerate(self._children) if child is process]
        if not found:
            raise ValueError(f"process {process.pid} was not started by this server")
        _, handle = self._children.pop(found[0])
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        _signal_group(process, signal.SIGKILL)
        process.wait()
        handle.close()

    def stray_pids(self) -> list[int]:
        """Processes left from this server's children in sessions of their own.

        A process worker starts each flow run in a new session (so its process
        group outlives the worker's), and the flow run starts GMAT engines.
        They all inherit this server's ``PREFECT_HOME``, which no other process
        has. Linux only (``/proc``); elsewhere, an empty list.
        """
        marker = f"PREFECT_HOME={self.home}".encode()
        found: list[int] = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if marker in environ and int(entry.name) != os.getpid():
                found.append(int(entry.name))
        return found


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process group ``process`` leads (its pid is the group id)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
