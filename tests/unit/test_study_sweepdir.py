"""study/sweepdir.py on small directories written here (no engine runs): refusals before
anything is written, what each mode runs, the lock, output integrity, seeds, extensions."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from prefect_gmat.core.layout import BUNDLE_NAME, LOCK_NAME, MANIFEST_NAME, RESULTS_DIR
from prefect_gmat.core.records import sha256_file
from prefect_gmat.engine.install import Engine
from prefect_gmat.errors import ManifestError, SweepDirectoryError, SweepSpecError
from prefect_gmat.study import sweepdir
from prefect_gmat.study.designs import Design, DesignKind, parse_perturb
from prefect_gmat.study.manifest import read_manifest
from prefect_gmat.study.spec import SweepSpec, canonical_script_sha256
from prefect_gmat.study.sweepdir import (
    design_for,
    effective_parameter_spec,
    extension_spec,
    lock_sweep_dir,
    no_sweep_running,
    outputs_intact,
    plan_sweep,
    preflight,
    resume_spec,
    seed_note,
)
from tests.support.sweepdir import held_by_another_sweep
from tests.unit.fakes import finished_run, record

GRID: dict[str, list[Any]] = {"Sat.SMA": [7000, 7100, 7200], "Sat.ECC": [0.01, 0.02]}  # 6 runs
PERTURB = {"Sat.SMA": ["normal", 7000, 5]}


def _grid(script: Path) -> SweepSpec:
    return SweepSpec.from_grid(script, GRID)


def _study(script: Path, n: int = 4, kind: DesignKind = "monte_carlo") -> SweepSpec:
    return SweepSpec.from_design(script, Design(kind, parse_perturb(PERTURB), n, 7))


def _start(out: Path, spec: SweepSpec, engine: Engine, ok: range, failed: dict[int, Any]) -> None:
    """A sweep in ``out``: its manifest, ``ok`` runs finished, ``failed`` runs failed by kind."""
    plan_sweep(out, spec, engine, "new")
    points = {p.run_id: p for p in spec.points()}
    outcomes = [finished_run(out, i, points[i].overrides) for i in ok]
    outcomes += [
        finished_run(out, i, points[i].overrides, status="failed", failure=kind)
        for i, kind in failed.items()
    ]
    record(out, *outcomes)


def _ids(points: list[Any]) -> list[int]:
    return [p.run_id for p in points]


# --- preflight: refusals before anything is written ------------------------------------------


def test_preflight_of_a_new_directory_writes_nothing(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    spec = _grid(script)
    assert preflight(out, spec, "new") is spec
    assert not out.exists()


def test_a_file_is_not_an_output_directory(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "results.txt"
    out.write_text("mine")
    for mode in ("new", "overwrite", "resume"):
        with pytest.raises(SweepDirectoryError, match="is a file") as info:
            preflight(out, _grid(script), mode)
        assert info.value.path == str(out)
    with pytest.raises(SweepDirectoryError, match="is a file"), lock_sweep_dir(out):
        pass
    assert out.read_text() == "mine"


def test_a_different_sweep_in_the_directory_is_refused(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(2), failed={})
    other_grid = SweepSpec.from_grid(script, {"Sat.SMA": [7000, 7100]})
    other_script = tmp_path / "other.script"
    other_script.write_text(script.read_text() + "% changed\n")
    hooked = _grid(script).with_postprocess("tests.unit.hooks:write_summary")
    for different in (other_grid, SweepSpec.from_grid(other_script, GRID), hooked):
        with pytest.raises(SweepDirectoryError, match="already holds a different sweep"):
            preflight(out, different, "new")
    assert preflight(out, _grid(script), "new").grid == GRID  # the same sweep: continued
    assert preflight(out, other_grid, "overwrite") is other_grid  # overwrite takes any


def test_run_folders_without_a_manifest_are_refused_unless_overwritten(
    tmp_path: Path, script: Path
) -> None:
    out = tmp_path / "out"
    (out / "run-3").mkdir(parents=True)
    with pytest.raises(SweepDirectoryError, match=r"no manifest\.jsonl"):
        preflight(out, _grid(script), "new")
    assert preflight(out, _grid(script), "overwrite").grid == GRID


def test_a_directory_of_other_files_takes_a_new_sweep(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "runs-1-2").mkdir()  # a name like a batch's, not a run folder
    assert preflight(out, _grid(script), "new").grid == GRID


def test_a_new_sweep_needs_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SweepDirectoryError, match="needs a script and a grid"):
        preflight(tmp_path / "out", None, "new")


def test_resume_without_a_manifest_is_a_manifest_error(tmp_path: Path, script: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest"):
        preflight(tmp_path, _grid(script), "resume")


def test_preflight_refuses_a_directory_a_sweep_is_writing(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    with held_by_another_sweep(out):
        with pytest.raises(SweepDirectoryError, match="still running"):
            preflight(out, _grid(script), "new")
        with pytest.raises(SweepDirectoryError, match="still running"), no_sweep_running(out):
            pass
    assert preflight(out, _grid(script), "new").grid == GRID  # released


# --- the lock --------------------------------------------------------------------------------


def test_a_second_lock_on_a_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    with held_by_another_sweep(out):
        holder = (out / LOCK_NAME).read_text()
        assert holder.isdigit()
        with (
            pytest.raises(SweepDirectoryError, match=f"process {holder}") as info,
            lock_sweep_dir(out),
        ):
            pass
        assert info.value.path == str(out)
    with lock_sweep_dir(out):  # free again once the first sweep is done
        pass


def test_a_thread_takes_its_own_sweeps_lock_again(tmp_path: Path, script: Path) -> None:
    """The API locks a sweep before its early runs; the flow, in the same thread, locks it
    again, checks it and archives it. Another thread is still refused meanwhile."""
    out = tmp_path / "out"
    with lock_sweep_dir(out):
        with lock_sweep_dir(out), no_sweep_running(out):
            assert preflight(out, _grid(script), "new").grid == GRID
        refused: list[BaseException] = []

        def other() -> None:
            try:
                with lock_sweep_dir(out):
                    pass
            except SweepDirectoryError as exc:
                refused.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert len(refused) == 1
    with held_by_another_sweep(out):  # released by both holders
        pass


def test_reading_a_directory_without_a_lock_file_needs_no_lock(tmp_path: Path) -> None:
    """gmat-sweep's directories have no lock file; nothing can be running there."""
    with no_sweep_running(tmp_path / "never-made"), no_sweep_running(tmp_path):
        pass


# --- plan_sweep ------------------------------------------------------------------------------


def test_a_new_sweep_writes_its_header_and_runs_every_point(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    spec = _grid(script)
    plan = plan_sweep(out, spec, engine, "new")
    assert _ids(plan.to_run) == list(range(6)) and plan.done == 0
    header = read_manifest(out).header
    assert header == plan.header
    assert header["script_sha256"] == canonical_script_sha256(script)
    assert header["parameter_spec"] == spec.parameter_spec()
    assert header["run_count"] == 6 and header["sweep_seed"] is None
    assert header["script_path"] == str(script.resolve())
    assert (header["gmat_install_version"], header["engine_source"]) == ("R2026a", "explicit")
    assert plan.writer.path == out / MANIFEST_NAME


def test_a_design_records_its_seed(tmp_path: Path, script: Path, engine: Engine) -> None:
    plan = plan_sweep(tmp_path / "out", _study(script), engine, "new")
    assert plan.header["sweep_seed"] == 7
    assert plan.header["parameter_spec"]["_kind"] == "monte_carlo"


def test_resume_runs_what_is_missing_failed_transiently_or_no_longer_intact(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(3), failed={3: "crashed", 4: "engine"})
    (out / "run-1" / "report__Orbit.parquet").write_bytes(b"edited")  # hash differs
    (out / "run-2" / "report__Orbit.parquet").unlink()  # gone
    plan = plan_sweep(out, None, engine, "resume")  # the spec comes from the manifest
    assert _ids(plan.to_run) == [1, 2, 3, 5]  # run 4 failed for good: the same input fails
    assert plan.spec.grid == GRID and plan.spec.script == script.resolve()
    assert [p.overrides for p in plan.to_run] == [
        p.overrides for p in _grid(script).points() if p.run_id in (1, 2, 3, 5)
    ]
    assert _ids(plan_sweep(out, None, engine, "retry_failed").to_run) == [3, 4]


def test_the_same_sweep_started_again_continues_like_resume(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(3), failed={3: "timeout"})
    header = read_manifest(out).header
    plan = plan_sweep(out, _grid(script), engine, "new")
    assert _ids(plan.to_run) == [3, 4, 5] and plan.done == 3
    assert plan.header == header  # continued: the manifest is not started again
    assert sorted(read_manifest(out).records) == [0, 1, 2, 3]


def test_retry_failed_runs_only_the_failures(tmp_path: Path, script: Path, engine: Engine) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(2), failed={2: "engine", 4: "crashed"})
    plan = plan_sweep(out, None, engine, "retry_failed")
    assert _ids(plan.to_run) == [2, 4]  # run 3 and 5 never ran: not failures
    assert plan.done == 4


def test_a_retry_appends_to_the_manifest_after_a_torn_line(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(2), failed={})
    with open(out / MANIFEST_NAME, "a") as handle:
        handle.write('{"run_id": 2, "sta')
    plan = plan_sweep(out, None, engine, "resume")
    assert _ids(plan.to_run) == [2, 3, 4, 5]
    record(out, finished_run(out, 2, {"Sat.ECC": 0.01, "Sat.SMA": 7100}))
    assert sorted(read_manifest(out).records) == [0, 1, 2]


def test_overwrite_deletes_the_old_sweep_and_nothing_else(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(3), failed={})
    (out / BUNDLE_NAME).write_bytes(b"PK")
    (out / f".{BUNDLE_NAME}.1234.partial").write_bytes(b"PK")
    (out / RESULTS_DIR).mkdir()
    (out / RESULTS_DIR / "gmat-run-abc").write_text("{}")
    (out / "notes.txt").write_text("mine")
    (out / "plots").mkdir()
    other = SweepSpec.from_grid(script, {"Sat.SMA": [1, 2]})
    plan = plan_sweep(out, other, engine, "overwrite")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "notes.txt", "plots"]
    assert _ids(plan.to_run) == [0, 1] and plan.done == 0
    data = read_manifest(out)
    assert data.records == {} and data.header["parameter_spec"]["Sat.SMA"] == [1, 2]


def test_overwrite_keeps_a_users_folder_named_like_run_something(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(1), failed={})
    (out / "run-notes").mkdir()
    (out / "run-notes" / "todo.txt").write_text("mine")
    plan_sweep(out, _grid(script), engine, "overwrite")
    assert (out / "run-notes" / "todo.txt").is_file()


def test_resume_refuses_a_changed_script_or_another_grid(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(2), failed={})
    other_grid = SweepSpec.from_grid(script, {"Sat.SMA": [7000]})
    with pytest.raises(SweepDirectoryError, match="grid differs"):
        plan_sweep(out, other_grid, engine, "resume")
    script.write_text(script.read_text() + "Sat.ECC = 0.2\n")
    for mode in ("resume", "retry_failed"):
        with pytest.raises(SweepDirectoryError, match="has changed since") as info:
            plan_sweep(out, None, engine, mode)
        assert info.value.path == str(out / MANIFEST_NAME)
    assert sorted(read_manifest(out).records) == [0, 1]  # nothing touched


def test_resume_of_a_moved_script_asks_for_it(tmp_path: Path, script: Path, engine: Engine) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(2), failed={})
    moved = script.rename(tmp_path / "moved.script")
    with pytest.raises(SweepDirectoryError, match="pass script="):
        plan_sweep(out, None, engine, "resume")
    plan = plan_sweep(out, SweepSpec.from_grid(moved, GRID), engine, "resume")
    assert _ids(plan.to_run) == [2, 3, 4, 5]


def test_a_resumed_sweep_keeps_its_postprocess_hook(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    hooked = _grid(script).with_postprocess("tests.unit.hooks:write_summary")
    _start(out, hooked, engine, ok=range(1), failed={})
    assert read_manifest(out).header["postprocess"] == "tests.unit.hooks:write_summary"
    plan = plan_sweep(out, None, engine, "resume")
    assert plan.spec.postprocess == "tests.unit.hooks:write_summary"


def test_a_moved_sweep_directory_resumes_where_it_is_with_its_script_beside_it(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    """The directory and its script moved together (a copy to another disk, say)."""
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(4), failed={4: "crashed"})
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(out, moved / "out")
    shutil.move(script, moved / script.name)
    plan = plan_sweep(moved / "out", None, engine, "resume")
    assert _ids(plan.to_run) == [4, 5]  # the four finished runs are found, intact
    assert plan.spec.script == moved / script.name  # found by its SHA-256


def test_a_copy_of_the_script_in_the_directory_is_found_by_its_hash(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(2), failed={})
    copy = out / "the-one-we-ran.script"
    shutil.copy(script, copy)
    script.unlink()
    assert plan_sweep(out, None, engine, "resume").spec.script == copy


def test_a_script_of_the_same_name_but_other_text_is_not_taken(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _grid(script), engine, ok=range(2), failed={})
    original = script.read_text()
    script.unlink()
    (out / script.name).write_text(original + "Sat.INC = 90\n")
    with pytest.raises(SweepDirectoryError, match="pass script=") as info:
        plan_sweep(out, None, engine, "resume")
    assert info.value.path == str(out / MANIFEST_NAME)
    elsewhere = tmp_path / "kept" / "mission.script"
    elsewhere.parent.mkdir()
    elsewhere.write_text(original)
    assert resume_spec(out, elsewhere).script == elsewhere.resolve()
    with pytest.raises(SweepDirectoryError, match="has changed since"):
        resume_spec(out, out / script.name)


# --- outputs_intact --------------------------------------------------------------------------


def _hashed(tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "out"
    outcome = finished_run(out, 0, {"Sat.SMA": 7000})
    solver = out / "run-0" / "solver__DC1.parquet"
    solver.write_bytes(b"solver")
    extra = out / "run-0" / "summary.txt"
    extra.write_bytes(b"summary")
    return {
        "status": "ok",
        "output_paths": outcome.output_paths,
        "solver_paths": {"DC1": str(solver)},
        "extra_outputs": {"summary": str(extra)},
        "output_sha256": {
            **outcome.output_sha256,
            "DC1": sha256_file(solver),
            "extra:summary": sha256_file(extra),
        },
    }


def test_outputs_are_intact_when_every_file_is_there_with_its_hash(tmp_path: Path) -> None:
    assert outputs_intact(_hashed(tmp_path))
    assert outputs_intact({"status": "ok", "output_paths": {}})  # a run that wrote nothing


@pytest.mark.parametrize("which", ["output_paths", "solver_paths", "extra_outputs"])
def test_an_edited_or_missing_output_is_not_intact(tmp_path: Path, which: str) -> None:
    record_ = _hashed(tmp_path)
    (path,) = record_[which].values()
    Path(path).write_bytes(b"edited")
    assert not outputs_intact(record_)
    Path(path).unlink()
    assert not outputs_intact(record_)


def test_outputs_without_recorded_hashes_need_only_exist(tmp_path: Path) -> None:
    """A gmat-sweep record has no output_sha256."""
    record_ = _hashed(tmp_path)
    del record_["output_sha256"]
    (path,) = record_["output_paths"].values()
    Path(path).write_bytes(b"edited")
    assert outputs_intact(record_)
    Path(path).unlink()
    assert not outputs_intact(record_)


# --- seeds -----------------------------------------------------------------------------------


def test_a_given_seed_is_used(tmp_path: Path) -> None:
    design, source = design_for(tmp_path, "monte_carlo", PERTURB, 4, 99)
    assert (design.seed, design.n, design.kind, source) == (99, 4, "monte_carlo", "given")
    assert design.perturb == parse_perturb(PERTURB)
    assert seed_note(design, source) is None


def test_no_seed_and_no_study_here_draws_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweepdir, "draw_seed", lambda: 123456)
    for out in (None, tmp_path / "empty"):
        design, source = design_for(out, "latin_hypercube", PERTURB, 4, None)
        assert (design.seed, source) == (123456, "drawn")
    note = seed_note(design, source)
    assert note is not None and "seed=123456" in note


def test_no_seed_continues_the_same_study_with_its_recorded_seed(
    tmp_path: Path, script: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweepdir, "draw_seed", lambda: 1)
    out = tmp_path / "out"
    _start(out, _study(script, n=4), engine, ok=range(2), failed={})
    design, source = design_for(out, "monte_carlo", {"Sat.SMA": ("normal", 7000, 5)}, 4, None)
    assert (design.seed, source) == (7, "recorded")
    note = seed_note(design, source)
    assert note is not None and "recorded seed 7" in note
    others: list[tuple[DesignKind, dict[str, Any], int]] = [
        ("monte_carlo", PERTURB, 5),  # another n
        ("monte_carlo", {"Sat.SMA": ["normal", 7000, 6]}, 4),  # another perturbation
        ("latin_hypercube", PERTURB, 4),  # another kind
    ]
    for kind, perturb, n in others:
        design, source = design_for(out, kind, perturb, n, None)
        assert (design.seed, source) == (1, "drawn")


def test_a_study_gmat_sweep_extended_is_recognised_at_its_grown_size(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    """gmat-sweep's monte_carlo_extend appends runs past n and leaves the header alone."""
    out = tmp_path / "out"
    _start(out, _study(script, n=4), engine, ok=range(4), failed={})
    grown = _study(script, n=6)
    points = list(grown.points())
    record(out, *(finished_run(out, i, points[i].overrides) for i in (4, 5)))
    assert read_manifest(out).header["parameter_spec"]["n"] == 4
    assert effective_parameter_spec(read_manifest(out))["n"] == 6
    design, source = design_for(out, "monte_carlo", PERTURB, 6, None)
    assert (design.seed, source) == (7, "recorded")
    plan = plan_sweep(out, grown, engine, "new")  # the same (grown) study: nothing to run
    assert plan.to_run == [] and plan.done == 6


@pytest.mark.parametrize(("n", "seed", "field"), [(0, 1, "n"), (2, -1, "seed"), (2, 1.5, "seed")])
def test_bad_design_numbers_are_refused(tmp_path: Path, n: Any, seed: Any, field: str) -> None:
    with pytest.raises(SweepSpecError) as info:
        design_for(tmp_path, "monte_carlo", PERTURB, n, seed)
    assert info.value.field == field


# --- extensions ------------------------------------------------------------------------------


def test_extension_of_a_complete_study_adds_runs_keeping_the_old_ones(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    study = _study(script, n=4)
    _start(out, study, engine, ok=range(3), failed={3: "field"})  # run 3 fails for good
    lines_before = (out / MANIFEST_NAME).read_text().splitlines()[1:]
    grown = extension_spec(out, 6)
    assert grown.design is not None and grown.design.n == 6 and grown.seed == 7
    assert list(grown.points())[:4] == list(study.points())  # the first runs are the study's
    plan = plan_sweep(out, grown, engine, "extend")
    assert _ids(plan.to_run) == [4, 5] and plan.done == 4
    data = read_manifest(out)
    assert data.header["parameter_spec"]["n"] == 6 and data.header["run_count"] == 6
    assert [(e["from_n"], e["to_n"]) for e in data.header["extended"]] == [(4, 6)]
    assert (out / MANIFEST_NAME).read_text().splitlines()[1:] == lines_before  # byte for byte


def test_an_extension_started_again_continues(tmp_path: Path, script: Path, engine: Engine) -> None:
    """A retried flow run of an extension: the header already says n=6, runs 4-5 missing."""
    out = tmp_path / "out"
    _start(out, _study(script, n=4), engine, ok=range(4), failed={})
    plan_sweep(out, extension_spec(out, 6), engine, "extend")
    header = read_manifest(out).header
    again = extension_spec(out, 6)  # not refused as "n must be more than 6"
    assert again.design is not None and again.design.n == 6
    plan = plan_sweep(out, again, engine, "extend")
    assert _ids(plan.to_run) == [4, 5]
    assert read_manifest(out).header == header  # not extended twice


@pytest.mark.parametrize(
    ("kind", "message"),
    [("grid", "holds a grid"), ("explicit", "explicit samples"), ("lhs", "Latin hypercube")],
)
def test_only_a_monte_carlo_study_grows(
    tmp_path: Path, script: Path, engine: Engine, kind: str, message: str
) -> None:
    out = tmp_path / "out"
    if kind == "grid":
        spec = _grid(script)
    elif kind == "explicit":
        spec = SweepSpec.from_samples(script, [{"Sat.SMA": 7000}])
    else:
        spec = _study(script, kind="latin_hypercube")
    _start(out, spec, engine, ok=range(len(spec)), failed={})
    with pytest.raises(SweepSpecError, match=message) as info:
        extension_spec(out, 10)
    assert info.value.field == "n"


@pytest.mark.parametrize("n", [4, 3])
def test_an_extension_must_grow_the_study(
    tmp_path: Path, script: Path, engine: Engine, n: int
) -> None:
    out = tmp_path / "out"
    _start(out, _study(script, n=4), engine, ok=range(4), failed={})
    with pytest.raises(SweepSpecError, match="n must be more than 4") as info:
        extension_spec(out, n)
    assert (info.value.field, info.value.value) == ("n", n)


@pytest.mark.parametrize("problem", ["missing", "transient", "edited"])
def test_an_unfinished_study_is_resumed_before_it_grows(
    tmp_path: Path, script: Path, engine: Engine, problem: str
) -> None:
    out = tmp_path / "out"
    if problem == "missing":
        _start(out, _study(script, n=4), engine, ok=range(3), failed={})
    elif problem == "transient":
        _start(out, _study(script, n=4), engine, ok=range(3), failed={3: "timeout"})
    else:
        _start(out, _study(script, n=4), engine, ok=range(4), failed={})
        (out / "run-3" / "report__Orbit.parquet").write_bytes(b"edited")
    with pytest.raises(SweepSpecError, match=r"runs 3 are missing") as info:
        extension_spec(out, 6)
    assert info.value.field == "n"


def test_a_gmat_sweep_failure_without_a_kind_blocks_growth(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    """gmat-sweep's records say no failure kind: such a run may pass on a retry."""
    out = tmp_path / "out"
    _start(out, _study(script, n=4), engine, ok=range(3), failed={3: None})
    with pytest.raises(SweepSpecError, match="not complete"):
        extension_spec(out, 6)


def test_extension_needs_the_script_when_the_manifest_cannot_say(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _study(script, n=4), engine, ok=range(4), failed={})
    moved = script.rename(tmp_path / "moved.script")
    with pytest.raises(SweepDirectoryError, match="pass script="):
        extension_spec(out, 6)
    grown = extension_spec(out, 6, script=moved)
    assert grown.script == moved.resolve()


def test_extension_refuses_a_changed_script_unless_allowed(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _study(script, n=4), engine, ok=range(4), failed={})
    old_sha = canonical_script_sha256(script)
    script.write_text(script.read_text() + "Sat.INC = 51.6\n")
    with pytest.raises(SweepDirectoryError, match="has changed since the study"):
        extension_spec(out, 6)
    grown = extension_spec(out, 6, allow_script_drift=True)
    plan_sweep(out, grown, engine, "extend")
    header = read_manifest(out).header
    assert header["script_sha256"] == canonical_script_sha256(script)
    assert header["script_history"] == [{"script_sha256": old_sha, "run_ids": [0, 3]}]


def test_extend_without_the_grown_study_is_refused(
    tmp_path: Path, script: Path, engine: Engine
) -> None:
    out = tmp_path / "out"
    _start(out, _study(script, n=4), engine, ok=range(4), failed={})
    for spec in (None, _grid(script)):
        with pytest.raises(SweepDirectoryError, match="extension_spec"):
            preflight(out, spec, "extend")
    header = json.loads((out / MANIFEST_NAME).read_text().splitlines()[0])
    assert header["parameter_spec"]["n"] == 4
