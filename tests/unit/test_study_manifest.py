"""study/manifest.py: the header, one record per outcome, the fsynced writer, and the reader
(last record wins, torn tail dropped, anything else refused with a ManifestError)."""

from __future__ import annotations

import errno
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from prefect_gmat.core.layout import MANIFEST_NAME, split_gmat_log
from prefect_gmat.core.records import Outcome
from prefect_gmat.errors import ManifestError
from prefect_gmat.study.manifest import (
    SCHEMA_VERSION,
    ManifestWriter,
    make_header,
    outcome_record,
    read_manifest,
)

GRID_SPEC = {"_kind": "grid", "Sat.SMA": [7000, 7100, 7200]}


def _header(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "script_sha256": "ab" * 32,
        "engine_version": "R2026a",
        "parameter_spec": GRID_SPEC,
        "run_count": 3,
    }
    return make_header(**(fields | overrides))


def _ok(run_id: int, **extra: Any) -> Outcome:
    return Outcome(run_id, "ok", {"Sat.SMA": 7000 + 100 * run_id}, **extra)


def _failed(run_id: int, **extra: Any) -> Outcome:
    fields: dict[str, Any] = {"error": "GMAT run failed", "failure": "engine"} | extra
    return Outcome(run_id, "failed", {"Sat.SMA": 7000 + 100 * run_id}, **fields)


def _write(path: Path, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


# --- the header ------------------------------------------------------------------------------


def test_the_header_has_gmat_sweeps_fields_and_where_things_came_from() -> None:
    before = datetime.now(UTC)
    header = make_header(
        script_sha256="cd" * 32,
        engine_version="R2026a",
        parameter_spec=GRID_SPEC,
        run_count=3,
        seed=42,
        script_path="/data/leo.script",
        engine_source="pip",
        postprocess="tests.unit.hooks:write_summary",
    )
    assert header["schema_version"] == SCHEMA_VERSION == 1
    assert header["script_sha256"] == "cd" * 32
    assert header["gmat_sweep_version"] == "0.6.0"
    assert header["gmat_run_version"] == version("gmat-run")
    assert header["prefect_gmat_version"] == version("prefect-gmat")
    assert header["gmat_install_version"] == "R2026a"
    assert header["sweep_seed"] == 42
    assert header["parameter_spec"] == GRID_SPEC
    assert header["parameter_spec"] is not GRID_SPEC  # the caller's dict is not kept
    assert header["run_count"] == 3
    assert header["backend"] == "prefect"
    assert header["postprocess"] == "tests.unit.hooks:write_summary"
    assert (header["script_path"], header["engine_source"]) == ("/data/leo.script", "pip")
    created = datetime.fromisoformat(header["created_at"])
    assert created.tzinfo is not None and before <= created <= datetime.now(UTC)
    json.dumps(header)


def test_unset_header_fields_are_null() -> None:
    header = _header()
    assert header["sweep_seed"] is None and header["postprocess"] is None
    assert header["script_path"] is None and header["engine_source"] is None


# --- records ---------------------------------------------------------------------------------


def test_an_ok_record_has_no_stderr_and_utc_times() -> None:
    outcome = _ok(
        2,
        output_paths={"report__Orbit": "/o/run-2/report__Orbit.parquet"},
        output_sha256={"report__Orbit": "00" * 32},
        solver_paths={"DC1": "/o/run-2/solver__DC1.parquet"},
        converged={"DC1": True},
        extra_outputs={"summary": "/o/run-2/summary.txt"},
        postprocess_status="ok",
        started_at=1_790_000_000.0,
        ended_at=1_790_000_001.5,
        log_path="/o/run-2/worker.log",
        attempts=2,
    )
    record = outcome_record(outcome)
    assert record["run_id"] == 2 and record["status"] == "ok"
    assert record["overrides"] == {"Sat.SMA": 7200}
    assert record["context"] == {}
    assert record["stderr"] is None and record["error"] is None and record["failure"] is None
    assert record["output_paths"] == outcome.output_paths
    assert record["output_sha256"] == outcome.output_sha256
    assert record["solver_paths"] == outcome.solver_paths
    assert record["converged"] == {"DC1": True}
    assert record["extra_outputs"] == {"summary": "/o/run-2/summary.txt"}
    assert record["postprocess_status"] == "ok"
    assert record["attempts"] == 2 and record["log_path"] == "/o/run-2/worker.log"
    assert record["duration_s"] == 1.5
    started = datetime.fromisoformat(record["started_at"])
    assert started == datetime.fromtimestamp(1_790_000_000.0, UTC)
    assert started.utcoffset() == timedelta(0)
    record["overrides"]["Sat.SMA"] = 0
    assert outcome.overrides == {"Sat.SMA": 7200}  # the record holds copies


def test_a_failed_records_stderr_is_the_cause_then_the_gmat_log() -> None:
    record = outcome_record(_failed(1, log_excerpt="**** ERROR **** step size too small"))
    assert record["status"] == "failed" and record["failure"] == "engine"
    assert record["error"] == "GMAT run failed"
    assert split_gmat_log(record["stderr"]) == (
        "GMAT run failed",
        "**** ERROR **** step size too small",
    )


def test_a_failed_record_without_a_log_or_a_cause_still_says_it_failed() -> None:
    assert outcome_record(_failed(1))["stderr"] == "GMAT run failed"
    assert outcome_record(Outcome(1, "failed", {}))["stderr"] == "failed"


# --- the writer ------------------------------------------------------------------------------


def test_create_writes_the_header_line_with_sorted_keys_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "out" / MANIFEST_NAME
    ManifestWriter.create(path, _header())
    assert os.listdir(path.parent) == [MANIFEST_NAME]
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert list(json.loads(line)) == sorted(json.loads(line))
    assert json.loads(line)["parameter_spec"] == GRID_SPEC
    assert path.stat().st_mode & 0o777 == 0o644


def test_create_refuses_an_existing_manifest_and_leaves_it_alone(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    ManifestWriter.create(path, _header(run_count=1))
    first = path.read_bytes()
    with pytest.raises(ManifestError, match="already exists") as info:
        ManifestWriter.create(path, _header(run_count=2))
    assert info.value.path == str(path)
    assert path.read_bytes() == first
    assert os.listdir(tmp_path) == [MANIFEST_NAME]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_each_append_is_on_disk_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsync sees the manifest with the new records already written to it."""
    path = tmp_path / MANIFEST_NAME
    writer = ManifestWriter.create(path, _header())
    synced: list[tuple[str, int]] = []
    manifest = os.path.realpath(path)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        lines = len(path.read_text().splitlines()) if target == manifest else -1
        synced.append((target, lines))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    writer.append([outcome_record(_ok(0)), outcome_record(_ok(1))])
    assert synced == [(manifest, 3)]
    writer.append([outcome_record(_failed(2))])
    assert synced[-1] == (manifest, 4)
    writer.append([])  # nothing to write: nothing written, nothing synced
    assert len(synced) == 2
    assert len(path.read_text().splitlines()) == 4


def test_a_failed_append_leaves_the_manifest_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills mid-write: half a record is written, then ENOSPC."""
    path = tmp_path / MANIFEST_NAME
    writer = ManifestWriter.create(path, _header())
    writer.append([outcome_record(_ok(0))])
    before = path.read_bytes()
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if len(data) > 20:
            return real_write(fd, bytes(data[:20]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(ManifestError, match="No space left on device") as info:
        writer.append([outcome_record(_ok(1))])
    monkeypatch.undo()
    assert info.value.path == str(path)
    assert path.read_bytes() == before
    writer.append([outcome_record(_ok(1))])  # once there is room again, it goes on
    assert sorted(read_manifest(path).records) == [0, 1]


def test_appends_from_many_threads_give_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    writer = ManifestWriter.create(path, _header())

    def append(start: int) -> None:
        for run_id in range(start, start + 25):
            writer.append([outcome_record(_ok(run_id, error="x" * 5000))])

    threads = [threading.Thread(target=append, args=(25 * i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(read_manifest(path).records) == list(range(200))


def test_open_existing_cuts_a_torn_line_before_appending(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    ManifestWriter.create(path, _header()).append([outcome_record(_ok(0))])
    whole = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"run_id": 1, "sta')
    writer = ManifestWriter.open_existing(path)
    assert path.read_bytes() == whole
    writer.append([outcome_record(_ok(1))])
    data = read_manifest(path)
    assert sorted(data.records) == [0, 1] and data.torn_line is None


def test_open_existing_leaves_a_whole_manifest_alone(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    ManifestWriter.create(path, _header()).append([outcome_record(_ok(0))])
    whole = path.read_bytes()
    ManifestWriter.open_existing(path)
    assert path.read_bytes() == whole


def test_files_inside_the_sweep_directory_are_recorded_relative_to_it(tmp_path: Path) -> None:
    """So the directory can move; gmat-sweep resolves relative paths against it too."""
    out = tmp_path / "out"
    hooks = tmp_path / "hooks" / "summary.txt"
    outcome = _ok(
        3,
        output_paths={"report__Orbit": str(out / "run-3" / "report__Orbit.parquet")},
        solver_paths={"DC1": str(out / "run-3" / "solver__DC1.parquet")},
        extra_outputs={"summary": str(hooks), "plot": str(out / "run-3" / "plot.png")},
        log_path=str(out / "run-3" / "worker.log"),
    )
    ManifestWriter.create(out / MANIFEST_NAME, _header()).append([outcome_record(outcome)])
    written = read_manifest(out).records[3]
    assert written["output_paths"] == {"report__Orbit": "run-3/report__Orbit.parquet"}
    assert written["solver_paths"] == {"DC1": "run-3/solver__DC1.parquet"}
    assert written["extra_outputs"] == {"summary": str(hooks), "plot": "run-3/plot.png"}
    assert written["log_path"] == "run-3/worker.log"
    assert outcome.output_paths["report__Orbit"].startswith(str(out))  # the caller's: as is


# --- the reader ------------------------------------------------------------------------------


def test_the_last_record_of_a_run_wins(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    writer = ManifestWriter.create(path, _header())
    writer.append([outcome_record(_failed(0)), outcome_record(_ok(1))])
    writer.append([outcome_record(_ok(0, attempts=2)), outcome_record(_failed(2))])
    writer.append([outcome_record(_failed(1, failure="crashed"))])
    data = read_manifest(tmp_path)  # a directory means the manifest in it
    assert data.path == path
    assert data.records[0]["status"] == "ok" and data.records[0]["attempts"] == 2
    assert data.records[1]["failure"] == "crashed"
    assert data.ok_ids() == [0]
    assert data.failed_ids() == [1, 2]
    assert data.header["run_count"] == 3 and data.torn_line is None


def test_ids_come_sorted_whatever_the_order_runs_finished_in(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    writer = ManifestWriter.create(path, _header())
    writer.append(outcome_record(_ok(i) if i % 3 else _failed(i)) for i in (9, 4, 0, 7, 3, 1))
    data = read_manifest(path)
    assert data.ok_ids() == [1, 4, 7]
    assert data.failed_ids() == [0, 3, 9]


def test_a_torn_last_line_is_dropped_and_its_number_kept(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    ManifestWriter.create(path, _header()).append([outcome_record(_ok(0))])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"run_id": 1, "status": "ok"}')  # whole JSON, but no newline yet
    data = read_manifest(path)
    assert sorted(data.records) == [0]
    assert data.torn_line == 3


def test_a_manifest_of_only_a_header_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    ManifestWriter.create(path, _header())
    data = read_manifest(path)
    assert data.records == {} and data.ok_ids() == [] and data.failed_ids() == []


def test_no_manifest_is_a_manifest_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest at") as info:
        read_manifest(tmp_path)
    assert info.value.path == str(tmp_path / MANIFEST_NAME)


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ManifestError, match="not a UTF-8 text manifest"):
        read_manifest(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no complete header line"),
        ('{"schema_version": 1}', "no complete header line"),  # a torn header
        ("not json\n", "line 1 is not a manifest header"),
        ('"a string"\n', "line 1 is not a manifest header"),
        ('{"script_sha256": "ab"}\n', "no schema_version"),
        ('{"schema_version": 2}\n', "schema_version 2"),
    ],
)
def test_a_bad_header_is_refused_at_line_1(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(path)
    assert info.value.line == 1 and info.value.path == str(path)


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "",  # a blank line: gmat-sweep refuses it too
        '{"status": "ok"}',  # no run_id
        '{"run_id": "three", "status": "ok"}',
        '{"run_id": null, "status": "ok"}',
        "[1, 2]",
    ],
)
def test_a_bad_record_is_refused_naming_its_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / MANIFEST_NAME
    good = json.dumps(outcome_record(_ok(0)))
    _write(path, json.dumps(_header()), good, bad, good)
    with pytest.raises(ManifestError, match="line 3 is not a valid run record") as info:
        read_manifest(path)
    assert info.value.line == 3


def test_a_record_without_a_status_is_refused(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    _write(path, json.dumps(_header()), '{"run_id": 0}')
    with pytest.raises(ManifestError):
        read_manifest(path).failed_ids()
