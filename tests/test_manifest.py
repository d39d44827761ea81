"""The manifest on its own: round trip, last record wins, torn tails, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefect_gmat.core.records import Outcome
from prefect_gmat.errors import ManifestError
from prefect_gmat.study.manifest import ManifestWriter, make_header, outcome_record, read_manifest


def _header() -> dict[str, object]:
    return make_header(
        script_sha256="ab" * 32,
        engine_version="R2026a",
        parameter_spec={"_kind": "grid", "Sat.SMA": [7000, 7100]},
        run_count=2,
        script_path="/data/leo.script",
        engine_source="pip",
    )


def _outcome(run_id: int, status: str = "ok", **extra: object) -> Outcome:
    fields: dict[str, object] = {
        "run_id": run_id,
        "status": status,
        "overrides": {"Sat.SMA": 7000 + 100 * run_id},
        "started_at": 1_790_000_000.0,
        "ended_at": 1_790_000_000.25,
        **extra,
    }
    return Outcome(**fields)  # type: ignore[arg-type]


def test_round_trip_and_the_last_record_for_a_run_wins(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter.create(path, _header())
    failed = _outcome(1, "failed", error="worker died: signal 9 (SIGKILL)", failure="crashed")
    writer.append([outcome_record(_outcome(0)), outcome_record(failed)])
    writer.append([outcome_record(_outcome(1, attempts=2))])
    data = read_manifest(tmp_path)
    assert data.header == _header() | {"created_at": data.header["created_at"]}
    assert sorted(data.records) == [0, 1]
    assert data.records[1]["status"] == "ok" and data.records[1]["attempts"] == 2
    assert data.records[0]["duration_s"] == pytest.approx(0.25)
    assert data.records[0]["started_at"].endswith("+00:00")
    assert data.torn_line is None
    for line in path.read_text().splitlines():
        assert list(json.loads(line)) == sorted(json.loads(line))  # sorted keys, as gmat-sweep


def test_gmat_sweep_loads_what_we_write(tmp_path: Path) -> None:
    from gmat_sweep import Manifest

    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter.create(path, _header())
    writer.append([outcome_record(_outcome(0)), outcome_record(_outcome(1, "failed", error="x"))])
    loaded = Manifest.load(path)
    assert [e.status for e in loaded.entries] == ["ok", "failed"]
    assert loaded.gmat_install_version == "R2026a"
    assert loaded.entries[1].stderr == "x"


def test_a_torn_last_line_is_dropped_and_cut_before_the_next_append(tmp_path: Path) -> None:
    from gmat_sweep import Manifest

    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter.create(path, _header())
    writer.append([outcome_record(_outcome(0))])
    with open(path, "a") as handle:
        handle.write('{"run_id": 1, "status": "o')  # a kill mid-append
    data = read_manifest(path)
    assert sorted(data.records) == [0]
    assert data.torn_line == 3
    ManifestWriter.open_existing(path).append([outcome_record(_outcome(1))])
    assert sorted(read_manifest(path).records) == [0, 1]
    assert len(Manifest.load(path).entries) == 2  # gmat-sweep would reject a sealed torn line


def test_a_damaged_line_in_the_middle_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    ManifestWriter.create(path, _header()).append([outcome_record(_outcome(0))])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "not json\n" + lines[1])
    with pytest.raises(ManifestError, match="line 2 is not a valid run record") as info:
        read_manifest(path)
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no complete header line"),
        ("[1, 2]\n", "not a manifest header"),
        ('{"schema_version": 2}\n', "schema_version 2"),
    ],
)
def test_a_bad_header_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_create_never_clobbers_an_existing_manifest(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text("precious\n")
    with pytest.raises(ManifestError, match="already exists"):
        ManifestWriter.create(path, _header())
    assert path.read_text() == "precious\n"


def test_a_failed_append_raises_a_manifest_error_with_the_cause() -> None:
    """/dev/full fails every write with ENOSPC, as a full disk does."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with pytest.raises(ManifestError, match="No space left on device"):
        ManifestWriter(Path("/dev/full")).append([outcome_record(_outcome(0))])
