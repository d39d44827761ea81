"""study/spec.py: grids, samples and designs as points; the manifest's parameter_spec;
the script hash; uniform_samples; every refusal names its field."""

from __future__ import annotations

import hashlib
import json
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from gmat_sweep.grids import full_factorial
from gmat_sweep.manifest import canonical_script_sha256 as gmat_sweep_sha256

from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.designs import Design, DesignKind, parse_perturb
from prefect_gmat.study.spec import Point, SweepSpec, canonical_script_sha256, uniform_samples

# --- grids -----------------------------------------------------------------------------------


def test_grid_run_ids_follow_gmat_sweeps_order(script: Path) -> None:
    """Keys sorted, then the cartesian product: the run ids gmat-sweep gives the same grid."""
    grid: dict[str, list[Any]] = {
        "Sat.SMA": [7000, 7100, 7200],
        "Sat.ECC": [0.01, 0.02],
        "Prop.Type": ["RK89"],
    }
    spec = SweepSpec.from_grid(script, grid)
    points = list(spec.points())
    assert [p.run_id for p in points] == list(range(6))
    assert [p.overrides for p in points] == list(full_factorial(grid))
    assert points[1] == Point(1, {"Prop.Type": "RK89", "Sat.ECC": 0.01, "Sat.SMA": 7100})
    assert len(spec) == 6
    assert spec.fields == ["Prop.Type", "Sat.ECC", "Sat.SMA"]
    assert spec.seed is None and spec.design is None and spec.samples is None


def test_points_are_generated_lazily(script: Path) -> None:
    """A 10^6-point grid is not materialised to take its first points."""
    grid = {f"Sat.F{i}": list(range(10)) for i in range(6)}
    spec = SweepSpec.from_grid(script, grid)
    points = spec.points()
    assert next(points).run_id == 0 and next(points).run_id == 1
    assert len(spec) == 10**6


def test_grid_values_become_plain_json_scalars(script: Path) -> None:
    grid: dict[str, list[Any]] = {
        "Sat.SMA": [np.int64(7000), np.float32(7100.5), Fraction(1, 4)],
        "Sat.Flag": [True, False],
        "Sat.Name": ["x"],
    }
    spec = SweepSpec.from_grid(script, grid)
    assert spec.grid is not None
    sma = spec.grid["Sat.SMA"]
    assert sma == [7000, 7100.5, 0.25]
    assert [type(v) for v in sma] == [int, float, float]
    assert [type(v) for v in spec.grid["Sat.Flag"]] == [bool, bool]  # not 1 and 0
    json.dumps([p.overrides for p in spec.points()])  # every point is JSON as it is


def test_numpy_booleans_are_booleans(script: Path) -> None:
    spec = SweepSpec.from_grid(script, {"Sat.Flag": np.array([True, False])})
    assert spec.grid == {"Sat.Flag": [True, False]}
    assert [type(v) for v in spec.grid["Sat.Flag"]] == [bool, bool]


def test_a_grid_takes_any_iterable_of_values(script: Path) -> None:
    spec = SweepSpec.from_grid(script, {"Sat.SMA": range(7000, 7300, 100)})
    assert spec.grid == {"Sat.SMA": [7000, 7100, 7200]}
    assert SweepSpec.from_grid(script, {"Sat.SMA": np.array([1.0, 2.0])}).grid == {
        "Sat.SMA": [1.0, 2.0]
    }


@pytest.mark.parametrize(
    ("grid", "field"),
    [
        ({}, "grid"),
        ([("Sat.SMA", [1])], "grid"),
        ({"SMA": [1]}, "SMA"),
        ({".SMA": [1]}, ".SMA"),
        ({"Sat.": [1]}, "Sat."),
        ({3: [1]}, "3"),
        ({"Sat.SMA": 7000}, "Sat.SMA"),
        ({"Sat.SMA": "7000"}, "Sat.SMA"),
        ({"Sat.SMA": []}, "Sat.SMA"),
        ({"Sat.SMA": [7000, math.nan]}, "Sat.SMA"),
        ({"Sat.SMA": [np.float64("inf")]}, "Sat.SMA"),
        ({"Sat.SMA": [None]}, "Sat.SMA"),
        ({"Sat.SMA": [1 + 2j]}, "Sat.SMA"),
        ({"Sat.SMA": [[7000, 7100]]}, "Sat.SMA"),
    ],
)
def test_a_bad_grid_is_refused_naming_the_field(script: Path, grid: Any, field: str) -> None:
    with pytest.raises(SweepSpecError) as info:
        SweepSpec.from_grid(script, grid)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)  # callers may catch ValueError


def test_a_non_finite_value_is_named_in_the_error(script: Path) -> None:
    with pytest.raises(SweepSpecError, match="not a finite number") as info:
        SweepSpec.from_grid(script, {"Sat.SMA": [7000, math.inf]})
    assert info.value.value == "inf"


# --- the script ------------------------------------------------------------------------------


def test_the_script_path_is_made_absolute(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(script.parent)
    spec = SweepSpec.from_grid("mission.script", {"Sat.SMA": [1]})
    assert spec.script == script.resolve() and spec.script.is_absolute()


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "blank"])
def test_a_script_that_is_not_a_script_is_refused(tmp_path: Path, case: str) -> None:
    path = tmp_path / "mission.script"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "blank":
        path.write_text("\n  \r\n\t\n")
    with pytest.raises(SweepSpecError) as info:
        SweepSpec.from_grid(path, {"Sat.SMA": [1]})
    assert info.value.field == "script"
    assert info.value.value == str(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_script_is_refused(script: Path) -> None:
    script.chmod(0)
    try:
        with pytest.raises(SweepSpecError, match="cannot be read") as info:
            SweepSpec.from_grid(script, {"Sat.SMA": [1]})
        assert info.value.field == "script"
    finally:
        script.chmod(0o644)


@pytest.mark.parametrize(
    "variant",
    [
        b"Create Spacecraft Sat\nSat.SMA = 7000\n",
        b"\xef\xbb\xbfCreate Spacecraft Sat\nSat.SMA = 7000\n",  # a BOM
        b"Create Spacecraft Sat\r\nSat.SMA = 7000\r\n",  # Windows line endings
        b"Create Spacecraft Sat\rSat.SMA = 7000",  # old Mac, no final newline
        b"Create Spacecraft Sat\nSat.SMA = 7000\n\n\n",  # trailing blank lines
    ],
)
def test_the_script_hash_ignores_bom_line_endings_and_trailing_newlines_as_gmat_sweep(
    tmp_path: Path, variant: bytes
) -> None:
    path = tmp_path / "variant.script"
    path.write_bytes(variant)
    canonical = b"Create Spacecraft Sat\nSat.SMA = 7000\n"
    assert canonical_script_sha256(path) == hashlib.sha256(canonical).hexdigest()
    assert canonical_script_sha256(path) == gmat_sweep_sha256(path)


def test_the_script_hash_changes_with_the_script(tmp_path: Path) -> None:
    a, b = tmp_path / "a.script", tmp_path / "b.script"
    a.write_text("Sat.SMA = 7000\n")
    b.write_text("Sat.SMA = 7001\n")
    assert canonical_script_sha256(a) != canonical_script_sha256(b)
    b.write_text("Sat.SMA = 7000\n")
    assert canonical_script_sha256(a) == canonical_script_sha256(str(b))


# --- samples ---------------------------------------------------------------------------------


def test_samples_run_in_the_order_given_with_the_first_rows_columns(script: Path) -> None:
    rows = [
        {"Sat.SMA": 7000, "Sat.ECC": 0.01},
        {"Sat.ECC": 0.02, "Sat.SMA": np.int64(7100)},  # another key order, the same fields
    ]
    spec = SweepSpec.from_samples(script, rows)
    assert len(spec) == 2
    assert spec.fields == ["Sat.SMA", "Sat.ECC"]  # first-seen order, as gmat-sweep's explicit
    assert [p.overrides for p in spec.points()] == [
        {"Sat.SMA": 7000, "Sat.ECC": 0.01},
        {"Sat.ECC": 0.02, "Sat.SMA": 7100},
    ]
    assert spec.parameter_spec() == {
        "_kind": "explicit",
        "columns": ["Sat.SMA", "Sat.ECC"],
        "rows": [[7000, 0.01], [7100, 0.02]],
    }


def test_samples_from_a_dataframe_or_a_csv_file(script: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame({"Sat.SMA": [7000, 7100], "Sat.ECC": [0.01, 0.02]})
    csv = tmp_path / "points.csv"
    frame.to_csv(csv, index=False)
    from_frame = SweepSpec.from_samples(script, frame)
    from_csv = SweepSpec.from_samples(script, csv)
    assert (
        from_frame.samples
        == from_csv.samples
        == [
            {"Sat.SMA": 7000, "Sat.ECC": 0.01},
            {"Sat.SMA": 7100, "Sat.ECC": 0.02},
        ]
    )


@pytest.mark.parametrize(
    ("samples", "field"),
    [
        ([], "samples"),
        ([{"Sat.SMA": 1}, {"Sat.ECC": 1}], "samples"),
        ([{"Sat.SMA": 1}, {"Sat.SMA": 2, "Sat.ECC": 1}], "samples"),
        ([{"SMA": 1}], "SMA"),
        ([{"Sat.SMA": math.nan}], "Sat.SMA"),
        ([{"Sat.SMA": [1, 2]}], "Sat.SMA"),
    ],
)
def test_bad_samples_are_refused_naming_the_field(script: Path, samples: Any, field: str) -> None:
    with pytest.raises(SweepSpecError) as info:
        SweepSpec.from_samples(script, samples)
    assert info.value.field == field


def test_a_missing_samples_file_is_refused(script: Path, tmp_path: Path) -> None:
    with pytest.raises(SweepSpecError) as info:
        SweepSpec.from_samples(script, tmp_path / "nope.csv")
    assert info.value.field == "samples"


def test_rows_that_are_not_mappings_are_refused(script: Path) -> None:
    with pytest.raises(SweepSpecError):
        SweepSpec.from_samples(script, [[7000, 0.01], [0.01, 7000]])


# --- designs and parameter specs -------------------------------------------------------------


def _design(kind: DesignKind = "monte_carlo", n: int = 5, seed: int = 11) -> Design:
    perturb = parse_perturb({"Sat.SMA": ("normal", 7000, 5), "Sat.ECC": ("uniform", 0.0, 0.02)})
    return Design(kind, perturb, n, seed)


@pytest.mark.parametrize("kind", ["monte_carlo", "latin_hypercube"])
def test_a_design_runs_its_drawn_points(script: Path, kind: DesignKind) -> None:
    design = _design(kind)
    spec = SweepSpec.from_design(script, design)
    assert spec.design == design and spec.seed == 11 and len(spec) == 5
    assert [p.overrides for p in spec.points()] == design.points()
    assert spec.fields == ["Sat.ECC", "Sat.SMA"]
    assert spec.parameter_spec() == {
        "_kind": kind,
        "perturb": {"Sat.ECC": ["uniform", 0.0, 0.02], "Sat.SMA": ["normal", 7000, 5]},
        "n": 5,
        "seed": 11,
    }
    ecc = [p.overrides["Sat.ECC"] for p in spec.points()]
    assert all(0.0 <= float(v) < 0.02 for v in ecc)


def test_the_grid_parameter_spec_is_gmat_sweeps_and_a_copy(script: Path) -> None:
    spec = SweepSpec.from_grid(script, {"Sat.SMA": [7000, 7100], "Sat.ECC": [0.01]})
    recorded = spec.parameter_spec()
    assert recorded == {"_kind": "grid", "Sat.SMA": [7000, 7100], "Sat.ECC": [0.01]}
    recorded["Sat.SMA"].append(1)
    assert spec.parameter_spec()["Sat.SMA"] == [7000, 7100]


@pytest.mark.parametrize("kind", ["grid", "explicit", "monte_carlo", "latin_hypercube"])
def test_a_spec_rebuilds_from_its_parameter_spec_read_back_from_json(
    script: Path, kind: str
) -> None:
    if kind == "grid":
        spec = SweepSpec.from_grid(script, {"Sat.SMA": [7000, 7100], "Sat.ECC": [0.01, 0.02]})
    elif kind == "explicit":
        spec = SweepSpec.from_samples(script, [{"Sat.SMA": 7000, "Sat.Name": "a"}])
    elif kind == "monte_carlo":
        spec = SweepSpec.from_design(script, _design("monte_carlo"))
    else:
        spec = SweepSpec.from_design(script, _design("latin_hypercube"))
    recorded = json.loads(json.dumps(spec.parameter_spec()))
    again = SweepSpec.from_parameter_spec(script, recorded)
    assert list(again.points()) == list(spec.points())
    assert again.parameter_spec() == spec.parameter_spec()


def test_a_parameter_spec_without_a_kind_is_a_grid_as_in_old_manifests(script: Path) -> None:
    spec = SweepSpec.from_parameter_spec(script, {"Sat.SMA": [1, 2]})
    assert spec.grid == {"Sat.SMA": [1, 2]}


def test_an_unknown_parameter_spec_kind_is_refused(script: Path) -> None:
    with pytest.raises(SweepSpecError, match="'sobol'") as info:
        SweepSpec.from_parameter_spec(script, {"_kind": "sobol"})
    assert info.value.field == "parameter_spec"


# --- postprocess hooks -----------------------------------------------------------------------


def test_a_postprocess_hook_is_resolved_now(script: Path) -> None:
    spec = SweepSpec.from_grid(script, {"Sat.SMA": [1]})
    hooked = spec.with_postprocess("tests.unit.hooks:write_summary")
    assert hooked.postprocess == "tests.unit.hooks:write_summary"
    assert spec.postprocess is None
    assert hooked.with_postprocess(None).postprocess is None


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("tests.unit.hooks", "is not 'package.module:function'"),
        (":write_summary", "is not 'package.module:function'"),
        ("tests.unit.hooks:", "is not 'package.module:function'"),
        ("tests.unit.no_such_module:f", "cannot be imported"),
        ("tests.unit.hooks:no_such_function", "has no function"),
        ("tests.unit.hooks:NOT_CALLABLE", "has no function"),
    ],
)
def test_a_bad_postprocess_hook_is_refused_before_any_run(
    script: Path, hook: str, message: str
) -> None:
    spec = SweepSpec.from_grid(script, {"Sat.SMA": [1]})
    with pytest.raises(SweepSpecError, match=message) as info:
        spec.with_postprocess(hook)
    assert info.value.field == "postprocess"


# --- uniform_samples -------------------------------------------------------------------------


def test_uniform_samples_are_reproducible_from_the_seed_and_in_range() -> None:
    ranges = {"Sat.SMA": (7000.0, 7100.0), "Sat.ECC": (0, 1)}
    first = uniform_samples(ranges, 50, seed=3)
    assert first == uniform_samples(ranges, 50, seed=3)
    assert first != uniform_samples(ranges, 50, seed=4)
    assert len(first) == 50
    for row in first:
        assert list(row) == ["Sat.ECC", "Sat.SMA"]  # sorted fields
        assert all(type(v) is float for v in row.values())
        assert 7000.0 <= float(row["Sat.SMA"]) < 7100.0 and 0 <= float(row["Sat.ECC"]) < 1


def test_uniform_samples_feed_a_samples_sweep(script: Path) -> None:
    drawn = uniform_samples({"Sat.SMA": (7000, 7100)}, 4, seed=0)
    spec = SweepSpec.from_samples(script, drawn)
    assert [p.overrides for p in spec.points()] == drawn


def test_a_range_of_one_value_draws_that_value() -> None:
    assert uniform_samples({"Sat.SMA": (7000, 7000)}, 2, seed=1) == [{"Sat.SMA": 7000.0}] * 2


@pytest.mark.parametrize(
    ("ranges", "n", "field"),
    [
        ({"Sat.SMA": (0, 1)}, 0, "n"),
        ({"Sat.SMA": (0, 1)}, -3, "n"),
        ({"Sat.SMA": (0, 1)}, True, "n"),
        ({"Sat.SMA": (0, 1)}, 2.0, "n"),
        ({"SMA": (0, 1)}, 2, "SMA"),
        ({"Sat.SMA": (1, 0)}, 2, "Sat.SMA"),
        ({"Sat.SMA": ("a", "b")}, 2, "Sat.SMA"),
        ({"Sat.SMA": (0, math.inf)}, 2, "Sat.SMA"),
    ],
)
def test_bad_uniform_ranges_are_refused_naming_the_field(ranges: Any, n: Any, field: str) -> None:
    with pytest.raises(SweepSpecError) as info:
        uniform_samples(ranges, n, seed=0)
    assert info.value.field == field


def test_a_range_of_three_numbers_is_refused_naming_the_field() -> None:
    with pytest.raises(SweepSpecError) as info:
        uniform_samples({"Sat.SMA": (0, 1, 2)}, 2, seed=0)  # type: ignore[dict-item]
    assert info.value.field == "Sat.SMA"
