"""Confine a deployment's parameters: paths under the worker's allowed directories, hooks
from its allow-list.

A flow run that a worker starts takes its parameters from whoever can reach the
server (the run form, ``prefect deployment run --param``, an event), so they are
input from outside: a ``script`` of ``/etc/passwd`` would have GMAT's parser echo
its lines into the run's logs, an ``out`` could write anywhere the worker can, a
``postprocess`` could import and call any function. The worker's operator says
what such a run may touch (``PREFECT_GMAT_ALLOWED_PATHS``,
``PREFECT_GMAT_ALLOWED_HOOKS``); everything else is refused before anything is
written or run, with a message that names the parameter, the path and the
setting to change, and never shows a file's content.

Whether a run is confined is Prefect's to say (the flow asks whether a
deployment started it); the checks here are plain functions of the allowed
directories and hooks, so they run, and are tested, without Prefect. The Python
API and the CLI are not confined: there the user is the operator.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prefect_gmat.core.layout import MANIFEST_NAME
from prefect_gmat.engine.install import shim_root
from prefect_gmat.errors import EngineNotFoundError, SweepSpecError
from prefect_gmat.settings import GmatSettings, get_settings
from prefect_gmat.study.request import SweepRequest
from prefect_gmat.study.spec import SweepSpec

__all__ = [
    "HOOKS_SETTING",
    "MAX_SCRIPT_BYTES",
    "PATHS_SETTING",
    "Confinement",
    "allowed_directories",
    "check_dask",
    "check_hook",
    "check_out",
    "check_path",
    "check_request",
    "check_script",
    "check_spec",
]

PATHS_SETTING = "PREFECT_GMAT_ALLOWED_PATHS"
HOOKS_SETTING = "PREFECT_GMAT_ALLOWED_HOOKS"
#: A confined script larger than this is refused unread: GMAT scripts are kilobytes, and
#: the check reads the whole file into memory.
MAX_SCRIPT_BYTES = 10 * 1024 * 1024
#: ``#Include`` files nest; deeper than this is refused rather than followed.
_MAX_INCLUDE_DEPTH = 16

_CREATE = re.compile(r"^[ \t]*Create[ \t]+\S", re.MULTILINE)
# GMAT's include directive reads another file as script text, and its parser echoes the
# lines it cannot read: an include is a read like the script's own (matched in any case,
# to be safe; where GMAT looks for it: _include_candidates).
_INCLUDE = re.compile(r"^[ \t]*#include\b(.*)$", re.MULTILINE | re.IGNORECASE)

Action = Literal["read", "write"]


def allowed_directories(
    paths: Sequence[str | os.PathLike[str]] | None, cwd: Path | None = None
) -> tuple[Path, ...]:
    """The allowed directories, resolved (``~``, ``..`` and symlinks); unset or empty: ``cwd``.

    Relative entries are taken from ``cwd`` (default: the current working directory,
    the flow run's).
    """
    base = (cwd or Path.cwd()).resolve()
    if not paths:
        return (base,)
    return tuple((base / Path(p).expanduser()).resolve() for p in paths)


def _resolved(value: str | os.PathLike[str]) -> Path:
    return Path(value).expanduser().resolve()


def _inside(path: Path, allowed: Collection[Path]) -> bool:
    return any(path.is_relative_to(root) for root in allowed)


def _where(allowed: Collection[Path]) -> str:
    return ", ".join(str(root) for root in allowed)


def _shown(value: str | os.PathLike[str], resolved: Path) -> str:
    """The path as given, and where it leads when that differs (a symlink, ``..``, ``~``)."""
    given = os.fspath(value)
    return repr(given) if given == str(resolved) else f"{given!r} (resolved: {resolved})"


def _refuse_outside(
    field: str,
    value: str | os.PathLike[str],
    resolved: Path,
    allowed: Collection[Path],
    *,
    action: Action,
    context: str,
) -> SweepSpecError:
    what = "read from" if action == "read" else "write sweeps to"
    return SweepSpecError(
        f"{context}{field}={_shown(value, resolved)} is outside the directories a deployment's "
        f"flow run may {what} on this worker ({PATHS_SETTING}: {_where(allowed)}); "
        f"nothing was read, run or written. Use a path under one of them, or have the "
        f"worker's operator add its directory to {PATHS_SETTING}.",
        field=field,
        value=os.fspath(value),
    )


def check_path(
    field: str,
    value: str | os.PathLike[str],
    allowed: Collection[Path],
    *,
    action: Action = "read",
    context: str = "",
) -> Path:
    """``value`` resolved, if it lies under an allowed directory; else SweepSpecError naming it.

    Resolving first (``~``, ``..``, symlinks) is what keeps a path from leaving the
    allowed directories through a link or a ``..``. ``context`` starts the message
    (where the path came from, when not from the parameter itself).
    """
    try:
        resolved = _resolved(value)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL in the text
        raise SweepSpecError(
            f"{context}{field}={os.fspath(value)!r} cannot be resolved to a path; "
            "nothing was read, run or written.",
            field=field,
            value=os.fspath(value),
        ) from None
    if not _inside(resolved, allowed):
        raise _refuse_outside(field, value, resolved, allowed, action=action, context=context)
    return resolved


def check_script(
    field: str,
    value: str | os.PathLike[str],
    allowed: Collection[Path],
    *,
    context: str = "",
) -> Path:
    """A confined script: under an allowed directory, and a GMAT script, not any file.

    A file that is not a regular file, over :data:`MAX_SCRIPT_BYTES`, binary (NUL
    bytes, not UTF-8 text), or without a ``Create`` line is refused by name and never
    handed to GMAT, whose parser would echo its lines into the run's logs. Every
    ``#Include`` it makes is confined the same way. A script that does not exist
    passes here: the spec's own check says so.
    """
    path = check_path(field, value, allowed, context=context)
    _check_gmat_text(
        field, value, path, allowed, context=context, depth=0, seen=set(), top=path.parent
    )
    return path


def _check_gmat_text(
    field: str,
    value: str | os.PathLike[str],
    path: Path,
    allowed: Collection[Path],
    *,
    context: str,
    depth: int,
    seen: set[Path],
    top: Path,
) -> None:
    """Refuse ``path`` (shown as ``value``) unless it is script text; then its includes."""
    if path in seen:
        return
    seen.add(path)
    name = f"{context}{field}={os.fspath(value)!r}"

    def refuse(why: str) -> SweepSpecError:
        return SweepSpecError(
            f"{name} {why}; it was not handed to GMAT and nothing was run or written. "
            "Pass the path of a GMAT .script.",
            field=field,
            value=os.fspath(value),
        )

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return  # the spec's own check names a missing script; GMAT, a missing include
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise refuse("is not a regular file")
    if info.st_size > MAX_SCRIPT_BYTES:
        raise refuse(
            f"is {info.st_size} bytes, over the {MAX_SCRIPT_BYTES // (1024 * 1024)} MB a "
            "GMAT script may have under a deployment"
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror})") from None
    if len(data) > MAX_SCRIPT_BYTES:
        raise refuse(f"is over the {MAX_SCRIPT_BYTES // (1024 * 1024)} MB limit")
    if b"\0" in data:
        raise refuse("is binary (it holds NUL bytes), not a GMAT script")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refuse("is not UTF-8 text, so not a GMAT script") from None
    if depth == 0 and not _CREATE.search(text):
        raise refuse("has no 'Create' line, so it is not a GMAT script")
    for number, target in _includes(text):
        if depth >= _MAX_INCLUDE_DEPTH:
            raise refuse(f"nests #Include deeper than {_MAX_INCLUDE_DEPTH} files")
        try:
            candidates = _include_candidates(target, path.parent, top)
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL in the text
            raise refuse(f"includes {target!r}, which cannot be resolved") from None
        for included in candidates:
            if not _inside(included, allowed):
                raise SweepSpecError(
                    f"{name} includes {target!r} (#Include, line {number}), which is "
                    f"{included}, outside the directories a deployment's flow run may read "
                    f"from on this worker ({PATHS_SETTING}: {_where(allowed)}); it was not handed "
                    "to GMAT and nothing was run or written. Include files under them, or "
                    f"have the worker's operator add the directory to {PATHS_SETTING}.",
                    field=field,
                    value=os.fspath(value),
                )
            _check_gmat_text(
                field,
                value,
                included,
                allowed,
                context=context,
                depth=depth + 1,
                seen=seen,
                top=top,
            )


def _include_candidates(target: str, including: Path, top: Path) -> list[Path]:
    """The files GMAT may read for ``#Include target``, resolved.

    An absolute target is the one file. A relative one GMAT looks for beside the
    including file, then in the working directory (measured with gmatpy R2026a); the
    top script's directory is added in case a nested include is taken from there. Each
    of them that exists is one GMAT may read; one that does not, it cannot.
    """
    path = Path(target).expanduser()
    if path.is_absolute():
        return [path.resolve()]
    found = [(base / path).resolve() for base in dict.fromkeys((including, top, Path.cwd()))]
    return [candidate for candidate in found if candidate.exists()]


def _includes(text: str) -> list[tuple[int, str]]:
    """``(line number, target)`` of each ``#Include`` in script ``text``."""
    found = []
    for match in _INCLUDE.finditer(text):
        target = match.group(1).split("%", 1)[0].strip().rstrip(";").strip().strip("'\"")
        if target:
            found.append((text.count("\n", 0, match.start()) + 1, target))
    return found


def check_hook(hook: str | None, hooks: Collection[str], *, context: str = "") -> None:
    """Refuse a postprocess hook the worker's allow-list does not name (checked before any
    import: importing a module runs its code)."""
    if hook is None or hook in hooks:
        return
    listed = ", ".join(sorted(hooks)) if hooks else f"none ({HOOKS_SETTING} is empty)"
    raise SweepSpecError(
        f"{context}postprocess={hook!r} is not a hook a deployment's flow run may call on "
        f"this worker (allowed: {listed}); nothing was imported, run or written. Pass one of "
        f"those, or have the worker's operator add it to {HOOKS_SETTING} "
        "(module:function, comma-separated).",
        field="postprocess",
        value=hook,
    )


def check_request(request: SweepRequest, allowed: Collection[Path], hooks: Collection[str]) -> None:
    """Everything a request names before it is resolved: what it reads, and its hook.

    The script, a samples file and a GMAT install (``gmat_root``, from the parameter or a
    GMAT Installation block) must lie under the allowed directories. The pip engine's own
    shim root, which an empty GMAT Installation block names, is the package's, not the
    user's, and passes.
    """
    check_hook(request.postprocess, hooks)
    if request.script is not None:
        check_script("script", request.script, allowed)
    points = request.points
    if points.samples_file is not None:
        check_path("samples_file", points.samples_file, allowed)
    if isinstance(points.samples, (str, os.PathLike)):
        check_path("samples", points.samples, allowed)
    root = request.knobs.gmat_root
    if root is not None and not _is_shim_root(root):
        check_path("gmat_root", root, allowed)


def check_dask(dask: str | None, configured: str | None) -> None:
    """``dask`` names a cluster class to start or a scheduler whose pickled results the flow
    loads: under a deployment only ``local`` or the worker's own setting may be named."""
    if dask is None or dask == "local" or dask == configured:
        return
    raise SweepSpecError(
        f"dask={dask!r} is refused: a deployment's flow run may use dask='local' or the "
        "cluster its worker's operator configured; to allow this one, set "
        "PREFECT_GMAT_DASK_ADDRESS on the worker.",
        field="dask",
        value=dask,
    )


def _is_shim_root(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` is the pip engine's shim root (built by the package, never user input)."""
    try:
        return _resolved(root) == shim_root().resolve()
    except (OSError, EngineNotFoundError):
        return False


def check_out(
    out: Path, request: SweepRequest, allowed: Collection[Path], hooks: Collection[str]
) -> None:
    """The sweep directory, once resolved and before anything creates it or reads its manifest
    for the spec; then what a resumed sweep's manifest names (its hook, its script).

    A resume, retry or extension calls the hook the manifest records and, without a
    ``script``, flies the manifest's script: confined like parameters, checked here
    before building the spec imports the hook.
    """
    context = "" if request.out is not None else "out not given, so under PREFECT_GMAT_OUTPUT_DIR: "
    check_path("out", request.out or out, allowed, action="write", context=context)
    if request.mode not in ("resume", "retry_failed", "extend"):
        return
    header = _recorded_header(out)
    recorded = f"from the manifest of the sweep in {out}: "
    hook = header.get("postprocess")
    if hook is not None:
        check_hook(str(hook), hooks, context=recorded)
    script = header.get("script_path")
    if script and request.script is None:
        check_script("script", str(script), allowed, context=recorded)


def _recorded_header(out: Path) -> dict[str, Any]:
    """The manifest's header line, or {} (no manifest, or one the sweep itself will refuse)."""
    try:
        with open(out / MANIFEST_NAME, "rb") as handle:
            header = json.loads(handle.readline(1024 * 1024))
    except (OSError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def check_spec(spec: SweepSpec | None, allowed: Collection[Path], hooks: Collection[str]) -> None:
    """The spec as built (for a resume or an extension, partly from the manifest): its
    script and hook, confined like the parameters."""
    if spec is None:
        return
    check_hook(spec.postprocess, hooks)
    check_script("script", spec.script, allowed)


@dataclass(frozen=True, slots=True)
class Confinement:
    """The allowed directories and hooks of one flow run, or none (:meth:`unconfined`).

    The flow builds one (confined when a deployment started it) and calls its checks at
    each step, so the unconfined case costs nothing and needs no branch there.
    """

    allowed: tuple[Path, ...] | None
    hooks: frozenset[str] = field(default_factory=frozenset)
    #: The worker's own dask setting: the one cluster a run may name besides "local".
    dask_address: str | None = None

    @classmethod
    def unconfined(cls) -> Confinement:
        """No checks: the Python API and the CLI, where the user is the operator."""
        return cls(None)

    @classmethod
    def from_settings(
        cls, settings: GmatSettings | None = None, cwd: Path | None = None
    ) -> Confinement:
        """The worker's ``PREFECT_GMAT_ALLOWED_PATHS`` and ``PREFECT_GMAT_ALLOWED_HOOKS``."""
        settings = settings or get_settings()
        return cls(
            allowed_directories(settings.allowed_paths, cwd),
            frozenset(settings.allowed_hooks),
            settings.dask_address,
        )

    def check_request(self, request: SweepRequest) -> None:
        if self.allowed is not None:
            check_request(request, self.allowed, self.hooks)
            check_dask(request.knobs.dask, self.dask_address)

    def check_out(self, out: Path, request: SweepRequest) -> None:
        if self.allowed is not None:
            check_out(out, request, self.allowed, self.hooks)

    def check_spec(self, spec: SweepSpec | None) -> None:
        if self.allowed is not None:
            check_spec(spec, self.allowed, self.hooks)
