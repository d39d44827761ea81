"""Import the flow and Prefect in one background thread while a sweep is checked.

Prefect's modules import each other in cycles, and Python's import locks are per
module: two threads importing Prefect at once can each hold a lock the other
needs, and the import system then hands one of them a partially initialised
module ("cannot import name 'SettingsContext' from partially initialized module
'prefect.context'"). So one thread at most imports Prefect in the background:
this one. Nothing else started by this package imports Prefect off the caller's
thread, and the caller joins it before it imports Prefect itself or returns
(a refused sweep too: an interpreter that exits while a thread imports breaks
that import, "can't register atexit after shutdown").
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence

__all__ = ["BackgroundImport"]


class BackgroundImport:
    """Import ``modules`` in order in one non-daemon thread; :meth:`cancel`, :meth:`join`.

    An import that fails here is left to the caller, which imports the module
    again and sees the error there.
    """

    def __init__(self, modules: Sequence[str], name: str = "flow-import") -> None:
        self._modules = tuple(modules)
        self._cancelled = threading.Event()
        # Not a daemon: a daemon thread still importing when the interpreter exits can
        # crash the exit (SIGSEGV/SIGABRT seen in CI).
        self._thread = threading.Thread(target=self._run, name=name)
        self._thread.start()

    def _run(self) -> None:
        for module in self._modules:
            if self._cancelled.is_set():
                return
            try:
                importlib.import_module(module)
            except Exception:  # the caller imports it again, and sees why it fails
                return

    def cancel(self) -> None:
        """Import nothing after the module under way."""
        self._cancelled.set()

    def join(self) -> None:
        self._thread.join()
