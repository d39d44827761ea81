"""A deployment's parameters are confined: paths under the worker's allowed directories,
hooks from its allow-list; a refused path is named, never shown.

The checks themselves (``prefect_gmat.study.confine``), with no server and no engine.
The same for real, a confined process worker running the ``sweep`` deployment four
times, is in tests/platform/test_platform.py (it shares that package's server and worker).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from prefect_gmat.core.layout import MANIFEST_NAME
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.settings import GmatSettings
from prefect_gmat.study import confine
from prefect_gmat.study.confine import (
    HOOKS_SETTING,
    MAX_SCRIPT_BYTES,
    PATHS_SETTING,
    Confinement,
    allowed_directories,
    check_hook,
    check_out,
    check_path,
    check_request,
    check_script,
    check_spec,
)
from prefect_gmat.study.request import Knobs, Points, SweepRequest
from prefect_gmat.study.spec import SweepSpec
from tests.support.paths import DEMO_SCRIPT
from tests.support.secrets import SECRET, secret_file

#: A hook no worker allows.
UNLISTED_HOOK = "os.path:join"


def _assert_named_not_shown(error: pytest.ExceptionInfo[SweepSpecError], field: str) -> None:
    message = str(error.value)
    assert SECRET not in message and SECRET not in repr(error.value.payload)
    assert error.value.field == field
    assert f"{field}=" in message


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    """An allowed directory holding the demo script; beside it, a secret outside."""
    root = tmp_path / "allowed"
    root.mkdir()
    shutil.copy(DEMO_SCRIPT, root / "leo.script")
    secret_file(tmp_path / "outside" / "secret.script")
    return root


# --- the checks, no server and no engine ---------------------------------------------------


def test_a_path_inside_passes_resolved(allowed: Path) -> None:
    dirs = allowed_directories([allowed])
    assert check_path("script", allowed / "sub" / ".." / "leo.script", dirs) == (
        allowed / "leo.script"
    )
    assert check_script("script", str(allowed / "leo.script"), dirs) == allowed / "leo.script"


def test_dot_dot_cannot_leave_the_allowed_directories(allowed: Path) -> None:
    sneaky = f"{allowed}/../outside/secret.script"
    with pytest.raises(SweepSpecError) as error:
        check_script("script", sneaky, allowed_directories([allowed]))
    _assert_named_not_shown(error, "script")
    message = str(error.value)
    assert repr(sneaky) in message
    assert f"resolved: {allowed.parent / 'outside' / 'secret.script'}" in message
    assert PATHS_SETTING in message and str(allowed) in message
    assert error.value.value == sneaky


def test_symlinks_cannot_leave_the_allowed_directories(allowed: Path) -> None:
    outside = allowed.parent / "outside"
    (allowed / "link.script").symlink_to(outside / "secret.script")
    (allowed / "linked-dir").symlink_to(outside, target_is_directory=True)
    dirs = allowed_directories([allowed])
    with pytest.raises(SweepSpecError) as error:
        check_script("script", allowed / "link.script", dirs)
    _assert_named_not_shown(error, "script")
    with pytest.raises(SweepSpecError) as error:
        check_path("out", allowed / "linked-dir" / "new-sweep", dirs, action="write")
    _assert_named_not_shown(error, "out")
    assert "write sweeps" in str(error.value)
    # An allowed directory given through a symlink is the directory it leads to.
    (allowed.parent / "alias").symlink_to(allowed, target_is_directory=True)
    assert allowed_directories([allowed.parent / "alias"]) == (allowed,)
    check_path("script", allowed / "leo.script", allowed_directories([allowed.parent / "alias"]))


def test_the_setting_reads_pathsep_text_and_json(
    allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PATHS_SETTING, f"{allowed}{os.pathsep} ~/data {os.pathsep}")
    assert GmatSettings().allowed_paths == [allowed, Path("~/data")]
    monkeypatch.setenv(PATHS_SETTING, json.dumps([str(allowed), "/srv/a:b"]))
    assert GmatSettings().allowed_paths == [allowed, Path("/srv/a:b")]  # JSON keeps a ':'
    monkeypatch.setenv(HOOKS_SETTING, "pkg.hooks:summarise, other:f")
    assert GmatSettings().allowed_hooks == ["pkg.hooks:summarise", "other:f"]
    monkeypatch.setenv(HOOKS_SETTING, f"pkg.hooks:summarise{os.pathsep}other:f")
    assert GmatSettings().allowed_hooks == ["pkg.hooks:summarise", "other:f"]
    monkeypatch.setenv(HOOKS_SETTING, '["pkg.hooks:summarise"]')
    assert GmatSettings().allowed_hooks == ["pkg.hooks:summarise"]
    monkeypatch.setenv(HOOKS_SETTING, "pkg.hooks")
    with pytest.raises(ValueError, match=HOOKS_SETTING):
        GmatSettings()


def test_the_default_is_the_working_directory(
    allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(allowed)
    monkeypatch.delenv(HOOKS_SETTING, raising=False)
    monkeypatch.delenv(PATHS_SETTING, raising=False)
    unset = Confinement.from_settings()
    monkeypatch.setenv(PATHS_SETTING, "")
    empty = Confinement.from_settings()
    assert unset.allowed == empty.allowed == (allowed,)
    assert unset.hooks == frozenset()  # no hooks unless listed
    # Relative entries are taken from the working directory too.
    assert allowed_directories(["scripts", "~"]) == (allowed / "scripts", Path.home().resolve())
    unset.check_request(SweepRequest(script="leo.script", out="sweeps/a"))
    with pytest.raises(SweepSpecError, match="outside the directories"):
        unset.check_request(SweepRequest(script="../outside/secret.script"))


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (f"Create Spacecraft Sat;\0{SECRET}\n".encode(), "binary"),
        (b"\xff\xfe" + f"Create Spacecraft Sat; {SECRET}".encode("utf-16-le"), "binary"),
        (f"Create Spacecraft Sat;\n% {SECRET}\n".encode("latin-1") + b"\xe9\xff", "not UTF-8"),
        (f"root:x:0:0:{SECRET}:/root:/bin/bash\nGMAT Sat.SMA = 7000;\n".encode(), "no 'Create'"),
    ],
)
def test_a_file_that_is_not_a_gmat_script_is_named_not_echoed(
    allowed: Path, content: bytes, why: str
) -> None:
    path = allowed / "not-gmat.script"
    path.write_bytes(content)
    with pytest.raises(SweepSpecError, match=why) as error:
        check_script("script", path, allowed_directories([allowed]))
    _assert_named_not_shown(error, "script")
    assert "not handed to GMAT" in str(error.value)


def test_an_oversized_or_special_script_is_refused_unread(allowed: Path) -> None:
    big = allowed / "big.script"
    with open(big, "wb") as handle:  # sparse: the size is what is checked, before reading
        handle.write(b"Create Spacecraft Sat;\n")
        handle.truncate(MAX_SCRIPT_BYTES + 1)
    dirs = allowed_directories([allowed])
    with pytest.raises(SweepSpecError, match=f"over the {MAX_SCRIPT_BYTES // 2**20} MB") as error:
        check_script("script", big, dirs)
    _assert_named_not_shown(error, "script")
    fifo = allowed / "pipe.script"
    os.mkfifo(fifo)  # reading it would block the flow run
    with pytest.raises(SweepSpecError, match="not a regular file"):
        check_script("script", fifo, dirs)
    with pytest.raises(SweepSpecError, match="not a regular file"):
        check_script("script", allowed, dirs)
    # A missing script passes here: the spec's own check names it.
    assert check_script("script", allowed / "missing.script", dirs) == allowed / "missing.script"


def test_an_include_outside_is_refused(allowed: Path) -> None:
    """GMAT's ``#Include`` reads another file as script text and echoes what it cannot parse."""
    dirs = allowed_directories([allowed])
    (allowed / "parts").mkdir()
    (allowed / "parts" / "sat.inc").write_text("Create Spacecraft Sat2;\n")
    good = allowed / "with-include.script"
    good.write_text(f"#Include 'parts/sat.inc'\n{DEMO_SCRIPT.read_text()}")
    check_script("script", good, dirs)
    for include in ("'../outside/secret.script'", '"../outside/secret.script";  % slip'):
        bad = allowed / "bad-include.script"
        bad.write_text(f"Create Spacecraft Sat;\n  #Include {include}\n")
        with pytest.raises(SweepSpecError, match=r"\(#Include, line 2\)") as error:
            check_script("script", bad, dirs)
        _assert_named_not_shown(error, "script")
    # Nested: an allowed include that includes a file outside.
    (allowed / "parts" / "sat.inc").write_text("#Include '../../outside/secret.script'\n")
    with pytest.raises(SweepSpecError, match="outside the directories"):
        check_script("script", good, dirs)


def test_hooks_must_be_listed(allowed: Path) -> None:
    check_hook(None, frozenset())
    check_hook("pkg.hooks:summarise", {"pkg.hooks:summarise"})
    with pytest.raises(SweepSpecError) as error:
        check_hook(UNLISTED_HOOK, {"pkg.hooks:summarise"})
    assert error.value.field == "postprocess" and error.value.value == UNLISTED_HOOK
    assert HOOKS_SETTING in str(error.value) and "pkg.hooks:summarise" in str(error.value)
    with pytest.raises(SweepSpecError, match=f"none \\({HOOKS_SETTING} is empty\\)"):
        check_hook(UNLISTED_HOOK, frozenset())
    # Refused before it is imported: a module that does not exist fails on the list, not
    # on its import.
    request = SweepRequest(script=str(allowed / "leo.script"), postprocess="no_such_mod:f")
    with pytest.raises(SweepSpecError, match=HOOKS_SETTING):
        check_request(request, allowed_directories([allowed]), frozenset())


def test_a_request_reads_only_inside(allowed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Script, samples file and GMAT install are confined; the pip engine's shim root is not."""
    dirs = allowed_directories([allowed])
    outside = allowed.parent / "outside"
    script = str(allowed / "leo.script")
    shim = allowed.parent / "cache" / "shim" / "gmatpy-x"
    monkeypatch.setattr(confine, "shim_root", lambda: shim)
    check_request(SweepRequest(script=script, knobs=Knobs(gmat_root=str(shim))), dirs, ())
    cases = {
        "samples_file": SweepRequest(
            script=script, points=Points(samples_file=str(outside / "s.csv"))
        ),
        "samples": SweepRequest(script=script, points=Points(samples=str(outside / "s.csv"))),
        "gmat_root": SweepRequest(script=script, knobs=Knobs(gmat_root="/opt/gmat-R2026a")),
        "script": SweepRequest(script=str(outside / "secret.script")),
    }
    for field, request in cases.items():
        with pytest.raises(SweepSpecError) as error:
            check_request(request, dirs, ())
        _assert_named_not_shown(error, field)
    # The error crosses processes and Prefect results intact.
    copy = pickle.loads(pickle.dumps(error.value))
    assert (str(copy), copy.field, copy.value) == (
        str(error.value),
        error.value.field,
        error.value.value,
    )


def test_out_and_what_its_manifest_records(allowed: Path) -> None:
    dirs = allowed_directories([allowed])
    outside = allowed.parent / "outside" / "out"
    with pytest.raises(SweepSpecError, match="write sweeps") as error:
        check_out(outside, SweepRequest(out=str(outside)), dirs, ())
    assert error.value.field == "out"
    with pytest.raises(SweepSpecError, match="PREFECT_GMAT_OUTPUT_DIR"):
        check_out(outside, SweepRequest(), dirs, ())  # the default directory, outside
    # A resumed sweep's manifest names its hook and its script: both confined.
    out = allowed / "sweep"
    out.mkdir()
    header = {"schema_version": 1, "postprocess": UNLISTED_HOOK, "script_path": "/etc/passwd"}
    (out / MANIFEST_NAME).write_text(json.dumps(header) + "\n")
    resume = SweepRequest(out=str(out), mode="resume")
    with pytest.raises(SweepSpecError, match=f"manifest of the sweep in {out}.*{HOOKS_SETTING}"):
        check_out(out, resume, dirs, ())
    with pytest.raises(SweepSpecError, match="script='/etc/passwd' is outside") as error:
        check_out(out, resume, dirs, {UNLISTED_HOOK})
    assert error.value.field == "script"
    check_out(out, SweepRequest(out=str(out)), dirs, ())  # a new sweep does not use them
    # The built spec, whatever it was read from.
    spec = SweepSpec.from_grid(allowed / "leo.script", {"Sat.SMA": [7000]})
    check_spec(spec, dirs, ())
    check_spec(None, dirs, ())
    with pytest.raises(SweepSpecError, match=HOOKS_SETTING):
        check_spec(spec.with_postprocess(UNLISTED_HOOK), dirs, ())


def test_unconfined_checks_nothing(allowed: Path) -> None:
    """The Python API and the CLI: the user is the operator."""
    fence = Confinement.unconfined()
    request = SweepRequest(script="/etc/passwd", postprocess=UNLISTED_HOOK, out="/tmp/x")
    fence.check_request(request)
    fence.check_out(Path("/tmp/x"), request)
    fence.check_spec(SweepSpec.from_grid(allowed / "leo.script", {"Sat.SMA": [7000]}))


def test_a_deployment_may_name_only_local_dask_or_the_workers_own_cluster() -> None:
    from prefect_gmat.study.confine import check_dask

    check_dask(None, None)
    check_dask("local", None)
    check_dask("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786")
    for named in ("tcp://evil:8786", "os.system"):
        with pytest.raises(SweepSpecError, match="PREFECT_GMAT_DASK_ADDRESS") as caught:
            check_dask(named, "tcp://10.0.0.5:8786")
        assert caught.value.field == "dask"
