"""Run gmat-sweep 0.6.0's designs (the reference) in a subprocess, for comparison tests.

Usage: python -m tests.gmat_sweep_designs STEPS_JSON
STEPS_JSON is a list of steps run in order, each pickling its frame to ``frame``:
``{"op": "monte_carlo" | "latin_hypercube", "script", "out", "n", "perturb", "seed",
"postprocess"?}``, ``{"op": "extend", "script", "out", "n"}`` (n more runs, as
gmat-sweep's monte_carlo_extend counts) or ``{"op": "copy", "out", "to"}`` (a copy of a
sweep directory, made between two steps). GMAT_ROOT must name the engine.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any


def run(step: dict[str, Any], pool: Any) -> None:
    import gmat_sweep

    if step["op"] == "copy":
        shutil.copytree(step["out"], step["to"])
        return
    if step["op"] == "extend":
        frame = gmat_sweep.monte_carlo_extend(
            Path(step["out"]) / "manifest.jsonl",
            Path(step["script"]),
            n=step["n"],
            backend=pool,
            progress=False,
        )
    else:
        design = getattr(gmat_sweep, step["op"])
        perturb = {k: tuple(v) for k, v in step["perturb"].items()}  # JSON lists
        frame = design(
            Path(step["script"]),
            n=step["n"],
            perturb=perturb,
            seed=step["seed"],
            out=Path(step["out"]),
            backend=pool,
            postprocess=step.get("postprocess"),
            progress=False,
        )
    frame.to_pickle(step["frame"])


if __name__ == "__main__":
    from gmat_sweep import LocalJoblibPool

    with LocalJoblibPool(max_workers=2) as shared:  # its engines start once for every step
        for given in json.loads(sys.argv[1]):
            run(given, shared)
