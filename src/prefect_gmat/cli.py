"""The ``prefect-gmat`` command: run, resume and inspect sweeps from a shell.

Grid values on the command line: ``-g Sat.SMA=7000,7100,7200`` (a list) or
``-g Sat.SMA=7000:7900:100`` (an inclusive range); repeat ``-g`` for more
fields (a cartesian product). Numbers become numbers, ``true``/``false``
booleans, anything else a string.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from prefect_gmat.core.layout import BUNDLE_NAME
from prefect_gmat.errors import FailureBudgetError, PrefectGmatError, SweepSpecError
from prefect_gmat.study.request import StudyDesign, knob_flags, knob_names

if TYPE_CHECKING:
    from prefect_gmat.api import SweepKnobs

__all__ = ["demo_script", "main", "parse_grid_option"]

#: The walkthrough's grid: Sat.SMA from 7000 to 7900 km in 100 km steps.
DEMO_GRID: dict[str, list[Any]] = {"Sat.SMA": list(range(7000, 8000, 100))}


def demo_script() -> Path:
    """The short LEO script shipped with the package."""
    return Path(str(files("prefect_gmat") / "scripts" / "leo_short.script"))


def _scalar(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip().strip("'\"")


def parse_grid_option(option: str) -> tuple[str, list[Any]]:
    """``FIELD=a,b,c`` or ``FIELD=start:stop:step`` (inclusive) to a field and its values."""
    field, sep, values = option.partition("=")
    if not sep or not field or not values:
        raise SweepSpecError(
            f"grid option {option!r} is not FIELD=VALUES; write e.g. -g Sat.SMA=7000,7100 "
            "or -g Sat.SMA=7000:7900:100.",
            field=field or option,
        )
    parts = values.split(":")
    if len(parts) == 3 and all(isinstance(_scalar(p), (int, float)) for p in parts):
        start, stop, step = (_scalar(p) for p in parts)
        if step <= 0 or stop < start:
            raise SweepSpecError(
                f"range {values!r} for {field!r} is empty; write start:stop:step with "
                "start <= stop and step > 0.",
                field=field,
            )
        count = round((stop - start) / step) + 1
        return field, [start + i * step for i in range(count)]
    return field, [_scalar(v) for v in values.split(",")]


def _print_frame(df: pd.DataFrame) -> None:
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(df)
    print(f"\nshape {df.shape}; status counts: {df['__status'].value_counts().to_dict()}")


def knob_values(args: argparse.Namespace) -> SweepKnobs:
    """The knobs (see :func:`add_knobs`) as keywords for any API entry point."""
    values: dict[str, Any] = {name: getattr(args, name) for name in knob_names()}
    values["progress"] = False if args.no_progress else None
    return cast("SweepKnobs", values)


def add_knobs(parser: argparse.ArgumentParser, *, starts_study: bool = False) -> None:
    """The options every command that runs points takes: one flag per knob of the sweep
    request (:class:`~prefect_gmat.study.request.Knobs`), and ``--postprocess`` where
    the command starts a study (a resumed or extended one keeps its recorded hook)."""
    for _name, flag, keywords in knob_flags():
        parser.add_argument(flag, **keywords)
    parser.add_argument(
        "--no-progress", action="store_true", help="no live progress line on the terminal"
    )
    if starts_study:
        parser.add_argument(
            "--postprocess", metavar="MODULE:FUNCTION", help="per-run hook after each good run"
        )
        parser.add_argument(
            "--plan",
            action="store_true",
            help="run nothing: print what the sweep will cost (runs, seconds, task runs, "
            "disk), from a few pilot runs in a temporary directory",
        )
        parser.add_argument("--json", action="store_true", help="with --plan: as one JSON object")


def _cmd_run(args: argparse.Namespace) -> int:
    from prefect_gmat.api import sweep

    if args.grid_json:
        grid = json.loads(Path(args.grid_json).read_text())
    else:
        grid = dict(parse_grid_option(g) for g in args.grid or [])
    if not grid:
        raise SweepSpecError("no grid given; pass -g FIELD=VALUES at least once.", field="grid")
    if args.plan or args.json:
        return _show_plan(args, grid=grid)
    knobs = knob_values(args)
    knobs["params"] = args.params
    df = sweep(
        args.script,
        grid=grid,
        out=args.out,
        postprocess=args.postprocess,
        overwrite=args.overwrite,
        **knobs,
    )
    _print_frame(df)
    return 0 if (df["__status"] == "ok").all() else 1


def _cmd_resume(args: argparse.Namespace) -> int:
    from prefect_gmat.api import resume, retry_failed

    action = retry_failed if args.command == "retry-failed" else resume
    df = action(args.out, script=args.script, **knob_values(args))
    _print_frame(df)
    return 0 if (df["__status"] == "ok").all() else 1


def _perturb_options(options: Sequence[str]) -> dict[str, Any]:
    """Repeated ``--perturb FIELD=DIST:A:B`` options as one perturb mapping."""
    from prefect_gmat.study.designs import parse_perturb_option

    perturb: dict[str, Any] = {}
    for option in options:
        field, spec = parse_perturb_option(option)
        if field in perturb:
            raise SweepSpecError(
                f"--perturb {field} is given more than once; give each field once.", field=field
            )
        perturb[field] = spec
    return perturb


def parse_until_option(option: str) -> dict[str, Any]:
    """``METRIC:se=X`` or ``METRIC:rel_se=X`` to ``until``'s mapping."""
    metric, _, target = option.rpartition(":")
    kind, sep, value = target.partition("=")
    if not metric or not sep or kind not in ("se", "rel_se"):
        raise SweepSpecError(
            f"--until {option!r} is not METRIC:se=VALUE or METRIC:rel_se=VALUE; write e.g. "
            "--until Sat.Earth.SMA:se=0.5.",
            field="until",
        )
    return {"metric": metric, kind: _scalar(value)}


def _cmd_design(args: argparse.Namespace) -> int:
    from prefect_gmat.api import latin_hypercube, monte_carlo

    extra: dict[str, Any] = {}
    if args.command == "mc":
        study: Any = monte_carlo
        if args.until:
            extra["until"] = parse_until_option(args.until)
    else:
        study = latin_hypercube
    if args.plan or args.json:
        design = StudyDesign(
            "monte_carlo" if args.command == "mc" else "latin_hypercube",
            _perturb_options(args.perturb),
            args.n,
            args.seed,
        )
        return _show_plan(args, design=design, **extra)
    df = study(
        args.script,
        n=args.n,
        perturb=_perturb_options(args.perturb),
        seed=args.seed,
        out=args.out,
        postprocess=args.postprocess,
        overwrite=args.overwrite,
        **extra,
        **knob_values(args),
    )
    _print_frame(df)
    return 0 if (df["__status"] == "ok").all() else 1


def _show_plan(args: argparse.Namespace, **points: Any) -> int:
    """``--plan``: print what the command would cost, as text or (``--json``) one JSON object.
    Nothing is run but a few pilot points, in a temporary directory."""
    from prefect_gmat.api import plan

    if not args.plan:
        raise SweepSpecError("--json prints the plan; give it with --plan.", field="json")
    notes: tuple[str, ...] = ()
    if points.pop("until", None) is not None:
        notes = (f"with --until the study stops once converged: at most {args.n} runs",)
    cost = plan(
        args.script,
        out=args.out,
        postprocess=args.postprocess,
        overwrite=args.overwrite,
        **points,
        **knob_values(args),
    ).for_command()
    cost = replace(cost, notes=cost.notes + notes)
    print(cost.to_json() if args.json else cost.describe())
    return 0


def _cmd_explicit(args: argparse.Namespace) -> int:
    from prefect_gmat.api import explicit

    if args.plan or args.json:
        return _show_plan(args, samples=args.samples)
    df = explicit(
        args.script,
        args.samples,
        out=args.out,
        postprocess=args.postprocess,
        overwrite=args.overwrite,
        **knob_values(args),
    )
    _print_frame(df)
    return 0 if (df["__status"] == "ok").all() else 1


def _cmd_extend(args: argparse.Namespace) -> int:
    from prefect_gmat.api import extend

    df = extend(
        args.out,
        n=args.n,
        script=args.script,
        allow_script_drift=args.allow_script_drift,
        **knob_values(args),
    )
    _print_frame(df)
    return 0 if (df["__status"] == "ok").all() else 1


def _cmd_show(args: argparse.Namespace) -> int:
    from prefect_gmat.study.manifest import read_manifest

    manifest = read_manifest(args.out)
    header = manifest.header
    statuses: dict[str, int] = {}
    for record in manifest.records.values():
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    print(f"sweep    {manifest.path.parent}")
    print(f"script   {header.get('script_path')} (sha256 {header['script_sha256'][:12]}...)")
    print(f"engine   {header['gmat_install_version']} ({header.get('engine_source', '?')})")
    print(f"runs     {len(manifest.records)} recorded of {header['run_count']}: {statuses}")
    design = header.get("parameter_spec") or {}
    if design.get("_kind") in ("monte_carlo", "latin_hypercube"):
        fields = ", ".join(f"{k}={v}" for k, v in sorted(design["perturb"].items()))
        print(f"design   {design['_kind']}, n={design['n']}, seed={design['seed']}: {fields}")
    if header.get("postprocess"):
        print(f"hook     {header['postprocess']}")
    for run_id in manifest.failed_ids():
        record = manifest.records[run_id]
        print(f"  run {run_id} failed: {record.get('error') or record.get('stderr')}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from prefect_gmat.api import sweep

    started = time.monotonic()
    out = Path(args.out).resolve()
    df = sweep(demo_script(), grid=DEMO_GRID, out=out, overwrite=True, **knob_values(args))
    elapsed = time.monotonic() - started
    _print_frame(df)
    print(f"\nsweep directory: {out}")
    print(f"wall time from command to frame (bundle included): {elapsed:.1f} s\n")
    _describe_bundle(out / BUNDLE_NAME)
    return 0


def _describe_bundle(bundle: Path) -> None:
    from prefect_gmat.study.bundle import bundle_facts, verify_bundle

    verify_bundle(bundle)
    facts = bundle_facts(bundle)
    size, count = facts.size, len(facts.members)
    print(f"bundle {bundle} ({size:,} bytes, {count} members, verified):")
    for name in facts.members:
        print(f"  {name}")
    print(f"sha256 {facts.sha256}")


def _cmd_server(args: argparse.Namespace) -> int:
    from prefect_gmat.runtime import kept_server

    if args.action == "stop":
        stopped = kept_server.stop()
        if stopped is None:
            print("no server started by `prefect-gmat server` here; nothing to stop")
        else:
            print(f"stopped the Prefect server at {stopped}; sweeps start their own again")
        return 0
    if args.action == "status":
        found = kept_server.status()
        if found is None:
            print("no Prefect server named here: each sweep starts a temporary one")
            return 1
        print(f"sweeps run against {found.api_url} ({found.source}); UI: {found.ui_url}")
        return 0
    started = time.monotonic()
    server = kept_server.start(args.port)
    if server.source == "started":
        print(
            f"started a Prefect server at {server.api_url} in {time.monotonic() - started:.0f} s"
            " and named it in the active Prefect profile: every sweep from now on, in any "
            f"shell, runs against it and shows in its UI at {server.ui_url}.\n"
            "Stop it with `prefect-gmat server stop`."
        )
    else:
        print(f"sweeps already run against {server.api_url} (from the {server.source})")
    return 0


def _cmd_archive(args: argparse.Namespace) -> int:
    from prefect_gmat.study.bundle import archive

    bundle = archive(
        args.out, args.bundle, include_logs=args.include_logs, overwrite=args.overwrite
    )
    _describe_bundle(bundle)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from prefect_gmat.study.bundle import verify_bundle

    verify_bundle(args.bundle)
    print(f"{args.bundle}: every member matches MANIFEST.hash")
    return 0


def _cmd_emit_script_updated(args: argparse.Namespace) -> int:
    from prefect_gmat.runtime.events import emit_script_updated

    event = emit_script_updated(args.script)
    print(f"emitted {event.event} for {event.resource.id} (event id {event.id})")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from prefect_gmat.analysis.handle import open_sweep
    from prefect_gmat.analysis.plotting import gmat_unit
    from prefect_gmat.analysis.stats import final_bands, sweep_summary

    with open_sweep(args.out) as results:
        df = results.frame(args.report, params=True)
        counts = ", ".join(f"{n} {status}" for status, n in results.status_counts.items())
        failed = results.failures.index.tolist()
    print(f"sweep  {args.out}: {results.run_count} runs ({counts})")
    if failed:
        shown = ", ".join(map(str, failed[:20])) + (" ..." if len(failed) > 20 else "")
        print(f"failed runs left out: {shown} (prefect-gmat show OUT for the causes)")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        if args.field:
            if args.field not in df.columns:
                raise SweepSpecError(
                    f"no field {args.field!r}; the frame has: "
                    f"{', '.join(c for c in df.columns if c != '__status')}.",
                    field="field",
                    value=args.field,
                )
            band = sweep_summary(df[[args.field, "__status"]], include=("count_ok", "mean"))
            table = pd.DataFrame(band.xs(args.field, level="field", axis=1))
            table.columns = pd.Index(["ok runs", "mean", "5 %", "median", "95 %"])
            unit = gmat_unit(args.field)
            print(f"{args.field}{f' [{unit}]' if unit else ''} across runs at each time:")
        else:
            table = final_bands(df).rename(
                columns={"q0.05": "5 %", "q0.5": "median", "q0.95": "95 %"}
            )
            table["unit"] = [gmat_unit(str(f)) or "" for f in table.index]
            print("each field's last value per ok run, across runs:")
        print(table.to_string(float_format=lambda v: f"{v:.6g}"))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    import os

    from prefect_gmat.analysis.handle import open_sweep
    from prefect_gmat.runtime.ui_plots import render_plot

    try:
        with open_sweep(args.out) as results:
            image = render_plot(
                results.root, args.kind, metric=args.metric, report=args.report, x=args.x, y=args.y
            )
    except ImportError as exc:  # the plot extra is missing: say so, no traceback
        print(f"prefect-gmat: error: {exc}", file=sys.stderr)
        return 2
    dest = Path(args.output or f"{args.kind}.png")
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_bytes(image.png)
    os.replace(tmp, dest)
    caption = image.caption.replace("**", "").replace("`", "")
    print(f"wrote {dest} ({len(image.png):,} bytes): {caption}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefect-gmat", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a sweep")
    run.add_argument("script", help="the GMAT .script to fly")
    run.add_argument("-g", "--grid", action="append", metavar="FIELD=VALUES")
    run.add_argument("--grid-json", metavar="FILE", help="grid as a JSON object")
    run.add_argument("-o", "--out", help="sweep directory")
    run.add_argument("--overwrite", action="store_true", help="replace a sweep already in --out")
    run.add_argument("--params", action="store_true", help="add swept fields as columns")
    add_knobs(run, starts_study=True)
    run.set_defaults(func=_cmd_run)

    for name, text in (
        ("resume", "finish an interrupted sweep"),
        ("retry-failed", "re-run a sweep's failed runs"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("out", help="sweep directory")
        p.add_argument("--script", help="the sweep's script, if it moved (checked by its SHA-256)")
        add_knobs(p)
        p.set_defaults(func=_cmd_resume)

    for name, text in (
        ("mc", "a Monte Carlo study (gmat-sweep's draws)"),
        ("lhs", "a Latin hypercube study (gmat-sweep's draws)"),
    ):
        design = sub.add_parser(name, help=text)
        design.add_argument("script", help="the GMAT .script to fly")
        design.add_argument(
            "--perturb",
            action="append",
            required=True,
            metavar="FIELD=DIST:A:B",
            help="a field and its distribution: normal:MU:SIGMA, uniform:LO:HI or "
            "lognormal:MU:SIGMA; repeat for more fields",
        )
        design.add_argument(
            "--n", type=int, required=True, help="number of runs (with --until: at most)"
        )
        if name == "mc":
            design.add_argument(
                "--until",
                metavar="METRIC:se=X",
                help="stop once the standard error of the mean of METRIC's final value is at "
                "most X (or METRIC:rel_se=X, relative to the mean); the study grows in rounds",
            )
        design.add_argument("--seed", type=int, help="seed of the draws (default: drawn, recorded)")
        design.add_argument("-o", "--out", help="sweep directory")
        design.add_argument("--overwrite", action="store_true", help="replace a sweep in --out")
        add_knobs(design, starts_study=True)
        design.set_defaults(func=_cmd_design)

    samples = sub.add_parser("explicit", help="run the samples of a CSV or Parquet file")
    samples.add_argument("script", help="the GMAT .script to fly")
    samples.add_argument(
        "--samples", required=True, metavar="FILE", help="one column per field, one row per run"
    )
    samples.add_argument("-o", "--out", help="sweep directory")
    samples.add_argument("--overwrite", action="store_true", help="replace a sweep in --out")
    add_knobs(samples, starts_study=True)
    samples.set_defaults(func=_cmd_explicit)

    grow = sub.add_parser("extend", help="grow a Monte Carlo study to --n runs in total")
    grow.add_argument("out", help="sweep directory of the study")
    grow.add_argument("--n", type=int, required=True, help="the study's new number of runs")
    grow.add_argument("--script", help="the study's script (for a study gmat-sweep wrote)")
    grow.add_argument(
        "--allow-script-drift", action="store_true", help="extend even if the script changed"
    )
    add_knobs(grow)
    grow.set_defaults(func=_cmd_extend)

    show = sub.add_parser("show", help="summarise a sweep directory")
    show.add_argument("out")
    show.set_defaults(func=_cmd_show)

    demo = sub.add_parser("demo", help="sweep the walkthrough grid over the bundled LEO script")
    demo.add_argument("--out", default="demo-out", help="sweep directory (replaced each time)")
    add_knobs(demo)
    demo.set_defaults(func=_cmd_demo)

    keep = sub.add_parser(
        "server",
        help="start one local Prefect server for every sweep from now on (stop, status)",
    )
    keep.add_argument("action", nargs="?", choices=("start", "stop", "status"), default="start")
    keep.add_argument("--port", type=int, help="its port (default 4200, or a free one)")
    keep.set_defaults(func=_cmd_server)

    pack = sub.add_parser("archive", help="pack a sweep directory into a verified zip bundle")
    pack.add_argument("out", help="sweep directory")
    pack.add_argument("bundle", nargs="?", help="zip to write (default OUT/sweep_bundle.zip)")
    pack.add_argument("--include-logs", action="store_true", help="bundle each run's log")
    pack.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    pack.set_defaults(func=_cmd_archive)

    verify = sub.add_parser("verify", help="check every member of a bundle against its hashes")
    verify.add_argument("bundle")
    verify.set_defaults(func=_cmd_verify)

    emit = sub.add_parser(
        "emit-script-updated",
        help="tell the Prefect server in PREFECT_API_URL that a script changed "
        "(event gmat.script.updated; its deployment trigger starts a sweep)",
    )
    emit.add_argument("script", help="the GMAT .script that changed")
    emit.set_defaults(func=_cmd_emit_script_updated)
    summary = sub.add_parser(
        "summary", help="per-field band table of a sweep (its directory or bundle)"
    )
    summary.add_argument("out", help="sweep directory or bundle .zip")
    summary.add_argument("--report", help="the report, when the script writes several")
    summary.add_argument("--field", help="print this field's band over time instead")
    summary.set_defaults(func=_cmd_summary)

    plot = sub.add_parser("plot", help="write a PNG plot of a sweep (its directory or bundle)")
    plot.add_argument("out", help="sweep directory or bundle .zip")
    plot.add_argument("kind", choices=["band", "corner", "heatmap", "convergence"])
    plot.add_argument(
        "--metric", default="auto", help="report column to plot (auto: first numeric non-field)"
    )
    plot.add_argument("--report", help="the report, when the script writes several")
    plot.add_argument("--x", help="heatmap: field on the x axis (default: the grid's first)")
    plot.add_argument("--y", help="heatmap: field on the y axis (default: the grid's second)")
    plot.add_argument("-o", "--output", help="PNG to write (default: KIND.png)")
    plot.set_defaults(func=_cmd_plot)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except FailureBudgetError as exc:  # runs failed, as with exit 1; not bad input
        print(f"prefect-gmat: error: {exc}", file=sys.stderr)
        return 1
    except PrefectGmatError as exc:
        print(f"prefect-gmat: error: {exc}", file=sys.stderr)
        return 2
    finally:
        from prefect_gmat.runtime.quiet import settle_prefect_telemetry

        settle_prefect_telemetry()  # the command exits next: nothing left for exit
    return result


if __name__ == "__main__":
    sys.exit(main())
