"""Sweep bundles: the walkthrough's layout, integrity checks, gmat-sweep in both directions."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect import flow
from prefect.artifacts import Artifact

from prefect_gmat import BundleError, ManifestError, SweepDirectoryError, load_sweep, sweep
from prefect_gmat.core.records import sha256_file
from prefect_gmat.study.bundle import archive, extract_bundle, load_bundle, verify_bundle
from prefect_gmat.tasks.archive import ARTIFACT_KEY, archive_sweep
from tests.support.paths import DATA, DEMO_SCRIPT, REPO
from tests.support.points import SMA_GRID
from tests.support.reference import ReferenceSweep
from tests.support.sweepdir import Swept

# The module itself, even if the package re-exports a function named ``archive``.
archive_module = importlib.import_module("prefect_gmat.study.bundle")
TARGET_SCRIPT = DATA / "target_sma.script"
# Sorted keys: DC1.MaximumIterations varies slowest. Runs 0 and 3 (SMA 1 km) fail;
# runs 1 and 2 stop after one iteration (not converged); runs 4 and 5 converge.
TARGET_GRID: dict[str, list[Any]] = {
    "DC1.MaximumIterations": [1, 25],
    "Sat.SMA": [1, 7000, 7200],
}
WALKTHROUGH_MEMBERS = [
    "MANIFEST.hash",
    "README.md",
    "manifest.jsonl",
    *[f"runs/run-{i}/report__RF.parquet" for i in range(10)],
    "script/leo_short.script",
]


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def targeted(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Path:
    out = tmp_path_factory.mktemp("archive") / "target"
    sweep(TARGET_SCRIPT, grid=TARGET_GRID, out=out, workers=2)
    return out


def copy_sweep(source: Path, dest: Path) -> Path:
    """Copy a sweep directory (not the bundle the flow wrote) and point its manifest at the copy."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("sweep_bundle.zip"))
    manifest = dest / "manifest.jsonl"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace(f"{source}/", f"{dest}/"), encoding="utf-8")
    return dest


@pytest.fixture
def leo_copy(walkthrough: Swept, tmp_path: Path) -> Path:
    """A copy of the session's walkthrough sweep (``walkthrough``), for tests that change it."""
    return copy_sweep(walkthrough.out, tmp_path / "leo")


def read_bundled_manifest(bundle: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with zipfile.ZipFile(bundle) as zf:
        lines = zf.read("manifest.jsonl").decode("utf-8").splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def rezip(
    source: Path,
    dest: Path,
    *,
    drop: tuple[str, ...] = (),
    replace: Mapping[str, bytes] | None = None,
    add: Mapping[str, bytes] | None = None,
) -> Path:
    """A copy of a bundle with members dropped, replaced or added (MANIFEST.hash left as is)."""
    replace = replace or {}
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename not in drop:
                out.writestr(info, replace.get(info.filename, src.read(info)))
        for name, data in (add or {}).items():
            out.writestr(name, data)
    return dest


def hashed_zip(path: Path, members: Mapping[str, bytes], link: str | None = None) -> Path:
    """A zip whose MANIFEST.hash is correct for ``members``; ``link`` is made a symlink."""
    import hashlib

    with zipfile.ZipFile(path, "w") as zf:
        lines = [f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(members.items())]
        zf.writestr("MANIFEST.hash", "".join(lines))
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            mode = stat.S_IFLNK | 0o777 if name == link else stat.S_IFREG | 0o644
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def rewrite_header(out: Path, **changes: Any) -> None:
    manifest = out / "manifest.jsonl"
    first, rest = manifest.read_text(encoding="utf-8").split("\n", 1)
    header = {**json.loads(first), **changes}
    manifest.write_text(json.dumps(header, sort_keys=True) + "\n" + rest, encoding="utf-8")


# --- the walkthrough ----------------------------------------------------------------------


def test_walkthrough_bundle_layout_checks_and_reaggregates(
    walkthrough: Swept, leo_copy: Path, tmp_path: Path
) -> None:
    from gmat_sweep import Manifest, lazy_multiindex

    out, df = walkthrough
    assert not (leo_copy / "sweep_bundle.zip").exists()
    bundle = archive(leo_copy)
    assert bundle == leo_copy / "sweep_bundle.zip"
    # the sweep flow archived its own directory as its last task: the same bytes
    assert (out / "sweep_bundle.zip").read_bytes() == bundle.read_bytes()
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(bundle) as zf:
        assert sorted(zf.namelist()) == WALKTHROUGH_MEMBERS
        zf.extractall(extracted)
    checked = subprocess.run(
        ["sha256sum", "-c", "MANIFEST.hash"], cwd=extracted, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK\n") == 13

    bundled = Manifest.load(extracted / "manifest.jsonl")
    from_bundle = lazy_multiindex(bundled, extracted)
    pd.testing.assert_frame_equal(from_bundle, df, check_exact=True)
    assert sorted(from_bundle.index.unique("run_id")) == sorted(df.index.unique("run_id"))
    assert from_bundle.shape == (30, 5)

    # the header line is carried over unchanged; records are rewritten, not trimmed
    original_header = (leo_copy / "manifest.jsonl").read_text(encoding="utf-8").split("\n")[0]
    lines = (extracted / "manifest.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[0] == original_header and lines[-1] == ""
    records = [json.loads(line) for line in lines[1:-1]]
    assert [r["run_id"] for r in records] == list(range(10))
    for r in records:
        assert r["output_paths"] == {"report__RF": f"runs/run-{r['run_id']}/report__RF.parquet"}
        assert r["log_path"] is None
        assert r["attempts"] == 1 and r["failure"] is None and r["error"] is None
        assert r["output_sha256"]["report__RF"] == sha256_file(
            extracted / r["output_paths"]["report__RF"]
        )
        assert r["converged"] == {} and r["solver_paths"] == {}
    # parquet and script are copied verbatim
    run7 = leo_copy / "run-7" / "report__RF.parquet"
    assert (extracted / "runs/run-7/report__RF.parquet").read_bytes() == run7.read_bytes()
    assert (extracted / "script/leo_short.script").read_bytes() == DEMO_SCRIPT.read_bytes()


def test_readme_tells_a_stranger_how_to_check_and_read_the_bundle(
    walkthrough: Swept, tmp_path: Path
) -> None:
    bundle = archive(walkthrough.out, tmp_path / "b.zip")
    with zipfile.ZipFile(bundle) as zf:
        readme = zf.read("README.md").decode("utf-8")
    for needle in (
        "10 recorded of 10 planned (10 ok)",
        "sha256sum -c MANIFEST.hash",
        "pd.read_parquet",
        'key = "report__RF"',
        "from prefect_gmat import load_bundle",
        "from gmat_sweep import Manifest, lazy_multiindex",
        "`script/leo_short.script`",
        "runs/run-<id>/report__<Name>.parquet",
        "Worker logs:** not included",
    ):
        assert needle in readme, needle


def test_the_readme_pandas_recipe_runs(walkthrough: Swept, tmp_path: Path) -> None:
    bundle = archive(walkthrough.out, tmp_path / "b.zip")
    root = extract_bundle(bundle, tmp_path / "x")
    readme = (root / "README.md").read_text(encoding="utf-8")
    recipe = (
        readme.split("With pandas (and pyarrow) alone")[1].split("```python\n")[1].split("```")[0]
    )
    scope: dict[str, Any] = {}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        exec(recipe, scope)
    finally:
        os.chdir(cwd)
    expected = walkthrough.frame.drop(columns="__status")
    pd.testing.assert_frame_equal(scope["df"], expected, check_exact=True)
    assert scope["swept"]["Sat.SMA"].tolist() == SMA_GRID["Sat.SMA"]


def test_archiving_the_same_sweep_twice_gives_identical_bytes(
    walkthrough: Swept, tmp_path: Path
) -> None:
    first = archive(walkthrough.out, tmp_path / "a.zip")
    second = archive(walkthrough.out, tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == WALKTHROUGH_MEMBERS  # written in sorted order
    for info in infos:
        assert info.date_time == (2026, 1, 1, 0, 0, 0)
        assert info.external_attr == 0o644 << 16
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert not info.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b.zip"]  # no temp files


# --- verification and extraction ----------------------------------------------------------


def test_verify_names_a_member_with_one_changed_byte(walkthrough: Swept, tmp_path: Path) -> None:
    bundle = archive(walkthrough.out, tmp_path / "good.zip")
    verify_bundle(bundle)  # a good bundle passes
    name = "runs/run-3/report__RF.parquet"
    with zipfile.ZipFile(bundle) as zf:
        data = bytearray(zf.read(name))
    data[len(data) // 2] ^= 0x01
    bad = rezip(bundle, tmp_path / "bad.zip", replace={name: bytes(data)})
    with pytest.raises(BundleError) as caught:
        verify_bundle(bad)
    assert caught.value.payload["members"] == [name]
    assert name in str(caught.value) and "SHA-256" in str(caught.value)


def test_verify_names_a_member_whose_stored_bytes_were_flipped(
    walkthrough: Swept, tmp_path: Path
) -> None:
    bundle = archive(walkthrough.out, tmp_path / "b.zip")
    name = "runs/run-5/report__RF.parquet"
    with zipfile.ZipFile(bundle) as zf:
        info = zf.getinfo(name)
    raw = bytearray(bundle.read_bytes())
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[data_start + info.compress_size // 2] ^= 0x40
    bundle.write_bytes(bytes(raw))
    with pytest.raises(BundleError) as caught:
        verify_bundle(bundle)
    assert caught.value.payload["members"] == [name]
    assert name in str(caught.value)


def test_verify_names_missing_and_unlisted_members(walkthrough: Swept, tmp_path: Path) -> None:
    bundle = archive(walkthrough.out, tmp_path / "b.zip")
    gone, extra = "runs/run-2/report__RF.parquet", "runs/run-2/notes.txt"
    bad = rezip(bundle, tmp_path / "bad.zip", drop=(gone,), add={extra: b"hello"})
    with pytest.raises(BundleError) as caught:
        verify_bundle(bad)
    assert caught.value.payload["members"] == [extra, gone]
    message = str(caught.value)
    assert f"{gone}: is listed in MANIFEST.hash but missing" in message
    assert f"{extra}: is not listed in MANIFEST.hash" in message


def test_verify_refuses_a_zip_without_manifest_hash_and_a_non_zip(tmp_path: Path) -> None:
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("manifest.jsonl", "{}\n")
    with pytest.raises(BundleError, match=r"has no MANIFEST\.hash"):
        verify_bundle(plain)
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    with pytest.raises(BundleError, match="not a readable zip"):
        verify_bundle(text)
    with pytest.raises(BundleError, match="no bundle at"):
        verify_bundle(tmp_path / "absent.zip")


@pytest.mark.parametrize("kind", ["dotdot", "nested-dotdot", "absolute", "symlink"])
def test_extract_refuses_members_that_escape(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "outside.txt"
    name = {
        "dotdot": "../outside.txt",
        "nested-dotdot": "runs/run-0/../../../outside.txt",
        "absolute": str(outside),
        "symlink": "runs/run-0/link",
    }[kind]
    data = str(outside).encode() if kind == "symlink" else b"pwned"
    bundle = hashed_zip(tmp_path / "evil.zip", {"manifest.jsonl": b"{}\n", name: data}, link=name)
    dest = tmp_path / "dest" / "tree"
    with pytest.raises(BundleError, match="outside") as caught:
        extract_bundle(bundle, dest)
    assert caught.value.payload["members"] == [name]
    assert not outside.exists() and not dest.exists()


def test_extract_needs_a_new_or_empty_destination(walkthrough: Swept, tmp_path: Path) -> None:
    bundle = archive(walkthrough.out, tmp_path / "b.zip")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match="not an empty directory"):
        extract_bundle(bundle, busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert extract_bundle(bundle, empty) == empty
    assert (
        sorted(str(p.relative_to(empty)) for p in empty.rglob("*") if p.is_file())
        == WALKTHROUGH_MEMBERS
    )


def test_a_damaged_bundle_is_not_extracted(walkthrough: Swept, tmp_path: Path) -> None:
    bundle = archive(walkthrough.out, tmp_path / "b.zip")
    bad = rezip(bundle, tmp_path / "bad.zip", replace={"script/leo_short.script": b"% edited\n"})
    with pytest.raises(BundleError) as caught:
        extract_bundle(bad, tmp_path / "tree")
    assert caught.value.payload["members"] == ["script/leo_short.script"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zip", "bad.zip"]


# --- load_bundle ----------------------------------------------------------------------------


def test_load_bundle_gives_the_sweep_frame_and_leaves_nothing_behind(
    walkthrough: Swept, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, df = walkthrough
    bundle = archive(out, tmp_path / "b.zip")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    pd.testing.assert_frame_equal(load_bundle(bundle), df, check_exact=True)
    with_params = load_bundle(bundle, params=True)
    pd.testing.assert_frame_equal(with_params, load_sweep(out, params=True), check_exact=True)
    assert list(with_params.columns[:1]) == ["Sat.SMA"]
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zip", "scratch"]


def test_load_bundle_refuses_a_damaged_bundle(walkthrough: Swept, tmp_path: Path) -> None:
    bundle = archive(walkthrough.out, tmp_path / "b.zip")
    name = "runs/run-0/report__RF.parquet"
    bad = rezip(bundle, tmp_path / "bad.zip", drop=(name,))
    with pytest.raises(BundleError) as caught:
        load_bundle(bad)
    assert caught.value.payload["members"] == [name]


@pytest.mark.slow
def test_gmat_sweep_bundles_load_and_ours_of_its_directory_too(
    walkthrough: Swept, gmat_sweep_walkthrough: ReferenceSweep, tmp_path: Path
) -> None:
    """gmat-sweep 0.6.0 writes a bundle; we verify it and rebuild gmat-sweep's own frame."""
    theirs, expected, bundle = gmat_sweep_walkthrough

    with zipfile.ZipFile(bundle) as zf:
        assert sorted(zf.namelist()) == WALKTHROUGH_MEMBERS
    verify_bundle(bundle)
    pd.testing.assert_frame_equal(load_bundle(bundle), expected, check_exact=True)
    pd.testing.assert_frame_equal(load_bundle(bundle), walkthrough.frame, check_exact=True)

    # their directory has no script_path: we ask for the script, then bundle it the same way
    with pytest.raises(BundleError, match="pass script="):
        archive(theirs, tmp_path / "ours.zip")
    ours = archive(theirs, tmp_path / "ours.zip", script=DEMO_SCRIPT)
    with zipfile.ZipFile(ours) as mine, zipfile.ZipFile(bundle) as reference:
        assert mine.namelist() == reference.namelist()
        for name in WALKTHROUGH_MEMBERS[3:]:
            assert mine.read(name) == reference.read(name), name
    pd.testing.assert_frame_equal(load_bundle(ours), expected, check_exact=True)


# --- logs, solvers, failures --------------------------------------------------------------


def test_include_logs_bundles_every_worker_log_and_points_at_it(
    walkthrough: Swept, tmp_path: Path
) -> None:
    out = walkthrough.out
    bundle = archive(out, tmp_path / "logs.zip", include_logs=True)
    verify_bundle(bundle)
    _, records = read_bundled_manifest(bundle)
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        assert len(names) == 14 + 10
        for record in records:
            run_id = record["run_id"]
            assert record["log_path"] == f"runs/run-{run_id}/worker.log"
            assert (
                zf.read(record["log_path"]) == (out / f"run-{run_id}" / "worker.log").read_bytes()
            )


@pytest.mark.slow
def test_solver_outputs_and_convergence_travel_in_the_bundle(
    targeted: Path, tmp_path: Path
) -> None:
    from gmat_sweep import Manifest, lazy_solver_convergence, lazy_solver_runs

    with zipfile.ZipFile(targeted / "sweep_bundle.zip") as zf:  # the flow's own bundle
        assert sum("solver__DC1" in n for n in zf.namelist()) == 4
    bundle = archive(targeted, tmp_path / "target.zip", include_logs=True)
    _, records = read_bundled_manifest(bundle)
    by_id = {r["run_id"]: r for r in records}
    assert [by_id[i]["status"] for i in range(6)] == ["failed", "ok", "ok", "failed", "ok", "ok"]
    assert {i: by_id[i]["converged"] for i in (1, 2, 4, 5)} == {
        1: {"DC1": False},
        2: {"DC1": False},
        4: {"DC1": True},
        5: {"DC1": True},
    }
    for i in (1, 2, 4, 5):
        assert by_id[i]["solver_paths"] == {"DC1": f"runs/run-{i}/solver__DC1.parquet"}
    failed = by_id[0]
    assert failed["failure"] == "engine" and failed["stderr"]
    assert failed["output_paths"] == {} and failed["log_path"] == "runs/run-0/worker.log"
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        assert (
            zf.read("runs/run-2/solver__DC1.parquet")
            == (targeted / "run-2" / "solver__DC1.parquet").read_bytes()
        )
    assert [n for n in names if "solver__" in n] == [
        f"runs/run-{i}/solver__DC1.parquet" for i in (1, 2, 4, 5)
    ]
    assert not [
        n for n in names if n.startswith(("runs/run-0/", "runs/run-3/")) and "worker" not in n
    ]
    with zipfile.ZipFile(bundle) as zf:
        readme = zf.read("README.md").decode("utf-8")
    assert "6 recorded of 6 planned (2 failed, 4 ok)" in readme
    assert "runs that did not converge: 1, 2" in readme

    # gmat-sweep reads the kept solver fields from the unzipped bundle
    root = extract_bundle(bundle, tmp_path / "x")
    assert Manifest.load(root / "manifest.jsonl").entries[1].converged == {"DC1": False}
    convergence = lazy_solver_convergence(root / "manifest.jsonl")["converged"]
    assert convergence.to_dict() == {
        (1, "DC1"): False,
        (2, "DC1"): False,
        (4, "DC1"): True,
        (5, "DC1"): True,
    }
    iterations = lazy_solver_runs(root / "manifest.jsonl")
    assert sorted(iterations.index.unique("run_id")) == [1, 2, 4, 5]

    # and the frame says which runs did not converge, and which failed
    frame = load_bundle(bundle, converged=True)
    pd.testing.assert_frame_equal(
        frame.drop(columns="__converged"), load_sweep(targeted), check_exact=True
    )
    per_run = frame.groupby(level="run_id")[["__status", "__converged"]].first()
    assert per_run["__status"].tolist() == ["failed", "ok", "ok", "failed", "ok", "ok"]
    assert per_run["__converged"].tolist() == [pd.NA, False, False, pd.NA, True, True]


# --- bad input ----------------------------------------------------------------------------


def test_a_moved_sweep_directory_archives_from_where_it_now_is(
    walkthrough: Swept, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(walkthrough.out, moved, ignore=shutil.ignore_patterns("sweep_bundle.zip"))
    manifest = moved / "manifest.jsonl"
    text = manifest.read_text(encoding="utf-8")
    old_place = text.replace('": "run-', '": "/gone/old-place/run-')  # as older versions wrote
    manifest.write_text(old_place, encoding="utf-8")
    assert "/gone/old-place/run-0/report__RF.parquet" in manifest.read_text(encoding="utf-8")
    bundle = archive(moved, tmp_path / "moved.zip")
    assert bundle.read_bytes() == archive(walkthrough.out, tmp_path / "original.zip").read_bytes()


def test_archive_refuses_what_is_not_a_sweep_directory(tmp_path: Path) -> None:
    with pytest.raises(SweepDirectoryError, match="does not exist") as caught:
        archive(tmp_path / "nowhere")
    assert caught.value.payload["path"] == str(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("not a sweep")
    with pytest.raises(SweepDirectoryError, match=r"no manifest\.jsonl"):
        archive(tmp_path)
    with pytest.raises(SweepDirectoryError, match="is a file"):
        archive(tmp_path / "notes.txt")
    (tmp_path / "manifest.jsonl").write_text("garbage\n")
    with pytest.raises(ManifestError, match="not a manifest header"):
        archive(tmp_path)


def test_archive_refuses_an_interrupted_sweep(leo_copy: Path) -> None:
    with open(leo_copy / "manifest.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"run_id": 3, "status": "o')
    with pytest.raises(BundleError, match="interrupted") as caught:
        archive(leo_copy)
    assert "resume" in str(caught.value) and str(leo_copy) in str(caught.value)
    assert not (leo_copy / "sweep_bundle.zip").exists()


def test_archive_refuses_an_ok_run_whose_output_is_missing(leo_copy: Path) -> None:
    missing = leo_copy / "run-4" / "report__RF.parquet"
    missing.unlink()
    with pytest.raises(BundleError, match="run 4 finished ok") as caught:
        archive(leo_copy)
    assert str(missing) in str(caught.value) and "resume" in str(caught.value)
    assert caught.value.payload["path"] == str(missing)
    assert sorted(p.name for p in leo_copy.iterdir() if p.is_file()) == [
        ".prefect-gmat.lock",
        "manifest.jsonl",
    ]


def test_archive_refuses_an_output_changed_since_its_run(leo_copy: Path) -> None:
    changed = leo_copy / "run-2" / "report__RF.parquet"
    data = bytearray(changed.read_bytes())
    data[100] ^= 0xFF
    changed.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="has changed since run 2 wrote it"):
        archive(leo_copy)


def test_archive_refuses_an_existing_bundle_unless_told(walkthrough: Swept, tmp_path: Path) -> None:
    dest = tmp_path / "b.zip"
    dest.write_bytes(b"an older bundle")
    with pytest.raises(BundleError, match=r"already exists.*overwrite=True"):
        archive(walkthrough.out, dest)
    assert dest.read_bytes() == b"an older bundle"
    archive(walkthrough.out, dest, overwrite=True)
    verify_bundle(dest)
    with pytest.raises(BundleError, match="is a directory"):
        archive(walkthrough.out, tmp_path)


def test_archive_needs_the_unchanged_script(leo_copy: Path, tmp_path: Path) -> None:
    edited = tmp_path / "leo_short.script"
    edited.write_text(DEMO_SCRIPT.read_text() + "\n% edited after the sweep\n")
    rewrite_header(leo_copy, script_path=str(edited))
    with pytest.raises(BundleError, match="is not the script this sweep ran"):
        archive(leo_copy)
    with pytest.raises(BundleError, match="is not the script"):
        archive(leo_copy, script=edited)
    rewrite_header(leo_copy, script_path=str(tmp_path / "moved.script"))
    with pytest.raises(BundleError, match="no longer exists; pass script="):
        archive(leo_copy)
    # a copy with other line endings is the same script (canonical hash); its bytes are bundled
    crlf = tmp_path / "crlf" / "leo_short.script"
    crlf.parent.mkdir()
    crlf.write_bytes(DEMO_SCRIPT.read_bytes().replace(b"\n", b"\r\n"))
    bundle = archive(leo_copy, script=crlf)
    with zipfile.ZipFile(bundle) as zf:
        assert zf.read("script/leo_short.script") == crlf.read_bytes()


def test_archive_refuses_while_a_sweep_holds_the_directory(leo_copy: Path) -> None:
    from tests.support.sweepdir import held_by_another_sweep

    with (
        held_by_another_sweep(leo_copy),
        pytest.raises(SweepDirectoryError, match="still running"),
    ):
        archive(leo_copy)
    archive(leo_copy)


# --- atomicity ----------------------------------------------------------------------------


def test_a_failed_archive_keeps_the_old_bundle_and_leaves_no_temp_file(
    leo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = archive(leo_copy)
    before = bundle.read_bytes()
    real = archive_module._hash_files

    def lying(members: list[Any], root: Path) -> list[Any]:
        return [
            replace(m, sha256="0" * 64) if m.name.startswith("script/") else m
            for m in real(members, root)
        ]

    monkeypatch.setattr(archive_module, "_hash_files", lying)
    with pytest.raises(BundleError, match="changed while it was being archived"):
        archive(leo_copy, overwrite=True)
    assert bundle.read_bytes() == before
    assert not [p for p in leo_copy.iterdir() if p.name.endswith(".partial")]


KILLED_MAIN = """\
import importlib
import sys
import time

archive_module = importlib.import_module("prefect_gmat.study.bundle")
real = archive_module._write_member


def slow(zf, member, deflated):
    real(zf, member, deflated)
    time.sleep(0.2)


archive_module._write_member = slow
archive_module.archive(sys.argv[1], sys.argv[2])
"""


@pytest.mark.slow
def test_a_killed_archive_never_leaves_a_zip_under_the_final_name(
    walkthrough: Swept, tmp_path: Path
) -> None:
    main = tmp_path / "slow_archive.py"
    main.write_text(KILLED_MAIN)
    dest = tmp_path / "out" / "b.zip"
    proc = subprocess.Popen([sys.executable, str(main), str(walkthrough.out), str(dest)], cwd=REPO)
    deadline = time.monotonic() + 120
    while not list(dest.parent.glob(".b.zip.*.partial")):
        assert proc.poll() is None, "the archive finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # a few members in
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not dest.exists()
    assert len(list(dest.parent.glob(".b.zip.*.partial"))) == 1


# --- the Prefect task ---------------------------------------------------------------------


def test_archive_task_publishes_the_bundle_identity(leo_copy: Path) -> None:
    @flow
    def archive_flow(out: str) -> str:
        return archive_sweep(out)

    path = Path(archive_flow(str(leo_copy)))
    assert path == leo_copy / "sweep_bundle.zip"
    artifact: Any = Artifact.get(ARTIFACT_KEY)
    assert artifact is not None
    markdown = str(artifact.data)
    assert sha256_file(path) in markdown
    assert str(path) in markdown
    assert "| Members | 14 |" in markdown
    assert f"{path.stat().st_size:,} bytes" in markdown
