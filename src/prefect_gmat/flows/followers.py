"""Flows that follow a sweep: started by the ``gmat.sweep.completed`` event, not by a person.

``summarise_sweep`` re-checks a finished sweep from what is on disk: it
verifies the bundle member by member (the bytes someone will hand on) and
publishes a markdown artifact with the status counts and the bundle's SHA-256,
so the one who receives the bundle can check it against the UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from prefect_gmat.core.layout import BUNDLE_NAME
from prefect_gmat.core.records import sha256_file
from prefect_gmat.runtime.observability import summary_rows
from prefect_gmat.study.bundle import verify_bundle
from prefect_gmat.study.manifest import read_manifest

__all__ = ["VERIFIED_KEY", "summarise_sweep"]

VERIFIED_KEY = "sweep-verified"


def _run_name() -> str:
    return f"summarise-{Path(str(flow_run.parameters.get('out', 'sweep'))).name}"


@flow(name="summarise-sweep", flow_run_name=_run_name, log_prints=False)
def summarise_sweep(out: str) -> dict[str, Any]:
    """Verify the sweep's bundle and publish what it holds; fails if the bundle is damaged.

    A sweep archived elsewhere or not at all is summarised without a bundle.

    Args:
        out: The sweep directory to verify and summarise, as the `gmat.sweep.completed`
            event's `gmat.sweep.out` label names it, e.g.
            `/data/sweeps/leo_short-20261202-020000-1a2b3c4d`.
    """
    logger = get_run_logger()
    root = Path(out).expanduser().resolve()
    manifest = read_manifest(root)
    run_count = int(manifest.header.get("run_count", len(manifest.records)))
    rows = summary_rows(manifest.records, run_count)
    bundle = root / BUNDLE_NAME
    digest: str | None = None
    if bundle.is_file():
        verify_bundle(bundle)  # raises BundleError naming every bad member
        digest = sha256_file(bundle)
        logger.info("bundle %s verified (sha256 %s)", bundle, digest)
    else:
        logger.warning("no bundle at %s; summarising the sweep directory only", bundle)
    ok = len(manifest.ok_ids())
    failed = len(manifest.failed_ids())
    table = ["| status | runs | run ids | cause |", "|---|---|---|---|"]
    table += [
        f"| {r['status']} | {r['runs']} | {r['run ids']} | {r['cause'].replace('|', '/')} |"
        for r in rows
    ]
    create_markdown_artifact(
        key=VERIFIED_KEY,
        description=f"Verification of the sweep in {root}",
        markdown="\n".join(
            [
                f"## Sweep `{root.name}`",
                "",
                f"- Script: `{manifest.header.get('script_path')}`",
                f"- Engine: {manifest.header.get('gmat_install_version')}",
                f"- Runs: {ok} ok, {failed} failed of {run_count}",
                f"- Bundle: `{bundle}` verified, SHA-256 `{digest}`"
                if digest
                else "- Bundle: none",
                "",
                *table,
            ]
        ),
    )
    return {
        "out": str(root),
        "bundle": str(bundle) if digest else None,
        "bundle_sha256": digest,
        "runs": run_count,
        "ok": ok,
        "failed": failed,
    }
