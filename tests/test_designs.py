"""Designs: gmat-sweep 0.6.0's exact draws, extend, samples from files, postprocess hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from prefect_gmat.designs import (
    Design,
    latin_hypercube_points,
    monte_carlo_points,
    parse_perturb,
    parse_perturb_option,
    read_samples,
)
from prefect_gmat.errors import SweepSpecError
from tests.conftest import DATA

DISPERSION = DATA / "launch_dispersion.script"
#: A launch slip (s) and the injection burn's three components (km/s), as tuples.
PERTURB: dict[str, Any] = {
    "LaunchDelay.Value": ("uniform", 0.0, 600.0),
    "TOI.Element1": ("normal", 0.1, 0.002),
    "TOI.Element2": ("normal", 0.0, 0.001),
    "TOI.Element3": ("lognormal", -9.0, 0.5),
}


# --- draws, without the engine -----------------------------------------------------------


def test_monte_carlo_draws_equal_gmat_sweeps_in_every_accepted_form() -> None:
    from gmat_sweep.grids import expand_monte_carlo_to_run_specs

    theirs = [s.overrides for s in expand_monte_carlo_to_run_specs(PERTURB, 25, 42, "s", "o")]
    json_form = {k: list(v) for k, v in PERTURB.items()}
    cli_form = dict(parse_perturb_option(f"{k}={d}:{a}:{b}") for k, (d, a, b) in PERTURB.items())
    dict_form = {
        k: {"dist": d, **dict(zip(("lo", "hi") if d == "uniform" else ("mu", "sigma"), (a, b)))}
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
    with pytest.raises(SweepSpecError, match="has no column 'LaunchDelay.Value'"):
        read_samples(frame, columns=["TOI.Element1", "LaunchDelay.Value"])
    with pytest.raises(SweepSpecError, match="has a column 'TOI.Element9' that is not one of"):
        read_samples(frame, columns=["TOI.Element1"])
    bad = pd.DataFrame({"TOI.Element1": [0.1, "x"]})
    with pytest.raises(SweepSpecError, match="row 1 \\(index 1\\), column 'TOI.Element1'"):
        read_samples(bad)
