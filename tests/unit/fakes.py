"""Fakes shared by the unit tests: a ``gmat_run`` stand-in, and sweep directories on disk.

The fake ``gmat_run`` follows gmat-sweep 0.6.0's test suite (its conftest installs a
fake module in ``sys.modules``), shaped after gmat-run 0.6.0's real surface:
``Mission.load(path, gmat_root=)``, ``mission[key]`` / ``mission[key] = value``
raising ``GmatFieldError(message, path, value)`` with gmat-run's messages,
``mission.run(working_dir=, overwrite=)`` returning results with ``reports``,
``ephemerides``, ``solver_runs``, ``converged`` and ``log``, and
``GmatRunError(message, log, *, path=None)``. The engine's log file is faked too:
:class:`FakeGmat` is what :func:`prefect_gmat.engine.run.start_engine` keeps, and a
failing load writes its log text to the file it was last pointed at, as GMAT does.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pandas as pd

from prefect_gmat.core.layout import MANIFEST_NAME, run_dir_name
from prefect_gmat.core.records import FailureKind, Outcome, sha256_file
from prefect_gmat.study.manifest import ManifestWriter, outcome_record

# --- the fake gmat_run module -------------------------------------------------------------


class FakeGmatLoadError(Exception):
    """gmat-run's ``GmatLoadError``: the script did not parse."""


class FakeGmatFieldError(Exception):
    """gmat-run's ``GmatFieldError(message, path, value=None)``."""

    def __init__(self, message: str, path: str, value: Any = None) -> None:
        super().__init__(message)
        self.path = path
        self.value = value


class FakeGmatRunError(Exception):
    """gmat-run's ``GmatRunError(message, log, *, path=None)``."""

    def __init__(self, message: str, log: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.log = log
        self.path = path


class RaisingMapping(Mapping[str, pd.DataFrame]):
    """A lazy ``Results.reports`` whose file cannot be parsed: reading it raises."""

    def __init__(self, exc: BaseException) -> None:
        self._exc = exc

    def __getitem__(self, key: str) -> pd.DataFrame:
        raise self._exc

    def __iter__(self) -> Iterator[str]:
        raise self._exc

    def __len__(self) -> int:
        raise self._exc


@dataclass
class FakeResults:
    """``gmat_run.Results``: only what the engine's ``execute`` reads."""

    reports: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    ephemerides: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    solver_runs: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    log: str = ""

    @property
    def converged(self) -> dict[str, bool]:
        """As gmat-run: from each solver frame's ``attrs["converged"]``."""
        return {name: bool(frame.attrs["converged"]) for name, frame in self.solver_runs.items()}


#: The coordinate systems GMAT lists in every mission (see engine/run.py's built-ins).
BUILT_INS = ("EarthMJ2000Eq", "EarthMJ2000Ec", "EarthFixed", "EarthICRF")


def default_resources() -> dict[str, dict[str, Any]]:
    """What the fake script creates: resource -> field -> value as loaded."""
    return {
        "Sat": {"SMA": 7000.0, "ECC": 0.001, "INC": 28.5, "DisplayStateType": "Keplerian"},
        "Prop": {"InitialStepSize": 30.0, "Type": "PrinceDormand78"},
    }


RunHook = Callable[["FakeMission", Path], FakeResults]
Refusal = Callable[[str, Any], str | None]


class FakeMission:
    """``gmat_run.Mission`` over a dict of resources, with gmat-run's error messages."""

    def __init__(
        self,
        script_path: Path,
        resources: dict[str, dict[str, Any]],
        run_hook: RunHook | None,
        refuse: Refusal | None,
    ) -> None:
        self.script_path = script_path
        self.resources = resources
        self.run_hook = run_hook
        self.refuse = refuse
        self.writes: list[tuple[str, Any]] = []
        self.run_calls: list[dict[str, Any]] = []

    def summary(self) -> SimpleNamespace:
        groups = [SimpleNamespace(category="CoordinateSystem", names=BUILT_INS)]
        if self.resources:
            groups.insert(0, SimpleNamespace(category="Resource", names=tuple(self.resources)))
        return SimpleNamespace(resource_groups=tuple(groups))

    def _fields_of(self, dotted: str, value: Any) -> tuple[dict[str, Any], str]:
        resource, _, name = dotted.partition(".")
        if resource not in self.resources:
            raise FakeGmatFieldError(
                f"unknown resource '{resource}' (no object by that name in the loaded script)",
                dotted,
                value,
            )
        fields = self.resources[resource]
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=3)
            hint = f"; did you mean: {', '.join(close)}?" if close else ""
            raise FakeGmatFieldError(f"unknown field '{name}' on Spacecraft{hint}", dotted, value)
        return fields, name

    def __getitem__(self, dotted: str) -> Any:
        fields, name = self._fields_of(dotted, None)
        return fields[name]

    def __setitem__(self, dotted: str, value: Any) -> None:
        self.writes.append((dotted, value))
        fields, name = self._fields_of(dotted, value)
        if isinstance(fields[name], float) and not isinstance(value, (int, float)):
            raise FakeGmatFieldError(
                f"type mismatch for '{dotted}': expected float, got {type(value).__name__}",
                dotted,
                value,
            )
        why = self.refuse(dotted, value) if self.refuse is not None else None
        if why is not None:
            raise FakeGmatFieldError(f"GMAT rejected write to '{dotted}': {why}", dotted, value)
        fields[name] = value

    def run(self, *, working_dir: Path | None = None, overwrite: bool = False) -> FakeResults:
        self.run_calls.append({"working_dir": working_dir, "overwrite": overwrite})
        assert working_dir is not None, "the engine always gives the run its directory"
        if self.run_hook is not None:
            return self.run_hook(self, Path(working_dir))
        return FakeResults()


class FakeGmat:
    """The bootstrapped ``gmatpy`` module, as far as the engine uses it: its log file."""

    def __init__(self) -> None:
        self.log_files: list[str] = []

    def UseLogFile(self, path: str) -> None:  # gmatpy's name
        self.log_files.append(path)

    @property
    def log_file(self) -> str | None:
        return self.log_files[-1] if self.log_files else None


@dataclass
class FakeGmatRun:
    """The fake module and the knobs a test turns: what loads, what a run returns."""

    module: ModuleType
    gmat: FakeGmat
    resources: dict[str, dict[str, Any]] = field(default_factory=default_resources)
    run_hook: RunHook | None = None
    refuse: Refusal | None = None
    #: When set, ``Mission.load`` writes this to the engine's log file and fails.
    load_log: str | None = None
    loads: list[tuple[str, Any]] = field(default_factory=list)
    missions: list[FakeMission] = field(default_factory=list)

    @property
    def mission(self) -> FakeMission:
        assert self.missions, "no mission was loaded"
        return self.missions[-1]

    def load(self, path: str | os.PathLike[str], *, gmat_root: Any = None) -> FakeMission:
        self.loads.append((str(path), gmat_root))
        if self.load_log is not None:
            target = self.gmat.log_file
            if target is not None and target != os.devnull:
                Path(target).write_text(self.load_log, encoding="utf-8")
            raise FakeGmatLoadError(f"GMAT could not parse '{path}'; check the GMAT log file")
        mission = FakeMission(Path(path), copy.deepcopy(self.resources), self.run_hook, self.refuse)
        self.missions.append(mission)
        return mission


def make_fake_gmat_run() -> FakeGmatRun:
    """A fresh fake; the ``fake_gmat_run`` fixture installs it as ``sys.modules["gmat_run"]``."""
    fake = FakeGmatRun(module=ModuleType("gmat_run"), gmat=FakeGmat())
    fake.module.__dict__.update(
        Mission=SimpleNamespace(load=fake.load),
        GmatLoadError=FakeGmatLoadError,
        GmatFieldError=FakeGmatFieldError,
        GmatRunError=FakeGmatRunError,
    )
    return fake


#: A GMAT log of a script that does not parse: noise, the error, the quoted script line.
LOAD_LOG = (
    "GMAT Build Date : Jan  1 2026\n"
    'Logging to "GmatLog.txt"\n'
    "Moderator is updating data files...\n"
    'Interpreter Exception: Cannot find object named "Satt" in line:\n'
    '   "Satt.SMA = 7000;"\n'
    "Script load failed\n"
)


# --- sweep directories on disk --------------------------------------------------------------

SCRIPT_TEXT = (
    "Create Spacecraft Sat\n"
    "Sat.SMA = 7000\n"
    "Create ReportFile Orbit\n"
    "BeginMissionSequence\n"
    "Propagate Prop(Sat) {Sat.ElapsedSecs = 60}\n"
)


def finished_run(
    out: Path,
    run_id: int,
    overrides: Mapping[str, Any],
    *,
    status: str = "ok",
    failure: FailureKind | None = None,
    error: str | None = None,
) -> Outcome:
    """The outcome a run leaves, its files written: a fake report (ok runs) and a worker.log.

    The report's bytes stand for a Parquet file: nothing here reads it, only hashes it.
    """
    run_dir = out / run_dir_name(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "worker.log"
    log.write_text(f"run_id={run_id}\n")
    if status != "ok":
        return Outcome(
            run_id,
            "failed",
            dict(overrides),
            started_at=100.0,
            ended_at=101.0,
            error=error or f"{failure} failure",
            failure=failure,
            log_path=str(log),
        )
    report = run_dir / "report__Orbit.parquet"
    report.write_bytes(f"PAR1 run {run_id} {sorted(overrides.items())}".encode())
    return Outcome(
        run_id,
        "ok",
        dict(overrides),
        output_paths={"report__Orbit": str(report)},
        output_sha256={"report__Orbit": sha256_file(report)},
        started_at=100.0,
        ended_at=101.0,
        log_path=str(log),
    )


def record(out: Path, *outcomes: Outcome) -> None:
    """Append the outcomes' records to the manifest in ``out``, as a sweep does."""
    ManifestWriter.open_existing(out / MANIFEST_NAME).append(outcome_record(o) for o in outcomes)
