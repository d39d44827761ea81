"""``prefect-gmat server``: one local Prefect server for every later sweep, from one command.

As a first-time user runs it: a fresh PREFECT_HOME, no PREFECT_API_URL, the console
script in a shell. The port is a free one (a user's own server may hold 4200).
"""

from __future__ import annotations

import json
import tomllib
import urllib.request
from pathlib import Path

import pytest

from prefect_gmat.runtime.ephemeral import answers, free_port
from tests.support.users import STRAY, run_cli, users_env

pytestmark = pytest.mark.slow


def _flow_run_names(api_url: str) -> list[str]:
    request = urllib.request.Request(
        f"{api_url}/flow_runs/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return [run["name"] for run in json.load(reply)]


def _profile(home: Path) -> dict[str, str]:
    data = tomllib.loads((home / "profiles.toml").read_text(encoding="utf-8"))
    profile: dict[str, str] = data["profiles"][data.get("active", "ephemeral")]
    return profile


def test_one_command_keeps_a_server_for_every_later_sweep(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    env = users_env(home)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        started = run_cli("server", "--port", str(port), cwd=tmp_path, env=env)
        assert started.returncode == 0, started.stderr
        assert f"started a Prefect server at {api_url}" in started.stdout
        assert answers(api_url)
        assert _profile(home)["PREFECT_API_URL"] == api_url

        # A later sweep in a new shell (the same env: nothing exported) runs against it.
        demo = run_cli("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path, env=env)
        assert demo.returncode == 0, demo.stderr
        assert not [s for s in STRAY if s in demo.stdout + demo.stderr], demo.stderr
        assert "sweep-leo_short-10pts" in _flow_run_names(api_url)

        again = run_cli("server", cwd=tmp_path, env=env)
        assert again.returncode == 0 and "already run against" in again.stdout, again.stdout
        status = run_cli("server", "status", cwd=tmp_path, env=env)
        assert status.returncode == 0 and api_url in status.stdout
    finally:
        stopped = run_cli("server", "stop", cwd=tmp_path, env=env)
    assert stopped.returncode == 0 and api_url in stopped.stdout, stopped.stderr
    assert not answers(api_url)
    assert "PREFECT_API_URL" not in _profile(home)
    status = run_cli("server", "status", cwd=tmp_path, env=env)
    assert status.returncode == 1 and "temporary" in status.stdout


def test_a_server_named_in_the_shell_that_does_not_answer_is_named_with_the_fix(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api"
    env = {**users_env(tmp_path / "home"), "PREFECT_API_URL": dead}
    refused = run_cli("server", cwd=tmp_path, env=env)
    assert refused.returncode == 2
    assert dead in refused.stderr and "unset PREFECT_API_URL" in refused.stderr
    assert "Traceback" not in refused.stderr
