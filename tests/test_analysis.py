"""Reading results: every output kind, gmat-sweep's statistics and Sobol, plots, the handle, UI.

Real small sweeps (failed runs included) on the pip engine; gmat-sweep 0.6.0's
own functions, and a gmat-sweep run in a subprocess, are the reference.
"""

from __future__ import annotations

import base64
import logging
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import gmat_sweep as gs
import pandas as pd
import pytest
from gmat_sweep import Manifest
from gmat_sweep.aggregate import (
    lazy_ephemerides,
    lazy_extra_outputs,
    lazy_fused_reports,
    lazy_multiindex,
    lazy_solver_convergence,
    lazy_solver_runs,
)
from matplotlib.figure import Figure

from prefect_gmat import load_sweep, sweep
from prefect_gmat.analysis.handle import open_sweep
from prefect_gmat.analysis.sensitivity import sobol_analyze, sobol_sample
from prefect_gmat.analysis.stats import mc_convergence, sweep_diff, sweep_summary
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study import frame as readers
from prefect_gmat.study.manifest import read_manifest
from tests.support.paths import DATA, DEMO_SCRIPT
from tests.support.prefect_api import flow_run_artifacts
from tests.support.reference import run_reference

pytestmark = pytest.mark.usefixtures("prefect_server")

OUTPUTS_SCRIPT = DATA / "leo_outputs.script"
#: Sat.SMA = 1 km is accepted but cannot be propagated: three failed runs (0, 4, 8).
GRID: dict[str, list[Any]] = {"Sat.SMA": [1, 7000, 7200, 7400], "Sat.INC": [28.5, 51.6, 98.0]}
FAILED = [0, 4, 8]
TARGET_GRID: dict[str, list[Any]] = {"DC1.MaximumIterations": [1, 25], "Sat.SMA": [1, 7000]}
PERTURB: dict[str, Any] = {
    "Sat.SMA": ("uniform", 7000.0, 7400.0),
    "Sat.ECC": ("normal", 0.01, 0.002),
}
HOOK = "tests.support.hooks:orbit_extras"


@pytest.fixture(scope="module")
def grid_out(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Path:
    """Our sweep of leo_outputs.script: 12 runs, 3 failed, two reports and an ephemeris."""
    out = tmp_path_factory.mktemp("analysis") / "grid"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_GMAT_PLOT_METRIC", "auto")  # the default, whatever the suite sets
        sweep(OUTPUTS_SCRIPT, grid=GRID, out=out, workers=2, report="Orbit")
    return out


@pytest.fixture(scope="module")
def reference_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gmat-sweep 0.6.0's own sweep of the same grid, with a postprocess hook."""
    out = tmp_path_factory.mktemp("reference") / "grid"
    # Two reports: gmat-sweep's sweep() cannot build the frame (it needs name=); the runs
    # and the hook's outputs are what these tests read.
    step = {"op": "sweep", "script": str(OUTPUTS_SCRIPT), "out": str(out), "grid": GRID}
    run_reference([{**step, "postprocess": HOOK}], timeout=300)
    return out


def _records(out: Path) -> list[dict[str, Any]]:
    return list(read_manifest(out).records.values())


# --- readers -----------------------------------------------------------------------------


@pytest.mark.slow
def test_every_output_kind_reads_as_gmat_sweep_reads_it(grid_out: Path) -> None:
    manifest = Manifest.load(grid_out / "manifest.jsonl")
    records = _records(grid_out)
    ephemerides = readers.ephemerides(records, grid_out)
    pd.testing.assert_frame_equal(ephemerides, lazy_ephemerides(manifest, grid_out))
    # gmat-sweep's call shapes, for notebooks that migrate: a sweep directory will do
    pd.testing.assert_frame_equal(readers.lazy_ephemerides(grid_out), ephemerides)
    assert list(ephemerides.columns) == ["Epoch", "X", "Y", "Z", "VX", "VY", "VZ", "__status"]
    assert ephemerides.xs(0, level="run_id")["__status"].tolist() == ["failed"]
    assert len(ephemerides.xs(1, level="run_id")) == 11  # one state a minute for 10 min
    for name in ("Orbit", "Radius"):
        ours = readers.aggregate(records, grid_out, report=name)
        pd.testing.assert_frame_equal(ours, lazy_multiindex(manifest, grid_out, name=name))
    for tolerance in ("exact", pd.Timedelta(seconds=1)):
        fused = readers.fused_reports(records, grid_out, ["Orbit", "Radius"], tolerance=tolerance)
        theirs = lazy_fused_reports(manifest, grid_out, ["Orbit", "Radius"], tolerance=tolerance)
        pd.testing.assert_frame_equal(fused, theirs)
    assert ("Radius", "Sat.Earth.Altitude") in fused.columns
    with pytest.raises(SweepSpecError, match=r"wrote 2 reports \(Orbit, Radius\)"):
        readers.aggregate(records, grid_out)


@pytest.mark.slow
def test_solver_histories_and_convergence_read_as_gmat_sweep_reads_them(tmp_path: Path) -> None:
    out = tmp_path / "target"
    sweep(DATA / "target_sma.script", grid=TARGET_GRID, out=out, workers=2, archive=False)
    records = _records(out)
    runs = readers.solver_runs(records, out)
    pd.testing.assert_frame_equal(runs, lazy_solver_runs(out / "manifest.jsonl"))
    pd.testing.assert_frame_equal(readers.lazy_solver_runs(out / "manifest.jsonl"), runs)
    converged = readers.solver_convergence(records)
    pd.testing.assert_frame_equal(converged, lazy_solver_convergence(out / "manifest.jsonl"))
    # runs 0 and 2 (SMA 1 km) failed; MaximumIterations 1 stops run 1 unconverged
    assert converged["converged"].to_dict() == {(1, "DC1"): False, (3, "DC1"): True}
    assert runs.xs((3, "DC1"))["status"].iloc[-1] == "converged"
    assert runs.xs((1, "DC1"))["status"].iloc[-1] == "max_iter"


@pytest.mark.slow
def test_we_read_gmat_sweeps_ephemerides_and_postprocess_outputs(
    grid_out: Path, reference_out: Path
) -> None:
    manifest = Manifest.load(reference_out / "manifest.jsonl")
    records = _records(reference_out)
    theirs = lazy_ephemerides(manifest, reference_out)
    pd.testing.assert_frame_equal(readers.ephemerides(records, reference_out), theirs)
    # our runner wrote exactly what gmat-sweep's worker wrote for the same runs
    pd.testing.assert_frame_equal(readers.ephemerides(_records(grid_out), grid_out), theirs)
    for name in ("final", "track"):
        ours = readers.lazy_extra_outputs(reference_out / "manifest.jsonl", name)
        pd.testing.assert_frame_equal(
            ours, lazy_extra_outputs(reference_out / "manifest.jsonl", name)
        )
    assert ours.index.names == ["run_id", "time"]  # track has a time column
    final = readers.extra_outputs(records, reference_out, "final")
    assert final.index.names == ["run_id"]
    assert final.loc[FAILED, "__status"].tolist() == ["failed"] * 3
    with pytest.raises(SweepSpecError, match=r"no extra output named 'nope'.*final, track"):
        readers.extra_outputs(records, reference_out, "nope")


@pytest.mark.slow
def test_the_pip_engine_cannot_run_a_contact_locator(tmp_path: Path) -> None:
    """The evidence behind the README's note: no plugins, so no GroundStation/ContactLocator."""
    with pytest.raises(SweepSpecError) as refused:
        sweep(DATA / "contact_locator.script", grid={"Sat.SMA": [7000]}, out=tmp_path / "cl")
    log = refused.value.log_excerpt or ""  # GMAT's last 20 error lines
    assert 'The "ContactLocator" is an unknown object type' in log
    assert 'Cannot find LHS object named "GS"' in log  # GroundStation was unknown too
    assert not (tmp_path / "cl").exists()


@pytest.mark.slow
def test_contact_locator_outputs_read_as_gmat_sweep_reads_them(
    grid_out: Path, tmp_path: Path
) -> None:
    """The pip engine has no ContactLocator (see the README), so no sweep here can write one.

    A desktop GMAT run by gmat-sweep does: its worker parses the locator's text
    report with gmat-run and writes ``contact__<name>.parquet`` with an
    ``interval_id``. This writes such files the same way, from a Legacy-format
    report, into a copy of a real sweep's records, and reads them both ways.
    """
    from gmat_run.parsers.contact import parse
    from gmat_sweep.aggregate import lazy_contacts

    from prefect_gmat.study.manifest import ManifestWriter

    manifest = read_manifest(grid_out)
    records = [dict(r) for r in _records(grid_out)]
    rows = [
        "01 Jan 2026 00:10:00.000    01 Jan 2026 00:18:00.000      480.00000000000",
        "01 Jan 2026 01:50:30.500    01 Jan 2026 01:55:00.000      269.50000000000",
    ]
    for record in records:
        run_id = int(record["run_id"])
        if record["status"] != "ok" or run_id > 3:
            continue  # runs 5.. wrote no contacts: they keep a marker row
        text = tmp_path / f"contacts-{run_id}.txt"
        events = rows[: 1 + run_id % 2]
        text.write_text(
            "Target: Sat\n\nObserver: GS\n"
            "Start Time (UTC)            Stop Time (UTC)               Duration (s)\n"
            + "\n".join(events)
            + f"\n\n\nNumber of events : {len(events)}\n"
        )
        contacts = parse(text).reset_index(drop=True)
        contacts["interval_id"] = range(len(contacts))  # as gmat-sweep's worker does
        path = tmp_path / f"run-{run_id}" / "contact__CL.parquet"
        path.parent.mkdir()
        contacts.to_parquet(path)
        record["output_paths"] = {**record["output_paths"], "contact__CL": str(path)}
    writer = ManifestWriter.create(tmp_path / "manifest.jsonl", manifest.header)
    writer.append(records)
    theirs = lazy_contacts(Manifest.load(tmp_path / "manifest.jsonl"), tmp_path)
    ours = readers.contacts(records, tmp_path)
    pd.testing.assert_frame_equal(ours, theirs)
    assert ours.index.names == ["run_id", "interval_id"]
    assert len(ours.xs(1, level="run_id")) == 2 and len(ours.xs(2, level="run_id")) == 1
    assert ours.xs(0, level="run_id")["__status"].tolist() == ["failed"]
    assert ours.loc[(1, 1), "Duration"] == pd.Timedelta(seconds=269.5)


# --- statistics --------------------------------------------------------------------------


@pytest.mark.slow
def test_statistics_equal_gmat_sweeps_on_a_sweep_with_failed_runs(grid_out: Path) -> None:
    df = load_sweep(grid_out, report="Orbit")
    assert df["__status"].value_counts().to_dict() == {"ok": 99, "failed": 3}
    numeric = df.drop(columns="Sat.UTCGregorian")
    options: list[dict[str, Any]] = [
        {},
        {"by": "run_id"},
        {"q": (0.1, 0.5, 0.9), "include": ("mean", "std", "min", "max", "count_ok")},
        {"dropna": False, "q": ()},
    ]
    for kw in options:
        pd.testing.assert_frame_equal(sweep_summary(numeric, **kw), gs.sweep_summary(numeric, **kw))
    # A failed run's NaN row makes the epoch column object: gmat-sweep raises, we summarise
    # it as the datetime it is, and give what gmat-sweep gives once the dtype is repaired.
    with pytest.raises(TypeError):
        gs.sweep_summary(df)
    repaired = df.assign(**{"Sat.UTCGregorian": pd.to_datetime(df["Sat.UTCGregorian"])})
    pd.testing.assert_frame_equal(sweep_summary(df), gs.sweep_summary(repaired))
    band = sweep_summary(df)
    assert band.loc[band.index[-1], ("q0.5", "Sat.Earth.SMA")] == pytest.approx(7200, abs=10)

    other = df.copy()
    other["Sat.Earth.SMA"] *= 1 + 1e-7
    other.loc[(1, slice(None)), "__status"] = "failed"
    diffs: list[dict[str, Any]] = [
        {},
        {"on": "run_id"},
        {"how": "absolute", "tolerance": 1e-4},
        {"how": "relative", "tolerance": lambda column: 1e-4 if "SMA" in column else 0.0},
    ]
    for kw in diffs:
        pd.testing.assert_frame_equal(sweep_diff(df, other, **kw), gs.sweep_diff(df, other, **kw))
    status = sweep_diff(df, other, on="run_id")["__status_diff"]
    assert status.loc[0] == "failed/failed" and status.loc[1] == "ok/failed"
    assert status.loc[2] == "ok"

    metrics: list[dict[str, Any]] = [
        {"metric": "Sat.Earth.SMA"},
        {"metric": "Sat.Earth.ECC", "terminal_only": True},
        {"metric": lambda run: float(run["Sat.Earth.SMA"].max())},
    ]
    for kw in metrics:
        pd.testing.assert_frame_equal(mc_convergence(df, **kw), gs.mc_convergence(df, **kw))
    assert mc_convergence(df, "Sat.Earth.ECC", terminal_only=True)["n"].max() == 9  # ok runs
    with pytest.raises(SweepSpecError, match="by='epoch' is not supported"):
        sweep_summary(df, by="epoch")


# --- Sobol -------------------------------------------------------------------------------


@pytest.mark.slow
def test_sobol_design_and_indices_equal_gmat_sweeps(tmp_path: Path, grid_out: Path) -> None:
    design = sobol_sample(PERTURB, 2, seed=11)  # 12 runs: small, but a whole design
    pd.testing.assert_frame_equal(design, gs.sobol_sample(PERTURB, 2, seed=11))
    assert design.shape == (2 * (2 * 2 + 2), 2)
    first = sobol_sample(PERTURB, 4, seed=11, calc_second_order=False)
    pd.testing.assert_frame_equal(
        first, gs.sobol_sample(PERTURB, 4, seed=11, calc_second_order=False)
    )

    rows = [{str(k): v for k, v in row.items()} for row in design.to_dict("records")]
    df = sweep(
        DEMO_SCRIPT,
        samples=rows,
        out=tmp_path / "sobol",
        workers=2,
        archive=False,
    )
    assert (df["__status"] == "ok").all()
    indices = sobol_analyze(df, PERTURB, "Sat.X", seed=5)
    pd.testing.assert_frame_equal(indices, gs.sobol_analyze(df, PERTURB, "Sat.X", seed=5))
    assert indices["kind"].tolist() == ["S1", "S1", "ST", "ST", "S2"]
    assert indices["conf"].notna().all()

    def radius(frame: pd.DataFrame) -> pd.Series[Any]:
        last = frame.groupby(level="run_id").last()
        return (last["Sat.X"] ** 2 + last["Sat.Y"] ** 2 + last["Sat.Z"] ** 2) ** 0.5

    pd.testing.assert_frame_equal(
        sobol_analyze(df, PERTURB, radius, seed=5), gs.sobol_analyze(df, PERTURB, radius, seed=5)
    )
    # SMA, not ECC, sets where the spacecraft is after one minute
    total = sobol_analyze(df, PERTURB, radius, seed=5).set_index(["kind", "param_a"])["value"]
    assert total[("ST", "Sat.SMA")] > total[("ST", "Sat.ECC")]

    with_failures = load_sweep(grid_out, report="Orbit")
    with pytest.raises(SweepSpecError, match=r"run\(s\) 0, 4, 8 failed.*retry_failed"):
        sobol_analyze(with_failures, PERTURB, "Sat.Earth.SMA")
    with pytest.raises(SweepSpecError, match="not a Saltelli design"):
        sobol_analyze(df.loc[df.index.get_level_values("run_id") < 10], PERTURB, "Sat.X")


# --- plots -------------------------------------------------------------------------------


def _save(figure: Any, path: Path) -> None:
    figure.savefig(path, dpi=80)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_plots_label_units_and_mark_failed_runs(grid_out: Path, tmp_path: Path) -> None:
    from prefect_gmat.analysis import plotting

    df = load_sweep(grid_out, report="Orbit", params=True)
    figure = Figure(figsize=(7, 6))
    axes = plotting.sweep_corner(df, None, "Sat.Earth.ECC", axes=figure.subplots(2, 2))
    _save(figure, tmp_path / "corner.png")
    assert axes[1, 0].get_xlabel() == "Sat.INC [deg]"
    assert axes[1, 0].get_ylabel() == "Sat.SMA [km]"
    crosses = [c for c in axes[1, 0].collections if c.get_label() == "failed (3)"]
    assert len(crosses) == 1 and len(crosses[0].get_offsets()) == 3

    figure = Figure(figsize=(8, 5))
    bare = load_sweep(grid_out, report="Orbit")  # parameters from the sweep directory
    ax = plotting.sweep_heatmap(
        bare, "Sat.SMA", "Sat.INC", "Sat.Earth.ECC", manifest=grid_out, ax=figure.subplots()
    )
    _save(figure, tmp_path / "heatmap.png")
    assert [t.get_text() for t in ax.texts] == ["failed"] * 3
    assert ax.get_xlabel() == "Sat.SMA [km]" and "3 failed" in ax.get_title()

    figure = Figure(figsize=(8, 4))
    ax = plotting.sweep_band_plot(
        sweep_summary(df), "Sat.Earth.SMA", ax=figure.subplots(), failed_runs=FAILED
    )
    _save(figure, tmp_path / "band.png")
    assert ax.get_ylabel() == "Sat.Earth.SMA [km]" and ax.get_xlabel() == "time (UTC)"
    assert "3 failed run(s) left out (run 0, 4, 8)" in ax.get_title()

    figure = Figure(figsize=(8, 4))
    conv = mc_convergence(df, "Sat.Earth.ECC", terminal_only=True)
    ax = plotting.mc_convergence_plot(
        conv, ax=figure.subplots(), metric="Sat.Earth.SMA", failed_runs=FAILED
    )
    _save(figure, tmp_path / "convergence.png")
    assert ax.get_ylabel() == "running mean of Sat.Earth.SMA [km]"

    with pytest.raises(SweepSpecError, match=r"grid's two fields"):
        plotting.sweep_heatmap(bare, "Sat.SMA", "Sat.ECC", "Sat.Earth.ECC", manifest=grid_out)
    with pytest.raises(SweepSpecError, match="which fields were swept"):
        plotting.sweep_corner(bare, None, "Sat.Earth.ECC")


def test_plotting_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_gmat.analysis import plotting

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"pip install 'prefect-gmat\[plot\]'"):
        plotting.mc_convergence_plot(
            pd.DataFrame({"n": [1], "running_mean": [1.0], "se_mean": [0.0]})
        )


# --- the notebook handle -----------------------------------------------------------------


@pytest.mark.slow
def test_open_sweep_reads_a_directory_and_a_bundle_alike(grid_out: Path) -> None:
    from_dir = open_sweep(grid_out)
    with open_sweep(grid_out / "sweep_bundle.zip") as from_bundle:
        for handle in (from_dir, from_bundle):
            pd.testing.assert_frame_equal(
                handle.frame("Orbit", params=True),
                load_sweep(grid_out, report="Orbit", params=True),
            )
            assert handle.status_counts == {"failed": 3, "ok": 9}
            assert handle.failures.index.tolist() == FAILED
            assert handle.failures["failure"].unique().tolist() == ["engine"]
            assert handle.failures["gmat_log"].str.startswith("Propagator Exception").all()
            assert handle.outputs()["ephemeris"] == ["Eph"]
            pd.testing.assert_frame_equal(
                handle.to_ephemerides(), readers.ephemerides(_records(grid_out), grid_out)
            )
        page = from_bundle._repr_html_()
        unpacked = from_bundle.root
        assert unpacked.is_dir()
    assert not unpacked.exists()  # the temporary copy is gone
    for text in ("Failures (3)", "Sat.INC", "4 values", "9 ok", "sweep_bundle.zip", "Accuracy"):
        assert text in page, text
    pd.testing.assert_frame_equal(
        from_dir.summary("Orbit"), sweep_summary(load_sweep(grid_out, report="Orbit"))
    )


@pytest.mark.slow
def test_the_handle_renders_in_a_real_jupyter_kernel(grid_out: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    cell = f"from prefect_gmat.analysis.handle import open_sweep\nopen_sweep({str(grid_out)!r})"
    code = nbformat.v4.new_code_cell(cell)  # type: ignore[no-untyped-call]
    notebook = nbformat.v4.new_notebook(cells=[code])  # type: ignore[no-untyped-call]
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    assert [o["output_type"] for o in outputs] == ["execute_result"], outputs
    assert "Failures (3)" in outputs[0]["data"]["text/html"]


# --- plots in the Prefect UI -------------------------------------------------------------


@pytest.mark.slow
def test_plots_are_published_as_picture_artifacts_and_never_fail_a_sweep(
    grid_out: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect import flow, get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.runtime import flow_run

    from prefect_gmat.runtime.ui_plots import publish_plots

    @flow(name="analysis-plots")
    def plots(metric: str) -> tuple[str, list[str]]:
        return str(flow_run.id), publish_plots(grid_out, get_run_logger(), metric)

    run_id, keys = plots("Sat.Earth.SMA")
    assert keys == ["sweep-band", "sweep-corner"]  # a grid: no convergence plot
    with get_client(sync_client=True) as client:
        artifacts = flow_run_artifacts(client, UUID(run_id))
    assert sorted(a.key or "" for a in artifacts) == keys
    for artifact in artifacts:
        description = artifact.description or ""
        assert description.startswith(f"![{artifact.key}](data:image/png;base64,")
        png = base64.b64decode(description.split(",", 1)[1].rstrip(")"))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000
        assert "failed" in str(artifact.data)

    # The sweep flow itself published them at its end (metric "auto": Sat.Earth.SMA)
    with get_client(sync_client=True) as client:
        corners = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["sweep-corner"]))
        )
        names = {client.read_flow_run(a.flow_run_id).name for a in corners if a.flow_run_id}
    assert "sweep-leo_outputs-12pts" in names
    logger = logging.getLogger("tests.analysis")
    assert publish_plots(grid_out, logger, "off") == []
    assert publish_plots(grid_out, logger, "Sat.Nope") == []
    assert "sweep plots not published (no report has a column 'Sat.Nope'" in caplog.text


@pytest.mark.slow
def test_a_swept_field_the_report_also_records_gets_its_own_column_and_plots(
    tmp_path: Path,
) -> None:
    """``Sat.SMA`` swept and reported: the frame once had two ``Sat.SMA`` columns, and the
    flow's plots failed ("'DataFrame' object has no attribute 'dtype'")."""
    from prefect_gmat.runtime.ui_plots import sweep_plots

    script = tmp_path / "reports_sma.script"
    script.write_text(
        DEMO_SCRIPT.read_text().replace(
            "RF.Add = {Sat.UTCGregorian, Sat.X, Sat.Y, Sat.Z}",
            "RF.Add = {Sat.UTCGregorian, Sat.SMA, Sat.X}",
        )
    )
    out = tmp_path / "out"
    sweep(script, grid={"Sat.SMA": [7000.0, 7100.0, 7200.0]}, out=out, workers=1)
    df = load_sweep(out, params=True)
    assert df.columns.is_unique
    assert df.attrs["params"] == ["Sat.SMA (swept)"]
    per_run = df.groupby(level="run_id")
    assert per_run["Sat.SMA (swept)"].first().tolist() == [7000.0, 7100.0, 7200.0]
    assert per_run["Sat.SMA"].nunique().max() > 1  # the report's column: the value over time
    (band,) = sweep_plots(out)  # one swept field: the band, no corner
    assert band.key == "sweep-band" and band.png[:8] == b"\x89PNG\r\n\x1a\n"


# --- command line ------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_prints_the_band_table_and_writes_each_plot(
    grid_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect_gmat.cli import main

    assert main(["summary", str(grid_out), "--report", "Orbit"]) == 0
    text = capsys.readouterr().out
    assert "12 runs (3 failed, 9 ok)" in text and "failed runs left out: 0, 4, 8" in text
    row = next(line for line in text.splitlines() if line.startswith("Sat.Earth.SMA "))
    assert row.split()[1] == "9" and row.split()[-1] == "km"  # ok runs ... unit
    bundle = str(grid_out / "sweep_bundle.zip")
    assert main(["summary", bundle, "--report", "Orbit", "--field", "Sat.Earth.ECC"]) == 0
    text = capsys.readouterr().out
    assert "Sat.Earth.ECC across runs at each time:" in text
    assert len([line for line in text.splitlines() if line.startswith("2026-01-01")]) == 11

    for kind in ("band", "corner", "heatmap", "convergence"):
        dest = tmp_path / f"{kind}.png"
        args = ["plot", bundle, kind, "--report", "Orbit", "--metric", "Sat.Earth.SMA"]
        assert main([*args, "-o", str(dest)]) == 0
        assert dest.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {dest}" in capsys.readouterr().out
    assert main(["plot", str(grid_out), "band", "--report", "Orbit", "--metric", "Nope"]) == 2
    assert "no report has a column 'Nope'" in capsys.readouterr().err
    assert main(["summary", str(grid_out)]) == 2  # two reports: which one?
    assert "pass report=" in capsys.readouterr().err


@pytest.mark.slow
def test_a_monte_carlo_study_publishes_its_convergence_and_postprocess_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from prefect_gmat import monte_carlo

    out = tmp_path / "mc"
    monkeypatch.setenv("PREFECT_GMAT_PLOT_METRIC", "auto")
    df = monte_carlo(
        DEMO_SCRIPT,
        16,
        PERTURB,
        seed=3,
        out=out,
        workers=2,
        archive=False,
        postprocess=HOOK,
    )
    assert (df["__status"] == "ok").all()
    # our own postprocess outputs, read as gmat-sweep reads them
    for name in ("final", "track"):
        pd.testing.assert_frame_equal(
            open_sweep(out).to_extra_outputs(name),
            lazy_extra_outputs(out / "manifest.jsonl", name),
        )
    with get_client(sync_client=True) as client:
        named = FlowRunFilterName(any_=["sweep-leo_short-16pts"])
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=named))
        assert len(runs) == 1
        artifacts = flow_run_artifacts(client, runs[0].id)
    keys = {a.key for a in artifacts}
    assert {"sweep-band", "sweep-corner", "sweep-convergence"} <= keys
    convergence = next(a for a in artifacts if a.key == "sweep-convergence")
    assert "monte carlo design, 16 ok runs" in str(convergence.data)


def test_a_finished_sweeps_reports_are_read_once_for_the_plots_and_the_frame(
    grid_out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow's end builds the caller's frame and the plots' frame from one read of the
    run files, in two threads at once; each equals the frame read on its own."""
    import threading

    stacked: list[str | None] = []
    real = readers._per_run_outputs

    def counted(*args: Any, **kwargs: Any) -> pd.DataFrame:
        stacked.append(kwargs["name"])
        return real(*args, **kwargs)

    monkeypatch.setattr(readers, "_per_run_outputs", counted)
    reports = readers.ReportFrames.of(grid_out)
    frames: dict[str, pd.DataFrame] = {}
    threads = [
        threading.Thread(target=lambda: frames.update(plain=reports.frame("Orbit"))),
        threading.Thread(target=lambda: frames.update(swept=reports.frame("Orbit", params=True))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stacked == ["Orbit"]
    with pytest.raises(SweepSpecError, match="pass report="):
        reports.frame()  # two reports: which one is the caller's to say
    records = read_manifest(grid_out).records.values()
    pd.testing.assert_frame_equal(
        frames["plain"], readers.aggregate(records, grid_out, report="Orbit")
    )
    alone = readers.aggregate(records, grid_out, report="Orbit", params=True)
    pd.testing.assert_frame_equal(frames["swept"], alone)
    assert frames["swept"].attrs["params"] == alone.attrs["params"]
    pd.testing.assert_frame_equal(frames["plain"], load_sweep(grid_out, report="Orbit"))
