"""Both ways with gmat-sweep 0.6.0: the same frame for a grid; each reads the other's output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_gmat import load_sweep, sweep
from tests.support.paths import DATA, DEMO_SCRIPT
from tests.support.reference import ReferenceSweep, reference_sweep
from tests.support.sweepdir import Swept, executions

pytestmark = pytest.mark.usefixtures("prefect_server")

DRAG_SCRIPT = """\
Create Spacecraft Sat
Sat.DateFormat = UTCGregorian
Sat.Epoch = '15 Mar 2026 12:00:00.000'
Sat.CoordinateSystem = EarthMJ2000Eq
Sat.DisplayStateType = Keplerian
Sat.SMA = 6778
Sat.ECC = 0.0005
Sat.INC = 51.6
Sat.RAAN = 30
Sat.AOP = 0
Sat.TA = 10
Sat.DryMass = 500
Sat.Cd = 2.2
Sat.DragArea = 10

Create ForceModel FM
FM.CentralBody = Earth
FM.PrimaryBodies = {Earth}
FM.GravityField.Earth.Degree = 4
FM.GravityField.Earth.Order = 4
FM.GravityField.Earth.PotentialFile = 'JGM2.cof'
FM.Drag.AtmosphereModel = Exponential
FM.SRP = Off

Create Propagator Prop
Prop.FM = FM
Prop.Type = RungeKutta89
Prop.InitialStepSize = 60
Prop.Accuracy = 1e-10
Prop.MaxStep = 60

Create ReportFile Orbit
Orbit.Filename = 'orbit.txt'
Orbit.Add = {Sat.UTCGregorian, Sat.Earth.SMA, Sat.Earth.Altitude, Sat.Earth.ECC}

BeginMissionSequence
Propagate Prop(Sat) {Sat.ElapsedSecs = 900}
"""


@pytest.mark.slow
def test_our_frame_equals_gmat_sweeps_for_the_walkthrough_grid(
    walkthrough: Swept, gmat_sweep_walkthrough: ReferenceSweep
) -> None:
    pd.testing.assert_frame_equal(walkthrough.frame, gmat_sweep_walkthrough.frame, check_exact=True)


def test_gmat_sweep_reads_our_directory_to_our_frame(walkthrough: Swept) -> None:
    from gmat_sweep import Manifest, lazy_multiindex

    out, ours = walkthrough
    manifest = Manifest.load(out / "manifest.jsonl")
    assert manifest.run_count == 10
    assert manifest.gmat_install_version == "R2026a"
    assert [e.status for e in manifest.entries] == ["ok"] * 10
    pd.testing.assert_frame_equal(lazy_multiindex(manifest, out), ours, check_exact=True)


@pytest.mark.slow
def test_we_read_gmat_sweeps_directory_to_its_frame(
    gmat_sweep_walkthrough: ReferenceSweep,
) -> None:
    theirs_dir, theirs, _ = gmat_sweep_walkthrough
    pd.testing.assert_frame_equal(load_sweep(theirs_dir), theirs, check_exact=True)


@pytest.mark.slow
def test_a_new_drag_script_with_two_swept_fields_matches_gmat_sweep(tmp_path: Path) -> None:
    script = tmp_path / "drag_leo.script"
    script.write_text(DRAG_SCRIPT)
    grid: dict[str, list[object]] = {"Sat.Cd": [1.8, 2.2, 2.6], "Sat.DragArea": [5.0, 15.0]}
    ours = sweep(script, grid=grid, out=tmp_path / "ours", workers=2)
    theirs = reference_sweep(script, grid, tmp_path / "theirs")
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    assert ours.shape == (6 * 16, 5)
    # drag acts: more area and more Cd lose more altitude over 15 minutes
    final = ours.groupby(level="run_id")["Sat.Earth.SMA"].last()
    assert final.loc[5] < final.loc[0]
    with_params = load_sweep(tmp_path / "ours", params=True)
    assert list(with_params.columns[:2]) == ["Sat.Cd", "Sat.DragArea"]
    assert with_params.xs(3, level="run_id")["Sat.Cd"].unique().tolist() == [2.2]


def test_frame_matches_the_golden_made_from_a_real_run(walkthrough: Swept) -> None:
    """The golden tests/data/golden_leo_short_sma.csv was written from a real run."""
    ours = walkthrough.frame
    golden = pd.read_csv(
        DATA / "golden_leo_short_sma.csv", parse_dates=["time", "Sat.UTCGregorian"]
    )
    for column in ("time", "Sat.UTCGregorian"):
        golden[column] = golden[column].astype("datetime64[ns]")
    golden = golden.set_index(["run_id", "time"])
    assert list(ours.columns) == list(golden.columns)
    assert ours.index.equals(golden.index)
    for column in ("Sat.X", "Sat.Y", "Sat.Z"):
        pd.testing.assert_series_equal(ours[column], golden[column], rtol=1e-12, atol=1e-9)
    assert (ours["__status"] == golden["__status"]).all()


@pytest.mark.slow
def test_uniform_samples_are_reproducible_and_resume_runs_the_same_points(tmp_path: Path) -> None:
    from prefect_gmat import resume, uniform_samples
    from prefect_gmat.study.manifest import read_manifest

    drawn = uniform_samples({"Sat.SMA": (7000.0, 7500.0), "Sat.ECC": (0.0, 0.01)}, n=5, seed=7)
    assert drawn == uniform_samples({"Sat.ECC": (0.0, 0.01), "Sat.SMA": (7000.0, 7500.0)}, 5, 7)
    assert drawn != uniform_samples({"Sat.SMA": (7000.0, 7500.0), "Sat.ECC": (0.0, 0.01)}, 5, 8)
    out = tmp_path / "mc"
    df = sweep(DEMO_SCRIPT, samples=drawn, out=out, workers=2, archive=False, params=True)
    assert df.xs(3, level="run_id")["Sat.SMA"].iloc[0] == drawn[3]["Sat.SMA"]
    header = read_manifest(out).header
    assert header["parameter_spec"]["_kind"] == "explicit"
    (out / "run-3" / "report__RF.parquet").unlink()  # lose one run's output
    damaged = out / "run-1" / "report__RF.parquet"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # and damage another's
    damaged.write_bytes(bytes(data))
    again = resume(out, workers=2, archive=False, params=True)
    pd.testing.assert_frame_equal(again, df)
    assert executions(out) == {0: 1, 1: 2, 2: 1, 3: 2, 4: 1}
