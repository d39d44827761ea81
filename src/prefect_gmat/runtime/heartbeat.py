"""Stop this flow run's heartbeat once its runs are done, so its end does not wait for it.

Prefect keeps a thread per flow run that emits a heartbeat event every 180 s
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``) and sleeps in 1 s steps between them. When
a synchronous flow returns, Prefect stops that thread and joins it, which waits
for the current step: 0-1 s, half a second on average, after the last run.
:func:`stop_heartbeat`, called when the sweep's runs are all recorded, stops it
then, so it has exited by the time the archive and the plots are done.

Crash detection is kept: it is the *absence* of heartbeats past a window (a Prefect
automation on ``prefect.flow-run.heartbeat``), and a flow run that crashes after this
call sends none either way. The last few seconds of a sweep send no heartbeat that
Prefect's own teardown would not have skipped too, unless its archive takes longer
than the heartbeat interval (a sweep of gigabytes).

The thread is Prefect's (``prefect.flow_engine._send_heartbeats``), not a public
API: it is found by its loop function's name and its engine's flow run, and when
Prefect changes that shape, nothing is stopped and the flow ends as before.
"""

from __future__ import annotations

import threading
from types import FunctionType
from typing import Any
from uuid import UUID

__all__ = ["stop_heartbeat"]

_LOOP = "heartbeat_loop"


def stop_heartbeat(flow_run_id: UUID | None = None) -> bool:
    """Ask the heartbeat thread of ``flow_run_id`` (the current flow run) to stop; True if
    one was found. It exits at its next 1 s step; nothing waits for it here."""
    if flow_run_id is None:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            return False
        flow_run_id = context.flow_run.id
    for thread in threading.enumerate():
        args: tuple[Any, ...] = getattr(thread, "_args", ()) or ()
        loop = args[0] if args else None
        if not isinstance(loop, FunctionType) or loop.__name__ != _LOOP:
            continue
        if not loop.__module__.startswith("prefect."):
            continue
        cells = {
            name: cell.cell_contents
            for name, cell in zip(loop.__code__.co_freevars, loop.__closure__ or (), strict=False)
        }
        engine, stop = cells.get("engine"), cells.get("stop_event")
        run = getattr(engine, "flow_run", None)
        if isinstance(stop, threading.Event) and getattr(run, "id", None) == flow_run_id:
            stop.set()
            return True
    return False
