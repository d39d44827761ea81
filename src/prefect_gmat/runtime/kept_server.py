"""One local Prefect server kept for every sweep from the shell: ``prefect-gmat server``.

Without ``PREFECT_API_URL`` each sweep starts a temporary server of its own
(:mod:`prefect_gmat.runtime.ephemeral`) and stops it at the end; its start is most of
a small sweep's time and its flow runs are gone with it. :func:`start` starts
Prefect's own ``prefect server start --background`` on 127.0.0.1 (port 4200, or a
free one when that is taken), waits until it answers, and writes its URL into the
active Prefect profile: every later sweep, from any shell, runs against it and shows
in its UI. A server already named by the environment or the profile that answers is
used as it is. :func:`stop` stops the server (``prefect server stop``) and takes the
URL out of the profile again, if this module put it there (a marker file in
``PREFECT_HOME`` says so).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prefect_gmat.errors import PrefectServerError
from prefect_gmat.runtime.ephemeral import answers, free_port

__all__ = ["KeptServer", "start", "status", "stop"]

DEFAULT_PORT = 4200
_HEALTH_TIMEOUT = 120.0
_MARKER = "prefect-gmat-server.json"


@dataclass(frozen=True, slots=True)
class KeptServer:
    """The server sweeps use: its API URL, and where that was found or how it was started."""

    api_url: str
    source: str  # "started", "profile" or "environment"

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _home() -> Path:
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()).expanduser()


def _profile_url() -> str | None:
    """The server URL the active profile names (not the environment's)."""
    from prefect.settings import PREFECT_API_URL, load_current_profile

    value = load_current_profile().settings.get(PREFECT_API_URL)
    return str(value) if value else None


def status() -> KeptServer | None:
    """The server a sweep here would use, if one is named and answers."""
    if url := os.environ.get("PREFECT_API_URL"):
        return KeptServer(url, "environment") if answers(url) else None
    url = _profile_url()
    return KeptServer(url, "profile") if url and answers(url) else None


def start(port: int | None = None) -> KeptServer:
    """Use the server already named, or start one and name it in the active profile."""
    if url := os.environ.get("PREFECT_API_URL"):
        if answers(url):
            return KeptServer(url, "environment")
        raise PrefectServerError(
            f"PREFECT_API_URL={url} is set in this shell, but nothing answers there: start "
            "that server, or `unset PREFECT_API_URL` and run `prefect-gmat server` again.",
            url=url,
        )
    named = _profile_url()
    if named and answers(named):
        return KeptServer(named, "profile")
    if named and named != _marked_url():
        raise PrefectServerError(
            f"the Prefect profile names a server at {named}, but nothing answers there: start "
            "that server, or `prefect config unset PREFECT_API_URL` and run `prefect-gmat "
            "server` again.",
            url=named,
        )
    if named:  # ours, and gone (a reboot): Prefect's PID file may still say it runs
        _prefect_server_stop()
    if port is None:
        port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    command = [sys.executable, "-m", "prefect", "server", "start", "--background"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = _server_env()
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    launched = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if launched.returncode != 0:
        raise PrefectServerError(
            f"`prefect server start --background` failed with {launched.returncode}: "
            f"{_tail(launched.stdout + launched.stderr)}",
            url=api_url,
            output=launched.stdout + launched.stderr,
        )
    deadline = time.monotonic() + _HEALTH_TIMEOUT
    while not answers(api_url):
        if time.monotonic() > deadline:
            _prefect_server_stop()
            raise PrefectServerError(
                f"the Prefect server on port {port} did not answer within "
                f"{_HEALTH_TIMEOUT:.0f} s; it was stopped.",
                url=api_url,
            )
        time.sleep(0.2)
    from prefect.settings import update_current_profile

    update_current_profile({"PREFECT_API_URL": api_url})
    (_home() / _MARKER).write_text(json.dumps({"api_url": api_url}), encoding="utf-8")
    return KeptServer(api_url, "started")


def stop() -> str | None:
    """Stop the server :func:`start` started and take its URL out of the profile; the URL
    it had, or None when there was none."""
    api_url = _marked_url()
    if api_url is None:
        return None
    _prefect_server_stop()
    if _profile_url() == api_url:
        from prefect.settings import update_current_profile

        update_current_profile({"PREFECT_API_URL": None})
    (_home() / _MARKER).unlink(missing_ok=True)
    return api_url


def _marked_url() -> str | None:
    """The URL :func:`start` wrote into the profile, from its marker (None: no marker)."""
    try:
        marker = json.loads((_home() / _MARKER).read_text(encoding="utf-8"))
        return str(marker["api_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _server_env() -> dict[str, str]:
    """This environment for ``prefect server`` commands: the local server's own, whatever
    URL the shell names."""
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}


def _prefect_server_stop() -> None:
    subprocess.run(
        [sys.executable, "-m", "prefect", "server", "stop"],
        env=_server_env(),
        capture_output=True,
        check=False,
    )


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
