"""The prefect-gmat command: grid options, and run/show/archive/verify/demo for real."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from prefect_gmat.cli import main, parse_grid_option
from prefect_gmat.errors import SweepSpecError
from tests.support.paths import DEMO_SCRIPT, REPO

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("Sat.SMA=7000,7100", ("Sat.SMA", [7000, 7100])),
        ("Sat.SMA=7000:7300:100", ("Sat.SMA", [7000, 7100, 7200, 7300])),
        ("Sat.ECC=0.001:0.003:0.001", ("Sat.ECC", [0.001, 0.002, 0.003])),
        ("Sat.DateFormat=UTCGregorian", ("Sat.DateFormat", ["UTCGregorian"])),
        ("Flag.Value=true,false", ("Flag.Value", [True, False])),
    ],
)
def test_grid_options(option: str, expected: tuple[str, list[object]]) -> None:
    field, values = parse_grid_option(option)
    assert field == expected[0]
    assert values == pytest.approx(expected[1]) if field == "Sat.ECC" else values == expected[1]


@pytest.mark.parametrize("option", ["Sat.SMA", "=7000", "Sat.SMA=", "Sat.SMA=7300:7000:100"])
def test_bad_grid_options_say_how_to_write_them(option: str) -> None:
    with pytest.raises(SweepSpecError, match=r"Sat\.SMA|FIELD=VALUES|start <= stop"):
        parse_grid_option(option)


def test_run_show_archive_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "leo"
    assert main(["run", str(DEMO_SCRIPT), "-g", "Sat.SMA=7000:7200:100", "-o", str(out)]) == 0
    assert "shape (9, 5); status counts: {'ok': 9}" in capsys.readouterr().out
    assert main(["show", str(out)]) == 0
    assert "runs     3 recorded of 3: {'ok': 3}" in capsys.readouterr().out
    bundle = tmp_path / "handoff.zip"
    assert main(["archive", str(out), str(bundle), "--include-logs"]) == 0
    printed = capsys.readouterr().out
    assert "runs/run-2/worker.log" in printed and "verified" in printed
    assert main(["verify", str(bundle)]) == 0
    assert main(["archive", str(out), str(bundle)]) == 2  # exists: refused, not replaced
    assert "exists" in capsys.readouterr().err
    data = bytearray(bundle.read_bytes())
    data[100] ^= 0xFF
    bundle.write_bytes(bytes(data))
    assert main(["verify", str(bundle)]) == 2


def test_the_demo_command_end_to_end(tmp_path: Path) -> None:
    """What `./dev demo` runs, in a fresh process: the walkthrough grid, then its bundle."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run(
        [sys.executable, "-m", "prefect_gmat.cli", "demo", "--out", str(tmp_path / "demo")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shape (30, 5); status counts: {'ok': 30}" in done.stdout
    assert "14 members, verified" in done.stdout
    assert "runs/run-9/report__RF.parquet" in done.stdout
    assert "script/leo_short.script" in done.stdout


#: What makes Prefect's telemetry stay silent, so that a child runs as a first-time user's.
_NOT_A_USERS_TERMINAL = (
    "PREFECT_API_URL",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
    "DO_NOT_TRACK",
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "JENKINS_URL",
    "BUILDKITE",
    "TF_BUILD",
)


def _in_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``args`` with a pseudo-terminal as stdin, stdout and stderr; exit code, output."""
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        args, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=cwd
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    # Until the child exits and its output is read (a process it left may keep the
    # terminal open after it).
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: every process closed the terminal
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_a_refused_run_in_a_first_time_users_terminal_prints_only_its_error(
    tmp_path: Path,
) -> None:
    """A fresh Prefect home in a terminal makes Prefect queue a usage event, whose sending
    at exit once put a "can't create new thread at interpreter shutdown" traceback under
    the one-line refusal."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_A_USERS_TERMINAL}
    env["PREFECT_HOME"] = str(tmp_path / "fresh-home")
    command = [sys.executable, "-m", "prefect_gmat.cli", "run", str(DEMO_SCRIPT)]
    code, output = _in_a_terminal(
        [*command, "--grid", "Sat.SMAA=7000,7100", "--out", "bad"], env, tmp_path
    )
    assert code == 2, output
    assert "Did you mean 'Sat.SMA'" in output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    assert not (tmp_path / "bad").exists()
