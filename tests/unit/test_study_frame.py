"""The frame read with reports read ahead while the sweep ran is the frame read at the end."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from prefect_gmat.core.records import Outcome
from prefect_gmat.study import frame as frame_module
from prefect_gmat.study.frame import ReportFrames, ReportPrefetch

KEY = "report__RF"


def _sweep(tmp_path: Path, runs: int, extra_from: int | None = None) -> list[dict[str, Any]]:
    """Run folders with one report each (run 3 failed), as manifest records. From run
    ``extra_from`` on, the reports carry one more column than the first runs'."""
    records: list[dict[str, Any]] = []
    for run_id in range(runs):
        if run_id == 3:
            records.append({"run_id": run_id, "status": "failed", "output_paths": {}})
            continue
        folder = tmp_path / f"run-{run_id}"
        folder.mkdir()
        rows = 1 + run_id % 4  # a report of one to four rows, the last two at one epoch
        epochs = pd.date_range("2026-01-01", periods=rows, freq="min")
        data: dict[str, Any] = {
            "Sat.UTCGregorian": epochs if rows < 3 else [*epochs[:-1], epochs[-2]]
        }
        if extra_from is not None and run_id >= extra_from:
            data["Sat.VX"] = [0.5 * run_id] * rows  # before the column every run has
        data["Sat.X"] = [float(run_id) + i for i in range(rows)]
        data["time"] = data["Sat.UTCGregorian"]
        pd.DataFrame(data).to_parquet(folder / "report__RF.parquet")
        path = f"run-{run_id}/report__RF.parquet"
        records.append({"run_id": run_id, "status": "ok", "output_paths": {KEY: path}})
    return records


def _outcomes(records: list[dict[str, Any]], root: Path) -> list[Outcome]:
    """The records as the flow's outcomes (absolute paths, as a worker returns them)."""
    return [
        Outcome(
            run_id=r["run_id"],
            status=r["status"],
            overrides={},
            output_paths={k: str(root / v) for k, v in r["output_paths"].items()},
        )
        for r in records
    ]


def _values(frame: pd.DataFrame, run_id: int, column: str) -> list[Any]:
    return list(frame.xs(run_id, level="run_id")[column])


def _read_ahead(outcomes: list[Outcome], batch: int = 5) -> ReportPrefetch:
    """A prefetch fed ``outcomes`` in batches, stopped once it has read them all."""
    prefetch = ReportPrefetch()
    for start in range(0, len(outcomes), batch):
        prefetch.add(outcomes[start : start + batch])
    deadline = time.monotonic() + 30
    while not prefetch._queue.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    prefetch.close()  # it finishes the file it is reading, then stops
    return prefetch


@pytest.mark.parametrize(("extra_from", "order"), [(None, "shuffled"), (7, "reversed")])
def test_reports_read_ahead_in_any_order_give_the_same_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_from: int | None, order: str
) -> None:
    """Rows in run order (a run's own in file order, epochs repeated included), and
    columns as the first run's, then those later runs add."""
    monkeypatch.setattr(frame_module, "_COMPACT_EVERY", 4)  # groups, and runs left loose
    records = _sweep(tmp_path, 23, extra_from)
    expected = ReportFrames(records, tmp_path).frame()
    outcomes = _outcomes(records, tmp_path)
    if order == "shuffled":  # runs come back out of order
        random.Random(1).shuffle(outcomes)
    else:  # the runs with one more column first
        outcomes.reverse()
    got = ReportFrames(records, tmp_path, _read_ahead(outcomes)).frame()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.columns) == list(expected.columns)


def test_the_end_reads_only_what_was_not_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frame_module, "_COMPACT_EVERY", 4)
    records = _sweep(tmp_path, 12)
    outcomes = _outcomes(records, tmp_path)
    prefetch = _read_ahead(outcomes[:8])  # the last runs are read at the end
    read: list[str] = []
    real = frame_module._read

    def counted(path: Path) -> Any:
        read.append(Path(path).parent.name)
        return real(path)

    monkeypatch.setattr(frame_module, "_read", counted)
    got = ReportFrames(records, tmp_path, prefetch).frame()
    pd.testing.assert_frame_equal(got, ReportFrames(records, tmp_path).frame(), check_exact=True)
    assert sorted(read[:4]) == ["run-10", "run-11", "run-8", "run-9"]  # then the second read
    assert len(read) == 4 + 11


def test_a_run_read_ahead_from_another_file_or_now_failed_is_not_taken(tmp_path: Path) -> None:
    records = _sweep(tmp_path, 10)
    outcomes = _outcomes(records, tmp_path)
    # run 6 came back naming another file than the manifest does, run 9's file was not
    # there yet when the thread tried it, and the manifest says run 8 failed after all
    other = tmp_path / "elsewhere.parquet"
    pd.read_parquet(tmp_path / "run-6" / "report__RF.parquet").assign(**{"Sat.X": -1.0}).to_parquet(
        other
    )
    outcomes[6].output_paths[KEY] = str(other)
    late = tmp_path / "run-9" / "report__RF.parquet"
    kept = late.read_bytes()
    late.unlink()
    prefetch = _read_ahead(outcomes)
    late.write_bytes(kept)
    records[8] = {"run_id": 8, "status": "failed", "output_paths": {}}
    got = ReportFrames(records, tmp_path, prefetch).frame()
    pd.testing.assert_frame_equal(got, ReportFrames(records, tmp_path).frame(), check_exact=True)
    assert _values(got, 6, "Sat.X") == [6.0, 7.0, 8.0]
    assert _values(got, 9, "Sat.X") == [9.0, 10.0]
    assert _values(got, 8, "__status") == ["failed"]


def test_a_group_read_ahead_is_taken_only_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frame_module, "_COMPACT_EVERY", 4)
    records = _sweep(tmp_path, 9)
    prefetch = _read_ahead(_outcomes(records, tmp_path))
    records[5] = {"run_id": 5, "status": "failed", "output_paths": {}}  # its group: 4 5 6 7
    got = ReportFrames(records, tmp_path, prefetch).frame()
    pd.testing.assert_frame_equal(got, ReportFrames(records, tmp_path).frame(), check_exact=True)
    assert _values(got, 5, "__status") == ["failed"]


def test_a_run_recorded_twice_is_read_at_the_end(tmp_path: Path) -> None:
    records = _sweep(tmp_path, 6)
    outcomes = _outcomes(records, tmp_path)
    prefetch = ReportPrefetch()
    prefetch.add(outcomes)
    deadline = time.monotonic() + 30
    while 5 not in prefetch._columns.get(KEY, {}) and time.monotonic() < deadline:
        time.sleep(0.01)
    report = tmp_path / "run-5" / "report__RF.parquet"
    pd.read_parquet(report).assign(**{"Sat.X": -5.0}).to_parquet(report)  # run again
    prefetch.add(outcomes[5:])
    got = ReportFrames(records, tmp_path, prefetch).frame()
    assert _values(got, 5, "Sat.X") == [-5.0, -5.0]


def test_a_prefetch_never_fed_stops_at_once() -> None:
    prefetch = ReportPrefetch()
    prefetch.close()
    prefetch.add([Outcome(run_id=0, status="ok", overrides={}, output_paths={KEY: "/x"})])
    assert prefetch.take(KEY, []) == ([], [], {})
