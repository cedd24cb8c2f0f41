"""``mlops-assets``: the operator's entry point."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from mlops_assets.core.spec import SpecError
from mlops_assets.data.simulator import parse_injection, simulate
from mlops_assets.model.promotion import PromotionRefused
from mlops_assets.operations.commands_common import parse_date
from mlops_assets.operations.commands_control import add_control_commands
from mlops_assets.operations.commands_files import add_file_commands
from mlops_assets.operations.commands_runs import add_instance_command, add_run_commands
from mlops_assets.operations.demo import run_demo
from mlops_assets.operations.runs import open_platform
from mlops_assets.operations.status import collect_status, render_text


def _injection(text: str):
    try:
        return parse_injection(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def cmd_simulate(args) -> int:
    manifest = simulate(Path(args.out), args.start, args.days, seed=args.seed, inject=args.inject)
    summary = manifest.to_dict()
    print(
        json.dumps(summary, indent=2, default=str)
        if args.json
        else (
            f"wrote {len(summary['files'])} file(s) for {args.days} day(s) from {args.start} under"
            f" {args.out}"
        )
    )
    return 0


def cmd_demo(args) -> int:
    return run_demo(days=args.days, seed=args.seed)


def cmd_status(args) -> int:
    platform, instance, defs = open_platform()
    with instance:
        status = collect_status(platform, instance, defs)
    print(json.dumps(status, indent=2, default=str) if args.json else render_text(status))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops-assets", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "simulate", help="write the default dataset's landing files (events + delayed labels)"
    )
    s.add_argument(
        "--out", required=True, help="landing folder (events/ and labels/ are written under it)"
    )
    s.add_argument("--start", required=True, type=parse_date)
    s.add_argument("--days", required=True, type=int)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--inject", action="append", default=[], type=_injection, metavar="KIND@YYYY-MM-DD"
    )
    s.add_argument("--json", action="store_true", help="print the manifest as JSON")
    s.set_defaults(fn=cmd_simulate)

    d = sub.add_parser(
        "demo", help="run the whole lifecycle on embedded defaults under $MLOPS_HOME"
    )
    d.add_argument("--days", type=int, default=60)
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(fn=cmd_demo)

    add_control_commands(sub)
    st = sub.add_parser("status", help="the state of the platform")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)
    add_run_commands(sub)
    add_file_commands(sub)
    add_instance_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (SpecError, PromotionRefused, ValueError) as err:
        print(f"mlops-assets {args.command}: refused: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__name__ not in (
            "MlflowException",
            "IntegrityError",
        ):  # unknown version, tampered artifact
            raise
        print(f"mlops-assets {args.command}: refused: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
