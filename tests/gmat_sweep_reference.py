"""Run gmat-sweep 0.6.0 itself (the reference tool) in a subprocess, for comparison tests.

Usage: python -m tests.gmat_sweep_reference SCRIPT OUT GRID_JSON FRAME_PICKLE [BUNDLE]
Runs gmat_sweep.sweep over GRID_JSON into OUT, pickles its frame, and with
BUNDLE also archives the sweep there. GMAT_ROOT must name the engine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from gmat_sweep import LocalJoblibPool, Sweep, sweep

    script, out, grid_json, frame_path = argv[:4]
    frame = sweep(Path(script), grid=json.loads(grid_json), out=Path(out), progress=False)
    frame.to_pickle(frame_path)
    if len(argv) > 4:
        with LocalJoblibPool(max_workers=1) as pool:
            made = Sweep.from_manifest(Path(out) / "manifest.jsonl", Path(script), backend=pool)
            made.archive(out=Path(argv[4]))


if __name__ == "__main__":
    main(sys.argv[1:])
