"""A Monte Carlo study that stops itself once it has converged, in rounds.

``monte_carlo(..., n=400, until={"metric": "Sat.X", "se": 20.0})``: ``n`` is the
cap. The study runs a first round of ``max(MIN_OK_RUNS, 2 x engines)`` runs, then
grows each round by half (at least one run per engine), so it stops at most 1.5x
past the smallest size that meets the target, counted in run-id order. After each
round the statistic (the standard error of the mean of the metric's final value
over the study's ok runs; ``rel_se`` divides it by the mean's magnitude) goes into
the manifest header's ``until`` record, with why the study stopped. The header's
``n`` is always the study's size so far, so a study stopped at n runs is
``monte_carlo(n=n)`` exactly (gmat-sweep's draws depend only on the seed and the
run id), and both tools can resume or extend it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect_gmat.core.layout import MANIFEST_NAME
from prefect_gmat.engine.install import Engine
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.frame import aggregate
from prefect_gmat.study.manifest import read_manifest, rewrite_header
from prefect_gmat.study.spec import SweepSpec, canonical_script_sha256
from prefect_gmat.study.sweepdir import Mode, SweepPlan, plan_sweep

__all__ = ["MIN_OK_RUNS", "ConvergingStudy", "Until", "recorded_until", "sized", "study_so_far"]

#: Fewer ok runs than this give no trustworthy standard error: no round stops before.
MIN_OK_RUNS = 10
_GROWTH = 1.5


@dataclass(frozen=True, slots=True)
class Until:
    """When a Monte Carlo study has converged: the standard error of the mean of
    ``metric``'s final value per ok run is at most ``se``, or at most ``rel_se`` of the
    mean's magnitude."""

    metric: str
    se: float | None = None
    rel_se: float | None = None

    @classmethod
    def parse(cls, value: Until | Mapping[str, Any]) -> Until:
        """From ``{"metric": ..., "se": ...}`` (or ``rel_se``), checked."""
        if isinstance(value, Until):
            return value
        if not isinstance(value, Mapping):
            raise SweepSpecError(
                f"until={value!r} is not a mapping; write until={{'metric': 'Sat.X', 'se': 20}}.",
                field="until",
            )
        unknown = set(value) - {"metric", "se", "rel_se"}
        metric = value.get("metric")
        targets = [k for k in ("se", "rel_se") if value.get(k) is not None]
        if unknown or not isinstance(metric, str) or not metric or len(targets) != 1:
            raise SweepSpecError(
                f"until={dict(value)!r} is not a target; give the report column and one of se "
                "(the standard error of the mean, in the metric's unit) or rel_se (that error "
                "over the mean's magnitude), e.g. {'metric': 'Sat.X', 'se': 20}.",
                field="until",
            )
        target = value[targets[0]]
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not target > 0:
            raise SweepSpecError(
                f"until's {targets[0]}={target!r} must be a positive number.", field="until"
            )
        return cls(metric, **{targets[0]: float(target)})

    @property
    def target(self) -> tuple[str, float]:
        """``("se", value)`` or ``("rel_se", value)``."""
        return ("se", self.se) if self.se is not None else ("rel_se", float(self.rel_se or 0))

    def as_record(self) -> dict[str, Any]:
        kind, value = self.target
        return {"metric": self.metric, kind: value}

    def measure(self, finals: Sequence[float], n: int) -> dict[str, Any]:
        """This round's statistic over ``finals`` (the ok runs' final values among the first
        ``n`` runs) and whether it meets the target."""
        count = len(finals)
        mean = math.fsum(finals) / count if count else math.nan
        if count > 1:
            variance = math.fsum((x - mean) ** 2 for x in finals) / (count - 1)
            se = math.sqrt(variance / count)
        else:
            se = math.nan
        rel_se = se / abs(mean) if mean else math.nan
        kind, target = self.target
        value = se if kind == "se" else rel_se
        met = count >= MIN_OK_RUNS and value <= target
        return {"n": n, "ok": count, "mean": mean, "se": se, "rel_se": rel_se, "met": met}


def sized(spec: SweepSpec, n: int) -> SweepSpec:
    """The Monte Carlo study ``spec`` with ``n`` runs (its first runs unchanged)."""
    assert spec.design is not None
    grown = SweepSpec.from_design(spec.script, spec.design.grown(n))
    return grown.with_postprocess(spec.postprocess)


def recorded_until(out: Path, spec: SweepSpec, until: Until) -> dict[str, Any] | None:
    """The header's ``until`` record if ``out`` holds this very converging study (the same
    script, draws, target and cap), else None."""
    if not (out / MANIFEST_NAME).is_file():
        return None
    manifest = read_manifest(out)
    record = manifest.header.get("until")
    if not isinstance(record, Mapping) or spec.design is None:
        return None
    sizeless = {k: v for k, v in spec.parameter_spec().items() if k != "n"}
    recorded = manifest.header.get("parameter_spec") or {}
    same = (
        record.get("target") == until.as_record()
        and record.get("cap") == spec.design.n
        and {k: v for k, v in recorded.items() if k != "n"} == sizeless
        and manifest.header.get("script_sha256") == canonical_script_sha256(spec.script)
    )
    return dict(record) if same else None


def study_so_far(out: Path, spec: SweepSpec, until: Until, engines: int, mode: Mode) -> SweepSpec:
    """The study to check and plan now: the same study already in ``out`` at its recorded
    size (continued, as the same sweep is), else its first round."""
    if mode != "overwrite" and recorded_until(out, spec, until) is not None:
        return sized(spec, int(read_manifest(out).header["parameter_spec"]["n"]))
    assert spec.design is not None
    return sized(spec, first_round(spec.design.n, max(1, engines)))


def first_round(cap: int, engines: int) -> int:
    return min(cap, max(MIN_OK_RUNS, 2 * engines))


def next_round(n: int, cap: int, engines: int) -> int:
    """The next round's size: half as many runs again, at least one more per engine."""
    return min(cap, max(n + engines, math.floor(_GROWTH * n)))


class ConvergingStudy:
    """Runs a Monte Carlo study round by round until ``until`` is met or ``cap`` is reached.

    Steps: :meth:`first_plan` plans the first round (or, for the same study already
    in ``out``, the round it is in); :meth:`next_plan`, after each round has run,
    measures it, records it in the header, and plans the next round, or returns None
    once the study has stopped (:attr:`outcome` then says why).
    """

    def __init__(
        self, out: Path, spec: SweepSpec, until: Until, engine: Engine, engines: int
    ) -> None:
        if spec.design is None or spec.design.kind != "monte_carlo":
            raise SweepSpecError(
                "until stops a Monte Carlo study once it has converged; a grid, samples or "
                "a Latin hypercube (which cannot grow) have no rounds. Use monte_carlo.",
                field="until",
            )
        self.out = out
        self.cap = spec.design.n
        self.spec = spec
        self.until = until
        self.engine = engine
        self.engines = max(1, engines)
        self.n = 0

    @classmethod
    def resumed(
        cls, out: Path, plan: SweepPlan, engine: Engine, engines: int
    ) -> ConvergingStudy | None:
        """The converging study a resumed plan belongs to, if it has not stopped yet."""
        record = plan.header.get("until")
        if not isinstance(record, Mapping) or record.get("stopped") or plan.spec.design is None:
            return None
        study = cls(
            out,
            sized(plan.spec, int(record["cap"])),
            Until.parse(record["target"]),
            engine,
            engines,
        )
        study.n = len(plan.spec)
        return study

    def first_plan(self, mode: Mode) -> SweepPlan:
        """The round to run first: the first, or the one the same study in ``out`` is in."""
        fresh = mode == "overwrite" or self._recorded() is None
        current = study_so_far(self.out, self.spec, self.until, self.engines, mode)
        self.n = len(current)
        plan = plan_sweep(self.out, current, self.engine, mode)
        if fresh:
            self._record(rounds=[], stopped=None)
        return plan

    def next_plan(self) -> SweepPlan | None:
        """Measure the round just run; plan the next, or None once the study stopped."""
        record = self._recorded() or {}
        if record.get("stopped"):
            return None  # the same study again, already stopped: nothing to run
        stat = self.until.measure(self._finals(), self.n)
        rounds = [*record.get("rounds", []), stat]
        if stat["met"] or self.n >= self.cap:
            self._record(rounds=rounds, stopped="converged" if stat["met"] else "cap reached")
            return None
        self.n = next_round(self.n, self.cap, self.engines)
        manifest = read_manifest(self.out)
        grown = self._sized(self.n)
        header = {
            **manifest.header,
            "parameter_spec": grown.parameter_spec(),
            "run_count": self.n,
            "until": {**record, "rounds": rounds},
        }
        rewrite_header(self.out / manifest.path.name, header)
        return plan_sweep(self.out, grown, self.engine, "resume")

    @property
    def outcome(self) -> dict[str, Any]:
        """The header's ``until`` record: target, rounds, why it stopped."""
        return self._recorded() or {}

    def message(self) -> str:
        """One line for the flow run's state: converged or not, with the statistic."""
        record = self.outcome
        rounds = record.get("rounds") or [{}]
        last = rounds[-1]
        kind, target = self.until.target
        value = last.get(kind, math.nan)
        if record.get("stopped") == "converged":
            return (
                f"converged at n={last.get('n')}: {kind} of {self.until.metric}'s mean "
                f"{value:.6g} <= {target:g}"
            )
        return (
            f"not converged: the cap of {self.cap} runs was reached with {kind} of "
            f"{self.until.metric}'s mean {value:.6g} > {target:g}"
        )

    # --- helpers ------------------------------------------------------------------------

    def _sized(self, n: int) -> SweepSpec:
        return sized(self.spec, n)

    def _recorded(self) -> dict[str, Any] | None:
        return recorded_until(self.out, self.spec, self.until)

    def _record(self, *, rounds: list[dict[str, Any]], stopped: str | None) -> None:
        manifest = read_manifest(self.out)
        header = dict(manifest.header)
        header["until"] = {
            "target": self.until.as_record(),
            "cap": self.cap,
            "rounds": rounds,
            "stopped": stopped,
        }
        rewrite_header(manifest.path, header)

    def _finals(self) -> list[float]:
        """Each ok run's last value of the metric, among the first ``n`` runs."""
        manifest = read_manifest(self.out)
        records = [
            r for run_id, r in manifest.records.items() if run_id < self.n and r["status"] == "ok"
        ]
        if not records:
            return []
        frame = aggregate(records, self.out)
        if self.until.metric not in frame.columns:
            columns = ", ".join(c for c in frame.columns if c != "__status")
            raise SweepSpecError(
                f"until's metric {self.until.metric!r} is not a report column; the report has: "
                f"{columns}.",
                field="until",
                value=self.until.metric,
            )
        finals = frame.groupby(level="run_id")[self.until.metric].last().dropna()
        return [float(v) for v in finals]
