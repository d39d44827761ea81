"""core/layout.py: run folder names, the GMAT log appended to a cause, and where a run's
files are once the sweep directory moved."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from prefect_gmat.core.layout import (
    GMAT_LOG_MARK,
    RUN_DIR_GLOB,
    find_run_file,
    is_run_dir_name,
    portable_path,
    run_dir_name,
    run_file_candidates,
    run_id_of,
    split_gmat_log,
    with_gmat_log,
)


@pytest.mark.parametrize("run_id", [0, 7, 10, 99, 12345])
def test_a_run_folder_name_gives_back_its_run_id(run_id: int) -> None:
    name = run_dir_name(run_id)
    assert name == f"run-{run_id}"  # gmat-sweep's folder name, which its bundle reader expects
    assert is_run_dir_name(name)
    assert run_id_of(name) == run_id
    assert fnmatch.fnmatch(name, RUN_DIR_GLOB)


@pytest.mark.parametrize(
    "name", ["manifest.jsonl", "runs-40-59", "run7", "sweep_bundle.zip", ".prefect-results"]
)
def test_other_names_in_a_sweep_directory_are_not_run_folders(name: str) -> None:
    """``runs-40-59`` is a batch's task-run name, never a folder; it must not pass."""
    assert not is_run_dir_name(name)


def test_a_run_folder_name_is_run_dash_a_number() -> None:
    assert not is_run_dir_name("run-notes")


@pytest.mark.parametrize(
    ("text", "log"),
    [
        ("engine error: propagation failed", "line 1\nline 2"),
        ("worker died: signal 9 (SIGKILL)", '**** ERROR **** x\n   "Sat.SMA = -1;"'),
        ("timeout after 600 s", ""),
        ("multi\nline cause", "one line"),
    ],
)
def test_a_cause_and_its_gmat_log_split_back_apart(text: str, log: str) -> None:
    joined = with_gmat_log(text, log)
    assert joined == f"{text}\n{GMAT_LOG_MARK}\n{log}"
    assert split_gmat_log(joined) == (text, log)


def test_a_text_without_the_mark_has_no_gmat_log() -> None:
    assert split_gmat_log("worker died: signal 9") == ("worker died: signal 9", None)
    assert split_gmat_log("") == ("", None)


def test_split_trims_only_the_newlines_around_the_mark() -> None:
    cause, log = split_gmat_log(f"cause  \n\n{GMAT_LOG_MARK}\n\n  indented log\n")
    assert cause == "cause  "  # spaces are the cause's own
    assert log == "  indented log\n"


# --- files of a sweep directory that moved ------------------------------------------------


def test_a_path_inside_the_directory_is_written_relative_to_it(tmp_path: Path) -> None:
    root = tmp_path / "out"
    inside = str(root / "run-3" / "report__Orbit.parquet")
    assert portable_path(root, inside) == "run-3/report__Orbit.parquet"
    assert portable_path(root, "run-3/report__Orbit.parquet") == "run-3/report__Orbit.parquet"
    outside = str(tmp_path / "hooks" / "summary.txt")
    assert portable_path(root, outside) == outside  # a hook's file elsewhere stays absolute
    assert portable_path(root, str(tmp_path / "out-2" / "x")) == str(tmp_path / "out-2" / "x")


@pytest.mark.parametrize(
    ("root", "path"),
    [
        ("/data/out", "/data/out/run-1/report__RF.parquet"),
        ("/data/out/", "/data/out/run-1/report__RF.parquet"),
        ("/data//out", "/data/out/run-1/report__RF.parquet"),
        ("/data/out", "/data/out/./run-1/x"),
        ("/data/out", "/data/out//run-1/x"),
        ("/data/out", "/data/out/../out/run-1/x"),
        ("/data/out", "/data/out"),
        ("/data/out", "/data/outer/run-1/x"),
        ("/data/out", "/elsewhere/x"),
    ],
)
def test_a_path_is_made_relative_as_pathlib_would(root: str, path: str) -> None:
    try:
        expected = Path(path).relative_to(Path(root)).as_posix()
    except ValueError:
        expected = path
    assert portable_path(Path(root), path) == expected


def test_a_path_through_the_real_directory_of_a_symlinked_root_is_relative(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real"
    (real / "run-0").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert portable_path(link, str(real / "run-0" / "a.parquet")) == "run-0/a.parquet"


@pytest.mark.parametrize(
    ("recorded", "where"),
    [
        ("run-3/report__Orbit.parquet", "run-3"),  # relative: ours and a bundle's
        ("/old/disk/sweep/run-3/report__Orbit.parquet", "run-3"),  # the directory moved
        ("/old/disk/sweep/run-3/report__Orbit.parquet", "runs/run-3"),  # an unzipped bundle
        ("C:\\sweeps\\a\\run-3\\report__Orbit.parquet", "run-3"),  # written on Windows
    ],
)
def test_a_runs_file_is_found_in_the_directory_wherever_it_was_recorded(
    tmp_path: Path, recorded: str, where: str
) -> None:
    root = tmp_path / "moved"
    target = root / where / "report__Orbit.parquet"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"PAR1")
    assert find_run_file(root, 3, recorded) == target
    assert find_run_file(root, 4, "run-4/report__Orbit.parquet") is None


def test_the_directorys_own_copy_wins_over_the_file_where_the_sweep_once_was(
    tmp_path: Path,
) -> None:
    old = tmp_path / "old" / "run-1" / "report__R.parquet"
    new = tmp_path / "new" / "run-1" / "report__R.parquet"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"PAR1")
    assert find_run_file(tmp_path / "new", 1, str(old)) == new
    new.unlink()
    assert find_run_file(tmp_path / "new", 1, str(old)) == old  # the last resort
    candidates = run_file_candidates(tmp_path / "new", 1, str(old))
    assert candidates[-1] == old and len(candidates) == len(set(candidates))
