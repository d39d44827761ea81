"""Designs of experiments: Monte Carlo and Latin hypercube draws, and samples from files.

The draws are gmat-sweep 0.6.0's, value for value, so a
study migrates between the tools with identical numbers:

- Monte Carlo: per-run seeds from ``numpy.random.SeedSequence(seed).spawn(n)``
  (the first 32-bit word of each child's state), then per field, in sorted
  order, a sub-seed from ``SeedSequence([run_seed, sha256(name)[:4]])`` and one
  ``rv.rvs(size=1, random_state=default_rng(sub_seed))``. Run ``i`` depends only
  on ``(seed, i)``, so growing a study adds runs without changing any, and
  adding a field never changes another field's draws.
- Latin hypercube: ``scipy.stats.qmc.LatinHypercube(d=len(perturb), seed=seed)``
  ``.random(n)``, each column (fields sorted) through its distribution's ``ppf``.

A design is recorded in the manifest header as gmat-sweep records it
(``parameter_spec`` with ``_kind``, ``perturb``, ``n``, ``seed``), which is all
it takes to rebuild every point on resume.
"""

from __future__ import annotations

import csv
import hashlib
import math
import numbers
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from prefect_gmat.errors import SweepSpecError

__all__ = [
    "DISTRIBUTIONS",
    "Design",
    "DesignKind",
    "DesignParameters",
    "LatinHypercubeDesign",
    "Lognormal",
    "MonteCarloDesign",
    "Normal",
    "ScipyDistribution",
    "Uniform",
    "check_n",
    "check_seed",
    "draw_seed",
    "latin_hypercube_points",
    "monte_carlo_points",
    "parse_perturb",
    "parse_perturb_option",
    "read_samples",
]

DesignKind = Literal["monte_carlo", "latin_hypercube"]
#: The shorthand distributions and what their two numbers mean.
DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "normal": ("mu", "sigma"),
    "uniform": ("lo", "hi"),
    "lognormal": ("mu", "sigma"),
}
#: Seeds drawn from the OS stay below 2**53, so they survive JSON and the UI's numbers.
_OS_SEED_BITS = 53


# --- checks -----------------------------------------------------------------------------


def check_n(n: Any, *, at_least: int = 1) -> int:
    """``n`` as a whole number >= ``at_least``, or say why not."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < at_least:
        raise SweepSpecError(
            f"n={n!r} is not allowed; n is the number of runs, a whole number >= {at_least}.",
            field="n",
            value=repr(n),
        )
    return int(n)


def check_seed(seed: Any) -> int | None:
    """A seed is a non-negative whole number, or None (draw one from the OS)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SweepSpecError(
            f"seed={seed!r} is not allowed; pass a whole number >= 0 (for example seed=42), "
            "or None to draw one from the OS (it is recorded in the manifest).",
            field="seed",
            value=repr(seed),
        )
    return int(seed)


def draw_seed() -> int:
    """A fresh seed from the OS, small enough to survive JSON and the Prefect UI."""
    return secrets.randbits(_OS_SEED_BITS)


def _check_field(field: Any) -> str:
    if not isinstance(field, str) or "." not in field.strip(".") or field != field.strip():
        raise SweepSpecError(
            f"perturbed field {field!r} is not a GMAT field path; write it as "
            "'Resource.Field' (for example 'TOI.Element1'), or '<Variable>.Value'.",
            field=str(field),
        )
    return field


def _number(field: str, dist: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SweepSpecError(
            f"perturb[{field!r}]: {dist} {name} must be a number, got {value!r}.",
            field=field,
            value=repr(value),
        )
    number = float(value)
    if not math.isfinite(number):
        raise SweepSpecError(
            f"perturb[{field!r}]: {dist} {name} must be finite, got {value!r}.",
            field=field,
            value=repr(value),
        )
    return number


# --- perturbations ----------------------------------------------------------------------


def _is_frozen(value: Any) -> bool:
    from scipy.stats._distn_infrastructure import rv_frozen  # type: ignore[import-untyped]

    return isinstance(value, rv_frozen)


def _shorthand(field: str, spec: Sequence[Any]) -> list[Any]:
    if not spec or not isinstance(spec[0], str):
        raise SweepSpecError(
            f"perturb[{field!r}] = {list(spec)!r} does not name a distribution; write "
            '["normal", mu, sigma], ["uniform", lo, hi] or ["lognormal", mu, sigma].',
            field=field,
            value=repr(spec),
        )
    dist = spec[0]
    if dist not in DISTRIBUTIONS:
        raise SweepSpecError(
            f"perturb[{field!r}]: unknown distribution {dist!r}; use one of "
            f"{', '.join(DISTRIBUTIONS)}, or a frozen scipy.stats distribution.",
            field=field,
            value=dist,
        )
    names = DISTRIBUTIONS[dist]
    if len(spec) != 3:
        raise SweepSpecError(
            f"perturb[{field!r}] = {list(spec)!r}: {dist} takes two numbers, "
            f'["{dist}", {names[0]}, {names[1]}].',
            field=field,
            value=repr(spec),
        )
    a, b = (_number(field, dist, n, v) for n, v in zip(names, spec[1:], strict=True))
    if dist == "uniform" and not a < b:
        raise SweepSpecError(
            f"perturb[{field!r}]: uniform needs lo < hi, got lo={a!r}, hi={b!r}.",
            field=field,
            value=repr(spec),
        )
    if dist != "uniform" and not b > 0:
        raise SweepSpecError(
            f"perturb[{field!r}]: {dist} sigma must be > 0, got {b!r}.",
            field=field,
            value=repr(spec),
        )
    # gmat-sweep records the numbers as given (an int stays an int), so keep them.
    return [dist, spec[1], spec[2]]


def _frozen_record(field: str, value: Any) -> dict[str, Any]:
    """gmat-sweep's record of a frozen scipy distribution: ``{name, args, kwds}``."""
    record = {"name": value.dist.name, "args": list(value.args), "kwds": dict(value.kwds)}
    try:
        _to_frozen(field, record)
    except SweepSpecError:
        raise SweepSpecError(
            f"perturb[{field!r}]: the scipy distribution {value.dist.name!r} cannot be "
            "rebuilt from its name and arguments (a custom rv_continuous?); use a "
            "distribution from scipy.stats.",
            field=field,
        ) from None
    return record


def parse_perturb(perturb: Any) -> dict[str, Any]:
    """Check a ``perturb`` mapping and return it in gmat-sweep's recorded (JSON) form.

    Each value is a shorthand ``("normal", mu, sigma)``, ``("uniform", lo, hi)``,
    ``("lognormal", mu, sigma)`` (tuple or list), a string ``"normal:MU:SIGMA"``,
    a mapping ``{"dist": "normal", "mu": .., "sigma": ..}``, gmat-sweep's record of a
    scipy distribution ``{"name": "truncnorm", "args": [..], "kwds": {..}}``, or a
    frozen ``scipy.stats`` distribution. Fields come out sorted.
    """
    if not isinstance(perturb, Mapping) or not perturb:
        raise SweepSpecError(
            "perturb must be a non-empty mapping of field to distribution, for example "
            '{"TOI.Element1": ["normal", 0.1, 0.001]}.',
            field="perturb",
        )
    recorded: dict[str, Any] = {}
    for field in sorted(perturb, key=str):
        name = _check_field(field)
        recorded[name] = _parse_one(name, perturb[field])
    return recorded


def _parse_one(field: str, spec: Any) -> Any:
    if _is_frozen(spec):
        return _frozen_record(field, spec)
    if isinstance(spec, str):
        dist, *numbers_ = spec.split(":")
        return _shorthand(field, [dist.strip(), *(_scalar(field, v) for v in numbers_)])
    if isinstance(spec, Mapping):
        if "name" in spec:
            record = {
                "name": spec["name"],
                "args": list(spec.get("args", [])),
                "kwds": dict(spec.get("kwds", {})),
            }
            _to_frozen(field, record)
            return record
        tag = spec.get("dist")
        if tag in DISTRIBUTIONS:
            missing = [n for n in DISTRIBUTIONS[tag] if n not in spec]
            if missing:
                raise SweepSpecError(
                    f"perturb[{field!r}] = {dict(spec)!r}: {tag} needs "
                    f"{' and '.join(DISTRIBUTIONS[tag])}; missing {', '.join(missing)}.",
                    field=field,
                    value=repr(spec),
                )
            return _shorthand(field, [tag, *(spec[n] for n in DISTRIBUTIONS[tag])])
        return _shorthand(field, [tag])
    if isinstance(spec, Sequence):
        return _shorthand(field, list(spec))
    raise SweepSpecError(
        f"perturb[{field!r}] = {spec!r} is not a distribution; write "
        '["normal", mu, sigma], ["uniform", lo, hi], ["lognormal", mu, sigma], '
        "or pass a frozen scipy.stats distribution.",
        field=field,
        value=repr(spec),
    )


def _scalar(field: str, text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        raise SweepSpecError(
            f"perturb[{field!r}]: {text!r} is not a number; write e.g. normal:0.1:0.001.",
            field=field,
            value=text,
        ) from None


def parse_perturb_option(option: str) -> tuple[str, list[Any]]:
    """The CLI form ``FIELD=normal:MU:SIGMA`` (or ``uniform:LO:HI``, ``lognormal:MU:SIGMA``)."""
    field, sep, spec = option.partition("=")
    if not sep or not field or not spec:
        raise SweepSpecError(
            f"--perturb {option!r} is not FIELD=DIST:A:B; write e.g. "
            "--perturb TOI.Element1=normal:0.1:0.001.",
            field=field or option,
        )
    field = _check_field(field.strip())
    return field, _parse_one(field, spec)


def _to_frozen(field: str, recorded: Any) -> Any:
    """The scipy distribution a recorded perturbation stands for (as gmat-sweep builds it)."""
    from scipy import stats  # type: ignore[import-untyped]

    if isinstance(recorded, list):
        dist, a, b = recorded
        if dist == "normal":
            return stats.norm(loc=float(a), scale=float(b))
        if dist == "uniform":
            return stats.uniform(loc=float(a), scale=float(b) - float(a))
        return stats.lognorm(s=float(b), scale=math.exp(float(a)))
    name = recorded["name"]
    factory = getattr(stats, str(name), None) if isinstance(name, str) else None
    if factory is None or not hasattr(factory, "ppf"):
        raise SweepSpecError(
            f"perturb[{field!r}]: {name!r} is not a scipy.stats distribution.",
            field=field,
            value=repr(name),
        )
    try:
        frozen = factory(*recorded["args"], **recorded["kwds"])
        frozen.ppf(0.5)  # a bad parameter shows here
    except (TypeError, ValueError) as exc:
        raise SweepSpecError(
            f"perturb[{field!r}]: scipy.stats.{name}{tuple(recorded['args'])} with "
            f"{recorded['kwds']} is not a valid distribution: {exc}",
            field=field,
        ) from None
    return frozen


# --- draws ------------------------------------------------------------------------------


def _run_seeds(seed: int, n: int) -> list[int]:
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(child.generate_state(1)[0]) for child in children]


def _field_seed(run_seed: int, field: str) -> int:
    name_hash = int.from_bytes(hashlib.sha256(field.encode("utf-8")).digest()[:4], "big")
    return int(np.random.SeedSequence([run_seed, name_hash]).generate_state(1)[0])


def monte_carlo_points(
    perturb: Mapping[str, Any], n: int, seed: int, *, start: int = 0
) -> list[dict[str, float]]:
    """Runs ``start..n-1`` of an ``n``-run Monte Carlo study (``perturb`` as recorded)."""
    frozen = {field: _to_frozen(field, perturb[field]) for field in sorted(perturb)}
    points = []
    for run_seed in _run_seeds(seed, n)[start:]:
        points.append(
            {
                field: float(
                    rv.rvs(
                        size=1, random_state=np.random.default_rng(_field_seed(run_seed, field))
                    )[0]
                )
                for field, rv in frozen.items()
            }
        )
    return points


def latin_hypercube_points(perturb: Mapping[str, Any], n: int, seed: int) -> list[dict[str, float]]:
    """An ``n``-point Latin hypercube (``perturb`` as recorded), one stratum per run per axis."""
    from scipy.stats import qmc  # type: ignore[import-untyped]

    fields = sorted(perturb)
    unit = qmc.LatinHypercube(d=len(fields), seed=seed).random(n=n)
    columns = {f: _to_frozen(f, perturb[f]).ppf(unit[:, i]) for i, f in enumerate(fields)}
    return [{f: float(columns[f][row]) for f in fields} for row in range(n)]


@dataclass(frozen=True, slots=True)
class Design:
    """A stochastic design as the manifest records it; its points are computed from it."""

    kind: DesignKind
    perturb: dict[str, Any]  # as parse_perturb records it
    n: int
    seed: int

    @classmethod
    def create(cls, kind: DesignKind, perturb: Any, n: Any, seed: Any) -> tuple[Design, bool]:
        """Check the inputs; with ``seed=None`` draw one. Returns the design and whether it drew."""
        recorded = parse_perturb(perturb)
        count = check_n(n)
        chosen = check_seed(seed)
        return cls(kind, recorded, count, draw_seed() if chosen is None else chosen), chosen is None

    def points(self) -> list[dict[str, float]]:
        if self.kind == "monte_carlo":
            return monte_carlo_points(self.perturb, self.n, self.seed)
        return latin_hypercube_points(self.perturb, self.n, self.seed)

    def parameter_spec(self) -> dict[str, Any]:
        """gmat-sweep's ``parameter_spec`` for this design."""
        return {"_kind": self.kind, "perturb": dict(self.perturb), "n": self.n, "seed": self.seed}

    def grown(self, n: int) -> Design:
        """The same study with ``n`` runs: its first runs are this study's, unchanged."""
        return Design(self.kind, self.perturb, n, self.seed)

    @classmethod
    def from_parameter_spec(cls, spec: Mapping[str, Any]) -> Design:
        """Rebuild a design from a manifest header (ours or gmat-sweep's)."""
        kind = spec.get("_kind")
        if kind not in ("monte_carlo", "latin_hypercube"):
            raise SweepSpecError(f"parameter_spec kind {kind!r} is not a design", field="_kind")
        if spec.get("seed") is None:
            raise SweepSpecError(
                "this study was drawn without a seed (gmat-sweep's seed=None), so its points "
                "cannot be drawn again; resume and extend need a seeded study. Start a new "
                "one with a seed.",
                field="seed",
            )
        return cls(kind, parse_perturb(spec["perturb"]), check_n(spec["n"]), int(spec["seed"]))


# --- samples from files -----------------------------------------------------------------


def read_samples(
    source: str | os.PathLike[str] | Any, *, columns: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Explicit samples from a CSV or Parquet file, or a DataFrame: one column per field.

    Each column has one type, set by its first row: numbers (ints stay ints), ``true``/
    ``false``, or text for string fields. Every cell is checked against its column's
    type, and an error names the row and the column. ``columns`` (optional) are the
    fields the samples must set, no more and no fewer.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        header, rows, where = _frame_rows(source, "the DataFrame")
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise SweepSpecError(
                f"samples file {path} does not exist; pass a .csv or .parquet file.",
                field="samples",
                value=str(source),
            )
        suffix = path.suffix.lower()
        if suffix == ".csv":
            header, rows, where = _csv_rows(path)
        elif suffix in (".parquet", ".pq"):
            header, rows, where = _frame_rows(pd.read_parquet(path), str(path))
        else:
            raise SweepSpecError(
                f"samples file {path} is neither .csv nor .parquet; save it as one of them.",
                field="samples",
                value=str(path),
            )
    _check_header(header, columns, where)
    if not rows:
        raise SweepSpecError(f"{where} has no rows; give one row per run.", field="samples")
    kinds = {name: _column_kind([cells[i] for _, cells in rows]) for i, name in enumerate(header)}
    samples = [
        {
            name: _cell(cell, kinds[name], name, label, where)
            for name, cell in zip(header, cells, strict=True)
        }
        for label, cells in rows
    ]
    for name in header:  # a column with any fraction is a float column, as pandas reads it
        if kinds[name] == "number" and any(isinstance(s[name], float) for s in samples):
            for s in samples:
                s[name] = float(s[name])
    return samples


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[str, list[Any]]], str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        lines = list(csv.reader(handle))
    lines = [line for line in lines if any(cell.strip() for cell in line)]
    if not lines:
        raise SweepSpecError(
            f"{path} is empty; write a header row of field names, then one row per run.",
            field="samples",
        )
    header = [cell.strip() for cell in lines[0]]
    rows = []
    for number, line in enumerate(lines[1:]):
        label = f"row {number} (line {number + 2})"
        if len(line) < len(header):
            raise SweepSpecError(
                f"{path} {label} has {len(line)} cells but the header has {len(header)}: "
                f"column {header[len(line)]!r} is missing. Give every row one cell per column.",
                field=header[len(line)],
            )
        if len(line) > len(header):
            raise SweepSpecError(
                f"{path} {label} has {len(line)} cells but the header has {len(header)} "
                f"({', '.join(header)}): an extra column with no name. Remove it, or name it "
                "in the header.",
                field="samples",
            )
        rows.append((label, [cell.strip() for cell in line]))
    return header, rows, str(path)


def _frame_rows(frame: Any, where: str) -> tuple[list[str], list[tuple[str, list[Any]]], str]:
    header = [str(c) if isinstance(c, str) else c for c in frame.columns]
    values = frame.to_numpy(dtype=object).tolist()
    rows = [
        (f"row {i} (index {label!r})", list(v))
        for i, (label, v) in enumerate(zip(frame.index, values, strict=True))
    ]
    return header, rows, where


def _check_header(header: list[Any], columns: Sequence[str] | None, where: str) -> None:
    for index, name in enumerate(header):
        if not isinstance(name, str) or not name:
            raise SweepSpecError(
                f"{where} column {index} has no field name ({name!r}); name every column "
                "'Resource.Field'.",
                field="samples",
            )
        _check_field(name)
    duplicated = sorted({n for n in header if header.count(n) > 1})
    if duplicated:
        raise SweepSpecError(
            f"{where} names {', '.join(map(repr, duplicated))} more than once; "
            "give one column per field.",
            field=duplicated[0],
        )
    if columns is not None:
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        if missing:
            raise SweepSpecError(
                f"{where} has no column {', '.join(map(repr, missing))}; the samples must set "
                f"{', '.join(columns)}.",
                field=missing[0],
            )
        if extra:
            raise SweepSpecError(
                f"{where} has a column {', '.join(map(repr, extra))} that is not one of "
                f"{', '.join(columns)}; remove it.",
                field=extra[0],
            )


_Kind = Literal["number", "bool", "text"]


def _cell_kind(cell: Any) -> _Kind | None:
    if cell is None or cell == "" or (isinstance(cell, float) and math.isnan(cell)):
        return None
    if isinstance(cell, bool) or type(cell).__name__ == "bool_":
        return "bool"
    if isinstance(cell, numbers.Real):
        return "number"
    if isinstance(cell, str):
        if cell.strip().lower() in ("true", "false"):
            return "bool"
        if _parse_number(cell) is not None:
            return "number"
    return "text"


def _column_kind(cells: list[Any]) -> _Kind:
    """Numeric if any cell is a number (the others are typos), else bool, else text."""
    kinds = {_cell_kind(c) for c in cells}
    if "number" in kinds:
        return "number"
    if kinds <= {"bool", None}:
        return "bool"
    return "text"


def _parse_number(text: str) -> int | float | None:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return None


def _cell(cell: Any, kind: _Kind, column: str, label: str, where: str) -> Any:
    def refuse(why: str) -> SweepSpecError:
        return SweepSpecError(
            f"{where} {label}, column {column!r}: {why}.", field=column, value=repr(cell)
        )

    if _cell_kind(cell) is None:
        raise refuse("the cell is empty; every run needs a value for every field")
    if kind == "number":
        if isinstance(cell, bool) or type(cell).__name__ == "bool_":
            raise refuse(f"{cell!r} is not a number (the column holds numbers)")
        value = _parse_number(cell) if isinstance(cell, str) else cell
        if value is None or not isinstance(value, numbers.Real):
            raise refuse(f"{cell!r} is not a number (the column holds numbers)")
        if isinstance(value, numbers.Integral):
            return int(value)
        if not math.isfinite(float(value)):
            raise refuse(f"{cell!r} is not a finite number")
        return float(value)
    if kind == "bool":
        if isinstance(cell, str) and cell.strip().lower() in ("true", "false"):
            return cell.strip().lower() == "true"
        if isinstance(cell, bool) or type(cell).__name__ == "bool_":
            return bool(cell)
        raise refuse(f"{cell!r} is not true or false (the column holds booleans)")
    if not isinstance(cell, str):
        raise refuse(f"{cell!r} is not text (the column holds text, for a string field)")
    return cell


# --- typed parameters (a flow's Run form, a block) ----------------------------------------


class Normal(BaseModel):
    """A normal distribution: mean ``mu``, standard deviation ``sigma`` (> 0)."""

    model_config = ConfigDict(extra="forbid")
    dist: Literal["normal"] = "normal"
    mu: float
    sigma: float


class Uniform(BaseModel):
    """A uniform distribution on ``[lo, hi)``."""

    model_config = ConfigDict(extra="forbid")
    dist: Literal["uniform"] = "uniform"
    lo: float
    hi: float


class Lognormal(BaseModel):
    """A lognormal distribution: ``log(x)`` is normal with mean ``mu`` and sd ``sigma``."""

    model_config = ConfigDict(extra="forbid")
    dist: Literal["lognormal"] = "lognormal"
    mu: float
    sigma: float


class ScipyDistribution(BaseModel):
    """Any ``scipy.stats`` distribution by name, e.g. ``truncnorm`` with args ``[-2, 2]``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    args: list[float] = Field(default_factory=list)
    kwds: dict[str, float] = Field(default_factory=dict)


Distribution = Normal | Uniform | Lognormal | ScipyDistribution


class _DesignModel(BaseModel):
    perturb: dict[str, Distribution] = Field(
        description='Field to distribution, e.g. {"TOI.Element1": {"dist": "normal", "mu": '
        '0.1, "sigma": 0.002}}; ["normal", 0.1, 0.002] is accepted too.'
    )
    n: int = Field(description="Number of runs.")
    seed: int | None = Field(
        default=None, description="Seed of the draws; empty: drawn from the OS and recorded."
    )

    @field_validator("perturb", mode="before")
    @classmethod
    def _shorthands(cls, value: Any) -> Any:
        """Accept gmat-sweep's ``["normal", mu, sigma]`` and ``"normal:mu:sigma"`` too."""
        if not isinstance(value, Mapping):
            return value
        converted = {}
        for field, spec in value.items():
            if isinstance(spec, (list, tuple, str)):
                dist, a, b = _parse_one(str(field), spec)
                names = DISTRIBUTIONS[dist]
                spec = {"dist": dist, names[0]: a, names[1]: b}
            converted[field] = spec
        return converted

    def perturbations(self) -> dict[str, Any]:
        """The perturb mapping in a form :func:`parse_perturb` takes."""
        return {field: spec.model_dump() for field, spec in self.perturb.items()}


class MonteCarloDesign(_DesignModel):
    """Monte Carlo: each run draws every field independently (gmat-sweep's draws)."""

    kind: Literal["monte_carlo"] = "monte_carlo"


class LatinHypercubeDesign(_DesignModel):
    """Latin hypercube: n runs, one in each of n equal-probability strata per field."""

    kind: Literal["latin_hypercube"] = "latin_hypercube"


DesignParameters = MonteCarloDesign | LatinHypercubeDesign
