"""Find a GMAT engine: a desktop install, or the pip ``gmatpy`` wheel behind a shim root.

The resolution order is: an explicit path, ``GMAT_ROOT``,
``gmat_run.locate_gmat()``'s platform search, then the pip engine. gmat-run only
knows GMAT *install directories*, so for the wheel we build a directory shaped
like one (the "shim root") once per wheel version, atomically, in a user cache.

This module never imports the wheel's ``gmatpy`` package itself: doing so in a
process that later bootstraps gmat-run breaks ``Mission.load`` there.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prefect_gmat.errors import EngineNotFoundError

__all__ = ["Engine", "cache_dir", "resolve_engine", "shim_root"]

_GMAT_VERSION = "R2026a"  # the release the gmatpy wheel packages
_SHIM_FORMAT = "1"  # bump when the shim layout changes


@dataclass(frozen=True, slots=True)
class Engine:
    """A resolved engine: the install root gmat-run loads, and where it came from."""

    root: Path
    version: str
    source: str  # "explicit", "GMAT_ROOT", "installed", "pip"


def cache_dir() -> Path:
    """Per-user cache directory (``$PREFECT_GMAT_CACHE_DIR``, else XDG cache)."""
    explicit = os.environ.get("PREFECT_GMAT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prefect-gmat"


def resolve_engine(
    gmat_root: str | os.PathLike[str] | None = None, *, prefer_pip: bool = False
) -> Engine:
    """Return the engine to use, in the documented order (``prefer_pip``: skip to the wheel).

    An explicit path or ``GMAT_ROOT`` that is not a valid install fails loudly:
    a user who named a location means it.
    """
    from gmat_run import GmatNotFoundError, locate_gmat

    if prefer_pip and gmat_root is None:
        return Engine(shim_root(), _GMAT_VERSION, "pip")
    # Our errors are raised outside the except blocks: gmat-run's GmatNotFoundError
    # does not unpickle, and a chained __context__ travels with ours (tblib).
    named = gmat_root is not None or bool(os.environ.get("GMAT_ROOT"))
    problem = None
    try:
        install = locate_gmat(gmat_root)
    except GmatNotFoundError as exc:
        problem = str(exc)
    if problem is None:
        source = "installed" if not named else "explicit" if gmat_root is not None else "GMAT_ROOT"
        if install.root.parent == (cache_dir() / "shim").resolve():
            source = "pip"  # a shim root named explicitly (e.g. by a GmatInstallation block)
        return Engine(install.root, install.version or "unknown", source)
    if named:
        where = gmat_root if gmat_root is not None else os.environ["GMAT_ROOT"]
        source = "explicit" if gmat_root is not None else "GMAT_ROOT"
        raise EngineNotFoundError(
            f"{source} points at {where!s}, which is not a GMAT install: {problem}. "
            "Fix the path, or unset it to use the pip engine (gmatpy).",
            engine_root=str(where),
        )
    return Engine(shim_root(), _GMAT_VERSION, "pip")


def _wheel_package_dir() -> Path:
    spec = importlib.util.find_spec("gmatpy")
    if spec is None or not spec.submodule_search_locations:
        raise EngineNotFoundError(
            "No GMAT install was found and the pip engine is missing. "
            "Install it with `pip install gmatpy` (Python >= 3.12), or set GMAT_ROOT."
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def shim_root() -> Path:
    """Build (once) and return an install-shaped directory over the gmatpy wheel.

    Keyed by the wheel's version and location, built in a temporary directory and
    renamed into place, so concurrent processes never see half a root.
    """
    package = _wheel_package_dir()
    version = importlib.metadata.version("gmatpy")
    key = hashlib.sha256(f"{_SHIM_FORMAT}|{version}|{package}".encode()).hexdigest()[:12]
    root = cache_dir() / "shim" / f"gmatpy-{version}-{key}"
    if (root / "api" / "load_gmat.py").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root.parent))
    try:
        _write_shim(staging, package, final=root)
        try:
            os.rename(staging, root)
        except OSError:
            if not (root / "api" / "load_gmat.py").is_file():
                raise
            # another process won the race with an identical root
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_shim(root: Path, package: Path, *, final: Path) -> None:
    """Write the shim into ``root``; paths inside it point at ``final``, its name after rename."""
    data = package / "data"
    bin_dir = root / "bin"
    (bin_dir / "gmatpy").mkdir(parents=True)
    (root / "api").mkdir()
    (root / "output").mkdir()
    output = final / "output"
    (bin_dir / "gmatpy" / "__init__.py").write_text(
        '"""Shim: expose the gmatpy wheel\'s native engine as a GMAT install\'s gmatpy."""\n'
        f"__path__.append({str(package)!r})\n"
        "from ._native.gmat_py import *  # noqa: F401,F403\n",
        encoding="utf-8",
    )
    (root / "api" / "load_gmat.py").write_text(
        "# Present so gmat-run recognises this directory as a GMAT install.\n", encoding="utf-8"
    )
    (bin_dir / "gmat_startup_file.txt").write_text(
        f"# GMAT {_GMAT_VERSION} engine from the gmatpy wheel (prefect-gmat shim)\n",
        encoding="utf-8",
    )
    paths = {
        "ROOT_PATH": package,
        "DATA_PATH": data,
        "TIME_PATH": data / "time",
        "PLANETARY_COEFF_PATH": data / "planetary_coeff",
        "PLANETARY_EPHEM_DE_PATH": data / "planetary_ephem/de",
        "PLANETARY_EPHEM_SPK_PATH": data / "planetary_ephem/spk",
        "EARTH_POT_PATH": data / "gravity/earth",
        "ATMOSPHERE_PATH": data / "atmosphere/earth",
    }
    unused = [
        "VEHICLE_EPHEM_PATH",
        "VEHICLE_EPHEM_SPK_PATH",
        "VEHICLE_EPHEM_CCSDS_PATH",
        "LUNA_POT_PATH",
        "VENUS_POT_PATH",
        "MARS_POT_PATH",
        "OTHER_POT_PATH",
        "TEXTURE_PATH",
        "BODY_3D_MODEL_PATH",
        "MEASUREMENT_PATH",
        "GUI_CONFIG_PATH",
        "SPLASH_PATH",
        "ICON_PATH",
        "STAR_PATH",
        "VEHICLE_MODEL_PATH",
        "SPAD_PATH",
        "IONOSPHERE_PATH",
        "MARS_ATMOSPHERE_PATH",
        "FILE_UPDATE_PATH",
        "HELP_PATH",
        "OUTPUT_PATH",
    ]
    paths.update(dict.fromkeys(unused, output))
    files = {
        "DE405_FILE": "planetary_ephem/de/gmatpy_de405_1941_2201.405",
        "PLANETARY_SPK_FILE": "planetary_ephem/spk/gmatpy_de405_all_planets.bsp",
        "EOP_FILE": "planetary_coeff/eopc04_08.62-now",
        "NUTATION_COEFF_FILE": "planetary_coeff/NUTATION.DAT",
        "PLANETARY_PCK_FILE": "planetary_coeff/SPICEPlanetaryConstantsKernel.tpc",
        "EARTH_LATEST_PCK_FILE": "planetary_coeff/earth_latest_high_prec.bpc",
        "EARTH_PCK_PREDICTED_FILE": "planetary_coeff/SPICEEarthPredictedKernel.bpc",
        "EARTH_PCK_CURRENT_FILE": "planetary_coeff/SPICEEarthCurrentKernel.bpc",
        "LUNA_PCK_CURRENT_FILE": "planetary_coeff/SPICELunaCurrentKernel.bpc",
        "LUNA_FRAME_KERNEL_FILE": "planetary_coeff/SPICELunaFrameKernel.tf",
        "LEAP_SECS_FILE": "time/tai-utc.dat",
        "LSK_FILE": "time/SPICELeapSecondKernel.tls",
        "EGM96_FILE": "gravity/earth/EGM96.cof",
        "JGM2_FILE": "gravity/earth/JGM2.cof",
        "JGM3_FILE": "gravity/earth/JGM3.cof",
        "EARTH_EXPONENTIAL_FILE": "atmosphere/earth/EarthExponentialAtmosphereData.txt",
        "ICRF_FILE": "icrf/ICRF_Table.txt",
    }
    # A wrong data path segfaults the engine, so check before writing the root.
    missing = [str(data / rel) for rel in files.values() if not (data / rel).is_file()]
    if missing:
        raise EngineNotFoundError(
            "The gmatpy wheel is missing engine data files: "
            + ", ".join(missing)
            + ". Reinstall it with `pip install --force-reinstall gmatpy`."
        )
    lines = [
        "MATLAB_MODE = NO_MATLAB",
        "RUN_MODE = TESTING_NO_PLOTS",
        "WRITE_PERSONALIZATION_FILE = OFF",
        f"LOG_FILE = {(output / 'GmatLog.txt').as_posix()}",
    ]
    lines += [f"{key} = {value.as_posix()}/" for key, value in paths.items()]
    lines += [f"{key} = {(data / rel).as_posix()}" for key, rel in files.items()]
    # Space-weather files are not in the wheel; GMAT needs names even for constant flux.
    lines += [
        f"CSSI_FLUX_FILE = {(output / 'unbundled-space-weather.txt').as_posix()}",
        f"SCHATTEN_FILE = {(output / 'unbundled-schatten.txt').as_posix()}",
    ]
    (bin_dir / "api_startup_file.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
