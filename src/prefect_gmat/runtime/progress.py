"""One live progress line on the terminal while a sweep started from Python or the CLI runs.

:func:`terminal_progress` shows the line on stderr for the
sweeps run inside it (by default only when stderr is a terminal); the flow
calls :func:`report` as runs finish, which is a no-op when no line is shown,
as in a deployment's flow run, where the UI's progress artifact serves. Log
lines printed meanwhile through a rich console handler (Prefect's) are routed
through the line's console, so they appear above it instead of tearing it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

__all__ = ["report", "terminal_progress"]

_lock = threading.Lock()
_line: _ProgressLine | None = None


class _ProgressLine:
    """The rich progress bar of one sweep: runs done/total, ok, failed, runs/s, time left."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]sweep[/]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} runs"),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=4,
        )
        self.task_id: Any = None
        self._first: tuple[float, int] | None = None

    def update(self, done: int, total: int, ok: int, failed: int) -> None:
        now = time.monotonic()
        if self.task_id is None:
            self.progress.start()
            self.task_id = self.progress.add_task(
                "sweep", total=total, completed=done, ok=ok, failed=failed, rate=""
            )
        if self._first is None or done < self._first[1]:
            self._first = (now, done)
        start, start_done = self._first
        rate = (done - start_done) / (now - start) if now > start and done > start_done else 0.0
        self.progress.update(
            self.task_id,
            total=total,
            completed=done,
            ok=ok,
            failed=failed,
            rate=f"{rate:.1f} runs/s" if rate else "",
        )

    def close(self) -> None:
        if self.task_id is not None:
            self.progress.refresh()
            self.progress.stop()


def report(done: int, total: int, ok: int, failed: int) -> None:
    """Show ``done`` of ``total`` runs finished (``ok`` and ``failed`` of them, this sweep)."""
    with _lock:
        if _line is not None:
            _line.update(done, total, ok, failed)


@contextmanager
def _log_lines_above(console: Any) -> Iterator[None]:
    """Print rich console handlers' records through ``console`` (above the live line)."""
    swapped: list[tuple[Any, Any]] = []
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            current = getattr(handler, "console", None)
            if current is not None and getattr(current, "file", None) in (sys.stderr, None):
                swapped.append((handler, current))
                handler.console = console
    try:
        yield
    finally:
        for handler, original in swapped:
            handler.console = original


@contextmanager
def terminal_progress(enabled: bool | None = None) -> Iterator[None]:
    """Show a live progress line for the sweeps run in the block.

    ``enabled=None`` shows it when stderr is a terminal; ``False`` never.
    """
    global _line
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        yield
        return
    line = _ProgressLine()
    with ExitStack() as stack:
        stack.enter_context(_log_lines_above(line.console))
        with _lock:
            _line = line
        try:
            yield
        finally:
            with _lock:
                _line = None
            line.close()
