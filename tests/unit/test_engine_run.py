"""engine/run.py against a fake ``gmat_run`` (tests/unit/fakes.py): one run's outcome for
every way it can end, the worker.log it leaves, the Parquet it writes, and validate()."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from prefect_gmat.core.layout import GMAT_LOG, GMAT_LOG_MARK, WORKER_LOG, split_gmat_log
from prefect_gmat.core.records import Outcome, Problem, RunJob, ValidateJob, sha256_file
from prefect_gmat.engine.run import (
    _with_time_column,
    _write_parquet,
    execute,
    failed_outcome,
    validate,
)
from tests.unit.conftest import FAKE_ENGINE_ROOT
from tests.unit.fakes import (
    LOAD_LOG,
    FakeGmatRun,
    FakeGmatRunError,
    FakeMission,
    FakeResults,
    RaisingMapping,
)

#: What log_excerpt keeps of LOAD_LOG: the flagged lines and the script line GMAT quotes.
LOAD_EXCERPT = (
    'Interpreter Exception: Cannot find object named "Satt" in line:\n'
    '   "Satt.SMA = 7000;"\n'
    "Script load failed"
)


def _job(tmp_path: Path, script: Path, **extra: Any) -> RunJob:
    fields: dict[str, Any] = {
        "run_id": 3,
        "script_path": str(script),
        "overrides": {"Sat.SMA": 7100.0, "Sat.ECC": 0.02},
        "run_dir": str(tmp_path / "out" / "run-3"),
    } | extra
    return RunJob(**fields)


def _worker_log(job: RunJob) -> str:
    return (Path(job.run_dir) / WORKER_LOG).read_text(encoding="utf-8")


def _orbit() -> pd.DataFrame:
    epochs = pd.date_range("2026-01-01", periods=3, freq="30s")
    return pd.DataFrame({"Sat.UTCGregorian": epochs, "Sat.X": [7100.0, 7099.5, 7098.0]})


def _solver(converged: bool) -> pd.DataFrame:
    frame = pd.DataFrame({"iteration": [0, 1], "TOI.Element1": [0.1, 0.12]})
    frame.attrs["converged"] = converged
    return frame


def _assert_failed(outcome: Outcome, job: RunJob, kind: str) -> None:
    assert outcome.status == "failed" and not outcome.ok
    assert outcome.failure == kind
    assert outcome.run_id == job.run_id and outcome.overrides == job.overrides
    assert outcome.output_paths == {} and outcome.output_sha256 == {}
    assert outcome.started_at <= outcome.ended_at
    assert outcome.log_path == str(Path(job.run_dir) / WORKER_LOG)
    assert f"status=failed failure={kind}: {outcome.error}" in _worker_log(job)


# --- the ok path -----------------------------------------------------------------------------


def test_an_ok_run_writes_each_output_as_parquet_with_its_hash(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    def run(mission: FakeMission, working_dir: Path) -> FakeResults:
        return FakeResults(
            reports={"Orbit": _orbit()},
            ephemerides={"Ephem": _orbit().rename(columns={"Sat.UTCGregorian": "Epoch"})},
            solver_runs={"DC1": _solver(True), "DC2": _solver(False)},
            log="Mission run completed.\n",
        )

    fake_gmat_run.run_hook = run
    job = _job(tmp_path, script)
    outcome = execute(job)

    assert outcome.ok and outcome.failure is None and outcome.error is None
    run_dir = Path(job.run_dir)
    assert outcome.output_paths == {
        "report__Orbit": str(run_dir / "report__Orbit.parquet"),
        "ephemeris__Ephem": str(run_dir / "ephemeris__Ephem.parquet"),
    }
    assert outcome.solver_paths == {
        "DC1": str(run_dir / "solver__DC1.parquet"),
        "DC2": str(run_dir / "solver__DC2.parquet"),
    }
    assert outcome.converged == {"DC1": True, "DC2": False}
    every_file = {**outcome.output_paths, **outcome.solver_paths}
    assert outcome.output_sha256 == {key: sha256_file(p) for key, p in every_file.items()}
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [WORKER_LOG, *(Path(p).name for p in every_file.values())]
    )  # no temporary file left behind

    report = pd.read_parquet(outcome.output_paths["report__Orbit"])
    assert list(report.columns) == ["Sat.UTCGregorian", "Sat.X", "time"]  # gmat-sweep's key
    assert (report["time"] == report["Sat.UTCGregorian"]).all()
    pd.testing.assert_frame_equal(
        pd.read_parquet(outcome.solver_paths["DC1"]), _solver(True), check_like=True
    )

    mission = fake_gmat_run.mission
    assert fake_gmat_run.loads == [(str(script), FAKE_ENGINE_ROOT)]
    assert mission.writes == [("Sat.SMA", 7100.0), ("Sat.ECC", 0.02)]  # in the job's order
    assert mission.run_calls == [{"working_dir": run_dir, "overwrite": True}]
    log = _worker_log(job)
    assert f"run_id=3 script={script}" in log
    assert "overrides={'Sat.SMA': 7100.0, 'Sat.ECC': 0.02}" in log
    assert f"{GMAT_LOG_MARK}\nMission run completed." in log
    assert "status=ok duration_s=" in log
    assert outcome.log_path == str(run_dir / WORKER_LOG)
    assert outcome.started_at <= outcome.ended_at


def test_an_ok_run_with_no_outputs_and_no_log(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    job = _job(tmp_path, script, overrides={})
    outcome = execute(job)
    assert outcome.ok and outcome.output_paths == {} and outcome.output_sha256 == {}
    assert GMAT_LOG_MARK not in _worker_log(job)
    assert fake_gmat_run.mission.writes == []


def test_the_engine_log_points_at_the_run_while_the_script_loads(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    job = _job(tmp_path, script)
    execute(job)
    assert fake_gmat_run.gmat.log_files == [str(Path(job.run_dir) / GMAT_LOG), os.devnull]


def test_a_run_directory_is_made_as_deep_as_needed(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    job = _job(tmp_path, script, run_dir=str(tmp_path / "a" / "b" / "run-0"))
    assert execute(job).ok
    assert (tmp_path / "a" / "b" / "run-0" / WORKER_LOG).is_file()


# --- postprocess hooks -----------------------------------------------------------------------


def test_a_hooks_files_are_kept_and_hashed_beside_the_reports(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    fake_gmat_run.run_hook = lambda mission, wd: FakeResults(reports={"Orbit": _orbit()})
    job = _job(tmp_path, script, postprocess="tests.unit.hooks:write_summary")
    outcome = execute(job)
    summary = Path(job.run_dir) / "summary.txt"
    assert outcome.ok and outcome.postprocess_status == "ok"
    assert outcome.extra_outputs == {"summary": str(summary)}  # made absolute
    assert summary.read_text() == "run 3: report__Orbit\n"  # the hook saw the outcome
    assert outcome.output_sha256 == {
        "report__Orbit": sha256_file(outcome.output_paths["report__Orbit"]),
        "extra:summary": sha256_file(summary),
    }
    assert "postprocess tests.unit.hooks:write_summary wrote" in _worker_log(job)


@pytest.mark.parametrize(
    ("hook", "cause"),
    [
        ("raise_error", "RuntimeError: no miss distance for run 3"),
        ("return_a_list", "TypeError: the hook must return a mapping"),
        ("return_a_missing_file", "FileNotFoundError: the hook returned 'summary'"),
    ],
)
def test_a_hook_that_fails_fails_the_run(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun, hook: str, cause: str
) -> None:
    job = _job(tmp_path, script, postprocess=f"tests.unit.hooks:{hook}")
    outcome = execute(job)
    _assert_failed(outcome, job, "postprocess")
    assert not outcome.transient  # the same run fails the same way again
    assert outcome.postprocess_status == "failed" and outcome.extra_outputs == {}
    assert outcome.error is not None
    assert outcome.error.startswith(f"postprocess hook tests.unit.hooks:{hook} raised {cause}")
    assert outcome.log_excerpt is not None  # the traceback's flagged lines, ending with
    assert outcome.log_excerpt.splitlines()[-1].startswith(cause)  # the exception itself


# --- failures --------------------------------------------------------------------------------


def test_a_script_that_does_not_load_fails_with_the_gmat_log_lines_that_say_why(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    fake_gmat_run.load_log = LOAD_LOG
    job = _job(tmp_path, script)
    outcome = execute(job)
    _assert_failed(outcome, job, "load")
    assert outcome.error == f"GMAT could not load {script}"
    assert outcome.log_excerpt == LOAD_EXCERPT
    assert not outcome.transient
    log = _worker_log(job)
    _, gmat_log = split_gmat_log(log)
    assert gmat_log is not None and LOAD_LOG.strip() in gmat_log  # the whole log, in worker.log
    assert fake_gmat_run.gmat.log_files[-1] == os.devnull  # the engine log is closed again


def test_a_field_the_script_cannot_take_fails_the_run_before_it_starts(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    fake_gmat_run.refuse = lambda key, value: "ECC > 1" if key == "Sat.ECC" else None
    job = _job(tmp_path, script, overrides={"Sat.SMA": 7100.0, "Sat.ECC": 1.5, "Sat.INC": 1.0})
    outcome = execute(job)
    _assert_failed(outcome, job, "field")
    assert outcome.error == "GMAT rejected write to 'Sat.ECC': ECC > 1"
    assert outcome.log_excerpt is None
    assert fake_gmat_run.mission.writes == [("Sat.SMA", 7100.0), ("Sat.ECC", 1.5)]  # then stop
    assert fake_gmat_run.mission.run_calls == []


def test_an_unknown_field_fails_the_run_with_gmat_runs_message(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    job = _job(tmp_path, script, overrides={"Sat.SMAA": 7100.0})
    outcome = execute(job)
    _assert_failed(outcome, job, "field")
    assert outcome.error == "unknown field 'SMAA' on Spacecraft; did you mean: SMA?"


def test_an_engine_failure_keeps_the_log_gmat_run_captured(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    def run(mission: FakeMission, working_dir: Path) -> FakeResults:
        raise FakeGmatRunError(
            "GMAT mission run failed",
            "Propagating...\n**** ERROR **** Integrator step size below minimum\n",
        )

    fake_gmat_run.run_hook = run
    job = _job(tmp_path, script)
    outcome = execute(job)
    _assert_failed(outcome, job, "engine")
    assert outcome.error == "GMAT mission run failed"
    assert outcome.log_excerpt == "**** ERROR **** Integrator step size below minimum"
    assert "Propagating..." in _worker_log(job)  # the whole log is kept in worker.log


def test_an_engine_failure_without_a_captured_log_reads_the_runs_gmat_log(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    def run(mission: FakeMission, working_dir: Path) -> FakeResults:
        (working_dir / GMAT_LOG).write_text("Warning: Sat crossed the Earth's surface\n")
        raise FakeGmatRunError("GMAT mission run failed", "")

    fake_gmat_run.run_hook = run
    job = _job(tmp_path, script)
    outcome = execute(job)
    _assert_failed(outcome, job, "engine")
    assert outcome.log_excerpt == "Warning: Sat crossed the Earth's surface"


def test_a_run_directory_gmat_cannot_write_is_an_io_failure(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    def run(mission: FakeMission, working_dir: Path) -> FakeResults:
        raise FakeGmatRunError(f"cannot write into {working_dir}", "", path=working_dir)

    fake_gmat_run.run_hook = run
    job = _job(tmp_path, script)
    outcome = execute(job)
    _assert_failed(outcome, job, "io")
    assert outcome.transient and outcome.log_excerpt is None


def test_a_full_disk_is_an_io_failure_worth_a_retry(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=1024))

    def run(mission: FakeMission, working_dir: Path) -> FakeResults:
        raise FakeGmatRunError("GMAT mission run failed", "**** ERROR **** write failed\n")

    fake_gmat_run.run_hook = run
    job = _job(tmp_path, script)
    outcome = execute(job)
    _assert_failed(outcome, job, "io")
    assert outcome.transient
    assert outcome.error == (
        f"no space left on the disk holding {job.run_dir}: GMAT mission run failed"
    )


def test_output_that_cannot_be_read_back_is_an_internal_failure(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    """gmat-run parses outputs lazily: a report GMAT never wrote raises on access."""
    broken = RaisingMapping(ValueError("cannot parse report Orbit: no header line"))
    fake_gmat_run.run_hook = lambda mission, wd: FakeResults(reports=broken)
    job = _job(tmp_path, script)
    outcome = execute(job)
    _assert_failed(outcome, job, "internal")
    assert outcome.error == "ValueError: cannot parse report Orbit: no header line"
    assert outcome.transient
    assert outcome.log_excerpt is not None and "ValueError" in outcome.log_excerpt


def test_output_that_cannot_be_written_is_an_io_failure(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: pd.DataFrame, path: Any, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", refuse)
    fake_gmat_run.run_hook = lambda mission, wd: FakeResults(reports={"Orbit": _orbit()})
    job = _job(tmp_path, script)
    outcome = execute(job)
    _assert_failed(outcome, job, "io")
    assert outcome.error is not None
    assert outcome.error.startswith(f"cannot write the run's output under {job.run_dir}")


def test_a_run_directory_that_cannot_be_made_is_an_io_failure_not_an_exception(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the sweep directory should be")
    job = _job(tmp_path, script)  # run_dir is out/run-3: under a file
    outcome = execute(job)
    assert outcome.failure == "io" and outcome.transient
    assert outcome.error is not None and "cannot create the run directory" in outcome.error
    assert fake_gmat_run.loads == []


def test_any_fault_in_a_field_write_becomes_a_failed_outcome(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    def refuse(key: str, value: Any) -> str | None:
        raise TypeError("in method 'GmatBase_SetField', argument 3 of type 'Real'")

    fake_gmat_run.refuse = refuse
    job = _job(tmp_path, script)
    outcome = execute(job)
    assert outcome.failure == "field"


# --- failed_outcome --------------------------------------------------------------------------


def test_failed_outcome_appends_the_cause_and_the_gmat_log_to_worker_log(
    tmp_path: Path, script: Path
) -> None:
    job = _job(tmp_path, script)
    Path(job.run_dir).mkdir(parents=True)
    (Path(job.run_dir) / WORKER_LOG).write_text("earlier line\n")
    outcome = failed_outcome(job, "timeout", "no reply in 600 s", 12.0, log=LOAD_LOG)
    assert (outcome.run_id, outcome.status, outcome.failure) == (3, "failed", "timeout")
    assert outcome.error == "no reply in 600 s" and outcome.started_at == 12.0
    assert outcome.ended_at >= 12.0
    assert outcome.log_excerpt == LOAD_EXCERPT
    log = _worker_log(job)
    assert log.startswith("earlier line\n")  # appended, never overwritten
    lines = log.splitlines()
    assert lines[1].endswith(" status=failed failure=timeout: no reply in 600 s")
    assert lines[2].endswith(f" {GMAT_LOG_MARK}")
    assert log.split(f"{GMAT_LOG_MARK}\n", 1)[1] == LOAD_LOG + "\n"  # the whole log


def test_failed_outcome_without_a_log_adds_no_mark_and_makes_the_directory(
    tmp_path: Path, script: Path
) -> None:
    job = _job(tmp_path, script)
    outcome = failed_outcome(job, "crashed", "worker died: signal 9 (SIGKILL)", 1.0)
    assert outcome.log_excerpt is None
    log = _worker_log(job)
    assert "failure=crashed: worker died" in log and GMAT_LOG_MARK not in log


def test_failed_outcome_never_raises_when_the_log_cannot_be_written(
    tmp_path: Path, script: Path
) -> None:
    (tmp_path / "out").write_text("a file")
    job = _job(tmp_path, script)
    outcome = failed_outcome(job, "io", "disk gone", 1.0, log="Error: x")
    assert outcome.failure == "io" and outcome.log_excerpt == "Error: x"


# --- Parquet helpers -------------------------------------------------------------------------


def test_the_first_datetime_column_is_copied_to_time() -> None:
    frame = pd.DataFrame(
        {
            "Sat.ElapsedSecs": [0.0, 30.0],
            "Sat.UTCGregorian": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            "Sat.TAIGregorian": pd.to_datetime(["2026-02-01", "2026-02-02"]),
        }
    )
    timed = _with_time_column(frame)
    assert list(timed.columns) == [*frame.columns, "time"]
    assert timed["time"].tolist() == frame["Sat.UTCGregorian"].tolist()
    assert "time" not in frame.columns  # the report itself is left alone


def test_a_frame_with_time_or_without_dates_is_kept_as_it_is() -> None:
    with_time = pd.DataFrame({"time": [1.0], "Sat.Epoch": pd.to_datetime(["2026-01-01"])})
    assert _with_time_column(with_time) is with_time
    numbers = pd.DataFrame({"Sat.ElapsedSecs": [0.0, 30.0], "Sat.X": [1.0, 2.0]})
    assert _with_time_column(numbers) is numbers


def test_duplicate_column_names_get_numbered_suffixes(tmp_path: Path) -> None:
    """A ReportFile may list a parameter twice; Parquet needs unique names."""
    frame = pd.DataFrame([[1, 2, 3, 4, 5]], columns=["a", "b", "a", "a", "b"])
    path = tmp_path / "report__R.parquet"
    assert _write_parquet(path, frame) == str(path)
    written = pd.read_parquet(path)
    assert list(written.columns) == ["a", "b", "a.1", "a.2", "b.1"]
    assert written.iloc[0].tolist() == [1, 2, 3, 4, 5]
    assert list(frame.columns) == ["a", "b", "a", "a", "b"]  # the caller's frame is unchanged
    assert os.listdir(tmp_path) == [path.name]  # the temporary file was renamed into place


def test_a_parquet_write_replaces_an_earlier_file(tmp_path: Path) -> None:
    path = tmp_path / "report__R.parquet"
    path.write_bytes(b"an earlier run's half-written file")
    _write_parquet(path, pd.DataFrame({"x": [1.0]}))
    assert pd.read_parquet(path)["x"].tolist() == [1.0]


def test_duplicate_suffixes_never_collide_with_real_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame([[1, 2, 3]], columns=["a", "a", "a.1"])
    _write_parquet(tmp_path / "r.parquet", frame)
    assert len(set(pd.read_parquet(tmp_path / "r.parquet").columns)) == 3


# --- validate --------------------------------------------------------------------------------


def _validate(
    tmp_path: Path, script: Path, values: dict[str, list[Any]], **extra: Any
) -> list[Problem]:
    job = ValidateJob(str(script), values, log_dir=str(tmp_path / "logs"), **extra)
    return validate(job)


def test_values_the_script_takes_are_no_problem(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    problems = _validate(tmp_path, script, {"Sat.SMA": [7000, 7100.5], "Prop.Type": ["RK89"]})
    assert problems == []
    mission = fake_gmat_run.mission
    assert mission.resources["Sat"]["SMA"] == 7000.0  # each field set back as loaded
    assert mission.resources["Prop"]["Type"] == "PrinceDormand78"
    assert ("Sat.SMA", 7100.5) in mission.writes
    assert list((tmp_path / "logs").iterdir()) == []  # the load log is removed


def test_a_script_that_does_not_load_is_one_problem_with_the_log_excerpt(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    fake_gmat_run.load_log = LOAD_LOG
    problems = _validate(tmp_path, script, {"Sat.SMA": [7000]})
    assert len(problems) == 1
    assert problems[0].field == "script"
    assert f"GMAT cannot load {script}" in problems[0].message
    assert problems[0].log_excerpt == LOAD_EXCERPT
    assert list((tmp_path / "logs").iterdir()) == []


def test_a_script_that_creates_nothing_is_not_a_gmat_script(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    fake_gmat_run.resources = {}
    (problem,) = _validate(tmp_path, script, {"Sat.SMA": [7000]})
    assert problem.field == "script" and "defines no resources" in problem.message


def test_a_misspelt_resource_is_named_with_the_likely_one(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    (problem,) = _validate(tmp_path, script, {"Satt.SMA": [7000]})
    assert problem.field == "Satt.SMA"
    assert problem.message == (
        "'Satt.SMA': the script has no resource named 'Satt'. Did you mean 'Sat.SMA'?"
    )


def test_an_unknown_resource_lists_the_scripts_resources(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    (problem,) = _validate(tmp_path, script, {"Thruster1.Isp": [300]})
    assert problem.message.endswith(
        "Its resources are: Sat, Prop, "
        + ", ".join(("EarthMJ2000Eq", "EarthMJ2000Ec", "EarthFixed", "EarthICRF"))
        + "."
    )


def test_a_misspelt_field_is_named_with_gmat_runs_suggestions(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    (problem,) = _validate(tmp_path, script, {"Sat.SMAA": [7000]})
    assert problem.field == "Sat.SMAA"
    assert problem.message == (
        "'Sat.SMAA': unknown field 'SMAA' on Spacecraft. Did you mean 'Sat.SMA'?"
    )


def test_each_value_the_field_refuses_is_a_problem_and_every_field_is_checked(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    fake_gmat_run.refuse = lambda key, value: "ECC > 1" if key == "Sat.ECC" and value > 1 else None
    problems = _validate(
        tmp_path,
        script,
        {"Sat.ECC": [0.1, 1.5, 2.0], "Sat.SMA": ["far"], "Satt.INC": [1], "Sat.INC": [28.5]},
    )
    assert [(p.field, p.value) for p in problems] == [
        ("Sat.ECC", 1.5),
        ("Sat.ECC", 2.0),
        ("Sat.SMA", "far"),
        ("Satt.INC", None),
    ]
    assert problems[0].message == (
        "'Sat.ECC' cannot take 1.5: GMAT rejected write to 'Sat.ECC': ECC > 1"
    )
    assert "expected float, got str" in problems[2].message
    assert fake_gmat_run.mission.resources["Sat"]["ECC"] == 0.001  # set back as loaded


def test_a_string_field_cannot_be_drawn_from_a_distribution(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    problems = _validate(
        tmp_path,
        script,
        {"Sat.DisplayStateType": [0.5], "Sat.SMA": [7000.5]},
        drawn=("Sat.DisplayStateType", "Sat.SMA"),
    )
    assert [p.field for p in problems] == ["Sat.DisplayStateType"]
    assert "is a string field (it is 'Keplerian' in the script)" in problems[0].message


def test_a_field_whose_value_cannot_be_set_back_is_still_checked(
    tmp_path: Path, script: Path, fake_gmat_run: FakeGmatRun
) -> None:
    """A calculated field may refuse its own read-back value; that is no problem."""
    fake_gmat_run.refuse = lambda key, value: "read-only form" if value == 7000.0 else None
    assert _validate(tmp_path, script, {"Sat.SMA": [7100]}) == []
