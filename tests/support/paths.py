"""Where things are: the repository, the test data and the scripts the tests sweep."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
#: The short LEO script shipped in the package: the walkthrough's and the demo's.
DEMO_SCRIPT = REPO / "src" / "prefect_gmat" / "scripts" / "leo_short.script"
#: A launch slip and an injection burn: the script of the Monte Carlo design tests.
DISPERSION = DATA / "launch_dispersion.script"
