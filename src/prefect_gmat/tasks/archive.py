"""The archive task: bundle a finished sweep and publish the bundle's identity as an artifact.

The artifact (key ``sweep-bundle``) records the bundle's path, size, member
count and SHA-256, so whoever picks the bundle up from the Prefect UI can check
they hold the same bytes the flow wrote.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from prefect_gmat.study.bundle import archive, bundle_facts

__all__ = ["ARTIFACT_KEY", "archive_sweep"]

ARTIFACT_KEY = "sweep-bundle"


@task(name="archive-sweep", persist_result=False)
def archive_sweep(
    out: str, include_logs: bool = False, overwrite: bool = False, script: str | None = None
) -> str:
    """Write ``<out>/sweep_bundle.zip`` and publish its identity; returns the bundle path.

    Call it after the sweep flow has released the sweep directory's lock.
    ``overwrite=True`` replaces a bundle from an earlier run of the same sweep.
    ``script`` is the script the sweep ran, if it is not where the manifest says.
    """
    bundle = archive(out, include_logs=include_logs, overwrite=overwrite, script=script)
    facts = bundle_facts(bundle)
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        description=f"Bundle of the sweep in {out}",
        markdown="\n".join(
            [
                "## Sweep bundle",
                "",
                "| | |",
                "|---|---|",
                f"| Path | `{facts.path}` |",
                f"| Size | {facts.size:,} bytes |",
                f"| Members | {len(facts.members)} |",
                f"| SHA-256 | `{facts.sha256}` |",
                f"| Worker logs | {'included' if include_logs else 'not included'} |",
                "",
                "Check a copy with `sha256sum sweep_bundle.zip`; check its members with "
                "`sha256sum -c MANIFEST.hash` in the unzip directory.",
            ]
        ),
    )
    return str(facts.path)
