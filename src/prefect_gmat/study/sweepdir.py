"""The sweep directory: refuse to clobber it, lock it, and decide what still has to run.

A directory holds at most one sweep: ``manifest.jsonl`` plus
``run-<id>/`` folders. Starting the same sweep (script and points) again
continues it, running only what is not ok, so a rerun or a retried flow run
skips finished work; starting a different one fails with the ways forward (a
new directory, ``overwrite=True``); two sweeps at once in one directory are
refused by an exclusive lock held for the sweep's life.

A sweep is its directory: moved, mounted at another path or unzipped from a
bundle, it resumes and grows where it is. A run's files are looked for in the
directory (:func:`prefect_gmat.core.layout.find_run_file`) and must still match
their recorded SHA-256; the script is found by its SHA-256 (:func:`find_script`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from prefect_gmat.core.layout import (
    BUNDLE_NAME,
    BUNDLE_SCRIPT_DIR,
    LOCK_NAME,
    MANIFEST_NAME,
    RESULTS_DIR,
    RUN_DIR_GLOB,
    find_run_file,
    is_run_dir_name,
    run_dir_name,
)
from prefect_gmat.core.records import TRANSIENT_FAILURES, RunJob, hashed_outputs, sha256_file
from prefect_gmat.engine.install import Engine
from prefect_gmat.errors import SweepDirectoryError, SweepSpecError
from prefect_gmat.study.designs import Design, check_n, check_seed, draw_seed, parse_perturb
from prefect_gmat.study.manifest import (
    ManifestData,
    ManifestWriter,
    make_header,
    read_manifest,
    rewrite_header,
)
from prefect_gmat.study.spec import Point, SweepSpec, canonical_script_sha256

__all__ = [
    "Mode",
    "SweepPlan",
    "design_for",
    "effective_parameter_spec",
    "extension_spec",
    "find_script",
    "lock_sweep_dir",
    "new_sweep_dir",
    "no_sweep_running",
    "outputs_intact",
    "plan_sweep",
    "preflight",
    "resume_spec",
    "seed_note",
    "sweep_dir_name",
]

Mode = Literal["new", "resume", "retry_failed", "overwrite", "extend"]


def sweep_dir_name(script: str | None, started: datetime, run_id: str | None = None) -> str:
    """``<script stem>-<start, UTC>[-<flow run id[:8]>]``: a sweep directory made for ``out``.

    Named after the flow run when there is one, not the clock, so a flow run retried
    from the UI (same id, same scheduled start) finds and continues its own sweep,
    while two runs scheduled in the same second still get their own directories.
    """
    stem = Path(script).stem if script else "sweep"
    name = f"{stem}-{started.astimezone(UTC):%Y%m%d-%H%M%S}"
    return f"{name}-{run_id[:8]}" if run_id else name


def new_sweep_dir(base: Path, script: str | None) -> Path:
    """A new sweep's directory under ``base``, named after the script and the time now."""
    return base / sweep_dir_name(script, datetime.now(UTC))


#: Sweep directories locked here, by thread, with how many holders: the API takes the lock
#: before its early runs, then the flow (in the same thread) takes it again.
_held: dict[tuple[int, Path], int] = {}
_held_lock = threading.Lock()


def _held_key(out: Path) -> tuple[int, Path]:
    """Who holds ``out``'s lock in this process: the thread, and the directory."""
    return threading.get_ident(), out.resolve()


@contextmanager
def lock_sweep_dir(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` for the duration of a sweep.

    Reentrant in one thread; another thread or process is refused, as before.
    """
    key = _held_key(out)  # only this thread adds or removes its own key
    with _held_lock:
        again = key in _held
    with nullcontext() if again else _exclusive(out):
        with _held_lock:
            _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            with _held_lock:
                _held[key] -= 1
                if not _held[key]:
                    del _held[key]


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    if out.exists() and not out.is_dir():
        raise SweepDirectoryError(
            f"output path {out} is a file; pass a directory (new or holding a sweep).",
            path=str(out),
        )
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK_NAME, "a+")  # noqa: SIM115 -- held open for the lock's life
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SweepDirectoryError(
                f"another sweep is running in {out} (process {holder}); wait for it to "
                "finish, or use a different output directory.",
                path=str(out),
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


@contextmanager
def no_sweep_running(out: Path) -> Iterator[None]:
    """Hold a shared lock on ``out`` while reading it, so no sweep writes meanwhile.

    A sweep holds the lock exclusively for its life; a directory without the lock
    file (gmat-sweep made it) has nothing to lock against.
    """
    with _held_lock:
        ours = _held_key(out) in _held
    if ours:  # this thread's own sweep holds it (the API's early start, then the flow)
        yield
        return
    try:
        fd = os.open(out / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepDirectoryError(
                f"a sweep is still running in {out}; wait for it to finish, then try again.",
                path=str(out),
            ) from None
        yield
    finally:
        os.close(fd)


def outputs_intact(record: Mapping[str, Any], root: Path | None = None) -> bool:
    """True if every output of an ok record exists and matches its recorded SHA-256.

    With ``root``, the record's sweep directory, each file is the one
    :func:`~prefect_gmat.core.layout.find_run_file` finds there (relative paths, a
    directory moved or unzipped); without it, the path as recorded.
    """
    hashes: Mapping[str, str] = record.get("output_sha256") or {}
    outputs = hashed_outputs(
        record.get("output_paths", {}),
        record.get("solver_paths", {}),
        record.get("extra_outputs", {}),
    )
    for key, raw in outputs.items():
        if root is None:
            path: Path | None = Path(raw) if Path(raw).is_file() else None
        else:
            path = find_run_file(root, int(record["run_id"]), str(raw))
        if path is None:
            return False
        expected = hashes.get(key)
        if expected is not None and sha256_file(path) != expected:
            return False
    return True


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What a sweep (or its resumption) will do."""

    spec: SweepSpec
    writer: ManifestWriter
    to_run: list[Point]
    done: int  # runs already finished ok and intact
    header: dict[str, Any]

    def jobs(self, points: Iterable[Point], timeout: float | None) -> list[RunJob]:
        """The engine's jobs for ``points``, each in its run folder in the sweep directory."""
        out = self.writer.path.parent
        return [
            RunJob(
                run_id=point.run_id,
                script_path=str(self.spec.script),
                overrides=point.overrides,
                run_dir=str(out / run_dir_name(point.run_id)),
                timeout=timeout,
                postprocess=self.spec.postprocess,
            )
            for point in points
        ]


def _same_sweep(existing: ManifestData, spec: SweepSpec, script_sha: str) -> bool:
    header = existing.header
    return bool(
        header.get("script_sha256") == script_sha
        and effective_parameter_spec(existing) == spec.parameter_spec()
        and header.get("postprocess") == spec.postprocess
    )


def effective_parameter_spec(existing: ManifestData) -> dict[str, Any]:
    """The header's ``parameter_spec``, with ``n`` grown by gmat-sweep's extensions.

    gmat-sweep's ``monte_carlo_extend`` appends runs past ``n`` without touching the
    header (the study's size is then the highest run id + 1); ours records the new ``n``.
    """
    spec = dict(existing.header.get("parameter_spec") or {})
    if spec.get("_kind") == "monte_carlo" and existing.records:
        spec["n"] = max(int(spec["n"]), max(existing.records) + 1)
    return spec


def design_for(
    out: Path | None,
    kind: Literal["monte_carlo", "latin_hypercube"],
    perturb: Any,
    n: Any,
    seed: Any,
) -> tuple[Design, str]:
    """The design to run into ``out``, and where its seed came from.

    ``seed=None`` draws one from the OS, unless ``out`` already holds this very study
    (a retried flow run, the same call again): then its recorded seed is kept, so the
    study continues with the same draws. The second value is ``"given"``, ``"drawn"``
    or ``"recorded"``.
    """
    recorded_perturb, count, chosen = parse_perturb(perturb), check_n(n), check_seed(seed)
    if chosen is not None:
        return Design(kind, recorded_perturb, count, chosen), "given"
    manifest = None if out is None else out / MANIFEST_NAME
    if manifest is not None and manifest.is_file():
        previous = effective_parameter_spec(read_manifest(manifest))
        same = (
            previous.get("_kind") == kind
            and previous.get("n") == count
            and previous.get("perturb") == recorded_perturb
        )
        if same and isinstance(previous.get("seed"), int):
            return Design(kind, recorded_perturb, count, int(previous["seed"])), "recorded"
    return Design(kind, recorded_perturb, count, draw_seed()), "drawn"


def preflight(out: Path, spec: SweepSpec | None, mode: Mode) -> SweepSpec:
    """Every check :func:`plan_sweep` makes, writing nothing; returns the spec to run.

    Also refuses at once a directory another sweep is writing (instead of after
    Prefect has started); call it before taking the lock.
    """
    if out.is_dir():
        with no_sweep_running(out):
            pass
    return _check_sweep_dir(out, spec, mode)


def seed_note(design: Design, source: str) -> str | None:
    """What to tell the user about a seed they did not give (None when they gave it)."""
    if source == "drawn":
        return (
            f"seed not given: drew seed {design.seed} from the OS for this {design.kind} "
            "study. It is recorded in the manifest (sweep_seed), so a resume draws the same "
            f"points; pass seed={design.seed} to draw them again elsewhere."
        )
    if source == "recorded":
        return (
            f"seed not given: continuing the {design.kind} study already in this directory "
            f"with its recorded seed {design.seed}."
        )
    return None


def _check_sweep_dir(out: Path, spec: SweepSpec | None, mode: Mode) -> SweepSpec:
    if out.exists() and not out.is_dir():
        raise SweepDirectoryError(
            f"output path {out} is a file; pass a directory (new or holding a sweep).",
            path=str(out),
        )
    manifest_path = out / MANIFEST_NAME
    if mode in ("resume", "retry_failed"):
        return _spec_for_resume(read_manifest(manifest_path), spec)
    if mode == "extend":
        if spec is None or spec.design is None:
            raise SweepDirectoryError(
                "extend needs the grown study; build it with extension_spec(out, n).",
                path=str(out),
            )
        _check_extension(read_manifest(manifest_path), spec.design.n)
        return spec
    if spec is None:
        raise SweepDirectoryError("a new sweep needs a script and a grid", path=str(out))
    if mode == "overwrite":
        return spec
    if manifest_path.exists():
        existing = read_manifest(manifest_path)
        if _same_sweep(existing, spec, canonical_script_sha256(spec.script)):
            return spec  # the same sweep again: continue it (see plan_sweep)
        raise SweepDirectoryError(
            f"{out} already holds a different sweep (another script or other points). "
            "Choose a new output directory, or pass overwrite=True to delete the old sweep "
            "first.",
            path=str(out),
        )
    if out.is_dir() and any(is_run_dir_name(p.name) for p in out.glob(RUN_DIR_GLOB)):
        raise SweepDirectoryError(
            f"{out} has run-* folders but no manifest.jsonl; it is not a sweep this package can "
            "continue. Choose a new output directory, or pass overwrite=True to delete them.",
            path=str(out),
        )
    return spec


def plan_sweep(out: Path, spec: SweepSpec | None, engine: Engine, mode: Mode) -> SweepPlan:
    """Prepare ``out`` for ``mode`` and list the points still to run. Call under the lock.

    A "new" sweep that finds the same sweep in ``out`` continues it like ``resume``;
    "extend" records the grown study in the header, then runs what is not ok (the
    new runs).
    """
    spec = _check_sweep_dir(out, spec, mode)
    manifest_path = out / MANIFEST_NAME
    if mode == "extend":
        start = _record_extension(read_manifest(manifest_path), spec)
        grown = read_manifest(manifest_path)
        writer = ManifestWriter.open_existing(manifest_path)
        todo = [
            p
            for p in spec.points()
            if p.run_id >= start and not _finished(grown.records.get(p.run_id), out)
        ]
        return SweepPlan(spec, writer, todo, len(spec) - len(todo), grown.header)
    if mode == "new" and manifest_path.exists():
        mode = "resume"  # the same sweep again (checked above): run what is not ok
    if mode in ("resume", "retry_failed"):
        existing = read_manifest(manifest_path)
        writer = ManifestWriter.open_existing(manifest_path)
        if mode == "resume":
            # What failed for good (the same input fails again) is retry_failed's to re-run.
            todo = [p for p in spec.points() if not _settled(existing.records.get(p.run_id), out)]
        else:
            failed = set(existing.failed_ids())
            todo = [p for p in spec.points() if p.run_id in failed]
        return SweepPlan(spec, writer, todo, len(spec) - len(todo), existing.header)
    if mode == "overwrite":
        _clear_sweep(out)
    header = make_header(
        script_sha256=canonical_script_sha256(spec.script),
        engine_version=engine.version,
        parameter_spec=spec.parameter_spec(),
        run_count=len(spec),
        seed=spec.seed,
        script_path=str(spec.script),
        engine_source=engine.source,
        postprocess=spec.postprocess,
        sweep_dir=str(out),
    )
    writer = ManifestWriter.create(manifest_path, header)
    return SweepPlan(spec, writer, list(spec.points()), 0, header)


def _finished(record: Mapping[str, Any] | None, root: Path) -> bool:
    return record is not None and record["status"] == "ok" and outputs_intact(record, root)


# --- the script, found by its hash --------------------------------------------------------


def find_script(header: Mapping[str, Any], root: Path) -> Path | None:
    """The sweep's script: the first candidate whose canonical SHA-256 is the header's.

    Candidates, in order: the recorded ``script_path``; the place that lies where it
    lay relative to the sweep directory when the sweep started (the header's
    ``sweep_dir``: both moved together, or are mounted elsewhere); its file name in
    the directory ``root``, in its ``script/`` (an unzipped bundle) and beside it; then
    any ``*.script`` in ``root`` and any file in ``root/script/``. None if none matches.
    """
    expected = header.get("script_sha256")
    if not expected:
        return None
    for candidate in _script_candidates(header, root):
        if candidate.is_file() and _script_sha(candidate) == expected:
            return candidate
    return None


def _script_candidates(header: Mapping[str, Any], root: Path) -> Iterator[Path]:
    recorded = header.get("script_path")
    if recorded:
        path = Path(recorded)
        yield path
        origin = header.get("sweep_dir")
        if origin and path.is_absolute() and Path(origin).is_absolute():
            yield Path(os.path.normpath(root / os.path.relpath(path, origin)))
        name = str(recorded).replace("\\", "/").rsplit("/", 1)[-1]
        yield from (root / name, root / BUNDLE_SCRIPT_DIR / name, root.parent / name)
    yield from sorted(root.glob("*.script"))
    bundled = root / BUNDLE_SCRIPT_DIR
    if bundled.is_dir():
        yield from sorted(bundled.iterdir())


def _script_sha(path: Path) -> str | None:
    try:
        return canonical_script_sha256(path)
    except (OSError, UnicodeDecodeError):
        return None


def _script_of(existing: ManifestData, doing: str) -> Path:
    """The script to ``doing`` (resume, extend) the sweep with, when none is given.

    The one :func:`find_script` finds; else the recorded one if it is still there
    (changed: the caller's hash check says so); else refused, saying what to pass.
    """
    root = existing.path.parent
    found = find_script(existing.header, root)
    if found is not None:
        return found
    recorded = existing.header.get("script_path")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    sha = str(existing.header.get("script_sha256") or "?")
    if not recorded:
        where = f"{existing.path} does not say where its script is (gmat-sweep's manifests do not)"
    else:
        where = f"the script {recorded} that {existing.path} names is not there any more"
    raise SweepDirectoryError(
        f"{where}, and no file in {root}, its {BUNDLE_SCRIPT_DIR}/ folder or beside it has the "
        f"sweep's script SHA-256 ({sha[:12]}...); pass script= with the .script the sweep ran "
        f"to {doing} (or put a copy of it in {root}).",
        path=str(existing.path),
    )


def resume_spec(out: Path, script: str | os.PathLike[str]) -> SweepSpec:
    """The sweep in ``out``, to resume with the script at ``script`` (it moved).

    Refused if ``script`` is not the one the sweep ran (its SHA-256 differs).
    """
    return _spec_for_resume(read_manifest(out / MANIFEST_NAME), None, script=script)


def _spec_for_resume(
    existing: ManifestData,
    spec: SweepSpec | None,
    *,
    script: str | os.PathLike[str] | None = None,
) -> SweepSpec:
    header = existing.header
    if spec is None:
        found = Path(script) if script is not None else _script_of(existing, "resume")
        spec = SweepSpec.from_parameter_spec(found, effective_parameter_spec(existing))
    spec = spec.with_postprocess(header.get("postprocess"))  # a resumed run calls it again
    sha = canonical_script_sha256(spec.script)
    if sha != header.get("script_sha256"):
        raise SweepDirectoryError(
            f"{spec.script} has changed since the sweep in {existing.path.parent} started "
            "(its SHA-256 differs from the manifest's); resuming would mix two scripts. "
            "Restore the script, or start a new sweep in a new directory.",
            path=str(existing.path),
        )
    if spec.parameter_spec() != effective_parameter_spec(existing):
        raise SweepDirectoryError(
            f"the grid differs from the one the sweep in {existing.path.parent} started with; "
            "resume without a grid (it is read from the manifest), or start a new sweep.",
            path=str(existing.path),
        )
    return spec


def _clear_sweep(out: Path) -> None:
    """Delete what a sweep wrote (manifest, run folders, bundle, results); leave anything else."""
    for child in out.iterdir():
        if child.is_dir() and (is_run_dir_name(child.name) or child.name == RESULTS_DIR):
            shutil.rmtree(child)
        elif child.name in (MANIFEST_NAME, BUNDLE_NAME) or (
            child.name.startswith(f".{BUNDLE_NAME}.") and child.name.endswith(".partial")
        ):
            child.unlink()  # the bundle and what a killed archive left behind


# --- extend -----------------------------------------------------------------------------


def extension_spec(
    out: Path,
    n: Any,
    *,
    script: str | os.PathLike[str] | None = None,
    allow_script_drift: bool = False,
) -> SweepSpec:
    """The Monte Carlo study in ``out`` grown to ``n`` runs, checked before anything runs.

    Its first runs are the study's own (draws depend only on the seed and the run id),
    so only the new ones run. Refused: not a Monte Carlo study, ``n`` not larger, runs
    of the study not ok yet, or a script changed since (unless ``allow_script_drift``).
    A flow run of an extension that is retried (the header already says ``n``)
    continues it instead.
    """
    existing = read_manifest(out / MANIFEST_NAME)
    header = existing.header
    kind = (header.get("parameter_spec") or {}).get("_kind", "grid")
    if kind == "latin_hypercube":
        raise SweepSpecError(
            f"{out} holds a Latin hypercube study, which cannot grow: its n strata per "
            "field would have to be re-cut into more, and its points would no longer be a "
            "Latin hypercube (gmat-sweep refuses this too). Run latin_hypercube(n=...) with "
            "the larger n into a new directory, or use monte_carlo, which grows.",
            field="n",
        )
    if kind != "monte_carlo":
        what = "a grid" if kind == "grid" else "explicit samples"
        raise SweepSpecError(
            f"{out} holds {what}, not a Monte Carlo study; extend grows Monte Carlo studies "
            "only. To add points, run sweep() with the new grid or samples into a new "
            "directory.",
            field="n",
        )
    design = Design.from_parameter_spec(effective_parameter_spec(existing))
    wanted = check_n(n)
    if _continuing_extension(existing, wanted):
        return _spec_for_resume(existing, None, script=script)  # this extension again
    _check_extension(existing, wanted)
    if script is None:
        recorded = header.get("script_path")
        if allow_script_drift and recorded and Path(recorded).is_file():
            script = recorded  # the script as it is now, changed or not
        else:
            script = _script_of(existing, "extend")
    spec = SweepSpec.from_design(script, design.grown(wanted))
    sha = canonical_script_sha256(spec.script)
    if sha != header.get("script_sha256") and not allow_script_drift:
        raise SweepDirectoryError(
            f"{spec.script} has changed since the study in {out} ran: its SHA-256 is {sha}, "
            f"the manifest's {header.get('script_sha256')}. The new runs would fly another "
            "script than the old ones. Restore the script, or pass allow_script_drift=True "
            "to extend anyway (the header then records which runs each script made).",
            path=str(existing.path),
        )
    return spec.with_postprocess(header.get("postprocess"))


def _continuing_extension(existing: ManifestData, wanted: int) -> bool:
    """True when the header already records an extension to ``wanted`` (a retried run)."""
    extensions = existing.header.get("extended") or [{}]
    return bool(
        wanted == int(effective_parameter_spec(existing)["n"])
        and extensions[-1].get("to_n") == wanted
    )


def _check_extension(existing: ManifestData, wanted: int) -> None:
    if _continuing_extension(existing, wanted):
        return
    now = int(effective_parameter_spec(existing)["n"])
    if wanted <= now:
        raise SweepSpecError(
            f"the study in {existing.path.parent} has {now} runs; extend(n=...) grows it "
            f"to n runs in total, so n must be more than {now} (got {wanted}). To finish "
            "runs that are not done, resume it.",
            field="n",
            value=wanted,
        )
    root = existing.path.parent
    unsettled = [i for i in range(now) if not _settled(existing.records.get(i), root)]
    if unsettled:
        shown = ", ".join(map(str, unsettled[:20])) + (" ..." if len(unsettled) > 20 else "")
        raise SweepSpecError(
            f"the study in {existing.path.parent} is not complete (runs {shown} are missing, "
            "failed for a reason that may pass on a retry, or their outputs changed); resume "
            "it first, then extend.",
            field="n",
            value=wanted,
        )


def _settled(record: Mapping[str, Any] | None, root: Path) -> bool:
    """Ok and intact, or failed for good (the same input fails again): a study can grow.

    gmat-sweep refuses any failed run; a run our worker failed deterministically
    (field, load, engine, postprocess) would only fail again on resume.
    """
    if _finished(record, root):
        return True
    failure = None if record is None else record.get("failure")
    return failure is not None and failure not in TRANSIENT_FAILURES


def _record_extension(existing: ManifestData, spec: SweepSpec) -> int:
    """Rewrite the header with the grown study; every record line is kept byte for byte.

    The new ``n`` is what both tools read, so a killed extension resumes to ``n``, and
    gmat-sweep sees the study it would have made with ``monte_carlo(n=...)``. Returns
    the first run id of the extension (of the one being continued, if so).
    """
    header = dict(existing.header)
    before = int(effective_parameter_spec(existing)["n"])
    if spec.design is None or spec.design.n == before:
        extensions = header.get("extended") or [{"from_n": before}]
        return int(extensions[-1]["from_n"])  # the extension is being continued
    sha = canonical_script_sha256(spec.script)
    if sha != header.get("script_sha256"):
        header["script_history"] = [
            *(header.get("script_history") or []),
            {"script_sha256": header.get("script_sha256"), "run_ids": [0, before - 1]},
        ]
        header["script_sha256"], header["script_path"] = sha, str(spec.script)
        header["sweep_dir"] = str(existing.path.parent)  # where script_path was seen from
    header["parameter_spec"] = spec.parameter_spec()
    header["run_count"] = len(spec)
    header["sweep_seed"] = spec.seed
    header["extended"] = [
        *(header.get("extended") or []),
        {"from_n": before, "to_n": len(spec), "at": datetime.now(UTC).isoformat()},
    ]
    rewrite_header(existing.path, header)
    return before
