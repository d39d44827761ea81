"""Shared fixtures: one real Prefect test server for the session, and the demo script."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

REPO = Path(__file__).resolve().parents[1]
DEMO_SCRIPT = REPO / "src" / "prefect_gmat" / "scripts" / "leo_short.script"
DATA = Path(__file__).resolve().parent / "data"
SMA_GRID = {"Sat.SMA": [7000 + 100 * i for i in range(10)]}


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """A real Prefect server (temporary database) shared by every test in the session."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def demo_script() -> Path:
    return DEMO_SCRIPT
