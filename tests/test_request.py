"""One sweep request: the flow's parameters, the API's knobs, the blocks' fields and the
CLI's flags are all read from it, so they cannot drift apart. No engine runs here."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from prefect.flows import load_flow_from_entrypoint

from prefect_gmat.api import _FRAME_KNOBS, SweepKnobs
from prefect_gmat.blocks import GmatSweepSpec
from prefect_gmat.cli import build_parser
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.flows.sweep import sweep_flow
from prefect_gmat.study.designs import MonteCarloDesign
from prefect_gmat.study.request import (
    BLOCK_PARAMETERS,
    Knobs,
    Points,
    SweepRequest,
    flow_parameter_names,
    knob_names,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "src" / "prefect_gmat" / "scripts" / "leo_short.script"
#: Every command that runs points, and whether it starts a study (takes --postprocess).
RUNNING_COMMANDS = {
    "run": True,
    "mc": True,
    "lhs": True,
    "explicit": True,
    "extend": False,
    "resume": False,
    "retry-failed": False,
    "demo": False,
}


def _flow_signature() -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(sweep_flow.fn).parameters)


def test_the_flows_parameters_are_the_requests_and_default_to_unset() -> None:
    flow = _flow_signature()
    assert set(flow) == set(flow_parameter_names()) | set(BLOCK_PARAMETERS)
    empty = SweepRequest()
    assert empty.flow_parameters() == {}  # nothing set: the flow's own defaults
    for name, parameter in flow.items():
        if name in BLOCK_PARAMETERS:
            continue
        given = {name: parameter.default}
        # The flow's default, passed explicitly, is the request's default too.
        assert SweepRequest.from_flow_parameters(given) == empty, name


def test_the_api_knobs_are_the_request_knobs_and_the_frame_knobs() -> None:
    assert set(SweepKnobs.__annotations__) == set(knob_names()) | set(_FRAME_KNOBS)


def _options(parser: argparse.ArgumentParser, command: str) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        command
    ]
    return {option for action in sub._actions for option in action.option_strings}


def test_every_command_that_runs_points_takes_every_knob() -> None:
    parser = build_parser()
    knob_flags = {
        "--no-archive" if name == "archive" else "--" + name.replace("_", "-")
        for name in knob_names()
    }
    assert {"--dask", "--workers", "--timeout", "--retries", "--points-per-task"} <= knob_flags
    for command, starts_study in RUNNING_COMMANDS.items():
        options = _options(parser, command)
        assert knob_flags | {"--no-progress"} <= options, command
        assert ("--postprocess" in options) == starts_study, command


def test_the_cli_flags_reach_the_knobs_by_name() -> None:
    from prefect_gmat.cli import knob_values

    args = build_parser().parse_args(
        [
            *("resume", "out", "--workers", "3", "--points-per-task", "auto", "--no-archive"),
            *("--dask", "local", "--retry-delay", "0.5", "--no-progress"),
        ]
    )
    knobs = dict(knob_values(args))
    assert knobs.pop("progress") is False
    assert Knobs.from_mapping(knobs) == Knobs(
        workers=3, points_per_task="auto", archive=False, dask="local", retry_delay=0.5
    )


def test_a_request_survives_the_flows_flat_parameters() -> None:
    design = MonteCarloDesign.model_validate(
        {"n": 5, "seed": 7, "perturb": {"Sat.SMA": ["normal", 7000, 5]}}
    )
    requests = [
        SweepRequest(
            script=str(SCRIPT),
            points=Points(grid={"Sat.SMA": [7000, 7100]}),
            out="/tmp/x",
            knobs=Knobs(workers=2, timeout=30.0, archive=False, dask="local"),
        ),
        SweepRequest(script=str(SCRIPT), points=Points(design=design), postprocess="m:f"),
        SweepRequest(out="/tmp/y", mode="extend", points=Points(extend_to=9)),
        SweepRequest(out="/tmp/z", mode="retry_failed", knobs=Knobs(points_per_task=1)),
    ]
    for request in requests:
        flat = request.flow_parameters()
        assert set(flat) <= set(flow_parameter_names())
        assert SweepRequest.from_flow_parameters(flat) == request


@pytest.mark.parametrize(
    ("points", "required", "named"),
    [
        (Points(), True, "none"),
        (Points(grid={"a.b": [1]}, samples=[{"a.b": 1}]), True, "grid and samples"),
        (Points(samples_file="f.csv", design=object()), False, "samples_file and design"),  # type: ignore[arg-type]
    ],
)
def test_exactly_one_kind_of_points_is_checked_in_one_place(
    points: Points, required: bool, named: str
) -> None:
    with pytest.raises(SweepSpecError, match=f"exactly one of grid=.*got {named}"):
        points.check_one_kind(required=required)
    Points().check_one_kind(required=False)  # resume: the manifest has the points


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"workers": 0}, "workers must be at least 1"),
        ({"workers": 1.5}, "whole number"),
        ({"timeout": -1}, "timeout must be positive"),
        ({"retries": -1}, "retries must be 0 or more"),
        ({"points_per_task": 0}, "points_per_task=0 is not allowed"),
        ({"archive": "yes"}, "archive='yes' must be True or False"),
        ({"wrokers": 2}, r"unknown keyword\(s\) \['wrokers'\]; the knobs are workers"),
    ],
)
def test_a_bad_knob_is_refused_when_the_request_is_built(
    knobs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SweepSpecError, match=message):
        Knobs.from_mapping(knobs)


def test_a_bad_mode_is_refused() -> None:
    with pytest.raises(SweepSpecError, match="mode='again' is not a mode"):
        SweepRequest(mode="again")  # type: ignore[arg-type]


def test_the_block_fills_knobs_by_field_name(tmp_path: Path) -> None:
    block = GmatSweepSpec(
        script=str(SCRIPT), grid={"Sat.SMA": [7000]}, out_base=str(tmp_path), workers=3
    )
    request = block.request()
    assert request.knobs == Knobs(workers=3)
    assert request.points == Points(grid={"Sat.SMA": [7000]})
    assert Path(str(request.out)).parent == tmp_path
    shared = set(GmatSweepSpec.model_fields) & set(knob_names())
    assert shared == {"workers", "timeout", "max_failures"}  # knobs a saved sweep may carry


def _deployed_flows() -> list[tuple[str, Any]]:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    entrypoints = {d["entrypoint"] for d in config["deployments"] if ":" in d["entrypoint"]}
    return [(e, load_flow_from_entrypoint(str(REPO / e))) for e in sorted(entrypoints)]


def test_every_parameter_of_every_deployed_flow_is_described_in_the_run_form() -> None:
    """Prefect's run form shows the parameter schema's descriptions (from the docstring's
    Args: section); a parameter without one is a bare field to the person starting a run."""
    flows = _deployed_flows()
    assert len(flows) == 2
    for entrypoint, flow in flows:
        properties = flow.parameters.model_dump()["properties"]
        assert properties, entrypoint
        bare = [name for name, schema in properties.items() if not schema.get("description")]
        assert bare == [], f"{entrypoint}: no description for {bare}"
