"""The archive task: bundle a finished sweep and publish the bundle's identity as an artifact.

The artifact (key ``sweep-bundle``) records the bundle's path, size, member
count and SHA-256, so whoever picks the bundle up from the Prefect UI can check
they hold the same bytes the flow wrote.
"""

from __future__ import annotations

import zipfile

from prefect import task
from prefect.artifacts import create_markdown_artifact

from prefect_gmat.bundle import archive
from prefect_gmat.runner import sha256_file

__all__ = ["ARTIFACT_KEY", "archive_sweep"]

ARTIFACT_KEY = "sweep-bundle"


@task(name="archive-sweep", persist_result=False)
def archive_sweep(out: str, include_logs: bool = False, overwrite: bool = False) -> str:
    """Write ``<out>/sweep_bundle.zip`` and publish its identity; returns the bundle path.

    Call it after the sweep flow has released the sweep directory's lock.
    ``overwrite=True`` replaces a bundle from an earlier run of the same sweep.
    """
    bundle = archive(out, include_logs=include_logs, overwrite=overwrite)
    with zipfile.ZipFile(bundle) as zf:
        members = len(zf.infolist())
    size = bundle.stat().st_size
    digest = sha256_file(bundle)
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        description=f"Bundle of the sweep in {out}",
        markdown="\n".join(
            [
                "## Sweep bundle",
                "",
                "| | |",
                "|---|---|",
                f"| Path | `{bundle}` |",
                f"| Size | {size:,} bytes |",
                f"| Members | {members} |",
                f"| SHA-256 | `{digest}` |",
                f"| Worker logs | {'included' if include_logs else 'not included'} |",
                "",
                "Check a copy with `sha256sum sweep_bundle.zip`; check its members with "
                "`sha256sum -c MANIFEST.hash` in the unzip directory.",
            ]
        ),
    )
    return str(bundle)
