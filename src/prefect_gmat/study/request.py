"""One sweep request: the script, its points, where it writes, the mode, and the knobs.

Every way in builds a :class:`SweepRequest` and reads it back: the Python API,
the flow's flat parameters (:meth:`SweepRequest.from_flow_parameters`,
:meth:`SweepRequest.flow_parameters`), the blocks (fields filled by name) and
the CLI (its knob flags come from :class:`Knobs`' fields). It is the one place
that checks that exactly one kind of points is given (:class:`Points`), that
every knob has the right type and range (:class:`Knobs`, when built), that
builds the sweep's spec (:meth:`SweepRequest.spec`), and that fills unset
knobs from the ``PREFECT_GMAT_*`` settings (:meth:`SweepRequest.resolve`).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import TypeAdapter

from prefect_gmat.engine.install import Engine, resolve_engine
from prefect_gmat.engine.pool import PoolConfig
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.settings import get_settings
from prefect_gmat.study.convergence import Until
from prefect_gmat.study.designs import (
    DesignKind,
    DesignParameters,
    LatinHypercubeDesign,
    MonteCarloDesign,
)
from prefect_gmat.study.manifest import read_manifest
from prefect_gmat.study.spec import SweepSpec, canonical_script_sha256
from prefect_gmat.study.sweepdir import (
    Mode,
    design_for,
    extension_spec,
    resume_spec,
    seed_note,
)

__all__ = [
    "Knobs",
    "Mode",
    "Points",
    "PointsPerTask",
    "StudyDesign",
    "SweepOptions",
    "SweepRequest",
]

#: Points per task run: a fixed number, or "auto" (see :mod:`prefect_gmat.study.batching`).
PointsPerTask = int | Literal["auto"]
#: Names a sweep directory when ``out`` is not given: ``(base, script) -> directory``.
DefaultDir = Callable[[Path, str | None], Path]


def _points_per_task(text: str) -> PointsPerTask:
    """``--points-per-task``'s value: "auto" or a whole number."""
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto' or a whole number") from None


def _count_or_fraction(text: str) -> int | float:
    """``--max-failures``' value: a whole number of runs, or a fraction of them."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number of runs (20) or a fraction of them (0.05)"
            ) from None


def _about(help: str, **cli: Any) -> dict[str, Any]:
    """A knob's field metadata: its one-line help and its command-line flag's keywords."""
    return {"help": help, "cli": cli}


@dataclass(frozen=True, slots=True)
class Knobs:
    """How a sweep runs. Unset (None) knobs come from the ``PREFECT_GMAT_*`` settings.

    Built once per request and checked when built: a bad value raises
    :class:`~prefect_gmat.errors.SweepSpecError` naming the knob and the fix.
    """

    workers: int | None = field(
        default=None, metadata=_about("engine processes (default: one per core)", type=int)
    )
    timeout: float | None = field(
        default=None, metadata=_about("seconds one run may take before it is killed", type=float)
    )
    retries: int | None = field(
        default=None, metadata=_about("retries of a run that failed transiently", type=int)
    )
    retry_delay: float | None = field(
        default=None,
        metadata=_about("seconds before the first retry (doubles each retry)", type=float),
    )
    points_per_task: PointsPerTask | None = field(
        default=None,
        metadata=_about(
            "points per Prefect task run (default auto: batch many short runs)",
            type=_points_per_task,
            metavar="N|auto",
        ),
    )
    dask: str | None = field(
        default=None, metadata=_about("run on dask: 'local' or a scheduler address")
    )
    gmat_root: str | None = field(
        default=None, metadata=_about("a GMAT install directory (default: found, else pip)")
    )
    archive: bool = field(
        default=True, metadata=_about("do not write OUT/sweep_bundle.zip", flag="--no-archive")
    )
    include_logs: bool = field(
        default=False, metadata=_about("put each run's worker.log in the bundle")
    )
    max_failures: int | float | None = field(
        default=None,
        metadata=_about(
            "stop starting runs once more fail than this: a count (20) or a fraction of the "
            "sweep's runs (0.05)",
            type=_count_or_fraction,
            metavar="N|FRACTION",
        ),
    )
    plot_metric: str | None = field(
        default=None, metadata=_about("report column the UI plots show ('auto', a column, 'off')")
    )

    def __post_init__(self) -> None:
        if self.gmat_root is not None and not isinstance(self.gmat_root, str):
            object.__setattr__(self, "gmat_root", os.fspath(self.gmat_root))
        _check_numbers(
            workers=self.workers,
            timeout=self.timeout,
            retries=self.retries,
            retry_delay=self.retry_delay,
        )
        if self.points_per_task is not None:
            _check_points_per_task(self.points_per_task)
        if self.max_failures is not None:
            _check_max_failures(self.max_failures)
        for name in ("archive", "include_logs"):
            if not isinstance(getattr(self, name), bool):
                raise SweepSpecError(
                    f"{name}={getattr(self, name)!r} must be True or False.", field=name
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Knobs:
        """Knobs from keywords; an unknown keyword is refused with the list of knobs."""
        unknown = set(values) - set(knob_names())
        if unknown:
            raise SweepSpecError(
                f"unknown keyword(s) {sorted(unknown)}; the knobs are {', '.join(knob_names())}.",
                field=sorted(unknown)[0],
            )
        return cls(**{k: v for k, v in values.items() if v is not None})

    def failure_budget(self, runs: int) -> int | None:
        """How many of a sweep's ``runs`` may fail before it stops starting runs (None: all)."""
        budget = self.max_failures
        if budget is None:
            return None
        if isinstance(budget, float) and budget < 1:
            return math.floor(budget * runs)
        return int(budget)

    def filled_from(self, source: object) -> Knobs:
        """These knobs, each one left unset taken from ``source``'s attribute of that name."""
        found = {
            name: getattr(source, name)
            for name in knob_names()
            if getattr(self, name) is None and getattr(source, name, None) is not None
        }
        return replace(self, **found)


def knob_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Knobs))


def knob_help(name: str) -> str:
    """The one-line help of knob ``name`` (the CLI shows it; the flow's Args say the same)."""
    return str(next(f for f in fields(Knobs) if f.name == name).metadata["help"])


def knob_flags() -> list[tuple[str, str, dict[str, Any]]]:
    """``(knob, flag, argparse keywords)`` for every knob: the CLI adds these to each command
    that runs points, so every such command takes the same knobs."""
    flags = []
    for spec in fields(Knobs):
        cli = dict(spec.metadata["cli"])
        flag = cli.pop("flag", "--" + spec.name.replace("_", "-"))
        if spec.default is True:
            cli["action"] = "store_false"
        elif spec.default is False:
            cli["action"] = "store_true"
        flags.append((spec.name, flag, {"dest": spec.name, "help": spec.metadata["help"], **cli}))
    return flags


_DESIGN_JSON: TypeAdapter[DesignParameters] = TypeAdapter(DesignParameters)


@dataclass(frozen=True, slots=True)
class StudyDesign:
    """A Monte Carlo or Latin hypercube study as a Python caller asks for it: ``perturb`` in
    any form :func:`~prefect_gmat.study.designs.parse_perturb` takes (frozen scipy
    distributions too); the flow's parameter is the JSON model of the drawn study."""

    kind: DesignKind
    perturb: Mapping[str, Any]
    n: Any
    seed: Any = None

    def perturbations(self) -> Mapping[str, Any]:
        return self.perturb


@dataclass(frozen=True, slots=True)
class Points:
    """Which points a sweep runs: one kind of points, or an extension of a study.

    ``samples`` are mappings, one per run (or, from Python, a DataFrame or a CSV or
    Parquet path); ``samples_file`` is a file on the machine that runs the flow.
    """

    grid: Mapping[str, Any] | None = None
    samples: Any = None
    samples_file: str | None = None
    design: DesignParameters | StudyDesign | None = None
    extend_to: int | None = None
    allow_script_drift: bool = False
    until: Until | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.design, Mapping):  # a design's JSON, from a deployment's parameters
            object.__setattr__(self, "design", _DESIGN_JSON.validate_python(self.design))
        if self.until is not None:
            object.__setattr__(self, "until", Until.parse(self.until))

    @property
    def target(self) -> Until | None:
        """``until``, checked (a Monte Carlo study's convergence target)."""
        return self.until if isinstance(self.until, Until) else None

    def kinds(self) -> list[str]:
        """The kinds of points given, by parameter name."""
        given = (self.grid, self.samples, self.samples_file, self.design)
        names = ("grid", "samples", "samples_file", "design")
        return [name for name, value in zip(names, given, strict=True) if value is not None]

    def check_one_kind(self, *, required: bool = True) -> None:
        """Exactly one kind of points (at most one when not ``required``), or say which."""
        kinds = self.kinds()
        if len(kinds) > 1 or (required and not kinds):
            raise SweepSpecError(
                "pass exactly one of grid= (values per field), samples= (one mapping per run), "
                "samples_file= (a CSV or Parquet file) or design= (Monte Carlo, Latin "
                f"hypercube); got {' and '.join(kinds) if kinds else 'none'}.",
                field=kinds[1] if len(kinds) > 1 else "grid",
            )


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """A request's knobs resolved for one sweep: the settings filled in, the engine found."""

    out: Path
    engine: Engine
    pool: PoolConfig
    retries: int
    retry_delay: float
    max_in_flight: int
    dask: str | None = None  # "local", or a scheduler address: run the tasks on dask
    points_per_task: PointsPerTask = "auto"


#: Flow parameters that name blocks; the flow fills the request from them (see blocks).
BLOCK_PARAMETERS = ("installation", "sweep_spec")


@dataclass(frozen=True, slots=True)
class SweepRequest:
    """A sweep as asked for, before anything is resolved, run or written."""

    script: str | None = None
    points: Points = field(default_factory=Points)
    postprocess: str | None = None
    out: str | None = None
    mode: Mode = "new"
    knobs: Knobs = field(default_factory=Knobs)

    def __post_init__(self) -> None:
        if self.mode not in get_args(Mode):
            raise SweepSpecError(
                f"mode={self.mode!r} is not a mode; pass one of {', '.join(get_args(Mode))}.",
                field="mode",
            )
        for name in ("script", "out"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, os.fspath(value))

    # --- the flow's flat parameters -----------------------------------------------------

    @classmethod
    def from_flow_parameters(cls, parameters: Mapping[str, Any]) -> SweepRequest:
        """The request a flow run's parameters make, each taken by name."""
        unknown = set(parameters) - set(flow_parameter_names()) - set(BLOCK_PARAMETERS)
        if unknown:
            raise SweepSpecError(f"unknown flow parameter(s) {sorted(unknown)}", field=min(unknown))
        picked = {k: v for k, v in parameters.items() if k not in BLOCK_PARAMETERS}

        def part[T](kind: type[T]) -> T:
            names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
            return kind(**{k: v for k, v in picked.items() if k in names and v is not None})

        top = {k: picked[k] for k in ("script", "postprocess", "out", "mode") if k in picked}
        return cls(**top, points=part(Points), knobs=part(Knobs))

    def flow_parameters(self) -> dict[str, Any]:
        """The sweep flow's parameters (plain JSON types) for this request; unset ones left out.

        Inverse of :meth:`from_flow_parameters`: a deployment run, a schedule or an
        in-process call of the flow gets the same request back.
        """
        parameters: dict[str, Any] = {}
        values = {
            "script": self.script,
            "postprocess": self.postprocess,
            "out": self.out,
            "mode": self.mode,
            **{f.name: getattr(self.points, f.name) for f in fields(Points)},
            **asdict(self.knobs),
        }
        for name, value in values.items():
            if value is None or value == _FLOW_DEFAULTS.get(name):
                continue
            if isinstance(value, (MonteCarloDesign, LatinHypercubeDesign)):
                value = value.model_dump()
            elif isinstance(value, Until):
                value = value.as_record()
            elif isinstance(value, Mapping):
                value = {k: list(v) for k, v in value.items()}
            parameters[name] = value
        return parameters

    # --- what it runs ---------------------------------------------------------------

    def spec(self, out: Path | None, note: Callable[[str], None]) -> SweepSpec | None:
        """The checked spec of the points to run into ``out`` (None: read from its manifest).

        A design without a seed gets the seed ``out`` recorded for this very study, or a
        new one; ``note`` is told which. An extension is the study in ``out`` grown.
        """
        points = self.points
        if self.mode == "extend":
            if points.extend_to is None:
                raise SweepSpecError(
                    "mode 'extend' grows the Monte Carlo study in out to extend_to runs; "
                    "pass extend_to (the new total number of runs).",
                    field="extend_to",
                )
            if out is None:
                raise SweepSpecError("extend needs out, the study's directory.", field="out")
            return extension_spec(
                out,
                points.extend_to,
                script=self.script,
                allow_script_drift=points.allow_script_drift,
            )
        resuming = self.mode in ("resume", "retry_failed")
        points.check_one_kind(required=not resuming)
        if points.until is not None and getattr(points.design, "kind", None) != "monte_carlo":
            raise SweepSpecError(
                "until stops a Monte Carlo study once it has converged; pass it with a "
                "monte_carlo design (a grid, samples or a Latin hypercube have no rounds).",
                field="until",
            )
        if not points.kinds():
            if resuming and self.script is not None and out is not None:
                return resume_spec(out, self.script)  # the script moved: this one, if it hashes
            return None  # resume: the manifest says what the sweep is
        if self.script is None:
            raise SweepSpecError(
                "script is required to start a sweep; pass the path of a GMAT .script.",
                field="script",
            )
        if points.grid is not None:
            spec = SweepSpec.from_grid(self.script, points.grid)
        elif points.design is not None:
            design = points.design
            where = None if self.mode == "overwrite" else out
            chosen, source = design_for(
                where, design.kind, design.perturbations(), design.n, design.seed
            )
            if (told := seed_note(chosen, source)) is not None:
                note(told)
            spec = SweepSpec.from_design(self.script, chosen)
        else:
            spec = SweepSpec.from_samples(self.script, points.samples or points.samples_file)
        return spec.with_postprocess(self.postprocess)

    def pinned(self, spec: SweepSpec | None, options: SweepOptions) -> SweepRequest:
        """This request as it was checked: points as the spec has them (a drawn seed fixed,
        a file or a DataFrame read), ``out`` and the knobs resolved. What the API hands
        the flow, so the flow runs exactly what was checked."""
        knobs = replace(
            self.knobs,
            workers=options.pool.workers,
            timeout=options.pool.timeout,
            retries=options.retries,
            retry_delay=options.retry_delay,
            dask=options.dask,
            points_per_task=options.points_per_task,
        )
        pinned = replace(self, out=str(options.out), knobs=knobs)
        if spec is None:
            return replace(pinned, points=Points())
        if self.mode == "extend":
            drift = canonical_script_sha256(spec.script) != _recorded_sha(options.out)
            return replace(
                pinned,
                script=str(spec.script),
                points=Points(extend_to=len(spec), allow_script_drift=drift),
            )
        design: DesignParameters | None = None
        if spec.design is not None:
            model = MonteCarloDesign if spec.design.kind == "monte_carlo" else LatinHypercubeDesign
            design = model(perturb=spec.design.perturb, n=spec.design.n, seed=spec.design.seed)
        samples = spec.samples if design is None else None
        return replace(
            pinned,
            script=str(spec.script),
            points=Points(grid=spec.grid, samples=samples, design=design, until=self.points.until),
            postprocess=spec.postprocess,
        )

    # --- how it runs ----------------------------------------------------------------

    def resolve(self, default_dir: DefaultDir) -> SweepOptions:
        """Fill every unset knob from the settings, find the engine, and place ``out``."""
        knobs = self.knobs
        settings = get_settings()
        per_task = (
            knobs.points_per_task if knobs.points_per_task is not None else settings.points_per_task
        )
        _check_points_per_task(per_task)
        engine = resolve_engine(
            knobs.gmat_root or settings.gmat_root, prefer_pip=settings.engine == "pip"
        )
        workers = knobs.workers or settings.resolved_workers()
        base = settings.output_dir
        out = Path(self.out) if self.out is not None else default_dir(base, self.script)
        return SweepOptions(
            out=out.expanduser().resolve(),
            engine=engine,
            pool=PoolConfig(
                engine_root=str(engine.root),
                workers=workers,
                timeout=knobs.timeout if knobs.timeout is not None else settings.timeout,
                recycle_after=settings.recycle_after,
            ),
            retries=knobs.retries if knobs.retries is not None else settings.retries,
            retry_delay=knobs.retry_delay
            if knobs.retry_delay is not None
            else settings.retry_delay,
            max_in_flight=settings.max_in_flight or 4 * workers,
            dask=knobs.dask or settings.dask_address,
            points_per_task=per_task,
        )


def flow_parameter_names() -> tuple[str, ...]:
    """Every flow parameter a request has (the flow adds the block names)."""
    return (
        "script",
        "postprocess",
        "out",
        "mode",
        *(f.name for f in fields(Points)),
        *knob_names(),
    )


def _defaults(kind: type[Any]) -> dict[str, Any]:
    return {f.name: f.default for f in fields(kind) if f.default is not MISSING}


#: What the flow's signature defaults to, parameter by parameter (a test keeps them equal).
_FLOW_DEFAULTS: dict[str, Any] = {"mode": "new", **_defaults(Points), **_defaults(Knobs)}


def _recorded_sha(out: Path) -> str | None:
    sha = read_manifest(out).header.get("script_sha256")
    return None if sha is None else str(sha)


def _check_max_failures(value: object) -> None:
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    fraction = isinstance(value, float) and 0 < value < 1
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < 0
        or not (whole or fraction)
    ):
        raise SweepSpecError(
            f"max_failures={value!r} is not allowed; pass a number of runs (0 or more, e.g. "
            "20) or a fraction of the sweep's runs between 0 and 1 (e.g. 0.05), or leave it "
            "unset to run every point whatever fails.",
            field="max_failures",
            value=value,
        )


def _check_points_per_task(value: object) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepSpecError(
            f"points_per_task={value!r} is not allowed; pass 'auto' (batch short runs) or a "
            "whole number >= 1 (1 is one task run per point).",
            field="points_per_task",
            value=value,
        )


def _check_numbers(**knobs: float | None) -> None:
    limits = {
        "workers": (1, "at least 1"),
        "timeout": (1e-9, "positive"),
        "retries": (0, "0 or more"),
        "retry_delay": (0, "0 or more"),
    }
    for name, value in knobs.items():
        low, words = limits[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise SweepSpecError(
                f"{name}={value!r} is not allowed; {name} must be {words} "
                f"(or unset, for the PREFECT_GMAT_{name.upper()} setting).",
                field=name,
                value=value,
            )
        if name in ("workers", "retries") and not float(value).is_integer():
            raise SweepSpecError(
                f"{name}={value!r} must be a whole number.", field=name, value=value
            )
