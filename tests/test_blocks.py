"""The blocks, saved to and loaded from the session's real Prefect server, and used by name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from prefect_gmat.blocks import GmatInstallation, GmatSweepSpec, apply_blocks
from prefect_gmat.engine.install import shim_root
from prefect_gmat.errors import EngineNotFoundError, SweepSpecError
from prefect_gmat.flows.sweep import sweep_flow
from prefect_gmat.runtime.sync import sync_value
from prefect_gmat.study.manifest import read_manifest
from prefect_gmat.study.request import Knobs, Points, SweepRequest
from tests.support.paths import DEMO_SCRIPT

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_pip_installation_reports_its_version_and_starts_the_engine() -> None:
    GmatInstallation().save("test-pip-engine", overwrite=True)
    block: GmatInstallation = sync_value(GmatInstallation.load("test-pip-engine"))
    assert block.gmat_root is None
    assert block.get_version() == "R2026a"
    assert block.engine_root() == str(shim_root())
    check = block.check()
    assert (check.version, check.source, check.root) == ("R2026a", "pip", shim_root())
    assert check.startup_seconds > 0


def test_installation_that_is_not_gmat_fails_before_any_engine_starts(tmp_path: Path) -> None:
    block = GmatInstallation(gmat_root=tmp_path)
    with pytest.raises(EngineNotFoundError, match="not a GMAT install"):
        block.check()


def test_sweep_spec_needs_exactly_one_kind_of_points() -> None:
    with pytest.raises(ValidationError, match="exactly one of grid"):
        GmatSweepSpec(script=str(DEMO_SCRIPT))
    with pytest.raises(ValidationError, match="exactly one of grid"):
        GmatSweepSpec(script=str(DEMO_SCRIPT), grid={"Sat.SMA": [7000]}, samples=[{"Sat.SMA": 1}])
    with pytest.raises(SweepSpecError, match="does not exist"):
        GmatSweepSpec(script="/nowhere/leo.script", grid={"Sat.SMA": [7000]}).sweep_spec()


def test_sweep_spec_gives_the_flow_parameters(tmp_path: Path) -> None:
    spec = GmatSweepSpec(
        script=str(DEMO_SCRIPT), grid={"Sat.SMA": [7000, 7100]}, out_base=str(tmp_path), workers=1
    )
    params = spec.flow_parameters()
    assert params["script"] == str(DEMO_SCRIPT)
    assert params["grid"] == {"Sat.SMA": [7000, 7100]}
    assert params["workers"] == 1
    assert Path(params["out"]).parent == tmp_path
    assert Path(params["out"]).name.startswith("leo_short-")
    assert len(spec.sweep_spec()) == 2


def test_explicit_parameters_win_over_the_saved_spec(tmp_path: Path) -> None:
    GmatSweepSpec(
        script=str(DEMO_SCRIPT), grid={"Sat.SMA": [7000, 7100]}, out_base=str(tmp_path), workers=2
    ).save("test-precedence", overwrite=True)
    given = SweepRequest(points=Points(grid={"Sat.ECC": [0.01]}), knobs=Knobs(workers=1))
    filled = apply_blocks(given, installation=None, sweep_spec="test-precedence")
    assert filled.script == str(DEMO_SCRIPT)
    assert filled.points.grid == {"Sat.ECC": [0.01]}
    assert filled.knobs.workers == 1
    assert filled.out is not None and Path(filled.out).parent == tmp_path
    saved_only = apply_blocks(SweepRequest(), installation=None, sweep_spec="test-precedence")
    assert saved_only.points.grid == {"Sat.SMA": [7000, 7100]}
    assert saved_only.knobs.workers == 2  # filled by name from the block's field
    with pytest.raises(SweepSpecError, match="not both"):
        apply_blocks(
            replace(given, knobs=Knobs(gmat_root=str(tmp_path))),
            installation="test-pip-engine",
            sweep_spec=None,
        )


def test_sweep_flow_runs_from_blocks_named_in_its_parameters(tmp_path: Path) -> None:
    GmatInstallation().save("test-flow-engine", overwrite=True)
    GmatSweepSpec(
        script=str(DEMO_SCRIPT),
        grid={"Sat.SMA": [7000, 7100]},
        out_base=str(tmp_path),
        installation="test-flow-engine",
    ).save("test-leo-two", overwrite=True)
    summary = sweep_flow(sweep_spec="test-leo-two", workers=1)
    assert (summary["ok"], summary["failed"]) == (2, 0)
    out = Path(summary["out"])
    assert out.parent == tmp_path
    header = read_manifest(out).header
    assert header["script_path"] == str(DEMO_SCRIPT)
    assert header["gmat_install_version"] == "R2026a"
