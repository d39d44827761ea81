"""Without PREFECT_API_URL: the temporary server started early, and a profile's server used.

The demo runs as a first-time user runs it: the console script in a real terminal.

The sweep's own temporary server is launched before the calling process imports
Prefect, unless the active profile names a server; Prefect's settings decide in
the end, so a server named anywhere else is still used (and the early one stopped).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from prefect import get_client
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL

from prefect_gmat.runtime.ephemeral import _profile_names_a_server
from tests.support.paths import REPO
from tests.support.users import STRAY, run_cli, users_env

pytestmark = pytest.mark.timeout(300)


def _demo(home: Path, out: Path, tty: bool = False) -> subprocess.CompletedProcess[str]:
    """``prefect-gmat demo`` in a new user's shell: no ``PREFECT_*`` setting but its home."""
    env = {k: v for k, v in users_env(home).items() if not k.startswith("PREFECT_")}
    return run_cli(
        "demo", "--out", str(out), cwd=REPO, env={**env, "PREFECT_HOME": str(home)}, tty=tty
    )


def _servers_of(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "prefect.server.api.server:create_app" in (proc.info["cmdline"] or []) and (
                proc.environ().get("PREFECT_HOME") == str(home)
            ):
                found.append(proc)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
def test_without_a_server_the_sweep_starts_its_own_and_stops_it(tmp_path: Path) -> None:
    """``prefect-gmat demo`` in a real terminal of a first-time user's shell: the live
    progress line reaches 10/10, nothing stray is printed, the flow run is in the new
    home's database, and the temporary server is gone after."""
    if shutil.which("script") is None:
        pytest.skip("util-linux `script` is needed for a pseudo-terminal")
    home = tmp_path / "home"
    done = _demo(home, tmp_path / "demo", tty=True)
    shown = done.stdout  # script(1) puts the terminal's output on stdout
    assert done.returncode == 0, shown[-3000:]
    assert not [s for s in STRAY if s in shown], shown[-3000:]
    assert "10/10 runs" in shown and "10 ok" in shown and "runs/s" in shown, shown[-3000:]
    assert "14 members, verified" in shown
    with sqlite3.connect(home / "prefect.db") as db:  # the flow run is in this home's database
        states = db.execute(
            "SELECT fr.state_type FROM flow_run fr JOIN flow f ON f.id = fr.flow_id "
            "WHERE f.name = 'gmat-sweep'"
        ).fetchall()
    assert states == [("COMPLETED",)]
    deadline = time.monotonic() + 10
    while _servers_of(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _servers_of(home), "the temporary server outlived the sweep"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_server_named_by_the_profile_is_used_and_none_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = str(PREFECT_API_URL.value())
    (home / "profiles.toml").write_text(
        f'active = "team"\n\n[profiles.team]\nPREFECT_API_URL = "{url}"\n'
    )
    out = tmp_path / "demo"
    done = _demo(home, out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (home / "prefect.db").exists(), "a temporary server was started"
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
    assert any(r.parameters.get("out") == str(out) for r in runs)


@pytest.mark.parametrize(
    ("profiles", "names_a_server"),
    [
        (None, False),
        ('active = "local"\n[profiles.local]\nPREFECT_LOGGING_LEVEL = "INFO"\n', False),
        ('active = "a"\n[profiles.a]\nPREFECT_API_URL = "http://h:4200/api"\n', True),
        ('active = "a"\n[profiles.a]\nPREFECT_SERVER_EPHEMERAL_ENABLED = "false"\n', True),
        ('active = "a"\n[profiles.b]\nPREFECT_API_URL = "http://h:4200/api"\n', False),
        ("not toml [", False),
    ],
)
def test_which_profiles_name_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profiles: str | None, names_a_server: bool
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    if profiles is not None:
        (tmp_path / "profiles.toml").write_text(profiles)
    assert _profile_names_a_server() is names_a_server
