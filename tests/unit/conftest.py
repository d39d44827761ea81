"""Fixtures of the unit tests: a GMAT script on disk, an engine record, a fake ``gmat_run``.

No Prefect server is started for them (see :func:`prefect_server`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_gmat.engine import run as engine_run
from prefect_gmat.engine.install import Engine
from tests.unit.fakes import SCRIPT_TEXT, FakeGmatRun, make_fake_gmat_run

#: What ``start_engine`` would have recorded; the fake checks Mission.load receives it.
FAKE_ENGINE_ROOT = "/opt/fake-gmat"


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """No Prefect server here: this replaces tests/conftest.py's autouse fixture of the
    same name for tests/unit, whose modules never talk to Prefect."""
    yield


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """A small GMAT script (nothing runs it: only its path and its bytes matter)."""
    path = tmp_path / "mission.script"
    path.write_text(SCRIPT_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(root=tmp_path / "gmat", version="R2026a", source="explicit")


@pytest.fixture
def fake_gmat_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGmatRun]:
    """A fake ``gmat_run`` in ``sys.modules``, and the worker's engine as if started."""
    fake = make_fake_gmat_run()
    monkeypatch.setitem(sys.modules, "gmat_run", fake.module)
    monkeypatch.setattr(engine_run, "_gmat", fake.gmat)
    monkeypatch.setattr(engine_run, "_engine_root", FAKE_ENGINE_ROOT)
    yield fake
