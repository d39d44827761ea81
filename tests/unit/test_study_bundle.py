"""The bundle's writer: members deflated ahead in threads give the bytes zipfile streams."""

from __future__ import annotations

import hashlib
import io
import os
import random
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect_gmat.core.records import sha256_file
from prefect_gmat.study import bundle


def _members(tmp_path: Path) -> list[bundle._Member]:
    rng = random.Random(7)
    contents = {
        "a/empty.parquet": b"",
        "a/text.log": b"GMAT log line\n" * 5000,
        "b/noise.bin": rng.randbytes(3 << 20),  # incompressible: stored bigger than its size
        "b/mixed.parquet": (b"PAR1" + rng.randbytes(1000)) * 300,
    }
    members = []
    for name, data in contents.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        members.append(bundle._Member(name, sha256_file(path), len(data), source=path))
    members.append(bundle._Member("README.txt", "", 5, data=b"hello"))
    return members


def _zip(members: list[bundle._Member], ahead: bool) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member in members:
            if member.data is not None:
                digest = hashlib.sha256(member.data).hexdigest()
                member = bundle._Member(member.name, digest, member.size, data=member.data)
            bundle._write_member(zf, member, bundle._deflate(member) if ahead else None)
    return sink.getvalue()


def test_a_member_deflated_ahead_has_the_bytes_zipfile_streams(tmp_path: Path) -> None:
    members = _members(tmp_path)
    streamed = _zip(members, ahead=False)
    assert _zip(members, ahead=True) == streamed
    with zipfile.ZipFile(io.BytesIO(streamed)) as zf:
        assert zf.testzip() is None
        assert zf.read("a/text.log") == b"GMAT log line\n" * 5000


def test_deflating_ahead_keeps_the_order_and_skips_big_files(tmp_path: Path) -> None:
    members = _members(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        pairs = list(bundle._deflated_ahead(members, pool))
    assert [m.name for m, _ in pairs] == [m.name for m in members]
    assert pairs[-1][1] is None  # generated text is written as it is
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(bundle._DEFLATE_AHEAD_MAX_BYTES + 1)
    assert bundle._deflate(bundle._Member("big", "", os.path.getsize(big), source=big)) is None
