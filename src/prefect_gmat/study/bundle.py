"""Sweep bundles: one deterministic, self-verifying ``.zip`` per finished sweep.

The member layout is gmat-sweep 0.6.0's (``MANIFEST.hash``,
``README.md``, ``manifest.jsonl``, ``runs/run-<id>/...``, ``script/<name>``),
so either tool reads the other's bundles. Unlike gmat-sweep, the bundled
manifest keeps ``converged`` and ``solver_paths`` and the solver Parquet files
travel with it, so a targeter that ran out of iterations stays visible after
handoff; our extra record fields (``attempts``, ``failure``, ``error``,
``output_sha256``) are kept too.

Bundles are written member by member in chunks (memory does not grow with the
number of runs), to a temporary file renamed into place, so a killed archive
never leaves half a zip under the final name. Every member's SHA-256 is in
``MANIFEST.hash`` (``sha256sum -c`` format); :func:`verify_bundle`,
:func:`extract_bundle` and :func:`load_bundle` check them all before trusting
anything in the bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path, PureWindowsPath
from typing import IO, Any

import pandas as pd

from prefect_gmat.core.layout import (
    BUNDLE_NAME,
    BUNDLE_RUNS_DIR,
    BUNDLE_SCRIPT_DIR,
    MANIFEST_NAME,
    WORKER_LOG,
    find_run_file,
    run_dir_name,
)
from prefect_gmat.core.records import hash_key, sha256_file
from prefect_gmat.errors import BundleError, ManifestError, SweepDirectoryError
from prefect_gmat.study.frame import aggregate
from prefect_gmat.study.manifest import ManifestData, fsync_dir, read_manifest
from prefect_gmat.study.spec import canonical_script_sha256
from prefect_gmat.study.sweepdir import find_script, no_sweep_running

__all__ = [
    "HASH_MEMBER",
    "BundleFacts",
    "archive",
    "bundle_facts",
    "extract_bundle",
    "load_bundle",
    "verify_bundle",
]

PathLike = str | os.PathLike[str]

#: Default bundle file name, written inside the sweep directory.
HASH_MEMBER = "MANIFEST.hash"
README_MEMBER = "README.md"
RUNS_DIR = BUNDLE_RUNS_DIR
SCRIPT_DIR = BUNDLE_SCRIPT_DIR

# gmat-sweep's frozen member timestamp and mode, so equal sweeps give equal bytes.
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16
_UNIX = 3  # ZipInfo.create_system; fixed so a bundle made on Windows has the same bytes
_CHUNK = 1 << 20
#: zlib's fastest level, for every member. On a sweep's Parquet reports (already
#: compressed by pyarrow) it deflates 2.9x faster than zlib's default (6, gmat-sweep's)
#: for a bundle 1.2 % bigger: 13.5 MB of ten-day reports, 0.36-0.46 s against 1.04-1.15 s.
_LEVEL = 1
_THREADS = 2  # hashing and deflating threads: the machine's cores are free after the runs
_DEFLATE_AHEAD = 8  # members deflated ahead of the writer, held in memory at most
_DEFLATE_AHEAD_MAX_BYTES = 16 << 20  # a bigger file is streamed by the writer itself
_AHEAD_MIN_BYTES = 32 << 10  # smaller files are hashed and deflated in place
_PATH_FIELDS = ("output_paths", "extra_outputs", "solver_paths")
_LISTED = 20  # bad members named in an error message; the payload has them all


@dataclass(frozen=True, slots=True)
class _Member:
    """One bundle member: a file to copy (``source``) or small generated text (``data``).

    A file's ``sha256`` is filled by :func:`_hash_files`, and checked against the hash
    its run recorded (``expected``), if any.
    """

    name: str
    sha256: str
    size: int
    source: Path | None = None
    data: bytes | None = None
    expected: str | None = None
    run_id: int | None = None


# --- writing ----------------------------------------------------------------------------


def archive(
    out: PathLike,
    bundle: PathLike | None = None,
    include_logs: bool = False,
    *,
    overwrite: bool = False,
    script: PathLike | None = None,
) -> Path:
    """Pack the sweep in ``out`` into one zip (default ``<out>/sweep_bundle.zip``); return its path.

    ``include_logs`` adds every run's ``worker.log`` (and points ``log_path`` at
    it; without logs ``log_path`` is null). The script is the one the
    manifest header names (``script_path``), or, if that moved, a file with its
    SHA-256 in or beside the sweep directory (see
    :func:`~prefect_gmat.study.sweepdir.find_script`); pass ``script=`` otherwise.
    It must hash to the header's ``script_sha256``, so a bundle never pairs outputs
    with a script that did not produce them.
    """
    root = _sweep_root(out)
    dest = Path(
        os.path.abspath(Path(bundle).expanduser() if bundle is not None else root / BUNDLE_NAME)
    )
    with no_sweep_running(root):
        manifest = read_manifest(root / MANIFEST_NAME)
        if manifest.torn_line is not None:
            raise BundleError(
                f"{manifest.path} ends in a half-written line (line {manifest.torn_line}): the "
                f"sweep was interrupted. Resume it first (prefect_gmat.resume({str(root)!r})), "
                "then archive the finished sweep.",
                path=str(manifest.path),
            )
        _check_destination(dest, overwrite)
        script_path = _find_script(manifest, root, script)
        members = _plan(manifest, root, script_path, include_logs)
        _write_zip(dest, members)
    return dest


def _sweep_root(out: PathLike) -> Path:
    root = Path(out).expanduser().resolve()
    if not root.exists():
        raise SweepDirectoryError(
            f"{root} does not exist; pass the `out` directory of a finished sweep.", path=str(root)
        )
    if not root.is_dir():
        raise SweepDirectoryError(
            f"{root} is a file; pass the `out` directory of a finished sweep (it holds "
            f"{MANIFEST_NAME}).",
            path=str(root),
        )
    if not (root / MANIFEST_NAME).is_file():
        raise SweepDirectoryError(
            f"{root} has no {MANIFEST_NAME}, so it is not a sweep directory; pass the `out` "
            "directory a sweep wrote.",
            path=str(root),
        )
    return root


def _check_destination(dest: Path, overwrite: bool) -> None:
    if dest.is_dir():
        raise BundleError(
            f"bundle path {dest} is a directory; pass a file path such as {dest / BUNDLE_NAME}.",
            path=str(dest),
        )
    if dest.exists() and not overwrite:
        raise BundleError(
            f"{dest} already exists; pass overwrite=True to replace it, or choose another "
            "bundle path.",
            path=str(dest),
        )


def _find_script(manifest: ManifestData, root: Path, script: PathLike | None) -> Path:
    """The script to bundle, checked against the manifest's canonical hash."""
    if script is None and (found := find_script(manifest.header, root)) is not None:
        return found
    if script is None:
        recorded = manifest.header.get("script_path")
        if not recorded:
            raise BundleError(
                f"{manifest.path} does not record where the sweep's script is (gmat-sweep "
                "manifests do not); pass script= with the .script the sweep ran.",
                path=str(manifest.path),
            )
        path = Path(recorded)
        if not path.is_file():
            raise BundleError(
                f"the sweep's script {path} (named in {manifest.path}) no longer exists; pass "
                "script= with its new location (no file in or beside the sweep directory has "
                "its SHA-256).",
                path=str(path),
            )
    else:
        path = Path(script).expanduser().resolve()
        if not path.is_file():
            raise BundleError(f"script {path} does not exist or is not a file.", path=str(path))
    try:
        sha = canonical_script_sha256(path)
    except UnicodeDecodeError:
        sha = "not UTF-8 text"
    expected = manifest.header.get("script_sha256")
    if sha != expected:
        raise BundleError(
            f"{path} is not the script this sweep ran: its canonical SHA-256 ({sha}) differs "
            f"from the manifest's script_sha256 ({expected}). Restore the original script, or "
            "pass script= with an unchanged copy; a bundle must carry the script that made "
            "its outputs.",
            path=str(path),
        )
    return path


def _plan(manifest: ManifestData, root: Path, script: Path, include_logs: bool) -> list[_Member]:
    """Every member, hashed (files in chunks), in bundle order, ``MANIFEST.hash`` included."""
    records: list[dict[str, Any]] = []
    members: list[_Member] = [_file_member(f"{SCRIPT_DIR}/{script.name}", script)]
    for run_id in sorted(manifest.records):
        record, run_members = _bundle_record(manifest.records[run_id], root, include_logs)
        records.append(record)
        members.extend(run_members)
    lines = [json.dumps(manifest.header, sort_keys=True)]
    lines += [json.dumps(r, sort_keys=True) for r in records]
    members = _hash_files(members, root)
    members.append(_data_member(MANIFEST_NAME, ("\n".join(lines) + "\n").encode("utf-8")))
    readme = _readme(manifest.header, records, f"{SCRIPT_DIR}/{script.name}", include_logs)
    members.append(_data_member(README_MEMBER, readme.encode("utf-8")))
    members.sort(key=lambda m: m.name)
    hash_text = "".join(f"{m.sha256}  {m.name}\n" for m in members)
    members.insert(0, _data_member(HASH_MEMBER, hash_text.encode("utf-8")))
    members.sort(key=lambda m: m.name)
    return members


def _bundle_record(
    record: Mapping[str, Any], root: Path, include_logs: bool
) -> tuple[dict[str, Any], list[_Member]]:
    """A record with bundle-relative paths, and the run's members (outputs of ok runs only)."""
    run_id = int(record["run_id"])
    prefix = f"{RUNS_DIR}/{run_dir_name(run_id)}"
    ok = record["status"] == "ok"
    hashes: Mapping[str, str] = record.get("output_sha256") or {}
    bundled = dict(record)
    members: dict[str, _Member] = {}
    for field in _PATH_FIELDS:
        if field not in record:
            continue
        rewritten: dict[str, str] = {}
        for key, raw in record[field].items():
            name = f"{prefix}/{_basename(raw)}"
            rewritten[key] = name
            if not ok:
                continue
            if name in members:
                raise BundleError(
                    f"run {run_id} has two outputs named {_basename(raw)}; they would collide "
                    "in the bundle.",
                    path=str(raw),
                )
            source = _locate(root, run_id, raw)
            expected = hashes.get(hash_key(field, key))
            members[name] = _file_member(name, source, expected=expected, run_id=run_id)
        bundled[field] = rewritten
    if "log_path" in record:
        bundled["log_path"] = None
    if include_logs and record.get("log_path"):
        log = find_run_file(root, run_id, str(record["log_path"]))
        if log is None:
            log = find_run_file(root, run_id, WORKER_LOG)
        if log is not None:
            name = f"{prefix}/{WORKER_LOG}"
            members[name] = _file_member(name, log)
            bundled["log_path"] = name
    return bundled, list(members.values())


def _basename(raw: str) -> str:
    return raw.replace("\\", "/").rsplit("/", 1)[-1]


def _locate(root: Path, run_id: int, raw: str) -> Path:
    """The file a record names, as :func:`~prefect_gmat.core.layout.find_run_file` finds it:
    in ``root`` first (relative paths, a directory moved or unzipped), then as recorded."""
    found = find_run_file(root, run_id, raw)
    if found is not None:
        return found
    path = Path(raw)
    path = path if path.is_absolute() else root / path
    raise BundleError(
        f"run {run_id} finished ok, but its output {path} is missing. Resume the sweep "
        f"(prefect_gmat.resume({str(root)!r})) to re-run it, then archive again.",
        path=str(path),
        run_id=run_id,
    )


def _file_member(
    name: str, source: Path, *, expected: str | None = None, run_id: int | None = None
) -> _Member:
    """A file to bundle, hashed later with the others (:func:`_hash_files`)."""
    return _Member(name, "", source.stat().st_size, source, expected=expected, run_id=run_id)


def _hash_files(members: list[_Member], root: Path) -> list[_Member]:
    """The members with every file hashed, by a few threads (hashing releases the GIL), each
    checked against the hash its run recorded."""

    def digest(member: _Member) -> str:
        return sha256_file(member.source) if member.source is not None else member.sha256

    with ThreadPoolExecutor(_THREADS, thread_name_prefix="bundle-hash") as hashing:
        ahead = {i: hashing.submit(digest, m) for i, m in enumerate(members) if _worth_a_thread(m)}
        hashed = [
            replace(m, sha256=ahead[i].result() if i in ahead else digest(m))
            for i, m in enumerate(members)
        ]
    for member in hashed:
        if member.expected is not None and member.sha256 != member.expected:
            raise BundleError(
                f"{member.source} has changed since run {member.run_id} wrote it (its SHA-256 "
                "no longer matches output_sha256 in the manifest); the file was modified or "
                f"damaged. Resume the sweep (prefect_gmat.resume({str(root)!r})) to re-run "
                "that run, then archive again.",
                path=str(member.source),
                run_id=member.run_id,
            )
    return hashed


def _data_member(name: str, data: bytes) -> _Member:
    return _Member(name, hashlib.sha256(data).hexdigest(), len(data), data=data)


def _write_zip(dest: Path, members: Sequence[_Member]) -> None:
    """Write to a temporary sibling, fsync, rename over ``dest``: all or nothing."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            with (
                zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=_LEVEL) as zf,
                ThreadPoolExecutor(_THREADS, thread_name_prefix="bundle-deflate") as deflating,
            ):
                for member, deflated in _deflated_ahead(members, deflating):
                    _write_member(zf, member, deflated)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


@dataclass(frozen=True, slots=True)
class _Deflated:
    """A member's file read and deflated ahead of its turn: what the zip needs of it."""

    data: bytes  # raw deflate (no zlib header), as zipfile writes it
    crc: int
    size: int
    sha256: str


def _deflate(member: _Member) -> _Deflated | None:
    """Deflate ``member``'s file as zipfile would (the bundle's level, raw stream); None
    for generated text and for files too big to hold in memory (they are streamed)."""
    if member.source is None or member.size > _DEFLATE_AHEAD_MAX_BYTES:
        return None  # for _write_member to stream
    raw = member.source.read_bytes()
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    data = compressor.compress(raw) + compressor.flush()
    return _Deflated(data, zlib.crc32(raw), len(raw), hashlib.sha256(raw).hexdigest())


def _deflated_ahead(
    members: Sequence[_Member], pool: ThreadPoolExecutor
) -> Iterator[tuple[_Member, _Deflated | None]]:
    """Each member with its file deflated by ``pool``, a few members ahead of the writer
    (zlib releases the GIL, so the cores left idle after the last run share it)."""
    window: deque[tuple[_Member, Future[_Deflated | None] | None]] = deque()
    for member in members:
        window.append((member, pool.submit(_deflate, member) if _worth_a_thread(member) else None))
        if len(window) > _DEFLATE_AHEAD:
            done, deflated = window.popleft()
            yield done, deflated.result() if deflated is not None else None
    while window:
        done, deflated = window.popleft()
        yield done, deflated.result() if deflated is not None else None


def _worth_a_thread(member: _Member) -> bool:
    """A file big enough that reading, hashing or deflating it in a thread gains more than
    handing it over costs (a short run's few-kB report is done faster in place)."""
    return member.source is not None and member.size >= _AHEAD_MIN_BYTES


def _write_member(zf: zipfile.ZipFile, member: _Member, deflated: _Deflated | None) -> None:
    info = zipfile.ZipInfo(member.name, date_time=_ZIP_TIME)
    info.external_attr = _FILE_MODE
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = _LEVEL  # type: ignore[attr-defined]  # what zf.open(info) deflates at
    info.create_system = _UNIX
    info.file_size = member.size  # as writestr sets it, so the ZIP64 choice is the same
    if deflated is not None:
        _changed_check(member, deflated.sha256, deflated.size)
        _write_deflated(zf, info, deflated)
        return
    digest = hashlib.sha256()
    with zf.open(info, "w") as sink:
        if member.data is not None:
            sink.write(member.data)
            digest.update(member.data)
        else:
            assert member.source is not None
            with open(member.source, "rb") as source:
                while chunk := source.read(_CHUNK):
                    sink.write(chunk)
                    digest.update(chunk)
    _changed_check(member, digest.hexdigest(), member.size)


def _changed_check(member: _Member, sha256: str, size: int) -> None:
    if sha256 != member.sha256 or size != member.size:
        raise BundleError(
            f"{member.source} changed while it was being archived; make sure nothing writes "
            "to the sweep directory, then archive again.",
            path=str(member.source),
        )


def _write_deflated(zf: zipfile.ZipFile, info: zipfile.ZipInfo, deflated: _Deflated) -> None:
    """Add a member deflated beforehand, with the bytes ``zf.open(info, "w")`` would write
    (tests/unit/test_study_bundle.py compares the two): the same local header, with its CRC
    and sizes written once instead of patched after the data. Uses zipfile's own steps."""
    info.flag_bits = 0  # a seekable file: no data descriptor
    zip64 = info.file_size * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's choice, before the data
    zf.fp.seek(zf.start_dir)  # type: ignore[union-attr]
    info.header_offset = zf.fp.tell()  # type: ignore[union-attr]
    zf._writecheck(info)  # type: ignore[attr-defined]
    zf._didModify = True  # type: ignore[attr-defined]
    info.CRC = deflated.crc
    info.compress_size = len(deflated.data)
    info.file_size = deflated.size
    zf.fp.write(info.FileHeader(zip64))  # type: ignore[union-attr]
    zf.fp.write(deflated.data)  # type: ignore[union-attr]
    zf.start_dir = zf.fp.tell()  # type: ignore[union-attr]
    zf.filelist.append(info)
    zf.NameToInfo[info.filename] = info


def _readme(
    header: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    script_member: str,
    include_logs: bool,
) -> str:
    """The bundle's README: what is in it and how to check and read it, with no tool assumed."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    breakdown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no runs"
    planned = header.get("run_count", len(records))
    reports = sorted(
        {
            key.removeprefix("report__")
            for r in records
            if r["status"] == "ok"
            for key in r.get("output_paths", {})
            if key.startswith("report__")
        }
    )
    solvers = sorted({s for r in records for s in r.get("converged") or {}})
    unconverged = [
        int(r["run_id"])
        for r in records
        if r["status"] == "ok" and not all((r.get("converged") or {}).values())
    ]
    runtime = sum(float(r.get("duration_s") or 0.0) for r in records)
    spec = header.get("parameter_spec") or {}
    if spec.get("_kind", "grid") == "grid":
        swept = ", ".join(f"{k} ({len(v)} values)" for k, v in spec.items() if k != "_kind")
    else:
        swept = ", ".join(spec.get("columns", [])) + f" ({spec.get('_kind')})"
    report = reports[0] if reports else "<Name>"
    swept_by = (
        f"prefect-gmat {header['prefect_gmat_version']}"
        if "prefect_gmat_version" in header
        else f"gmat-sweep {header.get('gmat_sweep_version', 'unknown')}"
    )
    lines = [
        f"# Sweep bundle — {len(records)} runs of {script_member.split('/', 1)[1]}",
        "",
        "This zip is a complete copy of a GMAT parameter sweep: the mission script, a manifest",
        "describing every run, and each run's output tables as Apache Parquet. It was written by",
        "prefect-gmat in the bundle layout of gmat-sweep 0.6.0, so it can be read with plain",
        "pandas, with prefect-gmat, or with gmat-sweep, without GMAT and without re-running.",
        "",
        "## Summary",
        "",
        f"- **Runs:** {len(records)} recorded of {planned} planned ({breakdown})",
        f"- **Swept:** {swept or 'nothing'}",
        f"- **Reports:** {', '.join(reports) or 'none'}",
    ]
    if solvers:
        not_converged = ", ".join(map(str, unconverged[:_LISTED]))
        if len(unconverged) > _LISTED:
            not_converged += ", ..."
        lines.append(
            f"- **Solvers:** {', '.join(solvers)}; runs that did not converge: "
            f"{not_converged or 'none'}"
        )
    lines += [
        f"- **Total runtime:** {runtime:.2f} s",
        f"- **Script SHA-256 (canonical):** `{header.get('script_sha256')}`",
        f"- **GMAT:** {header.get('gmat_install_version', 'unknown')}; gmat-run "
        f"{header.get('gmat_run_version', 'unknown')}; Python {header.get('python_version')}; "
        f"{header.get('os_platform')}",
        f"- **Swept by:** {swept_by} (backend {header.get('backend', 'unknown')}); archived by "
        f"prefect-gmat {version('prefect-gmat')}",
        f"- **Worker logs:** {'included' if include_logs else 'not included'}",
        "",
        "## Layout",
        "",
        "| Member | What it is |",
        "|---|---|",
        "| `README.md` | This file. |",
        "| `MANIFEST.hash` | SHA-256 of every other member, in `sha256sum` format. |",
        "| `manifest.jsonl` | JSON Lines: line 1 describes the sweep, then one line per run. |",
        f"| `{script_member}` | The GMAT script the sweep ran, byte for byte. |",
        "| `runs/run-<id>/report__<Name>.parquet` | Run `<id>`'s rows of ReportFile `<Name>`. |",
        "| `runs/run-<id>/ephemeris__<Name>.parquet` | Run `<id>`'s EphemerisFile `<Name>`. |",
        "| `runs/run-<id>/solver__<Name>.parquet` | Iterations of solver `<Name>` (Target). |",
        "| `runs/run-<id>/worker.log` | The run's log (only if archived with logs). |",
        "",
        "Only runs with status `ok` have Parquet files; a failed run keeps its manifest line,",
        "whose `stderr` says why it failed. Each report table has the report's columns in file",
        "order plus `time`, a copy of the first epoch column as a timestamp.",
        "",
        "The manifest header (line 1) holds `script_sha256`, `parameter_spec` (the grid or",
        "samples), `run_count` and the tool versions. Each run line holds `run_id`, `overrides`",
        "(the swept field values), `status` (`ok` or `failed`), `output_paths` and",
        "`solver_paths` (paths inside this bundle), `converged` (per solver; `false` means it",
        "stopped at MaximumIterations even though the run itself is `ok`), `stderr`, `log_path`,",
        "`started_at`/`ended_at`/`duration_s`, and (from prefect-gmat) `attempts`, `failure`,",
        "`error` and `output_sha256`. Run ids count from 0 in grid order: fields sorted by",
        "name, the last one varying fastest. Lines are in run-id order, one per run.",
        "",
        "## Verifying integrity",
        "",
        "```bash",
        "unzip sweep_bundle.zip -d sweep && cd sweep",
        "sha256sum -c MANIFEST.hash",
        "```",
        "",
        'or, without unzipping: `python -c "from prefect_gmat import verify_bundle; '
        "verify_bundle('sweep_bundle.zip')\"`.",
        "",
        "## Re-aggregating the runs",
        "",
        "With pandas (and pyarrow) alone, from the unzip directory:",
        "",
        "```python",
        "import json",
        "import pandas as pd",
        "",
        'with open("manifest.jsonl", encoding="utf-8") as f:',
        "    header, *runs = [json.loads(line) for line in f]",
        f'key = "report__{report}"',
        "df = pd.concat(",
        '    pd.read_parquet(r["output_paths"][key]).assign(run_id=r["run_id"])',
        "    for r in runs",
        '    if r["status"] == "ok" and key in r["output_paths"]',
        ').set_index(["run_id", "time"]).sort_index()',
        'swept = pd.DataFrame([r["overrides"] for r in runs], index=[r["run_id"] for r in runs])',
        "```",
        "",
        "With prefect-gmat, straight from the zip (verifies it first, leaves no files behind):",
        "",
        "```python",
        "from prefect_gmat import load_bundle",
        "",
        'df = load_bundle("sweep_bundle.zip")  # report=, params=True, converged=True',
        "```",
        "",
        "With gmat-sweep, from the unzip directory:",
        "",
        "```python",
        "from pathlib import Path",
        "from gmat_sweep import Manifest, lazy_multiindex",
        "",
        'df = lazy_multiindex(Manifest.load(Path("manifest.jsonl")), Path("."))',
        "```",
        "",
        "The last two give a frame indexed by `(run_id, time)` with a `__status` column, and one",
        "row with `time` = NaT for each run that has no rows, so failures stay visible.",
        "",
        "## Running it again",
        "",
        f"`{script_member}` and the header's `parameter_spec` are everything needed to re-run",
        "the sweep, e.g. `prefect_gmat.sweep(script, grid=..., out=...)` with the grid from",
        "`parameter_spec` (without its `_kind` key).",
    ]
    return "\n".join(lines) + "\n"


# --- reading ----------------------------------------------------------------------------


@contextmanager
def _open_bundle(path: PathLike) -> Iterator[tuple[Path, zipfile.ZipFile]]:
    where = Path(path).expanduser()
    if not where.is_file():
        raise BundleError(
            f"no bundle at {where}; pass the path of a sweep bundle (.zip).", path=str(where)
        )
    try:
        zf = zipfile.ZipFile(where)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(
            f"{where} is not a readable zip file ({exc}); it is damaged or not a sweep bundle.",
            path=str(where),
        ) from None
    with zf:
        yield where, zf


def _expected_hashes(where: Path, zf: zipfile.ZipFile) -> dict[str, str]:
    """``MANIFEST.hash`` as ``{member: sha256}`` (either ``sha256sum`` line style)."""
    try:
        text = zf.read(HASH_MEMBER).decode("utf-8")
    except KeyError:
        raise BundleError(
            f"{where} has no {HASH_MEMBER}, so it is not a sweep bundle (or it was re-zipped "
            "without it); its contents cannot be verified.",
            path=str(where),
            members=[HASH_MEMBER],
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as exc:
        raise BundleError(
            f"{where}: {HASH_MEMBER} is damaged ({exc}); re-create or re-download the bundle.",
            path=str(where),
            members=[HASH_MEMBER],
        ) from None
    expected: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, name = line.partition(" ")
        if not sep or len(digest) != 64 or name[:1] not in (" ", "*"):
            raise BundleError(
                f"{where}: {HASH_MEMBER} line {number} is not '<sha256>  <member>'; the "
                "bundle is damaged. Re-create or re-download it.",
                path=str(where),
                members=[HASH_MEMBER],
            )
        expected[name[1:]] = digest.lower()
    return expected


def _check_members(
    where: Path,
    zf: zipfile.ZipFile,
    sink: Callable[[str], IO[bytes]] | None = None,
) -> None:
    """Hash every member in chunks against ``MANIFEST.hash``; raise naming each bad one.

    With ``sink``, each member's bytes are also written to ``sink(name)`` as they
    are read, so extraction verifies in the same single pass.
    """
    expected = _expected_hashes(where, zf)
    problems: dict[str, str] = {}
    seen: set[str] = set()
    for info in zf.infolist():
        name = info.filename
        if info.is_dir():
            continue
        if name in seen:
            problems[name] = "appears more than once"
            continue
        seen.add(name)
        if name == HASH_MEMBER:
            if sink is not None:
                with sink(name) as copy:
                    copy.write(zf.read(info))
            continue
        want = expected.get(name)
        if want is None:
            problems[name] = f"is not listed in {HASH_MEMBER}"
            continue
        out = sink(name) if sink is not None else None
        digest = hashlib.sha256()
        try:
            with zf.open(info) as member:
                while chunk := member.read(_CHUNK):
                    digest.update(chunk)
                    if out is not None:
                        out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            problems[name] = f"cannot be read ({exc})"
            continue
        finally:
            if out is not None:
                out.close()
        if digest.hexdigest() != want:
            problems[name] = f"does not match its SHA-256 in {HASH_MEMBER}"
    for name in expected:
        if name not in seen:
            problems[name] = f"is listed in {HASH_MEMBER} but missing from the bundle"
    if problems:
        names = sorted(problems)
        listed = "\n".join(f"  - {n}: {problems[n]}" for n in names[:_LISTED])
        more = f"\n  ... and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
        raise BundleError(
            f"{where} failed verification; {len(names)} member(s) are bad:\n{listed}{more}\n"
            "The bundle was damaged or edited after it was written; re-create it from the "
            "sweep directory (prefect_gmat.archive) or fetch a good copy.",
            path=str(where),
            members=names,
        )


@dataclass(frozen=True, slots=True)
class BundleFacts:
    """What identifies a written bundle: where, how big, what it holds, its SHA-256."""

    path: Path
    size: int
    members: tuple[str, ...]
    sha256: str


def bundle_facts(path: PathLike) -> BundleFacts:
    """The facts a reader checks a copy against (``sha256sum``, member list)."""
    bundle = Path(path)
    with zipfile.ZipFile(bundle) as zf:
        members = tuple(sorted(zf.namelist()))
    return BundleFacts(bundle, bundle.stat().st_size, members, sha256_file(bundle))


def verify_bundle(path: PathLike) -> None:
    """Check every member against ``MANIFEST.hash``; raise :class:`BundleError` naming bad ones.

    Members are streamed, so any bundle size verifies in constant memory. The
    error's ``members`` payload lists every damaged, missing or unlisted member.
    """
    with _open_bundle(path) as (where, zf):
        _check_members(where, zf)


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this member could write outside the destination, if it could."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if not name or "\x00" in name:
        return "has an empty or invalid name"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "is an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "climbs out of the destination with '..'"
    return None


def extract_bundle(path: PathLike, dest: PathLike) -> Path:
    """Verify the bundle and unpack it into ``dest`` (new or empty); return ``dest``.

    Unpacks into a temporary sibling while hashing, and renames it to ``dest``
    only if every member verified, so ``dest`` never holds a damaged tree.
    Members that would land outside ``dest`` (absolute, ``..``, symlinks) are
    refused before anything is written.
    """
    target = Path(os.path.abspath(Path(dest).expanduser()))
    with _open_bundle(path) as (where, zf):
        unsafe = {i.filename: r for i in zf.infolist() if (r := _unsafe_reason(i)) is not None}
        if unsafe:
            names = sorted(unsafe)
            listed = "\n".join(f"  - {n!r}: {unsafe[n]}" for n in names[:_LISTED])
            raise BundleError(
                f"{where} has members that would be written outside {target}; refusing to "
                f"extract it:\n{listed}\nA sweep bundle never contains such members; do not "
                "trust this file.",
                path=str(where),
                members=names,
            )
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise BundleError(
                f"{target} already exists and is not an empty directory; extract into a new "
                "or empty directory.",
                path=str(target),
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        )
        try:

            def sink(name: str) -> IO[bytes]:
                file = staging / name
                file.parent.mkdir(parents=True, exist_ok=True)
                return open(file, "wb")  # closed by _check_members

            _check_members(where, zf, sink)
            os.chmod(staging, 0o755)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def load_bundle(
    path: PathLike,
    report: str | None = None,
    params: bool = False,
    *,
    converged: bool = False,
) -> pd.DataFrame:
    """Re-aggregate a bundle's per-run frame without running anything or leaving files behind.

    Same frame as the sweep returned (``(run_id, time)`` index, report columns,
    ``__status``); reads bundles from gmat-sweep 0.6.0 too. ``converged=True``
    adds ``__converged``: False for a run whose solver stopped without
    converging, True if all converged, <NA> for runs with no solver record.
    """
    with tempfile.TemporaryDirectory(prefix="prefect-gmat-bundle-") as tmp:
        root = extract_bundle(path, Path(tmp) / "bundle")
        manifest_path = root / MANIFEST_NAME
        if not manifest_path.is_file():
            raise BundleError(
                f"{path} has no {MANIFEST_NAME}; it is not a sweep bundle.",
                path=str(path),
                members=[MANIFEST_NAME],
            )
        try:
            manifest = read_manifest(manifest_path)
        except ManifestError as exc:
            raise BundleError(
                f"{path}: its {MANIFEST_NAME} cannot be read: {exc.message}",
                path=str(path),
                members=[MANIFEST_NAME],
            ) from None
        records = list(manifest.records.values())
        return aggregate(records, root, report=report, params=params, converged=converged)
