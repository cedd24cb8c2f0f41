"""``mlops-assets`` control-plane commands: promote, approve, rollback, reproduce, reconcile,
audit verify, history (the registry aliases and their audit ledger)."""

from __future__ import annotations

import json

from mlops_assets.control.ledger import (
    champion_at,
    champion_history,
    read_ledger,
    reconcile,
    verify_chain,
)
from mlops_assets.core.platform import Platform
from mlops_assets.location.resources import build_resources
from mlops_assets.model.promotion import (
    approve,
    current_actor,
    promote_with_waiver,
    rollback,
)
from mlops_assets.model.reproduce import reproduce
from mlops_assets.operations.commands_common import parse_timestamp


def _resources():
    platform = Platform.from_env()
    res = build_resources(platform)
    return platform, res["lake"], res["registry"]


def _report(outcome: dict) -> int:
    print(json.dumps(outcome, indent=2, default=str))
    return 0


def cmd_promote(args) -> int:
    _, lake, registry = _resources()
    return _report(
        promote_with_waiver(
            lake,
            registry,
            args.version,
            owner=args.waiver_owner,
            reason=args.waiver_reason,
            expires=args.waiver_expires,
        )
    )


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
        print(
            f"v{t.version} champion since {t.since} (until {t.until or 'now'}), {t.action} by"
            f" {t.by}: {t.why}"
            + (f"; gates {len(t.gates) - len(failed)}/{len(t.gates)} passed" if t.gates else "")
        )
    return 0


def add_control_commands(sub) -> None:
    """promote, approve, rollback, reproduce, reconcile, audit verify, history."""
    pr = sub.add_parser(
        "promote", help="promote a version despite a failed gate, under an explicit waiver"
    )
    pr.add_argument("version", type=int)
    pr.add_argument("--waiver-owner", required=True)
    pr.add_argument("--waiver-reason", required=True)
    pr.add_argument("--waiver-expires", required=True, metavar="YYYY-MM-DD")
    pr.set_defaults(fn=cmd_promote)

    ap = sub.add_parser(
        "approve", help="approve a challenger that passed every gate (spec: require_approval)"
    )
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

    rc = sub.add_parser(
        "reconcile", help="complete alias moves that died half-way; restore aliases from the ledger"
    )
    rc.set_defaults(fn=cmd_reconcile)

    au = sub.add_parser("audit", help="the audit ledger")
    au_sub = au.add_subparsers(dest="audit_command", required=True)
    av = au_sub.add_parser(
        "verify", help="exit 0 when the hash chain holds, 1 naming the first broken row"
    )
    av.add_argument("--json", action="store_true")
    av.set_defaults(fn=cmd_audit_verify)

    hi = sub.add_parser(
        "history", help="who was champion when, since when, moved by whom, why, on what gates"
    )
    hi.add_argument(
        "--at", type=parse_timestamp, help="a UTC timestamp: the champion at that moment"
    )
    hi.add_argument("--json", action="store_true")
    hi.set_defaults(fn=cmd_history)
