"""Bad input: a typed, picklable error naming the problem and the fix, before any run.

Each case runs through the public ``sweep``/``resume`` API against the real
engine and Prefect, then checks that nothing was run and nothing was lost.
"""

from __future__ import annotations

import math
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prefect_gmat import resume, sweep
from prefect_gmat.errors import (
    EngineNotFoundError,
    ManifestError,
    PrefectGmatError,
    SweepDirectoryError,
    SweepSpecError,
)
from tests.support.paths import DATA, DEMO_SCRIPT

pytestmark = pytest.mark.usefixtures("prefect_server")  # sweep() and resume() run a flow

SMA = {"Sat.SMA": [7000, 7100]}


@dataclass
class Case:
    name: str
    kwargs: dict[str, Any]
    error: type[PrefectGmatError]
    message: str
    prepare: Callable[[Path], None] | None = None
    call: Callable[..., Any] = sweep
    script: Path | str = field(default=DEMO_SCRIPT)
    #: Refused by GMAT's own check, or prepared by a sweep: starts an engine (seconds).
    engine: bool = False


def _file(out: Path) -> None:
    out.write_text("not a directory")


def _stray_runs(out: Path) -> None:
    (out / "run-0").mkdir(parents=True)


def _other_sweep(out: Path) -> None:
    sweep(DEMO_SCRIPT, grid={"Sat.SMA": [7500]}, out=out, workers=1, archive=False)


def _changed_script(out: Path) -> None:
    script = out.parent / "mine.script"
    shutil.copy(DEMO_SCRIPT, script)
    sweep(script, grid=SMA, out=out, workers=1, archive=False)
    script.write_text(script.read_text().replace("Sat.ECC = 0.001", "Sat.ECC = 0.002"))


CASES = [
    Case("empty grid", {"grid": {}}, SweepSpecError, "grid must be a non-empty mapping"),
    Case("grid is a list", {"grid": [("Sat.SMA", [7000])]}, SweepSpecError, "non-empty mapping"),
    Case("key without a dot", {"grid": {"SMA": [7000]}}, SweepSpecError, "'Resource.Field'"),
    Case("key starts with a dot", {"grid": {".SMA": [7000]}}, SweepSpecError, "not a GMAT field"),
    Case("key ends with a dot", {"grid": {"Sat.": [7000]}}, SweepSpecError, "not a GMAT field"),
    Case("key is not a string", {"grid": {7: [7000]}}, SweepSpecError, "not a GMAT field path"),
    Case(
        "scalar instead of list",
        {"grid": {"Sat.SMA": 7000}},
        SweepSpecError,
        "write {'Sat.SMA': [7000]}",
    ),
    Case(
        "string instead of list",
        {"grid": {"Sat.SMA": "7000"}},
        SweepSpecError,
        "must be a list of values",
    ),
    Case("empty value list", {"grid": {"Sat.SMA": []}}, SweepSpecError, "is empty; give at least"),
    Case("NaN", {"grid": {"Sat.SMA": [7000, math.nan]}}, SweepSpecError, "not a finite number"),
    Case("infinity", {"grid": {"Sat.SMA": [math.inf]}}, SweepSpecError, "NaN or infinity"),
    Case(
        "NumPy NaN",
        {"grid": {"Sat.SMA": np.array([7000.0, np.nan])}},
        SweepSpecError,
        "not a finite number",
    ),
    Case("None value", {"grid": {"Sat.SMA": [None]}}, SweepSpecError, "has type NoneType"),
    Case("nested list", {"grid": {"Sat.SMA": [[7000]]}}, SweepSpecError, "has type list"),
    Case("dict value", {"grid": {"Sat.SMA": [{"v": 1}]}}, SweepSpecError, "has type dict"),
    Case("complex value", {"grid": {"Sat.SMA": [1j]}}, SweepSpecError, "has type complex"),
    Case(
        "missing script",
        {"grid": SMA},
        SweepSpecError,
        "does not exist or is not a file",
        script="/nonexistent/leo.script",
    ),
    Case("script is a directory", {"grid": SMA}, SweepSpecError, "is not a file", script=DATA),
    Case(
        "grid and samples",
        {"grid": SMA, "samples": [{"Sat.SMA": 7000}]},
        SweepSpecError,
        "exactly one of grid=",
    ),
    Case("neither grid nor samples", {}, SweepSpecError, "exactly one of grid="),
    Case("empty samples", {"samples": []}, SweepSpecError, "samples is empty"),
    Case(
        "ragged samples",
        {"samples": [{"Sat.SMA": 7000}, {"Sat.ECC": 0.1}]},
        SweepSpecError,
        "every sample must set the same fields",
    ),
    Case("zero workers", {"grid": SMA, "workers": 0}, SweepSpecError, "workers must be at least 1"),
    Case("negative workers", {"grid": SMA, "workers": -2}, SweepSpecError, "workers=-2"),
    Case("fractional workers", {"grid": SMA, "workers": 1.5}, SweepSpecError, "whole number"),
    Case("zero timeout", {"grid": SMA, "timeout": 0}, SweepSpecError, "timeout must be positive"),
    Case("negative retries", {"grid": SMA, "retries": -1}, SweepSpecError, "retries must be 0"),
    Case(
        "negative retry delay",
        {"grid": SMA, "retry_delay": -1.0},
        SweepSpecError,
        "retry_delay must be 0 or more",
    ),
    Case(
        "output path is a file",
        {"grid": SMA},
        SweepDirectoryError,
        "is a file; pass a directory",
        prepare=_file,
    ),
    Case(
        "stray run folders",
        {"grid": SMA},
        SweepDirectoryError,
        "has run-* folders but no",
        prepare=_stray_runs,
    ),
    Case(
        "different sweep there",
        {"grid": SMA},
        SweepDirectoryError,
        "already holds a different sweep",
        prepare=_other_sweep,
        engine=True,
    ),
    Case(
        "misspelt field",
        {"grid": {"Sat.SMAA": [7000]}},
        SweepSpecError,
        "Did you mean 'Sat.SMA'?",
        engine=True,
    ),
    Case(
        "misspelt resource",
        {"grid": {"Sta.SMA": [7000]}},
        SweepSpecError,
        "no resource named 'Sta'. Did you mean 'Sat.SMA'?",
        engine=True,
    ),
    Case(
        "wrong value type",
        {"grid": {"Sat.ECC": ["high"]}},
        SweepSpecError,
        "expected a real number, got str",
        engine=True,
    ),
    Case(
        "value GMAT refuses",
        {"grid": {"Prop.InitialStepSize": [0, 30]}},
        SweepSpecError,
        "Initial Step Size must not be zero",
        engine=True,
    ),
    Case(
        "enum value GMAT refuses",
        {"grid": {"Sat.DateFormat": ["Bogus"]}},
        SweepSpecError,
        "is not an allowed value",
        engine=True,
    ),
    Case(
        "script GMAT cannot parse",
        {"grid": SMA},
        SweepSpecError,
        'The field name "Bogus Thing" on object "Prop" is not permitted',
        script=DATA / "parse_error.script",
        engine=True,
    ),
    Case(
        "script naming a missing file",
        {"grid": SMA},
        SweepSpecError,
        'The file name "no_such_model.cof" does not exist',
        script=DATA / "missing_gravity_file.script",
        engine=True,
    ),
    Case(
        "engine path not an install",
        {"grid": SMA, "gmat_root": "/tmp"},
        EngineNotFoundError,
        "not a GMAT install",
    ),
    Case("resume without a sweep", {}, ManifestError, "no manifest at", call=resume),
    Case(
        "resume after the script changed",
        {},
        SweepDirectoryError,
        "has changed since the sweep",
        prepare=_changed_script,
        call=resume,
        engine=True,
    ),
]


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.name, marks=pytest.mark.slow if c.engine else ()) for c in CASES]
)
def test_bad_input_is_refused_before_any_run(case: Case, tmp_path: Path) -> None:
    out = tmp_path / "out"
    if case.prepare is not None:
        case.prepare(out)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(case.error) as info:
        if case.call is resume:
            case.call(out, workers=1)
        else:
            case.call(case.script, out=out, **case.kwargs)
    error = info.value
    assert case.message in str(error)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error) and str(clone) == str(error)
    assert clone.payload == error.payload
    # nothing run, nothing written, nothing changed
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_there_are_at_least_thirty_distinct_cases() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 30
