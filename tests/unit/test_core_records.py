"""core/records.py, beside tests/test_records.py: the outcome's properties, old pickles,
the transient kinds, chunked hashing and the GMAT log excerpt."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import get_args

import pytest

from prefect_gmat.core.records import (
    TRANSIENT_FAILURES,
    FailureKind,
    Outcome,
    RunJob,
    log_excerpt,
    sha256_file,
)


@pytest.mark.parametrize("kind", get_args(FailureKind))
def test_only_timeouts_crashes_io_and_internal_faults_are_worth_a_retry(kind: str) -> None:
    outcome = Outcome(0, "failed", {}, failure=kind)  # type: ignore[arg-type]
    assert outcome.transient is (kind in {"timeout", "crashed", "io", "internal"})
    assert not outcome.ok


def test_every_transient_kind_is_a_failure_kind() -> None:
    assert set(get_args(FailureKind)) >= TRANSIENT_FAILURES


def test_an_ok_outcome_is_not_transient_and_its_duration_is_never_negative() -> None:
    ok = Outcome(3, "ok", {"Sat.SMA": 7000}, started_at=10.0, ended_at=12.5)
    assert ok.ok and not ok.transient
    assert ok.duration_s == 2.5
    clock_went_back = Outcome(3, "ok", {}, started_at=12.5, ended_at=10.0)
    assert clock_went_back.duration_s == 0.0


def test_with_attempts_is_a_copy() -> None:
    first = Outcome(1, "failed", {"Sat.SMA": 7000}, failure="crashed", error="killed")
    third = first.with_attempts(3)
    assert third.attempts == 3 and first.attempts == 1
    assert third.error == "killed" and third.failure == "crashed"


def test_a_job_names_its_run_directory_as_gmat_sweeps_run_spec_does(tmp_path: Path) -> None:
    job = RunJob(0, "/s.script", {}, run_dir=str(tmp_path / "run-0"))
    assert job.output_dir == tmp_path / "run-0"


def test_an_outcome_pickled_with_fewer_fields_gets_the_new_fields_defaults() -> None:
    """As an outcome persisted by an older version, whose state list is shorter."""
    old_state = [5, "ok", {"Sat.SMA": 7000}, {"report__R": "/r.parquet"}]
    restored = Outcome.__new__(Outcome)
    restored.__setstate__(old_state)
    assert restored.run_id == 5 and restored.output_paths == {"report__R": "/r.parquet"}
    assert restored.attempts == 1 and restored.postprocess_status == "none"
    assert restored.extra_outputs == {} and restored.carried == {}
    another = Outcome.__new__(Outcome)
    another.__setstate__(old_state)
    assert another.extra_outputs is not restored.extra_outputs  # a fresh default each time


def test_carried_bytes_survive_pickling_but_stay_out_of_the_repr() -> None:
    outcome = Outcome(0, "ok", {}, carried={"/out/run-0/a.parquet": b"\x00" * 10})
    assert pickle.loads(pickle.dumps(outcome)).carried == outcome.carried
    assert "carried" not in repr(outcome)


def test_sha256_file_hashes_a_file_bigger_than_its_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * 8200  # a little over 2 MiB: three reads of 1 MiB
    path = tmp_path / "big.parquet"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


# --- log_excerpt -----------------------------------------------------------------------------

LOAD_FAILURE = """\
GMAT Build Date : Jan  1 2026
Logging to "GmatLog.txt"
Moderator is updating data files...
Setting nutation file to /gmat/data/NUTATION.DAT

Interpreter Exception: Cannot find object named "Satt" in line:
   "Satt.SMA = 7000;"
Successfully set Planetary Source to use: DE405
Script load failed
"""


def test_the_excerpt_keeps_flagged_lines_and_the_script_line_gmat_quotes() -> None:
    assert log_excerpt(LOAD_FAILURE).splitlines() == [
        'Interpreter Exception: Cannot find object named "Satt" in line:',
        '   "Satt.SMA = 7000;"',
        "Script load failed",
    ]


def test_a_log_with_nothing_flagged_gives_its_last_lines_without_the_banner() -> None:
    log = "GMAT Build Date : Jan 1 2026\n" + "".join(f"step {i}\n\n" for i in range(30))
    excerpt = log_excerpt(log, limit=5).splitlines()
    assert excerpt == [f"step {i}" for i in range(25, 30)]
    assert log_excerpt("GMAT Build Date : x\nLogging to y\n") == ""


def test_the_excerpt_keeps_the_last_flagged_lines_up_to_the_limit() -> None:
    log = "\n".join(f"**** ERROR **** number {i}" for i in range(50))
    excerpt = log_excerpt(log, limit=3).splitlines()
    assert excerpt == [f"**** ERROR **** number {i}" for i in (47, 48, 49)]


def test_flags_match_whatever_the_case() -> None:
    log = "fine\nwarning: step size too small\nfine again\nCANNOT OPEN file x\n"
    assert log_excerpt(log).splitlines() == ["warning: step size too small", "CANNOT OPEN file x"]


def test_a_quoted_script_line_with_a_flag_word_is_shown_once() -> None:
    log = 'Interpreter Exception: unknown field in line:\n   "ErrorReport.Foo = 1;"\n'
    assert log_excerpt(log).splitlines() == [
        "Interpreter Exception: unknown field in line:",
        '   "ErrorReport.Foo = 1;"',
    ]
