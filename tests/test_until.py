"""A Monte Carlo study that stops itself once converged: gmat-sweep's draws at its final n,
rounds that do not overshoot, the reason in the header and the flow run's state, and a
study both tools can still resume and extend. Real engine, real Prefect, real gmat-sweep."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect import get_client

from prefect_gmat import extend, monte_carlo, resume
from prefect_gmat.cli import parse_until_option
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.convergence import MIN_OK_RUNS, Until
from prefect_gmat.study.manifest import read_manifest
from tests.support.paths import DATA
from tests.support.prefect_api import latest_flow_run
from tests.support.reference import run_reference
from tests.support.sweepdir import executions

pytestmark = pytest.mark.usefixtures("prefect_server")

DISPERSION = DATA / "launch_dispersion.script"
PERTURB: dict[str, Any] = {
    "LaunchDelay.Value": ("uniform", 0.0, 600.0),
    "TOI.Element1": ("normal", 0.1, 0.002),
    "TOI.Element2": ("normal", 0.0, 0.001),
    "TOI.Element3": ("lognormal", -9.0, 0.5),
}
SEED = 7
METRIC = "Sat.Earth.SMA"
#: The final SMA scatters ~3.7 km here, so this standard error needs some 40 runs.
TARGET = 0.6
CAP = 200


def _se(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


@pytest.mark.slow
def test_a_study_stops_once_converged_and_is_monte_carlo_at_its_n(tmp_path: Path) -> None:
    out = tmp_path / "until"
    until = {"metric": METRIC, "se": TARGET}
    ours = monte_carlo(
        DISPERSION, n=CAP, perturb=PERTURB, seed=SEED, out=out, until=until, workers=2,
        archive=False,
    )  # fmt: skip
    header = read_manifest(out).header
    n = int(header["parameter_spec"]["n"])
    record = header["until"]
    assert record["stopped"] == "converged" and record["target"] == until and record["cap"] == CAP
    assert ours.index.get_level_values("run_id").nunique() == n < CAP
    rounds = record["rounds"]
    assert [r["met"] for r in rounds] == [False] * (len(rounds) - 1) + [True]
    assert rounds[-1]["n"] == n and rounds[-1]["se"] <= TARGET

    # No more than 1.5x the smallest n that meets the target, in run-id order.
    finals = ours.groupby(level="run_id")[METRIC].last().sort_index().tolist()
    smallest = next(m for m in range(MIN_OK_RUNS, n + 1) if _se(finals[:m]) <= TARGET)
    assert n <= 1.5 * smallest, (n, smallest)
    assert math.isclose(rounds[-1]["se"], _se(finals), rel_tol=1e-9)

    with get_client(sync_client=True) as client:  # the state says it converged
        run = latest_flow_run(client, f"sweep-launch_dispersion-{CAP}pts")
        assert run.state is not None and run.state.is_completed()
        assert f"converged at n={n}" in str(run.state.message)

    # The same study as monte_carlo(n=<that n>), in ours and in gmat-sweep, frame for frame;
    # gmat-sweep extends the stopped study.
    plain = monte_carlo(
        DISPERSION, n=n, perturb=PERTURB, seed=SEED, out=tmp_path / "plain", workers=2,
        archive=False,
    )  # fmt: skip
    pd.testing.assert_frame_equal(ours, plain, check_exact=True)
    common = {"script": str(DISPERSION), "perturb": {k: list(v) for k, v in PERTURB.items()}}
    run_reference(
        [
            {"op": "monte_carlo", **common, "out": str(tmp_path / "theirs"), "n": n,
             "seed": SEED, "frame": str(tmp_path / "theirs.pkl")},
            {"op": "copy", "out": str(out), "to": str(tmp_path / "for-them")},
            {"op": "extend", "script": str(DISPERSION), "out": str(tmp_path / "for-them"),
             "n": 4, "frame": str(tmp_path / "extended.pkl")},
        ]
    )  # fmt: skip
    pd.testing.assert_frame_equal(ours, pd.read_pickle(tmp_path / "theirs.pkl"), check_exact=True)
    extended: pd.DataFrame = pd.read_pickle(tmp_path / "extended.pkl")
    assert extended.index.get_level_values("run_id").nunique() == n + 4

    # Resume runs nothing; the same call again runs nothing; extend grows it.
    again = resume(out, workers=2, archive=False)
    pd.testing.assert_frame_equal(again, ours, check_exact=True)
    monte_carlo(
        DISPERSION, n=CAP, perturb=PERTURB, seed=SEED, out=out, until=until, workers=2,
        archive=False,
    )  # fmt: skip
    assert set(executions(out).values()) == {1}
    grown = extend(out, n=n + 6, workers=2, archive=False)
    assert grown.index.get_level_values("run_id").nunique() == n + 6
    assert set(executions(out).values()) == {1}


@pytest.mark.slow
def test_a_cap_that_comes_first_says_so(tmp_path: Path) -> None:
    out = tmp_path / "capped"
    monte_carlo(
        DISPERSION, n=12, perturb=PERTURB, seed=SEED, out=out, until={"metric": METRIC,
        "rel_se": 1e-9}, workers=2, archive=False,
    )  # fmt: skip
    record = read_manifest(out).header["until"]
    assert record["stopped"] == "cap reached"
    assert [r["n"] for r in record["rounds"]] == [10, 12]


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ({"metric": METRIC}, "one of se"),
        ({"metric": METRIC, "se": 1, "rel_se": 0.1}, "one of se"),
        ({"metric": METRIC, "se": -1}, "must be a positive number"),
        ({"se": 1}, "give the report column"),
        ("Sat.X", "is not a mapping"),
    ],
)
def test_a_bad_target_is_refused(until: Any, message: str) -> None:
    with pytest.raises(SweepSpecError, match=message):
        Until.parse(until)


def test_the_cli_reads_a_target() -> None:
    assert parse_until_option("Sat.Earth.SMA:se=0.5") == {"metric": "Sat.Earth.SMA", "se": 0.5}
    assert parse_until_option("Sat.X:rel_se=0.001") == {"metric": "Sat.X", "rel_se": 0.001}
    with pytest.raises(SweepSpecError, match="METRIC:se=VALUE"):
        parse_until_option("Sat.X")
