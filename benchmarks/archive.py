"""Benchmark archive() and verify_bundle() on synthetic 200- and 1000-run sweeps.

Usage: ./dev bench archive [--runs 200 1000]

GMAT runs once per scenario (a real run's Parquet); that file is copied into
every run directory of a synthetic sweep whose manifest is written with the
package's own manifest module. Each (scenario, runs) pair is then archived and
verified in a fresh child process, and the peak RSS of each call is measured
above the RSS at its start: were members held in memory, it would grow with
runs x file size.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "src" / "prefect_gmat" / "scripts" / "leo_short.script"
TARGET_SECONDS = 5.0


def _lifetime_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _window_peak_rss_mb() -> float:
    """VmHWM: unlike getrusage's ru_maxrss (which also keeps exited threads' peaks), it resets."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return _lifetime_peak_rss_mb()


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _reset_peak() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets the high-water mark),
    so an operation's peak is not hidden under the peak of importing pandas and pyarrow."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def _scripts(work: Path) -> dict[str, Path]:
    """The walkthrough script, and a one-day variant with ~500x bigger reports."""
    day = work / "leo_one_day.script"
    text = DEMO.read_text(encoding="utf-8")
    text = text.replace("Prop.Accuracy = 1e-9", "Prop.Accuracy = 1e-9\nProp.MaxStep = 60")
    text = text.replace("{Sat.ElapsedSecs = 60}", "{Sat.ElapsedDays = 1}")
    day.write_text(text, encoding="utf-8")
    return {"walkthrough (leo_short)": DEMO, "one day, 60 s steps": day}


def _real_run(script: Path, run_dir: Path) -> Path:
    """One real GMAT run; returns its report Parquet."""
    from prefect_gmat.core.records import RunJob
    from prefect_gmat.engine.run import execute

    outcome = execute(RunJob(0, str(script), {}, str(run_dir)))
    if not outcome.ok:
        raise SystemExit(f"the seed run of {script} failed: {outcome.error}")
    return Path(outcome.output_paths["report__RF"])


def _build(script: Path, parquet: Path, out: Path, runs: int) -> None:
    """A sweep directory of ``runs`` ok runs, each holding a copy of ``parquet``."""
    from prefect_gmat.core.records import Outcome, sha256_file
    from prefect_gmat.study.manifest import ManifestWriter, make_header, outcome_record
    from prefect_gmat.study.spec import canonical_script_sha256

    values = [7000.0 + i for i in range(runs)]
    header = make_header(
        script_sha256=canonical_script_sha256(script),
        engine_version="R2026a",
        parameter_spec={"_kind": "grid", "Sat.SMA": values},
        run_count=runs,
        script_path=str(script),
        engine_source="pip",
    )
    writer = ManifestWriter.create(out / "manifest.jsonl", header)
    digest = sha256_file(parquet)
    now = time.time()
    batch = []
    for run_id, value in enumerate(values):
        run_dir = out / f"run-{run_id}"
        run_dir.mkdir()
        target = run_dir / "report__RF.parquet"
        shutil.copyfile(parquet, target)
        (run_dir / "worker.log").write_text(f"run_id={run_id} status=ok\n", encoding="utf-8")
        batch.append(
            outcome_record(
                Outcome(
                    run_id=run_id,
                    status="ok",
                    overrides={"Sat.SMA": value},
                    output_paths={"report__RF": str(target)},
                    output_sha256={"report__RF": digest},
                    started_at=now,
                    ended_at=now + 0.05,
                    log_path=str(run_dir / "worker.log"),
                )
            )
        )
        if len(batch) == 100:
            writer.append(batch)
            batch = []
    writer.append(batch)


def _measure(out: Path) -> dict[str, Any]:
    """In a fresh process: archive, then verify, timing each and reading peak RSS."""
    from prefect_gmat.study.bundle import archive, verify_bundle

    bundle = out.parent / f"{out.name}.zip"
    _reset_peak()
    before = _rss_mb()
    started = time.perf_counter()
    archive(out, bundle)
    archived = time.perf_counter() - started
    archive_peak = _window_peak_rss_mb()
    _reset_peak()
    before_verify = _rss_mb()
    started = time.perf_counter()
    verify_bundle(bundle)
    verified = time.perf_counter() - started
    verify_peak = _window_peak_rss_mb()
    with zipfile.ZipFile(bundle) as zf:
        members = len(zf.infolist())
        data = sum(i.file_size for i in zf.infolist())
    return {
        "archive_s": archived,
        "verify_s": verified,
        "rss_before_mb": before,
        "rss_before_verify_mb": before_verify,
        "archive_peak_mb": archive_peak,
        "verify_peak_mb": verify_peak,
        "lifetime_peak_mb": _lifetime_peak_rss_mb(),
        "members": members,
        "data_mb": data / 1e6,
        "bundle_mb": bundle.stat().st_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(_measure(args.measure)))
        return

    from prefect_gmat.engine.install import shim_root
    from prefect_gmat.engine.run import start_engine

    start_engine(str(shim_root()))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="archive-bench-") as tmp:
        work = Path(tmp)
        for label, script in _scripts(work).items():
            parquet = _real_run(script, work / f"seed-{len(rows)}")
            for runs in args.runs:
                out = work / f"sweep-{len(rows)}"
                out.mkdir()
                _build(script, parquet, out, runs)
                child = subprocess.run(
                    [sys.executable, __file__, "--measure", str(out)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append({"scenario": label, "runs": runs, **json.loads(child.stdout)})
                shutil.rmtree(out)

    print(
        f"{'scenario':<26}{'runs':>6}{'data MB':>9}{'zip MB':>8}{'archive s':>11}"
        f"{'verify s':>10}{'RSS start':>11}{'+archive':>10}{'+verify':>9}{'getrusage':>11}"
    )
    for r in rows:
        r["archive_growth"] = r["archive_peak_mb"] - r["rss_before_mb"]
        r["verify_growth"] = r["verify_peak_mb"] - r["rss_before_verify_mb"]
        print(
            f"{r['scenario']:<26}{r['runs']:>6}{r['data_mb']:>9.1f}{r['bundle_mb']:>8.1f}"
            f"{r['archive_s']:>11.2f}{r['verify_s']:>10.2f}{r['rss_before_mb']:>9.1f}MB"
            f"{r['archive_growth']:>8.1f}MB{r['verify_growth']:>7.1f}MB{r['lifetime_peak_mb']:>9.1f}MB"
        )
    print(
        "(+archive / +verify: peak RSS (VmHWM) during the call above the RSS at its start;\n"
        " getrusage: the child's lifetime peak, dominated by importing pandas and pyarrow)"
    )
    for label in dict.fromkeys(r["scenario"] for r in rows):
        growth = {r["runs"]: r["archive_growth"] for r in rows if r["scenario"] == label}
        print(
            f"{label}: archive's peak above its start, by runs: "
            + ", ".join(f"{runs}: {mb:.1f} MB" for runs, mb in growth.items())
        )
    slow = [r for r in rows if max(r["archive_s"], r["verify_s"]) > TARGET_SECONDS]
    print(
        f"target: archive and verify each under {TARGET_SECONDS:.0f} s -> "
        + ("MET" if not slow else f"MISSED for {[(r['scenario'], r['runs']) for r in slow]}")
    )


if __name__ == "__main__":
    main()
