"""What a sweep runs: the script, the grid (or samples, or a design), and its run list.

Grid semantics match gmat-sweep 0.6.0 so run ids agree:
keys sorted lexicographically, then the cartesian product in
``itertools.product`` order, run ids 0..N-1 in that order. Values are
normalised to plain JSON types here (NumPy numbers included), and anything the
engine cannot take (NaN, infinity, empty lists, non-scalars) is refused with
the fix in the message.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.designs import Design, read_samples

__all__ = [
    "Point",
    "SweepSpec",
    "canonical_script_sha256",
    "check_postprocess",
    "normalise_value",
    "uniform_samples",
]

Value = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Point:
    """One run of a sweep: its id and the field overrides it applies."""

    run_id: int
    overrides: dict[str, Value]


def canonical_script_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the script text with BOM and line endings normalised (as gmat-sweep)."""
    raw = Path(path).read_bytes().decode("utf-8")
    text = raw.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256((text.rstrip("\n") + "\n").encode("utf-8")).hexdigest()


def normalise_value(field: str, value: Any) -> Value:
    """Turn one grid value into a plain JSON scalar, or say why it cannot be one."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise SweepSpecError(
                f"grid value {value!r} for {field!r} is not a finite number; "
                "GMAT cannot run with NaN or infinity. Remove it from the grid.",
                field=field,
                value=repr(value),
            )
        return number
    raise SweepSpecError(
        f"grid value {value!r} for {field!r} has type {type(value).__name__}; "
        "use a number (int, float, NumPy scalar), a bool or a string.",
        field=field,
        value=repr(value),
    )


def _check_field_name(field: Any) -> str:
    if (
        not isinstance(field, str)
        or "." not in field
        or field.startswith(".")
        or field.endswith(".")
    ):
        raise SweepSpecError(
            f"grid key {field!r} is not a GMAT field path; write it as "
            "'Resource.Field' (for example 'Sat.SMA'), or '<Variable>.Value' for a Variable.",
            field=str(field),
        )
    return field


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A validated, normalised sweep: script plus a grid, explicit samples or a design.

    A design's points are its ``samples``. ``postprocess`` names a per-run hook
    (``"module:function"``) run in the worker after each successful run.
    """

    script: Path
    grid: dict[str, list[Value]] | None = None
    samples: list[dict[str, Value]] | None = None
    design: Design | None = None
    postprocess: str | None = None

    @classmethod
    def from_grid(
        cls, script: str | os.PathLike[str], grid: Mapping[str, Iterable[Any]]
    ) -> SweepSpec:
        if not isinstance(grid, Mapping) or not grid:
            raise SweepSpecError(
                "grid must be a non-empty mapping of 'Resource.Field' to a list of values, "
                "for example {'Sat.SMA': [7000, 7100]}.",
                field="grid",
            )
        clean: dict[str, list[Value]] = {}
        for key, values in grid.items():
            name = _check_field_name(key)
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise SweepSpecError(
                    f"grid[{name!r}] must be a list of values, got {type(values).__name__}; "
                    f"write {{{name!r}: [{values!r}]}} for a single value.",
                    field=name,
                )
            listed = [normalise_value(name, v) for v in values]
            if not listed:
                raise SweepSpecError(
                    f"grid[{name!r}] is empty; give at least one value or drop the field.",
                    field=name,
                )
            clean[name] = listed
        return cls(script=_script_path(script), grid=clean)

    @classmethod
    def from_samples(
        cls,
        script: str | os.PathLike[str],
        samples: Sequence[Mapping[str, Any]] | str | os.PathLike[str] | Any,
    ) -> SweepSpec:
        """Explicit points: one mapping per run, or a CSV/Parquet file or DataFrame of them.

        A file or DataFrame has one column per field and one row per run (as
        gmat-sweep's ``explicit``); see :func:`~prefect_gmat.study.designs.read_samples`.
        """
        if isinstance(samples, (str, os.PathLike)) or hasattr(samples, "to_numpy"):
            samples = read_samples(samples)
        if not samples:
            raise SweepSpecError("samples is empty; give at least one point.", field="samples")
        for index, row in enumerate(samples):
            if not isinstance(row, Mapping):
                raise SweepSpecError(
                    f"sample {index} is a {type(row).__name__}, not a mapping; give each "
                    "sample as {field: value}.",
                    field="samples",
                )
        keys = set(samples[0])
        rows: list[dict[str, Value]] = []
        for index, row in enumerate(samples):
            if set(row) != keys:
                raise SweepSpecError(
                    f"sample {index} has fields {sorted(row)} but sample 0 has {sorted(keys)}; "
                    "every sample must set the same fields.",
                    field="samples",
                )
            rows.append({_check_field_name(k): normalise_value(k, v) for k, v in row.items()})
        return cls(script=_script_path(script), samples=rows)

    @classmethod
    def from_design(cls, script: str | os.PathLike[str], design: Design) -> SweepSpec:
        """A Monte Carlo or Latin hypercube study, its points drawn now."""
        return replace(cls.from_samples(script, design.points()), design=design)

    def with_postprocess(self, postprocess: str | None) -> SweepSpec:
        """The same sweep with a per-run hook, checked to be ``module:function`` and callable."""
        return replace(self, postprocess=check_postprocess(postprocess))

    @property
    def seed(self) -> int | None:
        """The design's seed (the header's ``sweep_seed``); None for grids and samples."""
        return None if self.design is None else self.design.seed

    @property
    def fields(self) -> list[str]:
        """Swept field paths, in the frame's column order (sorted, as gmat-sweep)."""
        if self.grid is not None:
            return sorted(self.grid)
        assert self.samples is not None
        return list(self.samples[0])

    def __len__(self) -> int:
        if self.grid is not None:
            return math.prod(len(v) for v in self.grid.values())
        assert self.samples is not None
        return len(self.samples)

    def points(self) -> Iterator[Point]:
        """Every run in run-id order, generated lazily."""
        if self.grid is not None:
            keys = sorted(self.grid)
            combos = itertools.product(*(self.grid[k] for k in keys))
            for run_id, combo in enumerate(combos):
                yield Point(run_id, dict(zip(keys, combo, strict=True)))
        else:
            assert self.samples is not None
            for run_id, row in enumerate(self.samples):
                yield Point(run_id, dict(row))

    def parameter_spec(self) -> dict[str, Any]:
        """The manifest header's ``parameter_spec`` (gmat-sweep's shape)."""
        if self.design is not None:
            return self.design.parameter_spec()
        if self.grid is not None:
            return {"_kind": "grid", **{k: list(v) for k, v in self.grid.items()}}
        assert self.samples is not None
        columns = self.fields
        return {
            "_kind": "explicit",
            "columns": columns,
            "rows": [[row[c] for c in columns] for row in self.samples],
        }

    @classmethod
    def from_parameter_spec(
        cls, script: str | os.PathLike[str], spec: Mapping[str, Any]
    ) -> SweepSpec:
        """Rebuild a spec from a manifest header (for resume)."""
        kind = spec.get("_kind", "grid")
        if kind == "grid":
            return cls.from_grid(script, {k: v for k, v in spec.items() if k != "_kind"})
        if kind == "explicit":
            columns = list(spec["columns"])
            rows = [dict(zip(columns, row, strict=True)) for row in spec["rows"]]
            return cls.from_samples(script, rows)
        if kind in ("monte_carlo", "latin_hypercube"):
            return cls.from_design(script, Design.from_parameter_spec(spec))
        raise SweepSpecError(
            f"parameter_spec kind {kind!r} is not supported; supported: 'grid', 'explicit', "
            "'monte_carlo', 'latin_hypercube'.",
            field="parameter_spec",
        )


def check_postprocess(postprocess: str | None) -> str | None:
    """Resolve a ``"package.module:function"`` hook now, so a typo fails before any run.

    The workers import it again; they inherit this process's ``sys.path``.
    """
    if postprocess is None:
        return None
    module_name, sep, name = str(postprocess).partition(":")
    if not (isinstance(postprocess, str) and sep and module_name and name):
        raise SweepSpecError(
            f"postprocess={postprocess!r} is not 'package.module:function'; name a "
            "module-level function, for example postprocess='mypkg.hooks:miss_distance'.",
            field="postprocess",
            value=repr(postprocess),
        )
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SweepSpecError(
            f"postprocess hook module {module_name!r} cannot be imported ({exc}); install it "
            "or put it on PYTHONPATH.",
            field="postprocess",
            value=postprocess,
        ) from None
    if not callable(getattr(module, name, None)):
        raise SweepSpecError(
            f"postprocess hook {postprocess!r}: module {module_name!r} has no function {name!r}.",
            field="postprocess",
            value=postprocess,
        )
    return postprocess


def uniform_samples(
    ranges: Mapping[str, tuple[float, float]], n: int, seed: int
) -> list[dict[str, Value]]:
    """``n`` random points, each field uniform in its ``(low, high)``, reproducible from ``seed``.

    Pass the result as ``samples=``: the drawn values are stored in the manifest,
    so a resumed sweep runs exactly the same points (no redraw).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SweepSpecError(f"n must be a whole number >= 1, got {n!r}.", field="n")
    fields = sorted(ranges)
    for name in fields:
        _check_field_name(name)
        given = ranges[name]
        bounds = [normalise_value(name, v) for v in given] if isinstance(given, Iterable) else []
        low, high = bounds if len(bounds) == 2 else (None, None)
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low > high:
            raise SweepSpecError(
                f"range for {name!r} is {ranges[name]!r}; write it as (low, high) numbers "
                "with low <= high.",
                field=name,
            )
    rng = np.random.default_rng(seed)
    draws = {name: rng.uniform(*ranges[name], size=n) for name in fields}
    return [{name: float(draws[name][i]) for name in fields} for i in range(n)]


def _script_path(script: str | os.PathLike[str]) -> Path:
    path = Path(script).expanduser().resolve()
    if not path.is_file():
        raise SweepSpecError(
            f"script {path} does not exist or is not a file; pass the path of a GMAT .script.",
            field="script",
            value=str(script),
        )
    try:
        empty = not path.read_bytes().strip()
    except OSError as exc:
        raise SweepSpecError(
            f"script {path} cannot be read ({exc.strerror}); check its permissions.",
            field="script",
            value=str(script),
        ) from None
    if empty:
        raise SweepSpecError(
            f"{path.name} is empty; pass a GMAT .script with the mission to fly.",
            field="script",
            value=str(script),
        )
    return path
