"""The records that cross the engine boundary: pickling, defaults, hashing, old outcomes."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path

from prefect.filesystems import LocalFileSystem
from prefect.results import ResultStore
from prefect.serializers import PickleSerializer

from prefect_gmat.core.records import Outcome, RunJob, hash_key, hashed_outputs, sha256_file

PREMOVE = Path(__file__).resolve().parent / "data" / "premove-results"


def test_an_outcome_persisted_before_the_layers_moved_still_loads() -> None:
    """tests/data/premove-results was written by the run task's store of version 1f9597b,
    where the class was prefect_gmat.runner.Outcome; a sweep cached then must resume."""
    record = json.loads((PREMOVE / "gmat-run-premove-example").read_text())
    assert b"prefect_gmat.runner" in base64.b64decode(record["result"])  # the old class path
    store = ResultStore(
        result_storage=LocalFileSystem(basepath=str(PREMOVE)), serializer=PickleSerializer()
    )
    outcome = store.read("gmat-run-premove-example").result
    assert type(outcome) is Outcome
    assert outcome.run_id == 3 and outcome.ok
    assert outcome.overrides == {"Sat.SMA": 7300}
    assert outcome.output_paths == {"report__Orbit": "/sweep/run-3/report__Orbit.parquet"}
    assert outcome.postprocess_status == "none"  # a field the old pickle may lack gets its default


def test_records_round_trip_through_pickle() -> None:
    job = RunJob(run_id=1, script_path="/s.script", overrides={"Sat.SMA": 7000}, run_dir="/r")
    outcome = Outcome(run_id=1, status="failed", overrides={}, error="x", failure="timeout")
    assert pickle.loads(pickle.dumps(job)) == job
    again = pickle.loads(pickle.dumps(outcome))
    assert again == outcome and again.transient and not again.ok


def test_a_hooks_outputs_are_hashed_under_keys_no_report_can_take(tmp_path: Path) -> None:
    files = hashed_outputs({"report__R": "/a"}, {"DC1": "/b"}, {"summary": "/c"})
    assert files == {"report__R": "/a", "DC1": "/b", "extra:summary": "/c"}
    assert hash_key("extra_outputs", "summary") == "extra:summary"
    assert hash_key("output_paths", "report__R") == "report__R"
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
