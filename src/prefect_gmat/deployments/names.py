"""Names shared by ``prefect.yaml``, the Python deployments, the README and the tests."""

from __future__ import annotations

from typing import Any

#: The process work pool the deployments run on (one worker per machine with GMAT).
POOL = "gmat-process"
#: The global concurrency limit whose slots (one per engine) sweeps hold; size it to the cores.
ENGINE_LIMIT = "gmat-engines"

SWEEP_FLOW = "gmat-sweep"
SWEEP_DEPLOYMENT = "sweep"
SCRIPT_TRIGGERED_DEPLOYMENT = "on-script-updated"
FOLLOWER_FLOW = "summarise-sweep"
FOLLOWER_DEPLOYMENT = "on-sweep-completed"

SWEEP_ENTRYPOINT = "src/prefect_gmat/flows/sweep.py:sweep_flow"
FOLLOWER_ENTRYPOINT = "src/prefect_gmat/flows/followers.py:summarise_sweep"

SWEEP_TAGS = ["gmat", "sweep"]
EVENT_TAGS = ["gmat", "sweep", "event"]
FOLLOWER_TAGS = ["gmat", "follower", "event"]

#: The example schedule: every night at 02:00 UTC, created inactive.
NIGHTLY_CRON = "0 2 * * *"
NIGHTLY_SLUG = "nightly-leo"
LEO_SCRIPT = "src/prefect_gmat/scripts/leo_short.script"
LEO_GRID: dict[str, list[Any]] = {"Sat.SMA": list(range(7000, 8000, 100))}

#: Process-worker environment: keep per-point "Finished in state Completed()" lines out of the UI.
JOB_ENV = {"PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING"}
