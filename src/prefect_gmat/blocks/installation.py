"""The ``GmatInstallation`` block: which GMAT engine a sweep uses, saved once by name.

A machine with a desktop GMAT saves its install directory; a machine without
one saves the block empty and gets the pip engine (the ``gmatpy`` wheel). A
deployment then names the block (``installation="lab-gmat"``) instead of
hard-coding a path. The checks start the engine in a worker process, never in
the calling one: importing ``gmatpy`` there breaks a later ``Mission.load``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from prefect.blocks.core import Block
from pydantic import Field

from prefect_gmat.engine.install import Engine, resolve_engine, shim_root
from prefect_gmat.engine.pool import WorkerPool

__all__ = ["EngineCheck", "GmatInstallation"]


@dataclass(frozen=True, slots=True)
class EngineCheck:
    """What :meth:`GmatInstallation.check` found: the engine started, from where, how fast."""

    version: str
    root: Path
    source: str
    startup_seconds: float


class GmatInstallation(Block):
    """Where the GMAT engine comes from: a desktop GMAT install, or the pip engine (gmatpy)."""

    _block_type_name = "GMAT Installation"
    _block_type_slug = "gmat-installation"
    _description = (
        "The GMAT engine a sweep uses: a desktop GMAT install directory, or (left empty) "
        "the pip engine from the gmatpy wheel. Pass its name as the sweep flow's "
        "`installation` parameter."
    )
    _code_example = """
```python
from prefect_gmat.blocks import GmatInstallation

GmatInstallation(gmat_root="/opt/gmat-R2026a").save("lab-gmat")
installation = GmatInstallation.load("lab-gmat")
installation.check()  # starts the engine once in a worker process
```
"""

    gmat_root: Path | None = Field(
        default=None,
        title="GMAT install directory",
        description=(
            "A desktop GMAT install (the directory holding bin/ and api/). "
            "Leave empty to use the pip engine (the gmatpy wheel)."
        ),
    )

    def engine(self) -> Engine:
        """Resolve the engine (an invalid install directory raises EngineNotFoundError)."""
        if self.gmat_root is None:
            return resolve_engine(None, prefer_pip=True)
        return resolve_engine(self.gmat_root)

    def engine_root(self) -> str:
        """The install root to pass as a sweep's ``gmat_root`` (the shim root for the wheel)."""
        return str(self.engine().root if self.gmat_root is not None else shim_root())

    def get_version(self) -> str:
        """The engine's GMAT version (e.g. ``R2026a``), as recorded in sweep manifests."""
        return self.engine().version

    def check(self) -> EngineCheck:
        """Start the engine in one worker process and stop it; raises EngineNotFoundError."""
        engine = self.engine()
        started = time.monotonic()
        with WorkerPool(engine.root, 1) as pool:
            pool.warm_up()
        return EngineCheck(
            version=engine.version,
            root=engine.root,
            source=engine.source,
            startup_seconds=time.monotonic() - started,
        )
