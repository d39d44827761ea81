"""Fixtures: the session's Prefect test server (opt-in), and the sweeps tests share.

A test that talks to Prefect (a flow or task, blocks, ``sweep()`` and the other entry
points, which run a flow, artifacts, events) asks for the server: a ``prefect_server``
argument, ``@pytest.mark.usefixtures("prefect_server")``, or a module's ``pytestmark``.
The server starts once, at the first test that asks. A subprocess reaches it through
``prefect_api_env``. Tests that need neither never start it. Helpers are in
``tests/support``; nothing imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.paths import DEMO_SCRIPT
from tests.support.points import SMA_GRID

if TYPE_CHECKING:  # imported where used: importing Prefect's test server alone takes ~9 s
    from tests.support.faults import SweepProcesses
    from tests.support.reference import ReferenceSweep
    from tests.support.sweepdir import Swept


#: The modules that take longest, longest first: pytest-xdist hands out work units (a
#: module, or the platform package) in collection order, so these start first and the
#: workers end together. Measured with ``--durations``; the rest keep their order.
LONGEST_FIRST = (
    "test_platform.py",
    "test_docker.py",
    "test_first_hour.py",
    "test_designs.py",
    "test_resume.py",
    "test_sweep_faults.py",
    "test_dask_cluster.py",
    "test_analysis.py",
    "test_kept_server.py",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's work units: a module, and the platform package as one (its tests share
    one server: tests/platform/conftest.py), handed out in collection order."""
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    class ModuleOrPlatform(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/platform" if module.startswith("tests/platform/") else module

    return ModuleOrPlatform(config, log)


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the Prefect server runs a flow end to end, so it is slow:
    ``-m "not slow"`` (the fast set) keeps what needs neither the server nor a sweep.
    Then the longest modules go first (see LONGEST_FIRST)."""
    for item in items:
        if "prefect_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept


@pytest.fixture(scope="session", autouse=True)
def _test_environment() -> None:
    """Settings for every test and every process it starts (no server is started here)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # its SQLite noise
    # Plot artifacts cost up to a second per sweep; tests/test_analysis.py turns them on.
    os.environ.setdefault("PREFECT_GMAT_PLOT_METRIC", "off")


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A real Prefect server (temporary database), shared by the tests that ask for it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def prefect_api_env(prefect_server: None) -> dict[str, str]:
    """The environment for a subprocess that uses the session's server: this process's,
    with ``PREFECT_API_URL``, so the child skips Prefect's temporary server start-up."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


@pytest.fixture
def sweep_processes(prefect_api_env: dict[str, str]) -> Iterator[SweepProcesses]:
    """Starts sweeps in processes of their own (to kill them); all are gone after the test."""
    from tests.support.faults import SweepProcesses

    processes = SweepProcesses(prefect_api_env)
    try:
        yield processes
    finally:
        processes.kill_all()


@pytest.fixture
def demo_script() -> Path:
    return DEMO_SCRIPT


@pytest.fixture(scope="session")
def walkthrough(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Swept:
    """The walkthrough sweep (the demo script over ``SMA_GRID``, two workers, archived),
    run once for every test that only reads it; a test that changes it uses a copy."""
    from prefect_gmat import sweep
    from tests.support.sweepdir import Swept

    out = tmp_path_factory.mktemp("walkthrough") / "leo"
    return Swept(out, sweep(DEMO_SCRIPT, grid=SMA_GRID, out=out, workers=2))


@pytest.fixture(scope="session")
def gmat_sweep_walkthrough(tmp_path_factory: pytest.TempPathFactory) -> ReferenceSweep:
    """gmat-sweep 0.6.0's own walkthrough sweep and its bundle, run once (no Prefect)."""
    from tests.support.reference import ReferenceSweep, reference_sweep

    base = tmp_path_factory.mktemp("gmat-sweep-walkthrough")
    out, bundle = base / "theirs", base / "theirs.zip"
    frame = reference_sweep(DEMO_SCRIPT, SMA_GRID, out, bundle=bundle)
    return ReferenceSweep(out, frame, bundle)
