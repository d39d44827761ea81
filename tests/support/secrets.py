"""A secret dressed as a GMAT script, for the tests that a refused path is named, never shown."""

from __future__ import annotations

from pathlib import Path

#: What must never show: it is in the file a refused script names.
SECRET = "tok-7f3a9c1e5b2d4860-SECRET"


def secret_file(path: Path) -> Path:
    """A token file dressed as a GMAT script: GMAT's parser would echo these lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"Create Spacecraft Sat;\napi_token = '{SECRET}';\nGMAT Sat.SMA = {SECRET};\n")
    return path
