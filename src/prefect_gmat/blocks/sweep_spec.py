"""The ``GmatSweepSpec`` block: a sweep saved by name (script, its points, where to write).

A team that re-runs the same study saves it once; a deployment, a schedule or
an event trigger then passes ``sweep_spec="leo-sma"`` and the flow fills in
whatever its own parameters leave unset. Explicit flow parameters always win.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Self

from prefect.blocks.core import Block
from pydantic import Field, model_validator

from prefect_gmat.blocks.installation import GmatInstallation
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.runtime.naming import default_sweep_dir
from prefect_gmat.runtime.sync import sync_value
from prefect_gmat.study.designs import LatinHypercubeDesign, MonteCarloDesign
from prefect_gmat.study.spec import SweepSpec

__all__ = ["GmatSweepSpec", "SweepInputs", "apply_blocks"]

Value = float | int | str | bool


class GmatSweepSpec(Block):
    """A GMAT sweep saved by name: the script, its points and the output base.

    The points are one of: a grid, explicit samples, a samples file (CSV or Parquet on
    the worker), or a design (Monte Carlo or Latin hypercube).
    """

    _block_type_name = "GMAT Sweep Spec"
    _block_type_slug = "gmat-sweep-spec"
    _description = (
        "A GMAT sweep saved by name: the script, a grid (values per field), explicit "
        "samples, a samples file or a Monte Carlo / Latin hypercube design, and where "
        "sweeps are written. Pass its name as the sweep flow's `sweep_spec` parameter; "
        "explicit flow parameters override it."
    )
    _code_example = """
```python
from prefect_gmat.blocks import GmatSweepSpec

GmatSweepSpec(
    script="/data/leo.script",
    grid={"Sat.SMA": [7000, 7100, 7200]},
    out_base="/data/sweeps",
).save("leo-sma")
```
"""

    script: str = Field(description="Absolute path of the GMAT .script on the worker machine.")
    grid: dict[str, list[Value]] | None = Field(
        default=None,
        description='Values per field, e.g. {"Sat.SMA": [7000, 7100]}; a cartesian product.',
    )
    samples: list[dict[str, Value]] | None = Field(
        default=None, description="Explicit points instead of a grid, one mapping per run."
    )
    samples_file: str | None = Field(
        default=None,
        description="A CSV or Parquet file on the worker: one column per field, one row per run.",
    )
    design: MonteCarloDesign | LatinHypercubeDesign | None = Field(
        default=None,
        description="A Monte Carlo or Latin hypercube design: distributions per field, n, seed.",
    )
    postprocess: str | None = Field(
        default=None,
        description="A per-run hook, 'package.module:function', called after each good run.",
    )
    out_base: str | None = Field(
        default=None,
        title="Output base directory",
        description=(
            "Each sweep writes to <out_base>/<script>-<start time>-<flow run id>. "
            "Unset: the setting."
        ),
    )
    workers: int | None = Field(default=None, ge=1, description="Engine processes per sweep.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds per run.")
    installation: str | None = Field(
        default=None, description="Name of a GMAT Installation block to run with."
    )

    @model_validator(mode="after")
    def _one_kind_of_points(self) -> Self:
        given = [self.grid, self.samples, self.samples_file, self.design]
        if sum(kind is not None for kind in given) != 1:
            raise ValueError(
                "give exactly one of grid (values per field), samples (points), "
                "samples_file (a CSV or Parquet file) or design (Monte Carlo, Latin hypercube)"
            )
        return self

    def sweep_spec(self) -> SweepSpec:
        """Validate the saved sweep as a run would (the script, a samples file must exist here).

        A design without a seed draws one here; the flow draws its own when it runs.
        """
        from prefect_gmat.study.sweepdir import design_for

        if self.grid is not None:
            spec = SweepSpec.from_grid(self.script, self.grid)
        elif self.design is not None:
            design, _ = design_for(
                None, self.design.kind, self.design.perturbations(), self.design.n, self.design.seed
            )
            spec = SweepSpec.from_design(self.script, design)
        else:
            spec = SweepSpec.from_samples(self.script, self.samples or self.samples_file)
        return spec.with_postprocess(self.postprocess)

    def new_out(self) -> str | None:
        """This flow run's sweep directory under ``out_base`` (None: the flow picks one)."""
        if self.out_base is None:
            return None
        return str(default_sweep_dir(Path(self.out_base).expanduser(), self.script))

    def flow_parameters(self) -> dict[str, Any]:
        """The sweep flow's parameters for one ``run_deployment`` of this spec.

        ``out`` is fixed here, so do not reuse the result as a schedule's parameters:
        give a schedule ``sweep_spec=<block name>`` instead, and each flow run then
        picks its own directory under ``out_base``.
        """
        params: dict[str, Any] = {"script": self.script}
        keys = ("grid", "samples", "samples_file", "postprocess", "workers", "timeout")
        for key in (*keys, "installation"):
            value = getattr(self, key)
            if value is not None:
                params[key] = value
        if self.design is not None:
            params["design"] = self.design.model_dump()
        out = self.new_out()
        if out is not None:
            params["out"] = out
        return params


class SweepInputs(NamedTuple):
    """The sweep flow's parameters that blocks can supply."""

    script: str | None
    grid: dict[str, list[Value]] | None
    samples: list[dict[str, Value]] | None
    out: str | None
    workers: int | None
    timeout: float | None
    gmat_root: str | None
    design: MonteCarloDesign | LatinHypercubeDesign | None = None
    samples_file: str | None = None
    postprocess: str | None = None


def apply_blocks(
    given: SweepInputs, *, installation: str | None, sweep_spec: str | None
) -> SweepInputs:
    """Fill unset flow parameters from the named blocks; explicit parameters win."""
    script, grid, samples, out, workers, timeout, gmat_root = given[:7]
    design, samples_file, postprocess = given.design, given.samples_file, given.postprocess
    if sweep_spec is not None:
        saved: GmatSweepSpec = sync_value(GmatSweepSpec.load(sweep_spec))
        if grid is None and samples is None and design is None and samples_file is None:
            grid, samples = saved.grid, saved.samples
            design, samples_file = saved.design, saved.samples_file
        postprocess = postprocess or saved.postprocess
        script = script or saved.script
        out = out or saved.new_out()
        workers = workers if workers is not None else saved.workers
        timeout = timeout if timeout is not None else saved.timeout
        if installation is None and gmat_root is None:
            installation = saved.installation
    if installation is not None:
        if gmat_root is not None:
            raise SweepSpecError(
                f"pass gmat_root or installation, not both (gmat_root={gmat_root!r}, "
                f"installation={installation!r}).",
                field="installation",
            )
        chosen: GmatInstallation = sync_value(GmatInstallation.load(installation))
        gmat_root = chosen.engine_root()
    return SweepInputs(
        script, grid, samples, out, workers, timeout, gmat_root, design, samples_file, postprocess
    )
