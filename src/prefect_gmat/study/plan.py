"""The cost before the run: what a sweep will take, from a few pilot runs of its own points.

:func:`measure` runs a handful of the sweep's own points (spread over its run
ids, a few per engine) on the engines the sweep would use, in a temporary
directory that is removed afterwards: nothing is recorded and nothing is
written under ``out``. :func:`estimate` turns those pilots into the sweep's
cost: its runs, its wall time from the call to the returned frame, the Prefect
task runs the flow's batch sizing makes of them, and the disk its directory
will take (run folders, manifest, the per-run cache, the bundle), plus, for a
Monte Carlo or Latin hypercube study, the runs a Sobol (Saltelli) design of the
same fields takes.

The wall time adds to the runs themselves (``runs x per-run seconds / engines``)
the fixed costs measured on this machine, each a named constant below: Prefect's
start-up with and without a running server, the engines' start (timed by the plan
itself), the CPU of each task run, the archive, and the flow's end. Those
constants were measured on a quiet machine; a busy machine slows them as it slows
the runs, so they are scaled by the load the pilots saw (the engines' wall time
per CPU second).

No Prefect here (the import-linter contract): the caller says whether the sweep
would run against a running server.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import statistics
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from prefect_gmat.core.layout import MANIFEST_NAME, WORKER_LOG, run_dir_name
from prefect_gmat.core.records import TRANSIENT_FAILURES, Outcome, RunJob
from prefect_gmat.engine.pool import (
    PoolConfig,
    WorkerPool,
    close_shared_pool,
    has_shared_pool,
    shared_pool,
)
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.settings import get_settings
from prefect_gmat.study.batching import (
    PER_DASK_TASK_RUN_SECONDS,
    PER_TASK_RUN_CPU_SECONDS,
    BatchSizer,
    flushes_within,
)
from prefect_gmat.study.early_start import early_mode
from prefect_gmat.study.manifest import (
    make_header,
    outcome_record,
    portable_record,
    read_manifest,
)
from prefect_gmat.study.request import SweepOptions, SweepRequest
from prefect_gmat.study.spec import Point, SweepSpec, canonical_script_sha256
from prefect_gmat.study.sweepdir import new_sweep_dir, outputs_intact, preflight
from prefect_gmat.study.validation import check_against_engine

__all__ = [
    "PILOTS_PER_ENGINE",
    "Pilots",
    "SweepCost",
    "estimate",
    "measure",
    "pilot_ids",
    "point_task_runs",
    "saltelli_runs",
]

# --- measured costs (2-core machine of this project, Python 3.12, Prefect 3.9) -------------
#
# How they were measured: a fresh process calls ``plan()`` and then ``sweep()`` on the same
# 200-point grid of the gravity+drag LEO script propagated for 6 h (~0.15 s runs, workers=2),
# against a running server and without one, rounds interleaved, while other work loaded the
# machine to different degrees (load average 1.4-11). Each phase of the real sweep (call to
# first run, the runs, last run to frame; read from its manifest) was set against the load
# factor the pilots measured just before. The values below are the quiet-machine seconds
# (load factor 1); the README's throughput table gives the same within its spread.

#: How a CPU-bound fixed phase grows with the load factor L: ``seconds x L ** 1.3``. Phases
#: that run several processes (the flow, the server, the engines' start) are slowed more
#: than one engine is: e.g. a start that takes 2.4 s on a quiet machine took 7.6 s at
#: L = 2.6 and 40 s at L = 7.7, a temporary server's 6.5 s took 15 s at L = 2.0 and 46 s
#: at L = 4.6.
LOAD_EXPONENT = 1.3
#: Call to the first run's start against a running server (``PREFECT_API_URL`` set):
#: importing Prefect and the flow while the engines start, the flow run, the first task
#: run. Quiet: 2.1-2.7 s.
PREFECT_START_SERVER_SECONDS = 2.4
#: The same in a process that has run a sweep before (Prefect and the flow imported, the
#: client connected, the engine template up): the flow run and its first task run only,
#: the second and later sweeps of a notebook or script. Quiet: 0.5-0.6 s.
PREFECT_START_WARM_SECONDS = 0.6
#: The same without a server: the temporary server the sweep starts at the call answers
#: after 6-7 s (5.6 s of it importing the server application). Quiet: 6.2-6.8 s.
PREFECT_START_EPHEMERAL_SECONDS = 6.5
#: One engine process start (the template's imports, then a fork per engine), used when the
#: plan could not time it (its engines were already warm). Quiet: 1.3 s.
ENGINE_START_SECONDS = 1.3
#: Wall time a task run adds to the first runs: submitted, started in a thread, its
#: outcome back in the flow; the dispatcher waits for one probe per engine before it
#: sizes batches. 0.1-0.2 s.
TASK_RUN_LATENCY_SECONDS = 0.15
#: Last run's end to the returned frame, beside the archive and the plots: the last
#: manifest flush, the summary artifact and event, Prefect ending the flow run. The frame
#: is built and the heartbeat thread stopped while the archive is written. Mostly
#: waiting, so it hardly grows with the load: 0.25-0.4 s.
FINISH_SECONDS = 0.3
#: Drawing the plot artifacts at the end, beyond the archive it overlaps (matplotlib is
#: imported while the last runs go on): band and corner of a 300-run sweep take 0.4-0.5 s
#: of which 0.1-0.2 s show after a 0.7 s archive.
PLOTS_SECONDS = 0.2
#: Archiving: the outputs are hashed, deflated, written and verified: 0.1 s for 1000 short
#: runs (5 MB), 1.9 s for 70 MB (benchmarks/archive.py): ~28 ms per MB of outputs.
ARCHIVE_SECONDS_PER_BYTE = 0.028 / 1e6
ARCHIVE_BASE_SECONDS = 0.05
#: ``prefect-gmat`` itself: the interpreter's start, importing the CLI (pandas) and
#: printing the frame. Quiet: 0.9-1.2 s.
COMMAND_START_SECONDS = 1.0
#: Bringing up a dask cluster for the sweep (a local one, or connecting and starting the
#: workers' engines): 7.5 s more before the first run than without dask. Rough.
DASK_START_SECONDS = 7.5

# --- disk -------------------------------------------------------------------------------
#: One ``.prefect-results`` entry beyond its pickled outcome (Prefect's JSON metadata; the
#: outcome is base64 in it). Measured against the real directory of a 200-run sweep.
RESULT_METADATA_BYTES = 420
#: Bundle bytes beside the runs' members: its README, the script, MANIFEST.hash's header.
BUNDLE_FIXED_BYTES = 4500
#: Bundle bytes per member beyond its deflated content: the zip's local and central
#: headers (two copies of the name) and its line in MANIFEST.hash.
BUNDLE_MEMBER_BYTES = 200
#: The manifest deflated in the bundle, as a share of its size (its lines repeat their keys).
MANIFEST_DEFLATE_RATIO = 0.3
#: Bytes of a file deflated to estimate the bundle; a larger output is extrapolated.
_DEFLATE_SAMPLE_BYTES = 1 << 20

# --- pilots ------------------------------------------------------------------------------
#: Pilot runs per engine at most; the first on each engine is a cold start (slower), so
#: the per-run time is the mean of the others.
PILOTS_PER_ENGINE = 8
#: An engine stops its pilots once they took this long (one run at least): short runs are
#: timed over a second or so (the machine's load is averaged over that), a sweep of
#: minute-long runs is planned from one run per engine.
PILOT_SECONDS = 1.5
#: Clamp of the load factor (a machine busier than this is not planned better by it).
_MAX_LOAD = 8.0


def saltelli_runs(fields: int, n: int, *, calc_second_order: bool = True) -> int:
    """Runs of a Sobol (Saltelli) design: ``n * (2D + 2)``, or ``n * (D + 2)`` without
    second-order indices, as :func:`prefect_gmat.analysis.sensitivity.sobol_sample` lays
    it out for ``D`` fields and ``n`` base samples."""
    return n * (2 * fields + 2 if calc_second_order else fields + 2)


def pilot_ids(total: int, count: int) -> list[int]:
    """``count`` indexes spread evenly over ``0 .. total-1`` (all of them when fewer)."""
    if total <= 0 or count <= 0:
        return []
    if count >= total:
        return list(range(total))
    if count == 1:
        return [total // 2]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def point_task_runs(
    runs: int,
    engines: int,
    setting: int | str,
    run_seconds: float,
    task_cost: float = PER_TASK_RUN_CPU_SECONDS,
) -> tuple[int, int]:
    """The task runs the flow makes of ``runs`` points, and how many are single-point probes.

    The flow's own :class:`~prefect_gmat.study.batching.BatchSizer`, fed runs of
    ``run_seconds``, in the order the dispatcher asks it (one probe per engine while it
    measures, then a batch size per task run until every point is out).
    """
    sizer = BatchSizer("auto" if setting == "auto" else int(setting), runs, engines, task_cost)
    timed = Outcome(run_id=0, status="ok", overrides={}, started_at=0.0, ended_at=run_seconds)
    remaining, count, probes = runs, 0, 0
    while remaining > 0:
        if sizer.measuring:
            sent = min(sizer.engines, remaining)
            probes += sent
            count += sent
            remaining -= sent
            sizer.observe([timed] * sent)
            continue
        remaining -= max(1, sizer.next_size(remaining))
        count += 1
    return count, probes


# --- what the pilots measured ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pilots:
    """What a few pilot runs measured, per run, and what the plan timed around them."""

    run_ids: tuple[int, ...]
    run_seconds: float  # mean warm run, wall
    cold_run_seconds: float  # mean first run on a fresh engine
    run_bytes: float  # files in a run's folder
    bundle_bytes: float  # a run's bundle members, deflated, with the zip's overhead
    log_bundle_bytes: float  # a run's worker.log in the bundle (include_logs)
    manifest_bytes: float  # a run's manifest line
    result_bytes: float  # a run's .prefect-results entry
    header_bytes: int
    load: float = 1.0  # wall seconds per CPU second of the engines (1: a quiet machine)
    engine_start_seconds: float | None = None  # None: the engines were already warm
    check_seconds: float = 0.0
    failures: tuple[tuple[int, str], ...] = ()


def measure(
    request: SweepRequest,
    *,
    pilots_per_engine: int | None = None,
    note: Callable[[str], None] = lambda _text: None,
) -> tuple[SweepSpec, SweepOptions, list[Point], Pilots]:
    """Check ``request`` as the sweep would, then run a few of its points as pilots.

    Returns the spec, the resolved options, the points the sweep would run (fewer than
    the spec's when ``out`` holds this same sweep, partly done) and the pilots'
    measurements. The pilots run on the sweep's engines (its workers, timeout and
    engine) in a temporary directory that is removed; nothing is written under ``out``.
    """
    if request.mode not in ("new", "overwrite"):
        raise SweepSpecError(
            f"a plan is for a sweep that starts (mode 'new' or 'overwrite'), not {request.mode!r}.",
            field="mode",
        )
    options = request.resolve(new_sweep_dir)
    spec = request.spec(options.out, note=note)
    if spec is None:  # pragma: no cover - a new sweep always has a spec
        raise SweepSpecError("a plan needs a script and its points.", field="script")
    checked = preflight(options.out, spec, request.mode)
    todo = _to_run(options.out, checked, request.mode)
    per_engine = PILOTS_PER_ENGINE if pilots_per_engine is None else pilots_per_engine
    if per_engine < 1:
        raise SweepSpecError(
            f"pilots={pilots_per_engine!r}: give at least one pilot run per engine.",
            field="pilots",
            value=pilots_per_engine,
        )
    config = options.pool
    owned = not has_shared_pool(config)
    started = time.monotonic()
    pool = shared_pool(config)
    try:
        pool.warm_up()
        engine_start = time.monotonic() - started if owned else None
        started = time.monotonic()
        check_against_engine(checked, pool)
        check = time.monotonic() - started
        chosen = [todo[i] for i in pilot_ids(len(todo), per_engine * config.workers)]
        pilots = _run_pilots(pool, config, checked, chosen, options.out)
    finally:
        if owned:
            close_shared_pool(config)
    header = make_header(
        script_sha256=canonical_script_sha256(checked.script),
        engine_version=options.engine.version,
        parameter_spec=checked.parameter_spec(),
        run_count=len(checked),
        seed=checked.seed,
        script_path=str(checked.script),
        engine_source=options.engine.source,
        postprocess=checked.postprocess,
        sweep_dir=str(options.out),
    )
    header_bytes = len(json.dumps(dict(header), sort_keys=True)) + 1
    pilots = replace(
        pilots, header_bytes=header_bytes, engine_start_seconds=engine_start, check_seconds=check
    )
    return checked, options, todo, pilots


def _to_run(out: Path, spec: SweepSpec, mode: str) -> list[Point]:
    """The points the sweep would run: all, or (``out`` holding this same sweep) those not
    finished ok and intact, nor failed for good, as a continued sweep does."""
    points = list(spec.points())
    manifest = out / MANIFEST_NAME
    if mode != "new" or not manifest.is_file():
        return points
    records = read_manifest(manifest).records

    def settled(record: Mapping[str, Any] | None) -> bool:
        if record is None:
            return False
        if record.get("status") == "ok":
            return outputs_intact(record, out)
        failure = record.get("failure")
        return failure is not None and failure not in TRANSIENT_FAILURES

    return [p for p in points if not settled(records.get(p.run_id))]


def _cpu_seconds(pids: Sequence[int]) -> float | None:
    """CPU (user + system) the processes used so far, from /proc (None where unknown)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                stat = handle.read().rsplit(")", 1)[1].split()
            total += (int(stat[11]) + int(stat[12])) / tick
        except (OSError, IndexError, ValueError):
            return None
    return total


def _run_pilots(
    pool: WorkerPool, config: PoolConfig, spec: SweepSpec, points: list[Point], out: Path
) -> Pilots:
    """Run ``points`` in a temporary directory, one series per engine at once, and measure."""
    engines = config.workers
    series = [points[i::engines] for i in range(engines)]
    done: list[list[Outcome]] = [[] for _ in range(engines)]
    pids = pool.pids
    scratch = Path(tempfile.mkdtemp(prefix="prefect-gmat-plan-"))
    try:

        def run_series(index: int) -> None:
            spent = 0.0
            for point in series[index]:
                if done[index] and spent >= PILOT_SECONDS:
                    return
                job = RunJob(
                    run_id=point.run_id,
                    script_path=str(spec.script),
                    overrides=point.overrides,
                    run_dir=str(scratch / run_dir_name(point.run_id)),
                    timeout=config.timeout,
                    postprocess=spec.postprocess,
                )
                outcome = pool.run(job)
                spent += outcome.duration_s
                done[index].append(outcome)

        cpu_before = _cpu_seconds(pids)
        threads = [
            threading.Thread(target=run_series, args=(i,), name=f"plan-pilot-{i}")
            for i in range(engines)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cpu_after = _cpu_seconds(pids)
        outcomes = [o for ran in done for o in ran]
        if not outcomes:
            raise SweepSpecError("the sweep has no points to run.", field="grid")
        cold = [ran[0].duration_s for ran in done if ran]
        warm = [o.duration_s for ran in done for o in ran[1:]] or cold
        busy = sum(o.duration_s for o in outcomes)
        load = 1.0
        if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
            share = (cpu_after - cpu_before) / busy if busy > 0 else 1.0
            expected = min(1.0, (os.cpu_count() or 1) / engines)
            load = min(_MAX_LOAD, max(1.0, expected / share)) if share > 0 else 1.0
        sizes = [_sizes(o, scratch) for o in outcomes]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    failures = tuple(
        (o.run_id, (o.error or "failed").splitlines()[0]) for o in outcomes if not o.ok
    )
    return Pilots(
        run_ids=tuple(sorted(o.run_id for o in outcomes)),
        run_seconds=statistics.fmean(warm),
        cold_run_seconds=statistics.fmean(cold),
        run_bytes=statistics.fmean(s[0] for s in sizes),
        bundle_bytes=statistics.fmean(s[1] for s in sizes),
        log_bundle_bytes=statistics.fmean(s[2] for s in sizes),
        manifest_bytes=statistics.fmean(s[3] for s in sizes),
        result_bytes=statistics.fmean(s[4] for s in sizes),
        header_bytes=0,
        load=load,
        failures=failures,
    )


def _deflated(path: Path) -> int:
    """A file's size deflated as the bundle stores it (zlib level 6; a sample of a large
    file, extrapolated)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        sample = handle.read(_DEFLATE_SAMPLE_BYTES)
    if not sample:
        return 0
    return round(len(zlib.compress(sample, 6)) * size / len(sample))


def _sizes(outcome: Outcome, root: Path) -> tuple[int, int, int, int, int]:
    """One pilot's bytes: its folder, its bundle members, its log in the bundle, its manifest
    line and its cache entry."""
    folder = root / run_dir_name(outcome.run_id)
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    run_bytes = sum(p.stat().st_size for p in files)
    members = [
        *outcome.output_paths.values(),
        *outcome.solver_paths.values(),
        *outcome.extra_outputs.values(),
    ]
    bundle = 0
    for member in members:
        path = Path(member)
        if path.is_file():
            bundle += _deflated(path) + BUNDLE_MEMBER_BYTES
    log = folder / WORKER_LOG
    log_bytes = _deflated(log) + BUNDLE_MEMBER_BYTES if log.is_file() else 0
    record = json.dumps(portable_record(outcome_record(outcome), root), sort_keys=True)
    result = RESULT_METADATA_BYTES + math.ceil(len(pickle.dumps(outcome)) / 3) * 4
    return run_bytes, bundle, log_bytes, len(record) + 1, result


# --- the estimate --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepCost:
    """What a sweep will cost: its runs, wall time, task runs and disk, and how each was got.

    ``seconds`` is from the call to the returned frame: ``running_seconds`` (the runs on
    the engines, with the first runs' cold start) plus every entry of ``fixed_seconds``.
    ``bytes`` is what the sweep directory will hold (``bytes_detail``).
    """

    script: str
    out: str
    runs: int
    seconds: float
    task_runs: int
    bytes: int
    per_run_seconds: float
    workers: int
    server: bool
    running_seconds: float
    fixed_seconds: dict[str, float]
    start_detail: dict[str, float]
    task_runs_detail: dict[str, int]
    bytes_detail: dict[str, int]
    already_done: int = 0
    points_per_task: int | str = "auto"
    load_factor: float = 1.0
    pilot_run_ids: tuple[int, ...] = ()
    pilot_failures: tuple[tuple[int, str], ...] = ()
    dask: str | None = None
    saltelli: dict[str, int | float] | None = None
    notes: tuple[str, ...] = field(default=())

    def for_command(self) -> SweepCost:
        """This cost as a ``prefect-gmat`` command pays it: the interpreter's start and the
        CLI's imports come first, and the frame is printed at the end."""
        if "command_start" in self.fixed_seconds:
            return self
        extra = round(COMMAND_START_SECONDS * self.load_factor**LOAD_EXPONENT, 2)
        return replace(
            self,
            seconds=round(self.seconds + extra, 1),
            fixed_seconds={**self.fixed_seconds, "command_start": extra},
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, one object (``--plan --json``)."""
        data = asdict(self)
        data["pilot_run_ids"] = list(self.pilot_run_ids)
        data["pilot_failures"] = [{"run_id": i, "error": e} for i, e in self.pilot_failures]
        data["notes"] = list(self.notes)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def describe(self) -> str:
        """The plan in a few lines, for a terminal."""
        where = "a running Prefect server" if self.server else "a temporary Prefect server"
        fixed = ", ".join(
            f"{name.replace('_', ' ')} {value:.1f} s"
            for name, value in self.fixed_seconds.items()
            if value >= 0.05
        )
        detail = self.task_runs_detail
        parts = [f"{detail['batches']} running points"]
        if detail["probes"]:
            parts.append(f"{detail['probes']} single-point probes")
        if detail["manifest"]:
            parts.append(f"{detail['manifest']} manifest flushes")
        if detail["archive"]:
            parts.append("the archive")
        disk = self.bytes_detail
        pilots = ", ".join(map(str, self.pilot_run_ids))
        lines = [
            f"plan for {Path(self.script).name} into {self.out}",
            f"  runs        {self.runs}"
            + (f" ({self.already_done} already done there)" if self.already_done else ""),
            f"  wall time   about {_duration(self.seconds)} ({self.seconds:.1f} s), on "
            f"{self.workers} engine(s) against {where}",
            f"              runs {self.running_seconds:.1f} s"
            f" ({self.per_run_seconds:.3f} s per run); {fixed}",
            f"  task runs   {self.task_runs}: {', '.join(parts)}",
            f"  disk        {_size(self.bytes)}: run folders {_size(disk['runs'])}, manifest "
            f"{_size(disk['manifest'])}, cache {_size(disk['cache'])}, bundle "
            f"{_size(disk['bundle'])}",
            f"  pilots      {len(self.pilot_run_ids)} run(s) of the sweep's own points "
            f"(run ids {pilots}), in a temporary directory, removed",
        ]
        if self.load_factor > 1.05:
            lines.append(
                f"  load        the machine is busy: the pilots got 1/{self.load_factor:.1f} "
                "of a core each; the fixed costs are scaled to match"
            )
        if self.saltelli is not None:
            s = self.saltelli
            lines.append(
                f"  Sobol       a Saltelli design of these {s['fields']} field(s) with "
                f"n={s['base_samples']}: {s['runs']} runs (n*(2D+2); {s['runs_first_order']} "
                f"without second order), about {_duration(float(s['seconds']))}"
            )
        for run_id, error in self.pilot_failures:
            lines.append(f"  failed      pilot run {run_id}: {error}")
        lines.extend(f"  note        {text}" for text in self.notes)
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _size(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"  # pragma: no cover


def estimate(
    pilots: Pilots,
    *,
    runs: int,
    workers: int,
    server: bool,
    points_per_task: int | str = "auto",
    archive: bool = True,
    include_logs: bool = False,
    plots: bool = False,
    dask: str | None = None,
    cores: int | None = None,
    warm: bool = False,
    already_done: int = 0,
    script: str = "",
    out: str = "",
    design_fields: int | None = None,
    design_n: int | None = None,
    early: bool = False,
) -> SweepCost:
    """The cost of ``runs`` runs like ``pilots``' on ``workers`` engines (pure; see module).

    ``warm``: the sweep runs in a process that has run one before, against a server, so
    Prefect's start is only the flow run's (a temporary server starts anew each sweep).
    ``early``: the runs start once the engines are ready, while Prefect starts
    (study/early_start.py), on the engines that leave Prefect a core; its start then
    costs only the other engines' time.
    """
    cores = cores or os.cpu_count() or 1
    load = pilots.load
    run = pilots.run_seconds
    engines = max(1, workers)
    task_cost = PER_DASK_TASK_RUN_SECONDS if dask else PER_TASK_RUN_CPU_SECONDS
    points, probes = point_task_runs(runs, engines, points_per_task, run, task_cost)
    # The runs: the first one per engine is a cold start, then the rest spread evenly; the
    # dispatcher waits for the probes before it sizes batches, and the last batches leave
    # an engine idle for about half a run.
    running = 0.0
    if runs:
        first = min(engines, runs)
        running = (
            pilots.cold_run_seconds
            + max(0, runs - first) * run / engines
            + (TASK_RUN_LATENCY_SECONDS * load if probes else 0.0)
            + run / 2
        )
    manifest = min(flushes_within(running), points) + 1 if runs else 0
    task_runs = points + manifest + (1 if archive else 0)
    # Each task run's CPU (client and server) is taken from the engines when they keep
    # every core busy. Not scaled by the load: on a busy machine it is taken from every
    # process alike, not only from the engines. Under dask a task run costs an engine its
    # time instead.
    if dask:
        overhead = points * PER_DASK_TASK_RUN_SECONDS / engines
        overhead += (manifest + 1) * PER_TASK_RUN_CPU_SECONDS / cores
    else:
        overhead = task_runs * PER_TASK_RUN_CPU_SECONDS / cores * min(1.0, engines / cores)
    slower = load**LOAD_EXPONENT  # a fixed phase's slow-down on this machine now
    if not server:
        prefect = PREFECT_START_EPHEMERAL_SECONDS * slower
    elif warm:
        prefect = PREFECT_START_WARM_SECONDS * slower
    else:
        prefect = PREFECT_START_SERVER_SECONDS * slower
    engine_start = pilots.engine_start_seconds
    if engine_start is None:
        engine_start = ENGINE_START_SECONDS * load
    engines_ready = engine_start + pilots.check_seconds
    if early and runs:
        # While Prefect starts, the engines that leave it a core run (WorkerPool.start_early).
        running_early = max(1, min(engines, cores - 1))
        start = engines_ready + max(0.0, prefect - engines_ready) * (1 - running_early / engines)
    else:
        start = max(prefect, engines_ready) + (DASK_START_SECONDS * slower if dask else 0.0)
    # What the directory holds at the end: the runs done before too.
    total_runs = runs + already_done
    run_bytes = round(pilots.run_bytes * total_runs)
    manifest_bytes = round(pilots.header_bytes + pilots.manifest_bytes * total_runs)
    cache_bytes = round(pilots.result_bytes * total_runs)
    members = pilots.bundle_bytes + (pilots.log_bundle_bytes if include_logs else 0.0)
    bundle_bytes = (
        round(BUNDLE_FIXED_BYTES + members * total_runs + MANIFEST_DEFLATE_RATIO * manifest_bytes)
        if archive
        else 0
    )
    archive_seconds = (
        (ARCHIVE_BASE_SECONDS + ARCHIVE_SECONDS_PER_BYTE * pilots.bundle_bytes * total_runs) * load
        if archive
        else 0.0
    )
    fixed = {
        "start": round(start, 2),
        "task_runs": round(overhead, 2),
        "archive": round(archive_seconds, 2),
        "plots": round(PLOTS_SECONDS * slower if plots else 0.0, 2),
        "finish": round(FINISH_SECONDS, 2),
    }
    seconds = running + sum(fixed.values())
    notes: list[str] = []
    if dask:
        notes.append("under dask the estimate is rough: the cluster's start and size vary")
    if pilots.failures:
        notes.append(
            f"{len(pilots.failures)} of {len(pilots.run_ids)} pilot runs failed; the sweep's "
            "runs at those points will fail too (their time is counted as measured)"
        )
    saltelli = None
    if design_fields and design_n:
        sobol = saltelli_runs(design_fields, design_n)
        sobol_cost = estimate(
            pilots,
            runs=sobol,
            workers=workers,
            server=server,
            points_per_task=points_per_task,
            archive=archive,
            include_logs=include_logs,
            plots=plots,
            dask=dask,
            cores=cores,
            warm=warm,
            early=early,
        )
        saltelli = {
            "fields": design_fields,
            "base_samples": design_n,
            "runs": sobol,
            "runs_first_order": saltelli_runs(design_fields, design_n, calc_second_order=False),
            "seconds": sobol_cost.seconds,
        }
    return SweepCost(
        script=script,
        out=out,
        runs=runs,
        seconds=round(seconds, 1),
        task_runs=task_runs,
        bytes=run_bytes + manifest_bytes + cache_bytes + bundle_bytes,
        per_run_seconds=round(run, 4),
        workers=workers,
        server=server,
        running_seconds=round(running, 2),
        fixed_seconds=fixed,
        start_detail={
            "prefect": round(prefect, 2),
            "engines": round(engines_ready, 2),
            "dask": round(DASK_START_SECONDS * slower, 2) if dask else 0.0,
        },
        task_runs_detail={
            "batches": points - probes,
            "probes": probes,
            "manifest": manifest,
            "archive": 1 if archive else 0,
        },
        bytes_detail={
            "runs": run_bytes,
            "manifest": manifest_bytes,
            "cache": cache_bytes,
            "bundle": bundle_bytes,
        },
        already_done=already_done,
        points_per_task=points_per_task,
        load_factor=round(load, 2),
        pilot_run_ids=pilots.run_ids,
        pilot_failures=pilots.failures,
        dask=dask,
        saltelli=saltelli,
        notes=tuple(notes),
    )


def plan_request(
    request: SweepRequest,
    *,
    server: Callable[[], bool],
    warm: bool = False,
    pilots_per_engine: int | None = None,
) -> SweepCost:
    """Measure ``request``'s pilots and estimate its cost; ``server`` says (asked after the
    pilots, so a caller may find out meanwhile) whether the sweep would run against a
    running Prefect server, ``warm`` whether this process has run a sweep before."""
    spec, options, todo, pilots = measure(request, pilots_per_engine=pilots_per_engine)
    knobs = request.knobs
    settings = get_settings()
    on_server = server()
    metric = knobs.plot_metric or settings.plot_metric
    # The API turns the plots off for a temporary server nobody sees, unless asked for.
    asked = knobs.plot_metric is not None or "PREFECT_GMAT_PLOT_METRIC" in os.environ
    plots = metric != "off" and (on_server or asked)
    design = spec.design
    converging = request.points.target is not None
    starts_early = early_mode(options.out, request.mode, dask=options.dask, converging=converging)
    return estimate(
        pilots,
        runs=len(todo),
        workers=options.pool.workers,
        server=on_server,
        points_per_task=options.points_per_task,
        archive=knobs.archive,
        include_logs=knobs.include_logs,
        plots=plots,
        dask=options.dask,
        warm=warm,
        already_done=len(spec) - len(todo),
        script=str(spec.script),
        out=str(options.out),
        design_fields=len(design.perturb) if design is not None else None,
        design_n=design.n if design is not None else None,
        early=starts_early is not None,
    )
