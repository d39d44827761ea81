"""A sweep is its directory: moved, seen at another path, or unzipped from a bundle, it is
read, resumed, retried and extended where it is, and nothing that is done runs again."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from prefect_gmat import (
    extend,
    extract_bundle,
    load_bundle,
    load_sweep,
    monte_carlo,
    open_sweep,
    resume,
    retry_failed,
    sweep,
    verify_bundle,
)
from prefect_gmat.errors import SweepDirectoryError
from prefect_gmat.study.manifest import read_manifest
from tests.support.paths import DEMO_SCRIPT, DISPERSION
from tests.support.points import DISPERSION_PERTURB, sma_grid
from tests.support.sweepdir import executions

pytestmark = pytest.mark.usefixtures("prefect_server")

Record = dict[str, Any]


def _rewrite(out: Path, keep: Callable[[Record], Record | None]) -> None:
    """Rewrite ``out``'s manifest: each record as ``keep`` returns it (None drops it)."""
    path = out / "manifest.jsonl"
    header, *records = path.read_text().splitlines()
    kept = [keep(json.loads(line)) for line in records]
    lines = [header, *(json.dumps(r, sort_keys=True) for r in kept if r is not None)]
    path.write_text("\n".join(lines) + "\n")


def _cut_short(out: Path, done: set[int]) -> None:
    """What a sweep killed after ``done`` finished leaves: their records and folders only."""
    _rewrite(out, lambda r: r if r["run_id"] in done else None)
    for folder in out.glob("run-*"):
        if int(folder.name[4:]) not in done:
            shutil.rmtree(folder)


def _as_before(out: Path) -> None:
    """The manifest as prefect-gmat 0.1.0 (and gmat-sweep) wrote it: absolute paths and no
    ``sweep_dir`` in the header."""

    def absolute(record: Record) -> Record:
        for field in ("output_paths", "solver_paths", "extra_outputs"):
            record[field] = {k: str(out / v) for k, v in record.get(field, {}).items()}
        record["log_path"] = str(out / record["log_path"])
        return record

    _rewrite(out, absolute)
    path = out / "manifest.jsonl"
    header, rest = path.read_text().split("\n", 1)
    fields = json.loads(header)
    fields.pop("sweep_dir", None)
    path.write_text(json.dumps(fields, sort_keys=True) + "\n" + rest)


def _gmat_sweep_frame(out: Path) -> pd.DataFrame:
    from gmat_sweep import Manifest, lazy_multiindex

    frame: pd.DataFrame = lazy_multiindex(Manifest.load(out / "manifest.jsonl"), out)
    return frame


def test_a_moved_sweep_resumes_running_only_what_is_missing(tmp_path: Path) -> None:
    first = tmp_path / "here" / "leo"
    whole = sweep(DEMO_SCRIPT, grid=sma_grid(6), out=first, workers=2, archive=False)
    records = read_manifest(first).records
    assert records[0]["output_paths"] == {"report__RF": "run-0/report__RF.parquet"}
    assert records[0]["log_path"] == "run-0/worker.log"
    pd.testing.assert_frame_equal(_gmat_sweep_frame(first), whole, check_exact=True)

    _cut_short(first, done={0, 1, 2})
    shutil.move(tmp_path / "here", tmp_path / "there")
    out = tmp_path / "there" / "leo"
    part = whole.loc[[0, 1, 2]]
    pd.testing.assert_frame_equal(load_sweep(out), part, check_exact=True)

    again = resume(out, workers=2, archive=False)
    assert executions(out) == dict.fromkeys(range(6), 1)  # 3 done, moved, resume ran 3
    pd.testing.assert_frame_equal(again, whole, check_exact=True)
    pd.testing.assert_frame_equal(load_sweep(out), whole, check_exact=True)
    with open_sweep(out) as opened:
        pd.testing.assert_frame_equal(opened.frame(), whole, check_exact=True)
        assert opened.status_counts == {"ok": 6}
    pd.testing.assert_frame_equal(_gmat_sweep_frame(out), whole, check_exact=True)


def test_an_older_sweep_seen_at_another_path_is_retried_and_resumed(tmp_path: Path) -> None:
    """The docker case: a container wrote /sweeps/leo next to /sweeps/leo_short.script; the
    host sees them as /srv/gmat-sweeps/... . Here the manifest is as an older version wrote
    it (absolute paths), so every file is found by the fallback, the script by its hash."""
    container = tmp_path / "container-sweeps"
    container.mkdir()
    script = Path(shutil.copy(DEMO_SCRIPT, container / "leo_short.script"))
    first = container / "leo"
    whole = sweep(script, grid=sma_grid(6), out=first, workers=2, archive=False)
    _cut_short(first, done={0, 1, 2, 3})
    _rewrite(
        first, lambda r: {**r, "status": "failed", "failure": "crashed"} if r["run_id"] == 1 else r
    )
    _as_before(first)

    container.rename(tmp_path / "host-disk")  # the container's path is gone
    (tmp_path / "srv").symlink_to(tmp_path / "host-disk")
    out = tmp_path / "srv" / "leo"

    retry_failed(out, workers=1, archive=False)  # the script: beside the sweep, by its hash
    assert executions(out) == {0: 1, 1: 2, 2: 1, 3: 1}  # run 1 only

    elsewhere = Path(shutil.move(tmp_path / "host-disk" / "leo_short.script", tmp_path / "s.gmat"))
    with pytest.raises(SweepDirectoryError, match="pass script="):
        resume(out)
    done = resume(out, script=elsewhere, workers=2)  # and the bundle, with that script
    assert executions(out) == {0: 1, 1: 2, 2: 1, 3: 1, 4: 1, 5: 1}
    pd.testing.assert_frame_equal(done, whole, check_exact=True)
    bundle = out / "sweep_bundle.zip"
    verify_bundle(bundle)
    pd.testing.assert_frame_equal(load_bundle(bundle), whole, check_exact=True)
    header = read_manifest(out).header
    assert header["script_path"] == str(script)  # as recorded: the header is not rewritten


def test_an_unzipped_bundle_of_a_study_grows_running_only_the_new_runs(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    script = Path(shutil.copy(DISPERSION, scripts / "launch.script"))
    first = tmp_path / "mc"
    study = monte_carlo(script, n=4, perturb=DISPERSION_PERTURB, seed=11, out=first, workers=2)
    bundle = Path(shutil.move(first / "sweep_bundle.zip", tmp_path / "mc.zip"))
    shutil.rmtree(first)
    shutil.rmtree(scripts)  # only the bundle is left, with the script inside it

    out = extract_bundle(bundle, tmp_path / "unzipped")
    grown = extend(out, n=6, workers=2)
    assert executions(out) == {4: 1, 5: 1}  # the four bundled runs did not run again
    assert sorted(grown.index.get_level_values("run_id").unique()) == list(range(6))
    assert (grown["__status"] == "ok").all()
    pd.testing.assert_frame_equal(grown.loc[list(range(4))], study, check_exact=True)
    pd.testing.assert_frame_equal(load_sweep(out), grown, check_exact=True)
    pd.testing.assert_frame_equal(_gmat_sweep_frame(out), grown, check_exact=True)
    header = read_manifest(out).header
    assert header["parameter_spec"]["n"] == 6
    regrown = out / "sweep_bundle.zip"  # the grown study's bundle, its script found by hash
    verify_bundle(regrown)
    pd.testing.assert_frame_equal(load_bundle(regrown), grown, check_exact=True)
