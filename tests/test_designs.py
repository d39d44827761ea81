"""Designs: gmat-sweep 0.6.0's exact draws, extend, samples from files, postprocess hooks."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scipy import stats  # type: ignore[import-untyped]

from prefect_gmat import (
    explicit,
    extend,
    latin_hypercube,
    monte_carlo,
    resume,
    retry_failed,
    verify_bundle,
)
from prefect_gmat.cli import main
from prefect_gmat.core.records import Outcome, sha256_file
from prefect_gmat.errors import SweepDirectoryError, SweepSpecError
from prefect_gmat.runtime.quiet import quiet_prefect
from prefect_gmat.study.designs import (
    Design,
    latin_hypercube_points,
    monte_carlo_points,
    parse_perturb,
    parse_perturb_option,
    read_samples,
)
from prefect_gmat.study.manifest import ManifestWriter, make_header, read_manifest
from prefect_gmat.study.spec import canonical_script_sha256
from tests.support.faults import SweepProcesses, kill_with_workers
from tests.support.paths import DISPERSION
from tests.support.points import DISPERSION_PERTURB as PERTURB
from tests.support.reference import finish_reference, start_reference
from tests.support.sweepdir import executions, file_hashes, record_lines
from tests.support.waiting import wait_for_records

# --- draws, without the engine -----------------------------------------------------------


def test_monte_carlo_draws_equal_gmat_sweeps_in_every_accepted_form() -> None:
    from gmat_sweep.grids import expand_monte_carlo_to_run_specs

    theirs = [s.overrides for s in expand_monte_carlo_to_run_specs(PERTURB, 25, 42, "s", "o")]
    json_form = {k: list(v) for k, v in PERTURB.items()}
    cli_form = dict(parse_perturb_option(f"{k}={d}:{a}:{b}") for k, (d, a, b) in PERTURB.items())
    dict_form = {
        k: {
            "dist": d,
            **dict(zip(("lo", "hi") if d == "uniform" else ("mu", "sigma"), (a, b), strict=True)),
        }
        for k, (d, a, b) in PERTURB.items()
    }
    for form in (PERTURB, json_form, cli_form, dict_form):
        assert monte_carlo_points(parse_perturb(form), 25, 42) == theirs
    assert monte_carlo_points(parse_perturb(PERTURB), 25, 43) != theirs


def test_a_frozen_scipy_distribution_draws_and_records_as_gmat_sweep_does() -> None:
    from gmat_sweep.distributions import _serialise_perturb
    from gmat_sweep.grids import expand_monte_carlo_to_run_specs, latin_hypercube_samples

    perturb = {**PERTURB, "TOI.Element3": stats.truncnorm(-2, 2, loc=0.0, scale=1e-3)}
    recorded = parse_perturb(perturb)
    assert recorded == _serialise_perturb(perturb)
    mc = [s.overrides for s in expand_monte_carlo_to_run_specs(perturb, 10, 7, "s", "o")]
    assert monte_carlo_points(recorded, 10, 7) == mc
    lhs = latin_hypercube_samples(perturb, 10, 7).to_dict(orient="records")
    assert latin_hypercube_points(recorded, 10, 7) == lhs


def test_growing_a_study_keeps_its_runs_and_adds_gmat_sweeps_extension_draws() -> None:
    from gmat_sweep.grids import expand_monte_carlo_extension_to_run_specs

    recorded = parse_perturb(PERTURB)
    first = monte_carlo_points(recorded, 60, 5)
    grown = monte_carlo_points(recorded, 90, 5)
    assert grown[:60] == first
    tail = expand_monte_carlo_extension_to_run_specs(PERTURB, 60, 30, 5, "s", "o")
    assert grown[60:] == [s.overrides for s in tail]
    assert monte_carlo_points(recorded, 90, 5, start=60) == grown[60:]
    # adding a field changes no other field's draws
    more = monte_carlo_points(parse_perturb({**PERTURB, "Sat.SMA": ("normal", 6678, 1)}), 60, 5)
    assert [{k: p[k] for k in PERTURB} for p in more] == first


def test_latin_hypercube_draws_equal_gmat_sweeps_and_fill_every_stratum() -> None:
    from gmat_sweep.grids import latin_hypercube_samples

    points = latin_hypercube_points(parse_perturb(PERTURB), 20, 11)
    assert points == latin_hypercube_samples(PERTURB, 20, 11).to_dict(orient="records")
    delays = sorted(p["LaunchDelay.Value"] for p in points)
    assert [int(d // 30) for d in delays] == list(range(20))  # one per 30 s stratum


def test_seed_none_draws_a_recordable_seed() -> None:
    design, drew = Design.create("monte_carlo", PERTURB, 5, None)
    assert drew and 0 <= design.seed < 2**53
    again = Design.from_parameter_spec(design.parameter_spec())
    assert again == design and again.points() == design.points()
    assert Design.create("monte_carlo", PERTURB, 5, None)[0].seed != design.seed


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"n": 0}, "n=0 is not allowed"),
        ({"n": 2.5}, "n=2.5 is not allowed"),
        ({"seed": "42"}, "seed='42' is not allowed"),
        ({"seed": 4.2}, "seed=4.2 is not allowed"),
        ({"seed": True}, "seed=True is not allowed"),
        ({"perturb": {"TOI.Element1": ("gauss", 0, 1)}}, "unknown distribution 'gauss'"),
        ({"perturb": {"TOI.Element1": ("normal", 0.1, 0)}}, "normal sigma must be > 0"),
        ({"perturb": {"TOI.Element1": ("lognormal", 0.1, -1)}}, "lognormal sigma must be > 0"),
        ({"perturb": {"TOI.Element1": ("uniform", 2, 1)}}, "uniform needs lo < hi"),
        ({"perturb": {"TOI.Element1": ("uniform", 1, 1)}}, "uniform needs lo < hi"),
        ({"perturb": {"TOI.Element1": ("normal", "a", 1)}}, "normal mu must be a number"),
        ({"perturb": {"TOI.Element1": ("normal", 1)}}, "normal takes two numbers"),
        ({"perturb": {"TOI": ("normal", 0, 1)}}, "is not a GMAT field path"),
        ({"perturb": {}}, "perturb must be a non-empty mapping"),
        ({"perturb": {"TOI.Element1": 3}}, "is not a distribution"),
    ],
)
def test_bad_design_input_is_refused_with_its_own_message(
    kwargs: dict[str, Any], words: str
) -> None:
    given: dict[str, Any] = {"perturb": PERTURB, "n": 5, "seed": 1, **kwargs}
    with pytest.raises(SweepSpecError, match=words):
        Design.create("monte_carlo", given["perturb"], given["n"], given["seed"])


def test_cli_perturb_option_errors() -> None:
    with pytest.raises(SweepSpecError, match="is not FIELD=DIST:A:B"):
        parse_perturb_option("TOI.Element1")
    with pytest.raises(SweepSpecError, match="'x' is not a number"):
        parse_perturb_option("TOI.Element1=normal:x:1")
    assert parse_perturb_option("TOI.Element1=normal:0.1:0.01") == (
        "TOI.Element1",
        ["normal", 0.1, 0.01],
    )


def test_an_outcome_persisted_before_hook_fields_existed_still_loads() -> None:
    """Prefect keeps outcomes pickled; one from before ``extra_outputs`` gets the default."""
    outcome = Outcome(run_id=3, status="ok", overrides={"Sat.SMA": 7000.0}, attempts=2)
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    older = Outcome.__new__(Outcome)
    state: list[Any] = outcome.__getstate__()  # type: ignore[assignment]
    older.__setstate__(state[:14])  # as pickled before the two hook fields
    assert (older.extra_outputs, older.postprocess_status, older.attempts) == ({}, "none", 2)


# --- samples from files ------------------------------------------------------------------


def test_samples_from_csv_parquet_and_a_dataframe_agree(tmp_path: Path) -> None:
    frame = pd.DataFrame({"TOI.Element1": [0.1, 0.12, 0.11], "LaunchDelay.Value": [0, 60, 120]})
    frame.to_csv(tmp_path / "s.csv", index=False)
    frame.to_parquet(tmp_path / "s.parquet")
    expected = frame.to_dict(orient="records")
    for source in (tmp_path / "s.csv", tmp_path / "s.parquet", frame):
        got = read_samples(source)
        assert got == expected
        assert [type(v) for v in got[0].values()] == [float, int]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "TOI.Element1,LaunchDelay.Value\n0.1,0\n0.2\n",
            "row 1 \\(line 3\\).*'LaunchDelay.Value' is missing",
        ),
        ("TOI.Element1,LaunchDelay.Value\n0.1,0,9\n", "row 0 \\(line 2\\).*an extra column"),
        (
            "TOI.Element1,LaunchDelay.Value\n0.1,0\n0.2,soon\n",
            "row 1 \\(line 3\\), column 'LaunchDelay.Value': 'soon' is not a number",
        ),
        (
            "TOI.Element1,LaunchDelay.Value\n0.1,\n",
            "row 0 \\(line 2\\), column 'LaunchDelay.Value': the cell is empty",
        ),
        ("TOI.Element1,TOI.Element1\n0.1,0.2\n", "names 'TOI.Element1' more than once"),
        ("TOI.Element1\n", "has no rows"),
    ],
)
def test_bad_samples_files_name_the_row_and_the_column(
    tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SweepSpecError, match=words):
        read_samples(path)


def test_samples_columns_are_checked_against_the_fields_asked_for(tmp_path: Path) -> None:
    frame = pd.DataFrame({"TOI.Element1": [0.1], "TOI.Element9": [1.0]})
    with pytest.raises(SweepSpecError, match=re.escape("has no column 'LaunchDelay.Value'")):
        read_samples(frame, columns=["TOI.Element1", "LaunchDelay.Value"])
    with pytest.raises(
        SweepSpecError, match=re.escape("has a column 'TOI.Element9' that is not one of")
    ):
        read_samples(frame, columns=["TOI.Element1"])
    bad = pd.DataFrame({"TOI.Element1": [0.1, "x"]})
    with pytest.raises(SweepSpecError, match=re.escape("row 1 (index 1), column 'TOI.Element1'")):
        read_samples(bad)


# --- studies with the engine, against gmat-sweep itself -----------------------------------

SEED = 20261128
HOOK = "tests.support.hooks:injection_summary"
LATE_LAUNCHES_FAIL = "tests.support.hooks:refuses_late_launches"


@dataclass
class Studies:
    base: Path
    ours60: pd.DataFrame
    theirs60: pd.DataFrame
    lines60: list[str]
    files60: dict[str, str]
    ours90: pd.DataFrame
    theirs90: pd.DataFrame
    theirs_extending_ours: pd.DataFrame
    ours_extending_theirs: pd.DataFrame
    ours_lhs: pd.DataFrame
    theirs_lhs: pd.DataFrame


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Studies:
    """One study of each kind by each tool, on the dispersion script (about 350 short runs)."""
    base = tmp_path_factory.mktemp("designs")
    common: dict[str, Any] = {"perturb": {k: list(v) for k, v in PERTURB.items()}, "seed": SEED}
    ours60 = monte_carlo(DISPERSION, n=60, **common, out=base / "ours", postprocess=HOOK, workers=2)
    lines60, files60 = record_lines(base / "ours"), file_hashes(base / "ours")
    shutil.copytree(base / "ours", base / "ours-for-them")
    script = str(DISPERSION)
    reference = start_reference(
        [
            {"op": "monte_carlo", "script": script, "out": str(base / "theirs"), "n": 60,
             **common, "postprocess": HOOK, "frame": str(base / "theirs60.pkl")},
            {"op": "copy", "out": str(base / "theirs"), "to": str(base / "theirs-for-us")},
            {"op": "extend", "script": script, "out": str(base / "theirs"), "n": 30,
             "frame": str(base / "theirs90.pkl")},
            {"op": "extend", "script": script, "out": str(base / "ours-for-them"), "n": 5,
             "frame": str(base / "them-on-ours.pkl")},
            {"op": "latin_hypercube", "script": script, "out": str(base / "theirs-lhs"),
             "n": 10, **common, "frame": str(base / "theirs-lhs.pkl")},
        ]
    )  # fmt: skip
    try:  # meanwhile, what needs only our own studies
        ours90 = extend(base / "ours", n=90, workers=2)
        ours_lhs = latin_hypercube(
            DISPERSION, n=10, **common, out=base / "ours-lhs", workers=2, archive=False
        )
    finally:
        finish_reference(reference)
    return Studies(
        base=base,
        ours60=ours60,
        theirs60=pd.read_pickle(base / "theirs60.pkl"),
        lines60=lines60,
        files60=files60,
        ours90=ours90,
        theirs90=pd.read_pickle(base / "theirs90.pkl"),
        theirs_extending_ours=pd.read_pickle(base / "them-on-ours.pkl"),
        ours_extending_theirs=extend(
            base / "theirs-for-us", n=65, script=DISPERSION, workers=2, archive=False
        ),
        ours_lhs=ours_lhs,
        theirs_lhs=pd.read_pickle(base / "theirs-lhs.pkl"),
    )


@pytest.mark.slow
def test_a_monte_carlo_study_gives_gmat_sweeps_frame_header_and_hook_outputs(
    studies: Studies,
) -> None:
    pd.testing.assert_frame_equal(studies.ours60, studies.theirs60, check_exact=True)
    assert studies.ours60.index.get_level_values("run_id").nunique() == 60
    # gmat-sweep grew both of these, and left their headers as they were
    ours = read_manifest(studies.base / "ours-for-them")
    theirs = read_manifest(studies.base / "theirs")
    for key in ("parameter_spec", "sweep_seed", "run_count", "postprocess", "script_sha256"):
        assert json.dumps(ours.header[key]) == json.dumps(theirs.header[key]), key
    assert ours.header["parameter_spec"]["seed"] == SEED
    for run_id in (0, 37, 59):
        mine, other = ours.records[run_id], theirs.records[run_id]
        assert mine["overrides"] == other["overrides"]
        assert mine["postprocess_status"] == other["postprocess_status"] == "ok"
        injection = ours.path.parent / mine["extra_outputs"]["injection"]  # ours: relative
        assert injection.read_text() == Path(other["extra_outputs"]["injection"]).read_text()
        assert mine["output_sha256"]["extra:injection"] == sha256_file(injection)


@pytest.mark.slow
def test_extending_60_to_90_gives_gmat_sweeps_extension_and_keeps_every_run(
    studies: Studies,
) -> None:
    out = studies.base / "ours"
    pd.testing.assert_frame_equal(studies.ours90, studies.theirs90, check_exact=True)
    assert record_lines(out)[:60] == studies.lines60  # byte for byte
    files = file_hashes(out)
    assert {k: files[k] for k in studies.files60} == studies.files60
    assert executions(out) == dict.fromkeys(range(90), 1)  # only the 30 new runs ran
    header = read_manifest(out).header
    assert header["parameter_spec"]["n"] == header["run_count"] == 90
    assert header["extended"][-1]["from_n"] == 60
    verify_bundle(out / "sweep_bundle.zip")  # rebuilt, hook outputs included
    with zipfile.ZipFile(out / "sweep_bundle.zip") as bundle:
        assert "runs/run-89/injection.json" in bundle.namelist()


@pytest.mark.slow
def test_each_tool_extends_the_others_study(studies: Studies) -> None:
    first65 = studies.theirs90.loc[studies.theirs90.index.get_level_values("run_id") < 65]
    pd.testing.assert_frame_equal(studies.theirs_extending_ours, first65, check_exact=True)
    pd.testing.assert_frame_equal(studies.ours_extending_theirs, first65, check_exact=True)
    # gmat-sweep's extension left our header at n=60; we read the study as 65 runs
    from prefect_gmat.study.sweepdir import effective_parameter_spec

    grown = read_manifest(studies.base / "ours-for-them")
    assert grown.header["parameter_spec"]["n"] == 60
    assert effective_parameter_spec(grown)["n"] == 65


@pytest.mark.slow
def test_a_latin_hypercube_gives_gmat_sweeps_frame_and_refuses_to_grow(studies: Studies) -> None:
    pd.testing.assert_frame_equal(studies.ours_lhs, studies.theirs_lhs, check_exact=True)
    before = (studies.base / "ours-lhs" / "manifest.jsonl").read_bytes()
    with pytest.raises(SweepSpecError, match="Latin hypercube study, which cannot grow"):
        extend(studies.base / "ours-lhs", n=30)
    assert (studies.base / "ours-lhs" / "manifest.jsonl").read_bytes() == before


@pytest.mark.slow
def test_extend_refusals_before_any_run(studies: Studies, tmp_path: Path) -> None:
    out = studies.base / "ours"
    before = (out / "manifest.jsonl").read_bytes()
    with pytest.raises(SweepSpecError, match=r"has 90 runs; .* n must be more than 90"):
        extend(out, n=80)
    changed = tmp_path / "changed.script"
    changed.write_text(DISPERSION.read_text().replace("LaunchDelay = 60", "LaunchDelay = 61"))
    with pytest.raises(SweepDirectoryError, match="has changed since the study"):
        extend(out, n=100, script=changed)
    assert (out / "manifest.jsonl").read_bytes() == before
    grid = tmp_path / "grid"
    header = make_header(
        script_sha256="0" * 64,
        engine_version="R2026a",
        parameter_spec={"_kind": "grid", "Sat.SMA": [7000]},
        run_count=1,
    )
    ManifestWriter.create(grid / "manifest.jsonl", header)
    with pytest.raises(SweepSpecError, match="holds a grid, not a Monte Carlo study"):
        extend(grid, n=5)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_perturbing_fields_the_script_cannot_take_is_refused_before_any_run(
    tmp_path: Path,
) -> None:
    out = tmp_path / "refused"
    perturb = {
        "TOI.Element9": ("normal", 0, 1),
        "Burn.Element1": ("normal", 0, 1),
        "Sat.DateFormat": ("normal", 0, 1),
    }
    with pytest.raises(SweepSpecError) as refused:
        monte_carlo(DISPERSION, n=3, perturb=perturb, seed=1, out=out, workers=1)
    message = str(refused.value)
    assert "3 problem(s)" in message and "unknown field" in message
    assert "no resource named 'Burn'" in message
    assert "'Sat.DateFormat' is a string field" in message
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_samples_from_a_csv_and_a_hook_that_raises_on_some_runs(tmp_path: Path) -> None:
    """The hook fails its run (not retried, told apart from GMAT); its outputs are checked."""
    from gmat_sweep import Manifest

    path = tmp_path / "samples.csv"
    path.write_text("TOI.Element1,LaunchDelay.Value\n0.1,0\n0.12,400\n0.11,120\n0.1,500\n")
    out = tmp_path / "hooked"
    df = explicit(
        DISPERSION,
        path,
        out=out,
        postprocess=LATE_LAUNCHES_FAIL,
        workers=1,
        retries=2,
        params=True,
    )
    first = df.groupby(level="run_id").first()
    assert first["LaunchDelay.Value"].tolist() == [0, 400, 120, 500]
    assert first["__status"].tolist() == ["ok", "failed", "ok", "failed"]
    records = read_manifest(out).records
    for run_id in (1, 3):
        record = records[run_id]
        assert record["failure"] == "postprocess" and record["postprocess_status"] == "failed"
        assert record["attempts"] == 1 and "launch slipped" in record["error"]
    assert records[0]["postprocess_status"] == "ok"
    assert records[0]["extra_outputs"] == {"injection": "run-0/injection.json"}
    entries = Manifest.load(out / "manifest.jsonl").entries  # gmat-sweep reads the fields
    statuses = {e.run_id: e.postprocess_status for e in entries}
    assert statuses == {0: "ok", 1: "failed", 2: "ok", 3: "failed"}
    # a hook output that changed makes its run run again on resume, as a report would;
    # the hook's failures are settled (the same input fails again): retry_failed re-runs them
    (out / "run-2" / "injection.json").write_text("{}")
    resume(out, workers=1, archive=False)
    assert executions(out) == {0: 1, 1: 1, 2: 2, 3: 1}
    retry_failed(out, workers=1, archive=False)
    assert executions(out) == {0: 1, 1: 2, 2: 2, 3: 2}


@pytest.mark.slow
def test_a_killed_unseeded_study_resumes_with_the_same_draws(
    tmp_path: Path, sweep_processes: SweepProcesses
) -> None:
    from gmat_sweep.grids import expand_monte_carlo_to_run_specs

    out = tmp_path / "killed"
    n = 160  # the kill lands mid-study: the first manifest flush holds 45-76 runs here
    proc = sweep_processes.start("monte_carlo", out, n)
    wait_for_records(out, 8, proc)
    kill_with_workers(proc)
    before = read_manifest(out)
    seed = before.header["sweep_seed"]
    assert isinstance(seed, int) and before.header["parameter_spec"]["seed"] == seed
    assert 8 <= len(before.ok_ids()) < n
    resume(out, workers=2, archive=False)
    after = read_manifest(out)
    assert after.ok_ids() == list(range(n))
    drawn = expand_monte_carlo_to_run_specs(PERTURB, n, seed, "s", "o")
    assert [after.records[i]["overrides"] for i in range(n)] == [s.overrides for s in drawn]
    assert all(executions(out)[i] == 1 for i in before.ok_ids())


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_the_cli_runs_and_extends_a_monte_carlo_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    perturb = "--perturb TOI.Element1=normal:0.1:0.002 --perturb LaunchDelay.Value=uniform:0:600"
    hook = f"--postprocess {LATE_LAUNCHES_FAIL}"  # > 300 s fails
    command = f"mc {DISPERSION} {perturb} --n 4 --seed 9 -o {out} {hook} --workers 1"
    assert main(command.split()) == 1  # launch delays 53, 360, 92, 314 s: two failed runs
    header = read_manifest(out).header
    assert header["parameter_spec"] == {
        "_kind": "monte_carlo",
        "n": 4,
        "seed": 9,
        "perturb": {
            "TOI.Element1": ["normal", 0.1, 0.002],
            "LaunchDelay.Value": ["uniform", 0.0, 600.0],
        },
    }
    # extend with a script edited since (a comment): allowed explicitly, and recorded.
    # The hook's failures are for good, so the study grows (gmat-sweep would refuse).
    edited = tmp_path / "edited.script"
    edited.write_text(DISPERSION.read_text() + "% edited after the study\n")
    grow = f"extend {out} --n 6 --script {edited} --allow-script-drift --workers 1"
    assert main(grow.split()) == 1  # 563 s fails, 129 s is ok
    grown = read_manifest(out)
    assert (grown.ok_ids(), grown.failed_ids()) == ([0, 2, 5], [1, 3, 4])
    assert executions(out) == dict.fromkeys(range(6), 1)  # only the new runs ran
    assert grown.header["script_sha256"] == canonical_script_sha256(edited)
    assert grown.header["script_history"] == [
        {"script_sha256": header["script_sha256"], "run_ids": [0, 3]}
    ]
    verify_bundle(out / "sweep_bundle.zip")  # bundled with the script of the header
    bad = f"mc {DISPERSION} --perturb TOI.Element1=gauss:0:1 --n 4 -o {tmp_path / 'x'}"
    assert main(["show", str(out)]) == 0
    assert "design   monte_carlo, n=6, seed=9: LaunchDelay.Value=['uniform'" in (
        capsys.readouterr().out
    )
    assert main(bad.split()) == 2
    assert "unknown distribution 'gauss'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_the_flow_takes_a_design_as_the_ui_run_form_sends_it(tmp_path: Path) -> None:
    from prefect.utilities.callables import parameter_schema

    from prefect_gmat.blocks import GmatSweepSpec
    from prefect_gmat.flows.sweep import sweep_flow
    from prefect_gmat.study.designs import MonteCarloDesign

    schema = parameter_schema(sweep_flow).model_dump()
    assert {"MonteCarloDesign", "LatinHypercubeDesign", "Normal", "Uniform", "Lognormal"} <= set(
        schema["definitions"]
    )
    form: Any = {  # JSON, as the Run form sends it; Prefect validates it into the model
        "kind": "monte_carlo",
        "perturb": {
            "TOI.Element1": {"dist": "normal", "mu": 0.1, "sigma": 0.002},
            "LaunchDelay.Value": {"dist": "uniform", "lo": 0, "hi": 600},
        },
        "n": 3,
        "seed": None,
    }
    out = tmp_path / "form"
    # the same unseeded study saved as a block, as a schedule would run it
    GmatSweepSpec(script=str(DISPERSION), design=MonteCarloDesign.model_validate(form)).save(
        "dispersion-mc", overwrite=True
    )
    with quiet_prefect():
        first = sweep_flow(script=str(DISPERSION), design=form, out=str(out), workers=1)
        again = sweep_flow(sweep_spec="dispersion-mc", out=str(out), workers=1)
    # the block's seedless study is the one in out: it continues with the recorded seed
    assert (first["ok"], again["already_done"], again["ran"]) == (3, 3, 0)
    seed = read_manifest(out).header["sweep_seed"]
    drawn = monte_carlo_points(parse_perturb(form["perturb"]), 3, seed)
    assert [read_manifest(out).records[i]["overrides"] for i in range(3)] == drawn
