"""Start Prefect's temporary server early, while the engines warm up and the sweep is checked.

Without ``PREFECT_API_URL`` Prefect starts a temporary server when a flow first
talks to it: it imports the server application into the calling process (about
5 s of CPU here) and starts a uvicorn subprocess, all before the flow's first
task. :class:`EarlyServer` starts that same subprocess (the command and
environment of Prefect's own ``SubprocessASGIServer``, the same database under
``PREFECT_HOME``) in the background as soon as a sweep is called (before this
process has imported Prefect, unless a profile names a server), and points
this process at it for the sweep, so the server's start-up overlaps the
up-front checks and the engine warm-up, and this process never imports the
server. With ``PREFECT_API_URL`` set, or the ephemeral server disabled, it does
nothing. A sweep refused by the checks stops the server it started.

The server's output goes to a log file under ``PREFECT_HOME``, not to the user's
terminal: stopping it cancels the server's services mid-flush, and uvicorn prints
those cancellations as tracebacks that say nothing about the sweep. The file is
unlinked once the server answers (it writes on to the unlinked file); it is kept,
and named in the error, when the server did not come up.

Its thread never imports Prefect (see ``runtime/imports.py``): Prefect's settings
are read in the caller's thread, at once when Prefect is loaded already, else
in :meth:`EarlyServer.use`, once the sweep has passed its checks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["EarlyServer", "answers", "free_port"]

_HEALTH_TIMEOUT = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(api_url: str) -> bool:
    """Whether a Prefect server answers its health check at ``api_url`` (``.../api``)."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _prefect_app_dir() -> str:
    """The directory holding the ``prefect`` package, found without importing it."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("prefect is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))).parent)


def _profile_names_a_server() -> bool:
    """Whether the active Prefect profile sets a server URL or forbids a temporary one,
    read from ``profiles.toml`` without importing Prefect (which decides in the end)."""
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    profile = data.get("profiles", {}).get(active, {})
    if not isinstance(profile, dict):
        return False
    ephemeral = str(profile.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")).lower()
    return bool(profile.get("PREFECT_API_URL")) or ephemeral in ("false", "0", "no")


class EarlyServer:
    """A temporary Prefect server started in the background; see the module docstring."""

    def __init__(self) -> None:
        self.api_url: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._log: Path | None = None
        self._error: BaseException | None = None
        self._stopped = threading.Event()
        self._starting = threading.Lock()  # stop() never misses a server being started
        self._terminating = threading.Lock()
        self._terminated = False
        # Launched before Prefect is loaded: use() checks Prefect's settings still want it.
        self._early = False
        env: dict[str, str] | None = None
        if os.environ.get("PREFECT_API_URL"):
            pass  # a running server: nothing to start
        elif "prefect" not in sys.modules:
            # Importing Prefect takes seconds: launch first when nothing says a server is
            # configured (Prefect not loaded yet, so no in-process settings either).
            if not _profile_names_a_server():
                self._early = True
                env = dict(os.environ)
        else:  # loaded already, so reading its settings here costs nothing
            from prefect.settings import (
                PREFECT_API_URL,
                PREFECT_SERVER_EPHEMERAL_ENABLED,
                get_current_settings,
            )

            if not PREFECT_API_URL.value() and PREFECT_SERVER_EPHEMERAL_ENABLED.value():
                settings = get_current_settings().to_environment_variables(exclude_unset=True)
                env = {**os.environ, **settings}
        # Not a daemon (it would be killed mid-Popen at exit); stop() ends its wait, so
        # an exit waits little.
        self._thread = threading.Thread(
            target=self._start, args=(env,), name="prefect-server-start"
        )
        self._thread.start()

    def _start(self, env: dict[str, str] | None) -> None:
        if env is None:
            return
        try:
            # This thread and the server it starts yield the cores to the engines' start-up
            # (a refused sweep waits for that, not for the server).
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
            self._launch(env)
            self._wait_until_healthy()
        except BaseException as exc:  # Prefect then starts its own, and says why it cannot
            self._error = exc
            self._terminate()  # the log stays: the error names it

    def _launch(self, env: dict[str, str]) -> None:
        """Start the server process (the command of Prefect's ``SubprocessASGIServer``)."""
        self._port = free_port()
        with self._starting:
            if self._stopped.is_set():
                return
            output = self._open_log(env)
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--app-dir",
                    _prefect_app_dir(),
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self._port),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                env={
                    **env,
                    "PREFECT_UI_ENABLED": "0",
                    "PREFECT__SERVER_EPHEMERAL": "1",
                    "PREFECT__SERVER_FINAL": "1",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": os.environ.get(
                        "PREFECT_SERVER_ANALYTICS_ENABLED", "false"
                    ),
                    # Registering block types imports every installed collection
                    # (prefect-dask, prefect-docker: 1.3 s of the server's start); a
                    # block saved by a client registers its own type.
                    "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
                    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
                },
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            if output is not subprocess.DEVNULL:
                os.close(output)

    def _open_log(self, env: dict[str, str]) -> int:
        """A new log file for the server's output under its ``PREFECT_HOME`` (an fd), or
        DEVNULL when that directory cannot be written."""
        home = Path(env.get("PREFECT_HOME") or "~/.prefect").expanduser()
        try:
            home.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="temporary-server-", suffix=".log", dir=home)
        except OSError:
            return subprocess.DEVNULL
        self._log = Path(name)
        return fd

    def _wait_until_healthy(self) -> None:
        process = self._process
        if process is None:
            return  # stopped before it was launched
        url = f"http://127.0.0.1:{self._port}/api"
        deadline = time.monotonic() + _HEALTH_TIMEOUT
        while time.monotonic() < deadline and not self._stopped.is_set():
            if process.poll() is not None:
                raise RuntimeError(
                    f"the temporary Prefect server exited with {process.returncode}"
                    f" (its output: {self._log})"
                )
            if answers(url):
                self.api_url = url
                if self._log is not None:  # it came up: its output is nobody's concern
                    self._log.unlink(missing_ok=True)
                return
            self._stopped.wait(0.1)
        if self._stopped.is_set():
            self._terminate()
            return
        raise TimeoutError(
            f"the temporary Prefect server was not healthy within {_HEALTH_TIMEOUT:.0f} s"
            f" (its output: {self._log})"
        )

    @contextmanager
    def use(self) -> Iterator[None]:
        """Wait for the server, and point this process's Prefect at it for the block."""
        self._thread.join()
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_SERVER_EPHEMERAL_ENABLED,
            temporary_settings,
        )

        if self._early and (
            PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value()
        ):  # Prefect's settings name a server (or allow none): its own behaviour
            self.stop()
            self.api_url = None
        if self.api_url is None:
            yield  # Prefect's own behaviour (its own temporary server, or the configured one)
            return

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            try:
                yield
            finally:  # deliver the flow's last logs and events before the server stops
                APILogWorker.drain_all(timeout=5)
                EventsWorker.drain_all(timeout=5)

    def stop(self) -> None:
        """Stop the server if this object started one; never waits for a start under way."""
        self._stopped.set()
        with self._starting:
            self._terminate()

    def _terminate(self) -> None:
        """SIGTERM now; reap (or SIGKILL after 5 s) in the background, so the caller goes on.

        Once only: stop() and this object's own thread (seeing the stop) both call it,
        the thread maybe while the interpreter exits, when no thread may start. The
        log goes unless the server failed, whose error names it (a running server
        still writes to the unlinked file).
        """
        with self._terminating:
            if self._log is not None and self._error is None:
                self._log.unlink(missing_ok=True)
            process = self._process
            if process is None or self._terminated or process.poll() is not None:
                return
            self._terminated = True
        process.terminate()

        def reap() -> None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        threading.Thread(target=reap, name="prefect-server-stop", daemon=True).start()
