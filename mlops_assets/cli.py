"""``mlops-assets``: the operator's entry point."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from pathlib import Path

from mlops_assets.defs.resources import build_resources
from mlops_assets.demo import run_demo
from mlops_assets.ledger import champion_at, champion_history, read_ledger, reconcile, verify_chain
from mlops_assets.operations import open_platform
from mlops_assets.platform import Platform
from mlops_assets.promotion import PromotionRefused, approve, current_actor, promote_with_waiver, rollback
from mlops_assets.reproduce import reproduce
from mlops_assets.simulator import parse_injection, simulate
from mlops_assets.spec import SpecError
from mlops_assets.status import collect_status, render_text


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _injection(text: str):
    try:
        return parse_injection(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def cmd_simulate(args) -> int:
    manifest = simulate(Path(args.out), args.start, args.days, seed=args.seed, inject=args.inject)
    summary = manifest.to_dict()
    print(json.dumps(summary, indent=2, default=str) if args.json else
          f"wrote {len(summary['files'])} file(s) for {args.days} day(s) from {args.start} under {args.out}")
    return 0


def cmd_demo(args) -> int:
    return run_demo(days=args.days, seed=args.seed)


def cmd_status(args) -> int:
    platform, instance, defs = open_platform()
    with instance:
        status = collect_status(platform, instance, defs)
    print(json.dumps(status, indent=2, default=str) if args.json else render_text(status))
    return 0


def _resources():
    platform = Platform.from_env()
    res = build_resources(platform)
    return platform, res["lake"], res["registry"]


def _report(outcome: dict) -> int:
    print(json.dumps(outcome, indent=2, default=str))
    return 0


def cmd_promote(args) -> int:
    _, lake, registry = _resources()
    return _report(promote_with_waiver(lake, registry, args.version, owner=args.waiver_owner,
                                       reason=args.waiver_reason, expires=args.waiver_expires))


def cmd_approve(args) -> int:
    _, lake, registry = _resources()
    return _report(approve(lake, registry, args.version, by=args.by, reason=args.reason))


def cmd_rollback(args) -> int:
    _, lake, registry = _resources()
    return _report(rollback(lake, registry, reason=args.reason, to_version=args.to))


def cmd_reproduce(args) -> int:
    platform, lake, registry = _resources()
    result = reproduce(platform.spec, lake, registry, args.version, tolerance=args.tolerance)
    print(json.dumps(result.to_dict(), indent=2, default=str) if args.json else result.detail)
    return 0 if result.agrees else 1


def cmd_reconcile(args) -> int:
    _, lake, registry = _resources()
    return _report(reconcile(lake, registry, actor=f"cli:{current_actor()}"))


def cmd_audit_verify(args) -> int:
    _, lake, _ = _resources()
    report = verify_chain(lake)
    print(json.dumps(report.__dict__, default=str) if args.json else str(report))
    return 0 if report.ok else 1


def cmd_history(args) -> int:
    _, lake, _ = _resources()
    ledger = read_ledger(lake)
    terms = [champion_at(ledger, args.at)] if args.at else champion_history(ledger)
    terms = [t for t in terms if t is not None]
    if args.json:
        print(json.dumps([t.__dict__ for t in terms], default=str, indent=2))
    elif not terms:
        print("no champion" + (f" at {args.at}" if args.at else " yet"))
    for t in terms if not args.json else []:
        failed = [g["gate"] for g in t.gates if not g.get("passed")]
        print(f"v{t.version} champion since {t.since} (until {t.until or 'now'}), {t.action} by {t.by}: {t.why}"
              + (f"; gates {len(t.gates) - len(failed)}/{len(t.gates)} passed" if t.gates else ""))
    return 0


def _timestamp(text: str) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a timestamp (YYYY-MM-DD[THH:MM[:SS]]): {text!r}") from None
    return at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo else at  # the ledger keeps naive UTC


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
    d.add_argument("--days", type=int, default=60)
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(fn=cmd_demo)

    pr = sub.add_parser("promote", help="promote a version despite a failed gate, under an explicit waiver")
    pr.add_argument("version", type=int)
    pr.add_argument("--waiver-owner", required=True)
    pr.add_argument("--waiver-reason", required=True)
    pr.add_argument("--waiver-expires", required=True, metavar="YYYY-MM-DD")
    pr.set_defaults(fn=cmd_promote)

    ap = sub.add_parser("approve", help="approve a challenger that passed every gate (spec: require_approval)")
    ap.add_argument("version", type=int)
    ap.add_argument("--by", required=True)
    ap.add_argument("--reason", required=True)
    ap.set_defaults(fn=cmd_approve)

    rb = sub.add_parser("rollback", help="champion back to last_known_good (or --to VERSION)")
    rb.add_argument("--to", type=int)
    rb.add_argument("--reason", required=True)
    rb.set_defaults(fn=cmd_rollback)

    rp = sub.add_parser("reproduce", help="retrain a version from its recorded lineage and compare")
    rp.add_argument("version", type=int)
    rp.add_argument("--tolerance", type=float, default=1e-9)
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(fn=cmd_reproduce)

    rc = sub.add_parser("reconcile", help="complete alias moves that died half-way; restore aliases from the ledger")
    rc.set_defaults(fn=cmd_reconcile)

    au = sub.add_parser("audit", help="the audit ledger")
    au_sub = au.add_subparsers(dest="audit_command", required=True)
    av = au_sub.add_parser("verify", help="exit 0 when the hash chain holds, 1 naming the first broken row")
    av.add_argument("--json", action="store_true")
    av.set_defaults(fn=cmd_audit_verify)

    hi = sub.add_parser("history", help="who was champion when, since when, moved by whom, why, on what gates")
    hi.add_argument("--at", type=_timestamp, help="a UTC timestamp: the champion at that moment")
    hi.add_argument("--json", action="store_true")
    hi.set_defaults(fn=cmd_history)

    st = sub.add_parser("status", help="the state of the platform")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)
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
        if type(err).__name__ not in ("MlflowException", "IntegrityError"):  # unknown version, tampered artifact
            raise
        print(f"mlops-assets {args.command}: refused: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
