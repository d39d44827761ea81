"""gmat-sweep 0.6.0 itself (the reference tool), run by :mod:`tests.support.reference`.

Usage: python -m tests.support.reference_main STEPS_JSON

STEPS_JSON is a list of steps, run in order on one pool of two engines (started once
for every step). ``frame``, where given, names a pickle for the step's frame.

- ``{"op": "sweep", "script", "out", "grid", "postprocess"?, "frame"?}``: gmat_sweep.sweep.
  Without ``frame`` only the runs matter: a script with two reports makes sweep() raise
  when it builds the frame (it needs ``name=``), after every run is recorded.
- ``{"op": "monte_carlo" | "latin_hypercube", "script", "out", "n", "perturb", "seed",
  "postprocess"?, "frame"}``: a design (``perturb`` as JSON lists).
- ``{"op": "extend", "script", "out", "n", "frame"}``: n more runs, as gmat-sweep's
  monte_carlo_extend counts.
- ``{"op": "archive", "script", "out", "bundle"}``: Sweep.from_manifest(...).archive.
- ``{"op": "copy", "out", "to"}``: a copy of a sweep directory, made between two steps.

GMAT_ROOT must name the engine. Nothing here imports the engine before gmat-run does.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any


def run(step: dict[str, Any], pool: Any) -> None:
    import gmat_sweep

    op = step["op"]
    if op == "copy":
        shutil.copytree(step["out"], step["to"])
        return
    script, out = Path(step["script"]), Path(step["out"])
    if op == "archive":
        made = gmat_sweep.Sweep.from_manifest(out / "manifest.jsonl", script, backend=pool)
        made.archive(out=Path(step["bundle"]))
        return
    if op == "sweep":
        try:
            frame = gmat_sweep.sweep(
                script,
                grid=step["grid"],
                out=out,
                backend=pool,
                postprocess=step.get("postprocess"),
                progress=False,
            )
        except gmat_sweep.SweepConfigError as exc:
            if "frame" in step:
                raise
            print(type(exc).__name__, exc)  # the runs are done; only the frame needed name=
            return
    elif op == "extend":
        frame = gmat_sweep.monte_carlo_extend(
            out / "manifest.jsonl", script, n=step["n"], backend=pool, progress=False
        )
    else:
        design = getattr(gmat_sweep, op)
        perturb = {k: tuple(v) for k, v in step["perturb"].items()}  # JSON lists
        frame = design(
            script,
            n=step["n"],
            perturb=perturb,
            seed=step["seed"],
            out=out,
            backend=pool,
            postprocess=step.get("postprocess"),
            progress=False,
        )
    if "frame" in step:
        frame.to_pickle(step["frame"])


if __name__ == "__main__":
    from gmat_sweep import LocalJoblibPool

    with LocalJoblibPool(max_workers=2) as shared:
        for given in json.loads(sys.argv[1]):
            run(given, shared)
