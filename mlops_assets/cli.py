"""``mlops-assets``: the operator's entry point."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from pathlib import Path


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _injection(text: str):
    from mlops_assets.simulator import parse_injection

    try:
        return parse_injection(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def cmd_simulate(args) -> int:
    from mlops_assets.simulator import simulate

    manifest = simulate(Path(args.out), args.start, args.days, seed=args.seed, inject=args.inject)
    summary = manifest.to_dict()
    print(json.dumps(summary, indent=2, default=str) if args.json else
          f"wrote {len(summary['files'])} file(s) for {args.days} day(s) from {args.start} under {args.out}")
    return 0


def cmd_demo(args) -> int:
    from mlops_assets.demo import run_demo

    return run_demo(days=args.days, seed=args.seed)


def cmd_status(args) -> int:
    from mlops_assets.operations import open_platform
    from mlops_assets.status import collect_status, render_text

    platform, instance, defs = open_platform()
    with instance:
        status = collect_status(platform, instance, defs)
    print(json.dumps(status, indent=2, default=str) if args.json else render_text(status))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops-assets", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="write the default dataset's landing files (events + delayed labels)")
    s.add_argument("--out", required=True, help="landing folder (events/ and labels/ are written under it)")
    s.add_argument("--start", required=True, type=_date)
    s.add_argument("--days", required=True, type=int)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--inject", action="append", default=[], type=_injection, metavar="KIND@YYYY-MM-DD")
    s.add_argument("--json", action="store_true", help="print the manifest as JSON")
    s.set_defaults(fn=cmd_simulate)

    d = sub.add_parser("demo", help="run the whole lifecycle on embedded defaults under $MLOPS_HOME")
    d.add_argument("--days", type=int, default=30)
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(fn=cmd_demo)

    st = sub.add_parser("status", help="the state of the platform")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    args = build_parser().parse_args(argv)
    from mlops_assets.spec import SpecError

    try:
        return args.fn(args)
    except SpecError as err:
        print(f"mlops-assets: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
