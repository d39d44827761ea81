"""Up-front checks of a sweep against the engine, before anything is run or written.

One warm worker loads the script and tries every swept field
and distinct value on it; every problem found is reported at once, each with
the fix, in one :class:`~prefect_gmat.errors.SweepSpecError`.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from prefect_gmat.core.records import ValidateJob
from prefect_gmat.engine.pool import WorkerPool
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.study.spec import SweepSpec, canonical_script_sha256

__all__ = ["check_against_engine"]

_MAX_VALUES_PER_FIELD = 1000


def _distinct_values(spec: SweepSpec) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {field: [] for field in spec.fields}
    seen: dict[str, set[tuple[type, Any]]] = {field: set() for field in spec.fields}
    for point in spec.points():
        for field, value in point.overrides.items():
            key = (type(value), value)
            if key not in seen[field] and len(values[field]) < _MAX_VALUES_PER_FIELD:
                seen[field].add(key)
                values[field].append(value)
        if all(len(v) >= _MAX_VALUES_PER_FIELD for v in values.values()):
            break
    return values


#: Sweeps already checked in this process (script SHA-256 and values): the API checks
#: before Prefect starts, and the flow it then runs need not load the script again.
_passed: set[str] = set()


def check_against_engine(spec: SweepSpec, pool: WorkerPool) -> None:
    """Raise :class:`SweepSpecError` listing every field or value the script will not take."""
    drawn = tuple(spec.design.perturb) if spec.design is not None else ()
    values = _distinct_values(spec)
    key = json.dumps(
        [str(spec.script), canonical_script_sha256(spec.script), values, drawn], default=repr
    )
    if key in _passed:
        return
    job = ValidateJob(str(spec.script), values, tempfile.gettempdir(), drawn)
    problems = pool.validate(job)
    if not problems:
        _passed.add(key)
        return
    lines = [f"the sweep cannot run ({len(problems)} problem(s)); nothing was run or written:"]
    for problem in problems:
        lines.append(f"- {problem.message}")
        if problem.log_excerpt:
            lines.extend(f"    {line}" for line in problem.log_excerpt.splitlines())
    raise SweepSpecError(
        "\n".join(lines),
        field=problems[0].field,
        value=problems[0].value,
        problems=[(p.field, p.message) for p in problems],
        log_excerpt=problems[0].log_excerpt,
    )
