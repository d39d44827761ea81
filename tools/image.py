"""Build the prefect-gmat container image: the package, the pip engine and its shim root.

``./dev image`` runs :func:`main`; the docker test calls :func:`build_image`. The
image holds exactly the locked versions: ``uv export`` lists them from ``uv.lock``,
the host's pip downloads their wheels for the *base image's* Python and platform
(found by running the base image), and the Dockerfile installs them with
``pip --no-index``, so the build needs no network and no pip set-up inside the
container. Without an image registry (``docker pull`` fails), the base image is a
Debian made locally with ``debootstrap``. Downloaded wheels are cached per
requirements and Python in the user cache, and docker keeps its layers, so a
second build of the same code is a cache hit.

:class:`DockerDaemon` starts ``dockerd`` (installing it with apt-get as root if
missing) when none answers, and stops only a daemon it started.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from prefect_gmat.engine.install import cache_dir

__all__ = [
    "DOCKER_DEPLOYMENT",
    "DOCKER_POOL",
    "IMAGE",
    "LOCAL_BASE",
    "REGISTRY_BASE",
    "SWEEPS_MOUNT",
    "BuildReport",
    "DockerDaemon",
    "DockerUnavailableError",
    "PythonTarget",
    "build_image",
    "docker",
    "ensure_base_image",
    "image_user",
    "main",
]

#: The image tag the docker deployment in ``prefect.yaml`` runs (the package's version).
IMAGE = f"prefect-gmat:{importlib.metadata.version('prefect-gmat')}"
#: The docker work pool and the deployment of the sweep flow on it (``prefect.yaml``).
DOCKER_POOL = "gmat-docker"
DOCKER_DEPLOYMENT = "sweep-docker"
#: Where sweeps go in the container: the volume's mount point, the image's output base.
SWEEPS_MOUNT = "/sweeps"
#: The base image for machines that can pull from a registry.
REGISTRY_BASE = "python:3.12-slim"
#: The base image built here with debootstrap when no registry answers (Python 3.13).
LOCAL_BASE = "local/debian:trixie"
DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: Where the build context is assembled, relative to the checkout (``.dockerignore`` lets
#: only this in).
CONTEXT = Path("dist/image-context")
#: The image's user when the caller is root (a non-root caller's own ids are used).
DEFAULT_UID = 1000

_DOCKERD_FLAGS = ("--iptables=false", "--bridge=none")
# overlay2 builds several times faster; vfs works anywhere (inside another container too).
_STORAGE_DRIVERS = ("overlay2", "vfs")
_DAEMON_TIMEOUT = 60.0


class DockerUnavailableError(RuntimeError):
    """No Docker daemon answers and none could be installed or started here."""


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; raise with its output if it fails."""
    return _run(["docker", *args], timeout=timeout)


def _run(
    command: Sequence[str], *, timeout: float = 600, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(command),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {done.returncode}:\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


def _daemon_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def _apt_install(*packages: str) -> None:
    """Install Debian packages (root only): the one way this module adds host software."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DockerUnavailableError(
            f"{', '.join(packages)} missing and this is not root on a Debian-like host; "
            f"install them (apt-get install {' '.join(packages)}) and retry."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    for command in (install, ["apt-get", "update"], install):  # stale lists: update, retry
        done = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode == 0 and command is install:
            return
    raise DockerUnavailableError(
        f"apt-get install {' '.join(packages)} failed ({done.returncode}):\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    )


@dataclass
class DockerDaemon:
    """A Docker daemon that answers: the running one, or ``dockerd`` started (and stopped) here.

    Started with no bridge or iptables, which works on a plain VM or inside another
    container (containers then use the host network), and the overlay2 storage
    driver, or vfs where overlay2 does not work.
    """

    log: Path = field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "prefect-gmat-dockerd.log"
    )
    started: subprocess.Popen[bytes] | None = None
    installed: bool = False
    storage_driver: str | None = None  # of a daemon started here
    startup_seconds: float = 0.0

    def __enter__(self) -> Self:
        self.ensure()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def ensure(self) -> None:
        """Make sure a daemon answers; raise :class:`DockerUnavailableError` saying why not."""
        if _daemon_answers():
            return
        began = time.monotonic()
        if shutil.which("dockerd") is None or shutil.which("docker") is None:
            _apt_install("docker.io")
            self.installed = True
        problems = []
        for driver in _STORAGE_DRIVERS:
            problem = self._start(driver, began)
            if problem is None:
                self.storage_driver = driver
                return
            problems.append(f"--storage-driver={driver}: {problem}")
        raise DockerUnavailableError("dockerd did not start:\n" + "\n".join(problems))

    def _start(self, driver: str, began: float) -> str | None:
        """Start dockerd with ``driver``; None once it answers, else why it did not."""
        with open(self.log, "ab") as handle:
            self.started = subprocess.Popen(
                ["dockerd", f"--storage-driver={driver}", *_DOCKERD_FLAGS],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _DAEMON_TIMEOUT
        while time.monotonic() < deadline:
            if self.started.poll() is not None:
                self.started = None
                tail = self.log.read_text(errors="replace").splitlines()[-5:]
                return "exited at start: " + " | ".join(tail)
            if _daemon_answers():
                self.startup_seconds = time.monotonic() - began
                return None
            time.sleep(0.5)
        self.stop()
        return f"no answer within {_DAEMON_TIMEOUT:.0f} s"

    def stop(self, grace: float = 20.0) -> None:
        """Stop the daemon if this object started it (SIGTERM, then SIGKILL); else nothing."""
        if self.started is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.started.pid, signal.SIGTERM)
        try:
            self.started.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.started.pid, signal.SIGKILL)
            self.started.wait()
        self.started = None


def _image_exists(tag: str) -> bool:
    probe = subprocess.run(
        ["docker", "image", "inspect", tag],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    return probe.returncode == 0


def _pullable(tag: str) -> bool:
    pulled = subprocess.run(
        ["docker", "pull", tag], stdin=subprocess.DEVNULL, capture_output=True, timeout=600
    )
    return pulled.returncode == 0


def debootstrap_base(tag: str = LOCAL_BASE, *, mirror: str = DEBIAN_MIRROR) -> None:
    """Make ``tag`` from Debian's packages: a minimal Debian with Python 3 and venv."""
    if shutil.which("debootstrap") is None:
        _apt_install("debootstrap")
    with tempfile.TemporaryDirectory(prefix="prefect-gmat-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            timeout=1800,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-", tag], stdin=tar.stdout, capture_output=True, text=True
        )
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise RuntimeError(f"docker import of the debootstrap root failed: {imported.stderr}")


def ensure_base_image(base: str = "auto") -> str:
    """The base image to build on, made or pulled if missing.

    ``auto``: :data:`REGISTRY_BASE` if it is here or a registry serves it, else
    :data:`LOCAL_BASE`, debootstrapped once (docker keeps it between builds).
    """
    if base == "auto":
        base = (
            REGISTRY_BASE
            if _image_exists(REGISTRY_BASE) or _pullable(REGISTRY_BASE)
            else LOCAL_BASE
        )
    if _image_exists(base):
        return base
    if base == LOCAL_BASE:
        debootstrap_base(base)
    elif not _pullable(base):
        raise RuntimeError(f"base image {base!r} is neither here nor pullable; pass another --base")
    return base


@dataclass(frozen=True, slots=True)
class PythonTarget:
    """The Python a base image runs: what pip must download wheels for."""

    version: str  # "3.13"
    machine: str  # "x86_64"
    glibc: tuple[int, int]

    def platforms(self) -> list[str]:
        """Every manylinux tag this glibc accepts, newest first (pip does not expand them)."""
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{self.machine}" for m, name in legacy.items() if minor >= m]
        return tags


def base_python(base: str) -> PythonTarget:
    """Ask the base image which Python, machine and glibc it has."""
    probe = (
        "import json, platform, sys; "
        "print(json.dumps([f'{sys.version_info[0]}.{sys.version_info[1]}', "
        "platform.machine(), platform.libc_ver()[1]]))"
    )
    out = docker("run", "--rm", "--network", "none", base, "python3", "-c", probe).stdout
    version, machine, libc = json.loads(out.strip().splitlines()[-1])
    if tuple(int(p) for p in version.split(".")) < (3, 12):
        raise RuntimeError(f"{base} has Python {version}; the engine (gmatpy) needs 3.12 or later")
    glibc_major, glibc_minor = (int(p) for p in libc.split(".")[:2])
    return PythonTarget(version, machine, (glibc_major, glibc_minor))


def _uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local" / "bin"))
    if found is None:
        raise RuntimeError("uv not found: run ./dev image (it installs uv), or pip install uv")
    return found


def _pip() -> list[str]:
    """A pip with this machine's index set-up (uv's virtualenvs have none of their own)."""
    for candidate in ([sys.executable, "-m", "pip"], ["pip3"], ["pip"], ["python3", "-m", "pip"]):
        with contextlib.suppress(OSError):
            if subprocess.run([*candidate, "--version"], capture_output=True).returncode == 0:
                return candidate
    raise RuntimeError("no pip found to download wheels with; install pip for python3")


def locked_requirements(repo: Path) -> str:
    """The run-time dependencies pinned in ``uv.lock``, ``docker`` extra included, for pip."""
    return _run(
        [
            _uv(),
            "export",
            "--frozen",
            "--no-dev",
            "--no-hashes",
            "--no-emit-project",
            "--extra",
            "docker",
        ],
        cwd=repo,
    ).stdout


def download_wheels(requirements: str, target: PythonTarget) -> Path:
    """Wheels of exactly the pinned versions for ``target``, cached by requirements and Python."""
    key = hashlib.sha256(
        f"{requirements}|{target.version}|{target.machine}|{target.glibc}".encode()
    ).hexdigest()[:16]
    wheels = cache_dir() / "image-wheels" / f"py{target.version}-{target.machine}-{key}"
    if (wheels / ".complete").is_file():
        return wheels
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=_mkdir(wheels.parent)))
    try:
        (staging / "requirements.txt").write_text(requirements, encoding="utf-8")
        platforms = [arg for tag in target.platforms() for arg in ("--platform", tag)]
        _run(
            [
                *_pip(),
                "download",
                "--quiet",
                "--no-deps",  # the lock is complete; nothing but its pins
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                target.version,
                *platforms,
                "--requirement",
                str(staging / "requirements.txt"),
                "--dest",
                str(staging),
            ],
            timeout=1800,
        )
        (staging / ".complete").write_text("", encoding="utf-8")
        shutil.rmtree(wheels, ignore_errors=True)
        os.rename(staging, wheels)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return wheels


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_context(repo: Path, target: PythonTarget) -> Path:
    """Fill ``dist/image-context``: requirements.txt, wheels/ (linked from the cache), dist/."""
    context = repo / CONTEXT
    requirements = locked_requirements(repo)
    wheels = download_wheels(requirements, target)
    shutil.rmtree(context, ignore_errors=True)
    (context / "wheels").mkdir(parents=True)
    (context / "requirements.txt").write_text(requirements, encoding="utf-8")
    for wheel in wheels.glob("*.whl"):
        try:
            os.link(wheel, context / "wheels" / wheel.name)
        except OSError:  # another filesystem
            shutil.copy2(wheel, context / "wheels" / wheel.name)
    _run([_uv(), "build", "--wheel", "--quiet", "--out-dir", str(context / "dist")], cwd=repo)
    return context


@dataclass
class BuildReport:
    """What :func:`build_image` built and how long each step took."""

    tag: str
    base: str
    python: str
    size_bytes: int
    user: str
    seconds: dict[str, float]


def image_user(tag: str) -> tuple[int, int]:
    """The numeric ``uid, gid`` the image runs as (own a host volume with them)."""
    user = docker("image", "inspect", "--format", "{{.Config.User}}", tag).stdout.strip()
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def build_image(
    repo: Path,
    *,
    tag: str = IMAGE,
    base: str = "auto",
    uid: int | None = None,
    gid: int | None = None,
) -> BuildReport:
    """Build ``tag`` from ``repo``'s Dockerfile on ``base``; a daemon must answer."""
    repo = repo.resolve()
    seconds: dict[str, float] = {}
    began = time.monotonic()
    base = ensure_base_image(base)
    seconds["base image"] = time.monotonic() - began
    target = base_python(base)
    step = time.monotonic()
    context = prepare_context(repo, target)
    seconds["wheels and context"] = time.monotonic() - step
    if uid is None:
        uid = os.getuid() or DEFAULT_UID
    if gid is None:
        gid = os.getgid() if os.getuid() else DEFAULT_UID
    step = time.monotonic()
    try:
        docker(
            "build",
            "--network",
            "none",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            f"GMAT_UID={uid}",
            "--build-arg",
            f"GMAT_GID={gid}",
            "--tag",
            tag,
            "--file",
            str(repo / "Dockerfile"),
            str(repo),
            timeout=1800,
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)  # hard links into the wheel cache
    seconds["docker build"] = time.monotonic() - step
    seconds["total"] = time.monotonic() - began
    size = int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    user = docker("image", "inspect", "--format", "{{.Config.User}}", tag).stdout.strip()
    return BuildReport(tag, base, target.version, size, user, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """``./dev image``: build the image, starting a Docker daemon first if none answers."""
    parser = argparse.ArgumentParser(
        prog="./dev image", description="Build the prefect-gmat container image."
    )
    parser.add_argument("--tag", default=IMAGE, help=f"image tag (default {IMAGE})")
    parser.add_argument(
        "--base",
        default="auto",
        help=f"base image: auto ({REGISTRY_BASE} if a registry serves it, else {LOCAL_BASE} "
        "made with debootstrap), or any image with Python >= 3.12",
    )
    parser.add_argument("--uid", type=int, help="the image user's uid (default: yours, or 1000)")
    parser.add_argument("--gid", type=int, help="the image user's gid (default: yours, or 1000)")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if not (repo / "Dockerfile").is_file():
        parser.error(f"no Dockerfile in {repo}: run ./dev image from a checkout")
    daemon = DockerDaemon()
    try:
        daemon.ensure()
    except DockerUnavailableError as exc:
        print(f"no Docker daemon: {exc}", file=sys.stderr)
        return 1
    if daemon.started is not None:
        print(
            f"started dockerd (pid {daemon.started.pid}, log {daemon.log}); it keeps running "
            f"for the worker: stop it with kill {daemon.started.pid}",
            file=sys.stderr,
        )
    report = build_image(repo, tag=args.tag, base=args.base, uid=args.uid, gid=args.gid)
    times = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    print(
        f"built {report.tag} on {report.base} (Python {report.python}, user {report.user}): "
        f"{report.size_bytes / 1e6:.0f} MB; {times}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
