"""Prefect blocks: a GMAT installation and a sweep, each saved once and used by name.

Register them with ``prefect block register -m prefect_gmat.blocks``.
"""

from prefect_gmat.blocks.installation import EngineCheck, GmatInstallation
from prefect_gmat.blocks.sweep_spec import GmatSweepSpec, apply_blocks

__all__ = ["EngineCheck", "GmatInstallation", "GmatSweepSpec", "apply_blocks"]
