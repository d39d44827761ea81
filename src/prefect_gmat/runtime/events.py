"""Prefect events a sweep reacts to and emits, so other systems can start and follow sweeps.

* ``gmat.script.updated``: a GMAT script changed. Its resource is the script
  (``prefect.resource.id`` ``gmat.script.<absolute path>``, label
  ``gmat.script.path``); the ``on-script-updated`` deployment's trigger starts a
  sweep of that script. Anything may emit it: ``prefect-gmat emit-script-updated``,
  :func:`emit_script_updated`, ``prefect event emit``, a CI job, a file watcher.
* ``gmat.sweep.completed``: a sweep flow finished (whatever its runs' statuses).
  Its resource is the sweep directory (``gmat.sweep.<out>``, label
  ``gmat.sweep.out``), related to the script; the payload carries the counts,
  the directory and the bundle, so a follower deployment can pick it up.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect.events import Event, Resource, emit_event
from prefect.events.clients import get_events_client
from prefect.settings import PREFECT_API_URL

from prefect_gmat.errors import PrefectGmatError
from prefect_gmat.study.spec import canonical_script_sha256

__all__ = [
    "SCRIPT_UPDATED",
    "SWEEP_COMPLETED",
    "emit",
    "emit_script_updated",
    "emit_sweep_completed",
    "script_resource",
    "sweep_resource",
]

SCRIPT_UPDATED = "gmat.script.updated"
SWEEP_COMPLETED = "gmat.sweep.completed"
SCRIPT_PATH_LABEL = "gmat.script.path"
SWEEP_OUT_LABEL = "gmat.sweep.out"

PathLike = str | os.PathLike[str]


def script_resource(script: PathLike) -> dict[str, str]:
    """The resource of a script: one id per absolute path, so triggers can match on it."""
    path = Path(script).expanduser().resolve()
    return {
        "prefect.resource.id": f"gmat.script.{path}",
        "prefect.resource.name": path.name,
        SCRIPT_PATH_LABEL: str(path),
    }


def sweep_resource(out: PathLike) -> dict[str, str]:
    """The resource of a sweep: its directory, the one thing that names a sweep for good."""
    path = Path(out).expanduser().resolve()
    return {
        "prefect.resource.id": f"gmat.sweep.{path}",
        "prefect.resource.name": path.name,
        SWEEP_OUT_LABEL: str(path),
    }


def emit(
    event: str,
    resource: Mapping[str, str],
    *,
    payload: Mapping[str, Any] | None = None,
    related: list[dict[str, str]] | None = None,
) -> Event | None:
    """Emit from inside a flow or task: buffered by Prefect, related to the current run.

    Returns None where Prefect does not emit events (no API to send them to).
    """
    return emit_event(
        event,
        resource=dict(resource),
        payload=dict(payload) if payload is not None else None,
        related=related,
    )


def _send_now(event: Event) -> None:
    """Deliver one event and wait until it is sent (a short-lived process must not lose it)."""

    async def send() -> None:
        async with get_events_client() as client:
            await client.emit(event)

    asyncio.run(send())


def emit_script_updated(script: PathLike, *, payload: Mapping[str, Any] | None = None) -> Event:
    """Announce that ``script`` changed, to the server in ``PREFECT_API_URL``; wait until sent.

    The payload carries the script's canonical SHA-256, the same hash a sweep
    manifest records (so a listener can tell real edits from touches and match
    sweeps of this version), plus anything in ``payload``. Raises if no server is set: an
    event sent to a throw-away ephemeral server would reach no trigger.
    """
    path = Path(script).expanduser().resolve()
    if not path.is_file():
        raise PrefectGmatError(f"{path} is not a file; name the GMAT script that changed.")
    if not PREFECT_API_URL.value():
        raise PrefectGmatError(
            "PREFECT_API_URL is not set: events go to a running Prefect server, where the "
            "deployment triggers live. Start one (prefect server start) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api."
        )
    body = {"sha256": canonical_script_sha256(path), **(payload or {})}
    resource = Resource.model_validate(script_resource(path))
    event = Event(event=SCRIPT_UPDATED, resource=resource, payload=body)
    _send_now(event)
    return event


def emit_sweep_completed(summary: Mapping[str, Any], script: str | None) -> Event | None:
    """Announce a finished sweep with its counts, directory and bundle (from the flow's summary)."""
    keys = ("out", "bundle", "runs", "ran", "already_done", "ok", "failed")
    payload: dict[str, Any] = {key: summary.get(key) for key in keys}
    payload["script"] = script
    related = []
    if script:
        related.append({**script_resource(script), "prefect.resource.role": "script"})
    return emit(SWEEP_COMPLETED, sweep_resource(summary["out"]), payload=payload, related=related)
