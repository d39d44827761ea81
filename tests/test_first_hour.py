"""What a new user meets first, run the way they run it.

A plain script without a ``__main__`` guard (as a file, with ``-c``, from stdin),
a worker that cannot start saying why, bad input refused by the CLI with one
line and nothing written, and no progress line when stderr is redirected (the
live line in a real pseudo-terminal: tests/test_ephemeral.py, on the demo).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prefect_gmat.engine.install import resolve_engine
from prefect_gmat.engine.pool import WorkerPool
from prefect_gmat.errors import EngineNotFoundError
from tests.support.paths import DEMO_SCRIPT
from tests.support.users import STRAY, run_cli, users_env

pytestmark = pytest.mark.timeout(300)


def _tour(out: Path, marker: Path, knobs: str = "") -> str:
    """The README's first lines as a user saves them: no ``if __name__ == "__main__":``."""
    return textwrap.dedent(
        f"""
        from prefect_gmat import sweep
        with open({str(marker)!r}, "a") as seen:
            seen.write("top level ran\\n")
        df = sweep({str(DEMO_SCRIPT)!r}, grid={{"Sat.SMA": [7000, 7100, 7200]}},
                   out={str(out)!r}, workers=2{knobs})
        print(df["__status"].value_counts().to_dict())
        """
    )


@pytest.mark.slow
@pytest.mark.parametrize("how", ["file", "-c", "stdin"])
def test_an_unguarded_script_runs_once_and_sweeps(
    tmp_path: Path, how: str, prefect_api_env: dict[str, str]
) -> None:
    """The tour's plain script; as a file in a first-time user's shell (Prefect's temporary
    server, nothing stray printed), the other ways against the session's server."""
    env = users_env(tmp_path / "home") if how == "file" else prefect_api_env
    out, marker = tmp_path / "leo", tmp_path / "marker.txt"
    code = _tour(out, marker)
    if how == "file":
        script = tmp_path / "my_sweep.py"
        script.write_text(code)
        args, stdin = [sys.executable, str(script)], None
    elif how == "-c":
        args, stdin = [sys.executable, "-c", code], None
    else:  # a __main__ with no file, as in a REPL or a notebook
        args, stdin = [sys.executable, "-"], code
    done = subprocess.run(
        args,
        input=stdin,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "{'ok': 9}" in done.stdout
    assert not [s for s in STRAY if s in done.stderr], done.stderr[-3000:]
    assert marker.read_text() == "top level ran\n", "a worker re-ran the user's script"
    assert (out / "sweep_bundle.zip").is_file()


@pytest.mark.slow
def test_an_unguarded_script_runs_once_on_a_local_dask_cluster(
    tmp_path: Path, prefect_api_env: dict[str, str]
) -> None:
    """The README's ``dask="local"`` line: dask's worker processes would re-run the script."""
    out, marker = tmp_path / "leo", tmp_path / "marker.txt"
    script = tmp_path / "my_sweep.py"
    script.write_text(_tour(out, marker, ', dask="local"'))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=prefect_api_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "{'ok': 9}" in done.stdout
    assert marker.read_text() == "top level ran\n", "a dask worker re-ran the user's script"


def test_a_worker_that_cannot_start_shows_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure before the engine (here Python itself cannot start) is shown, not 'reinstall'."""
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "no-python-here"))
    with (
        pytest.raises(EngineNotFoundError) as caught,
        WorkerPool(resolve_engine().root, 1) as pool,
    ):
        pool.warm_up()
    message = str(caught.value)
    assert "Fatal Python error" in message  # the worker's own stderr
    assert "before starting the engine" in message
    assert "reinstall" not in message


def test_an_engine_that_cannot_start_says_to_check_the_install(tmp_path: Path) -> None:
    fake = tmp_path / "not-gmat"
    fake.mkdir()
    with pytest.raises(EngineNotFoundError) as caught, WorkerPool(fake, 1) as pool:
        pool.warm_up()
    message = str(caught.value)
    assert "could not start the engine" in message
    assert "GMAT_ROOT" in message and "reinstall" in message


@pytest.mark.parametrize(
    ("content", "option", "expected"),
    [
        (None, "Sat.SMAA=7000:7200:100", "Did you mean 'Sat.SMA'?"),
        (None, "Sat.DateFormat=Bogus", "is not an allowed value"),
        ("", "Sat.SMA=7000", "empty.script is empty"),
        ("% only a comment\n", "Sat.SMA=7000", "defines no resources"),
        ("Create Spacecraft Sat\nSat.SMA = \n", "Sat.SMA=7000", "GMAT cannot load"),
    ],
)
@pytest.mark.slow
def test_the_cli_refuses_bad_input_with_one_message(
    tmp_path: Path, content: str | None, option: str, expected: str
) -> None:
    """In a first-time user's shell (no server, a new PREFECT_HOME): the message, exit 2,
    nothing else (no import racing the exit), nothing written."""
    script = DEMO_SCRIPT
    if content is not None:
        script = tmp_path / "empty.script"
        script.write_text(content)
    out = tmp_path / "out"
    env = users_env(tmp_path / "home")
    done = run_cli("run", str(script), "-g", option, "-o", str(out), cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("prefect-gmat: error: "), done.stderr
    assert done.stderr.count("prefect-gmat: error: ") == 1, done.stderr
    assert expected in done.stderr
    assert not [s for s in STRAY if s in done.stderr], done.stderr
    assert done.stdout == ""
    assert not out.exists(), "a refused sweep wrote its directory"


@pytest.mark.slow
def test_a_call_after_importing_every_submodule_prints_nothing_stray(tmp_path: Path) -> None:
    """As a docs generator or an IDE indexer does: every module imported, then a design
    that the checks refuse; and the same for a plain import. Only the error is printed."""
    code = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        import prefect_gmat
        if sys.argv[1] == "walk":
            for found in pkgutil.walk_packages(prefect_gmat.__path__, "prefect_gmat."):
                importlib.import_module(found.name)
        try:
            prefect_gmat.monte_carlo({str(DEMO_SCRIPT)!r}, n=4, seed=1, out="out",
                                     perturb={{"Sat.SMAA": ("normal", 7000, 5)}})
        except prefect_gmat.SweepSpecError as exc:
            print("refused:", exc.field)
        """
    )
    for how in ("walk", "plain"):
        env = users_env(tmp_path / f"home-{how}")
        done = subprocess.run(
            [sys.executable, "-c", code, how],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout == "refused: Sat.SMAA\n", done.stdout
        assert not [s for s in STRAY if s in done.stderr], done.stderr[-3000:]
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_no_progress_line_when_stderr_is_redirected(
    tmp_path: Path, prefect_api_env: dict[str, str]
) -> None:
    grid = "Sat.SMA=7000:7200:100"
    done = run_cli(
        "run", str(DEMO_SCRIPT), "-g", grid, "-o", "leo", cwd=tmp_path, env=prefect_api_env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "runs/s" not in done.stderr and "3/3 runs" not in done.stderr
    assert "\x1b[" not in done.stderr  # no cursor control in a log file
