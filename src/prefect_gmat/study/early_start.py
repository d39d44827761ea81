"""A checked sweep's runs start on its engines before Prefect is up; its flow takes them over.

From the call, Prefect's import and the flow run's start take a second or two
against a server (a temporary server: several), while the engines are ready
after one. Once every check has passed, :class:`EarlyStart` takes the sweep
directory's lock, prepares it as the flow will (the manifest's header; nothing
is deleted), and hands the points to run to the pool's early runs
(``engine/early.py``). The flow, in the same thread, takes the lock again, finds
the same sweep and the same points to run, and its first task run takes over
what began. If the sweep fails before its flow takes over or records a run (it
was refused, or Prefect did not start), what the early start wrote is removed,
so a refused sweep still leaves nothing behind.

Only a sweep whose points are known now and which deletes nothing starts
early: a new sweep (or an overwrite of nothing), a resume or a retry; not an
extension, a converging study or a sweep on dask.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from types import TracebackType

from prefect_gmat.core.layout import MANIFEST_NAME
from prefect_gmat.engine.install import Engine
from prefect_gmat.engine.pool import WorkerPool
from prefect_gmat.errors import ManifestError
from prefect_gmat.study.manifest import read_manifest
from prefect_gmat.study.spec import SweepSpec
from prefect_gmat.study.sweepdir import Mode, lock_sweep_dir, plan_sweep

__all__ = ["EarlyStart", "early_mode"]


def early_mode(out: Path, mode: Mode, *, dask: str | None, converging: bool) -> Mode | None:
    """The mode the flow runs in if this sweep starts early (an overwrite of nothing is a
    new sweep), or None if it may not (see the module)."""
    if dask is not None or converging:
        return None
    if mode == "overwrite" and _empty(out):
        return "new"
    return mode if mode in ("new", "resume", "retry_failed") else None


def _empty(out: Path) -> bool:
    return not out.exists() or (out.is_dir() and not any(out.iterdir()))


class EarlyStart:
    """Held around the flow's call, which runs in ``mode``; see the module."""

    def __init__(
        self, out: Path, mode: Mode, kept: frozenset[str] | None, pool: WorkerPool | None = None
    ) -> None:
        self.out = out
        self._pool = pool
        self.mode: Mode = mode  # the mode the flow runs in (an overwrite of nothing is new)
        # If the sweep is refused after its early start, everything in ``out`` but ``kept``
        # (what was there before) is removed, and ``out`` itself if it was not there. None:
        # ``out`` held a sweep already (a resume, say); keep it all.
        self._kept = kept
        self._made = not out.exists()
        self._held = contextlib.ExitStack()

    @classmethod
    def begin(
        cls,
        out: Path,
        spec: SweepSpec,
        mode: Mode,
        engine: Engine,
        pool: WorkerPool,
        timeout: float | None,
        *,
        dask: str | None = None,
        converging: bool = False,
    ) -> EarlyStart:
        """Start ``spec``'s runs early on ``pool`` if this sweep may; otherwise change nothing."""
        starting = early_mode(out, mode, dask=dask, converging=converging)
        if starting is None:
            return cls(out, mode, None)
        kept: frozenset[str] | None = None
        if not (out / MANIFEST_NAME).exists():
            kept = frozenset(p.name for p in out.iterdir()) if out.is_dir() else frozenset()
        early = cls(out, starting, kept, pool)
        early._held.enter_context(lock_sweep_dir(out))
        try:
            plan = plan_sweep(out, spec, engine, starting)
            pool.start_early(plan.jobs(plan.to_run, timeout))
        except BaseException:
            early.__exit__(None, None, None)
            raise
        return early

    def __enter__(self) -> EarlyStart:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if error is not None and self._kept is not None and self._refused():
                if self._pool is not None:  # no early run may write after the removal
                    self._pool.close()
                self._remove_what_was_added()
        finally:
            self._held.close()

    def _refused(self) -> bool:
        """Whether the sweep failed before its flow took over or recorded any run (it was
        refused, or Prefect did not start): then nothing it wrote is worth keeping."""
        if self._pool is not None and self._pool.taken_over:
            return False
        try:
            return not read_manifest(self.out / MANIFEST_NAME).records
        except (ManifestError, OSError):
            return True

    def _remove_what_was_added(self) -> None:
        """The sweep was refused: leave ``out`` as it was given."""
        if self._made:
            shutil.rmtree(self.out, ignore_errors=True)
            return
        for path in self.out.iterdir():
            if path.name in (self._kept or ()):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
