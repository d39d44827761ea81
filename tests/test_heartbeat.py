"""The sweep flow stops its flow run's heartbeat thread once its runs are recorded."""

from __future__ import annotations

import threading
import time
from uuid import UUID, uuid4

import pytest
from prefect import flow
from prefect.runtime import flow_run

from prefect_gmat.runtime.heartbeat import stop_heartbeat

pytestmark = pytest.mark.usefixtures("prefect_server")


def _heartbeat_threads() -> list[threading.Thread]:
    """Prefect's heartbeat threads in this process, by the loop they run."""
    return [
        t
        for t in threading.enumerate()
        if getattr((getattr(t, "_args", ()) or (None,))[0], "__name__", None) == "heartbeat_loop"
    ]


def test_the_heartbeat_thread_of_this_flow_run_stops_when_asked() -> None:
    @flow(name="heartbeat-stops")
    def asks() -> tuple[int, bool, bool, int]:
        before = len(_heartbeat_threads())
        elsewhere = uuid4()
        assert UUID(flow_run.id) != elsewhere
        other = stop_heartbeat(flow_run_id=elsewhere)
        stopped = stop_heartbeat()
        deadline = time.monotonic() + 3.0  # it sleeps in 1 s steps
        while len(_heartbeat_threads()) >= before and time.monotonic() < deadline:
            time.sleep(0.05)
        return before, other, stopped, len(_heartbeat_threads())

    before, other, stopped, after = asks()
    assert before >= 1, "Prefect ran this flow without a heartbeat thread"
    assert other is False, "another flow run's heartbeat was stopped"
    assert stopped is True
    assert after == before - 1
    assert stop_heartbeat() is False  # outside a flow run
