"""Engine provisioning: explicit path, GMAT_ROOT, an installed GMAT, then the pip engine."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest

from prefect_gmat.engine.install import resolve_engine, shim_root
from prefect_gmat.errors import EngineNotFoundError


@pytest.fixture
def no_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No GMAT_ROOT, no platform install, no GMAT on PATH; a private cache."""
    import gmat_run.install as install

    monkeypatch.delenv("GMAT_ROOT", raising=False)
    monkeypatch.setenv("PREFECT_GMAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(
        install, "_glob_patterns_for_platform", lambda _p: [str(tmp_path / "opt" / "gmat-*")]
    )
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    return tmp_path


def _fake_desktop_install(where: Path) -> Path:
    """A directory laid out like a desktop GMAT install (a copy of the shim root)."""
    shutil.copytree(shim_root(), where, symlinks=True)
    return where


def test_without_any_install_the_pip_engine_is_used(no_install: Path) -> None:
    found = resolve_engine()
    assert found.source == "pip"
    assert found.version == "R2026a"
    assert found.root.is_relative_to(no_install / "cache")
    assert (found.root / "bin" / "api_startup_file.txt").is_file()


def test_an_installed_gmat_wins_over_the_pip_engine(no_install: Path) -> None:
    desktop = _fake_desktop_install(no_install / "opt" / "gmat-R2026a")
    found = resolve_engine()
    assert (found.source, found.root) == ("installed", desktop.resolve())


def test_gmat_root_wins_over_an_installed_gmat(
    no_install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_desktop_install(no_install / "opt" / "gmat-R2026a")
    env_root = _fake_desktop_install(no_install / "env-gmat")
    monkeypatch.setenv("GMAT_ROOT", str(env_root))
    found = resolve_engine()
    assert (found.source, found.root) == ("GMAT_ROOT", env_root.resolve())


def test_explicit_path_wins_over_gmat_root(
    no_install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GMAT_ROOT", str(_fake_desktop_install(no_install / "env-gmat")))
    explicit = _fake_desktop_install(no_install / "mine")
    found = resolve_engine(explicit)
    assert (found.source, found.root) == ("explicit", explicit.resolve())


def test_prefer_pip_skips_an_installed_gmat(no_install: Path) -> None:
    _fake_desktop_install(no_install / "opt" / "gmat-R2026a")
    assert resolve_engine(prefer_pip=True).source == "pip"


@pytest.mark.parametrize("source", ["explicit", "GMAT_ROOT"])
def test_a_named_location_that_is_not_an_install_fails_loudly(
    no_install: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    bogus = no_install / "not-gmat"
    bogus.mkdir()
    if source == "GMAT_ROOT":
        monkeypatch.setenv("GMAT_ROOT", str(bogus))
    with pytest.raises(EngineNotFoundError, match="not a GMAT install") as info:
        resolve_engine(bogus if source == "explicit" else None)
    assert str(bogus) in str(info.value)
    assert "unset it to use the pip engine" in str(info.value)


def test_shim_root_is_reused_and_keyed_by_wheel_version(no_install: Path) -> None:
    first = shim_root()
    assert shim_root() == first
    import importlib.metadata

    assert first.name.startswith(f"gmatpy-{importlib.metadata.version('gmatpy')}-")
    startup = (first / "bin" / "api_startup_file.txt").read_text()
    assert str(first / "output") in startup  # paths point at the final root, not the staging dir
    assert ".building-" not in startup


def _build(cache: str) -> str:
    import os

    os.environ["PREFECT_GMAT_CACHE_DIR"] = cache
    return str(shim_root())


@pytest.mark.slow
def test_concurrent_builders_agree_on_one_complete_root(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        roots = pool.map(_build, [cache] * 8)
    assert len(set(roots)) == 1
    shim_dir = Path(roots[0]).parent
    assert [p.name for p in shim_dir.iterdir()] == [Path(roots[0]).name]  # no staging left


def test_the_shim_root_named_explicitly_is_still_the_pip_engine(no_install: Path) -> None:
    assert resolve_engine(shim_root()).source == "pip"
