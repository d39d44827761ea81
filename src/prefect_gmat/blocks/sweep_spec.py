"""The ``GmatSweepSpec`` block: a sweep saved by name (script, its points, where to write).

A team that re-runs the same study saves it once; a deployment, a schedule or
an event trigger then passes ``sweep_spec="leo-sma"`` and the flow fills in
whatever its own parameters leave unset. Explicit flow parameters always win.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from prefect.blocks.core import Block
from pydantic import Field, model_validator

from prefect_gmat.blocks.installation import GmatInstallation
from prefect_gmat.errors import SweepSpecError
from prefect_gmat.runtime.naming import default_sweep_dir
from prefect_gmat.runtime.sync import sync_value
from prefect_gmat.study.designs import LatinHypercubeDesign, MonteCarloDesign
from prefect_gmat.study.request import Knobs, Points, SweepRequest
from prefect_gmat.study.spec import SweepSpec

__all__ = ["GmatSweepSpec", "apply_blocks"]

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
    until: dict[str, Any] | None = Field(
        default=None,
        description=(
            'With a Monte Carlo design: stop once converged, e.g. {"metric": "Sat.Earth.SMA", '
            '"se": 0.5} (or "rel_se"); the design\'s n is then the cap.'
        ),
    )
    max_failures: int | float | None = Field(
        default=None,
        ge=0,
        description=(
            "Stop starting runs once more fail than this: a count (20) or a fraction of the "
            "sweep's runs (0.05). Unset: run every point."
        ),
    )
    installation: str | None = Field(
        default=None, description="Name of a GMAT Installation block to run with."
    )

    @model_validator(mode="after")
    def _one_kind_of_points(self) -> Self:
        self.points().check_one_kind()
        return self

    def points(self) -> Points:
        return Points(
            grid=self.grid,
            samples=self.samples,
            samples_file=self.samples_file,
            design=self.design,
            until=self.until,
        )

    def request(self) -> SweepRequest:
        """The sweep this block saves, as one request (``out`` a new directory under
        ``out_base``, or unset)."""
        return SweepRequest(
            script=self.script,
            points=self.points(),
            postprocess=self.postprocess,
            out=self.new_out(),
            knobs=Knobs().filled_from(self),
        )

    def sweep_spec(self) -> SweepSpec:
        """Validate the saved sweep as a run would (the script, a samples file must exist here).

        A design without a seed draws one here; the flow draws its own when it runs.
        """
        spec = replace(self.request(), out=None).spec(None, note=lambda _: None)
        assert spec is not None  # one kind of points is given (checked when built)
        return spec

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
        params = self.request().flow_parameters()
        if self.installation is not None:
            params["installation"] = self.installation
        return params


def apply_blocks(
    request: SweepRequest, *, installation: str | None, sweep_spec: str | None
) -> SweepRequest:
    """Fill what ``request`` leaves unset from the named blocks, field by field name.

    Explicit parameters win: the saved points only when the request gives none, each
    knob only where the request left it unset.
    """
    if sweep_spec is not None:
        saved: GmatSweepSpec = sync_value(GmatSweepSpec.load(sweep_spec))
        request = replace(
            request,
            script=request.script or saved.script,
            points=request.points if request.points.kinds() else saved.points(),
            postprocess=request.postprocess or saved.postprocess,
            out=request.out or saved.new_out(),
            knobs=request.knobs.filled_from(saved),
        )
        if installation is None and request.knobs.gmat_root is None:
            installation = saved.installation
    if installation is not None:
        if request.knobs.gmat_root is not None:
            raise SweepSpecError(
                f"pass gmat_root or installation, not both (gmat_root="
                f"{request.knobs.gmat_root!r}, installation={installation!r}).",
                field="installation",
            )
        chosen: GmatInstallation = sync_value(GmatInstallation.load(installation))
        request = replace(request, knobs=replace(request.knobs, gmat_root=chosen.engine_root()))
    return request
