"""Deployments of the sweep flow and its follower, in Python (the same as ``prefect.yaml``).

The names here are the ones ``prefect.yaml`` uses; a test keeps the two in step.
Use :func:`~prefect_gmat.deployments.build.deploy_all` to register the
deployments to the process work pool from Python, or
:func:`~prefect_gmat.deployments.build.serve_all` to run them in this process
without a worker.
"""

from prefect_gmat.deployments.names import (
    ENGINE_LIMIT,
    FOLLOWER_DEPLOYMENT,
    FOLLOWER_ENTRYPOINT,
    FOLLOWER_FLOW,
    LEO_GRID,
    NIGHTLY_CRON,
    POOL,
    SCRIPT_TRIGGERED_DEPLOYMENT,
    SWEEP_DEPLOYMENT,
    SWEEP_ENTRYPOINT,
    SWEEP_FLOW,
)

__all__ = [
    "ENGINE_LIMIT",
    "FOLLOWER_DEPLOYMENT",
    "FOLLOWER_ENTRYPOINT",
    "FOLLOWER_FLOW",
    "LEO_GRID",
    "NIGHTLY_CRON",
    "POOL",
    "SCRIPT_TRIGGERED_DEPLOYMENT",
    "SWEEP_DEPLOYMENT",
    "SWEEP_ENTRYPOINT",
    "SWEEP_FLOW",
]
