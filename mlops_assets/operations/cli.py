"""``mlops-assets``: the operator's entry point."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import warnings
from pathlib import Path

import polars as pl
import yaml

from mlops_assets.control.ledger import (
    champion_at,
    champion_history,
    read_ledger,
    reconcile,
    verify_chain,
)
from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import SpecError, SpecLoader, load_spec, parse_spec
from mlops_assets.core.vocabulary import FEATURES, RAW_EVENTS, RAW_LABELS, SCORES, Job, RunTag
from mlops_assets.data.simulator import parse_injection, simulate
from mlops_assets.data.spec_infer import InferOptions, infer_spec, read_samples, spec_lints
from mlops_assets.location.resources import build_resources
from mlops_assets.model.promotion import (
    PromotionRefused,
    approve,
    current_actor,
    promote_with_waiver,
    rollback,
)
from mlops_assets.model.reproduce import reproduce
from mlops_assets.monitoring.drift.methods import feature_drift
from mlops_assets.monitoring.drift.profile import build_reference_profile
from mlops_assets.operations.demo import run_demo
from mlops_assets.operations.runs import (
    DECISION_EXIT,
    PIPELINE_ERROR,
    RunOutcome,
    instance_warning,
    launch_run,
    open_platform,
    partition_days,
    training_decision,
)
from mlops_assets.operations.status import collect_status, render_text


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


# ---- runs on the instance under $MLOPS_HOME/dagster
# ------------------------------------------------------
def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _open_for_runs():
    """(platform, instance, defs), after warning when ``$DAGSTER_HOME`` is not the instance the UI
    shows.
    """
    platform, instance, defs = open_platform()
    if warning := instance_warning(platform):
        _err(f"warning: {warning}")
    _err(
        f"instance: {platform.home.dagster} (spec {platform.spec.name}); `make ui` shows these runs"
    )
    return platform, instance, defs


def _run(instance, defs, job: str, what: str, **kw) -> RunOutcome:
    _err(f"{what}: job {job} on {kw.get('partition') or kw.get('first') + '..' + kw.get('last')}")
    tags = {RunTag.TRIGGER: "cli", RunTag.REASON: f"mlops-assets {what}"}
    outcome = launch_run(instance, defs, job, progress=_err, tags=tags, **kw)
    _err(f"{what}: run {outcome.run_id} {'succeeded' if outcome.success else 'FAILED'}")
    return outcome


def _landing_report(outcome: RunOutcome, asset: str) -> tuple[list[str], int]:
    """Readable lines and the exit code of an ingest run: 0 ok, 3 blocked by a contract, 1 another
    failure.
    """
    md = outcome.metadata(asset)
    lines = (
        [
            f"{asset} {outcome.partitions}: {md.get('rows', 0)} rows accepted from"
            f" {md.get('file_count', 0)} file(s), {md.get('quarantined_rows', 0)} quarantined (run"
            f" {outcome.run_id})"
        ]
        if md
        else []
    )
    if FEATURES in outcome.materializations:
        lines.append(
            f"{FEATURES} {outcome.partitions}: {outcome.metadata(FEATURES).get('rows', 0)} rows"
        )
    lines += [
        f"  {'✗' if c['severity'] == 'ERROR' else '!'} {c['check']}: {c['description'][:400]}"
        for c in outcome.checks
        if not c["passed"]
    ]
    if outcome.success:
        return lines, 0
    if outcome.failed_checks():
        lines.append(
            "  the range was not taken further: fix or remove the files named above (`mlops-assets"
            " status` shows the quarantine), then run the same command again"
        )
        return lines, 3
    return lines + [f"  ✗ {f[:400]}" for f in outcome.failures], 1


def cmd_ingest(args) -> int:
    platform, instance, defs = _open_for_runs()
    days = partition_days(platform, args.start, args.end)
    feeds = [(Job.INGEST, RAW_EVENTS)] + (
        [(Job.INGEST_LABELS, RAW_LABELS)] if platform.spec.labels else []
    )
    codes = []
    with instance:
        for job, asset in feeds:
            outcome = _run(instance, defs, job, f"ingest {asset}", first=days[0], last=days[-1])
            lines, code = _landing_report(outcome, asset)
            print("\n".join(lines), flush=True)
            codes.append(code)
    return 1 if 1 in codes else max(codes)


def cmd_train(args) -> int:
    platform, instance, defs = _open_for_runs()
    cutoff = partition_days(platform, args.cutoff, args.cutoff)[0]
    with instance:
        outcome = _run(instance, defs, Job.TRAINING, "train", partition=cutoff)
    decision = training_decision(outcome, cutoff)
    if args.json:
        print(json.dumps(decision, default=str))
    else:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in decision["metrics"].items())
        print(
            f"v{decision['version']} cutoff {cutoff}: {decision['decision'].upper()}"
            + (f" — holdout {shown}" if shown else "")
        )
        print("\n".join(f"  - {r[:400]}" for r in decision["reasons"]))
    return DECISION_EXIT.get(decision["decision"], DECISION_EXIT[PIPELINE_ERROR])


def cmd_score(args) -> int:
    platform, instance, defs = _open_for_runs()
    days = partition_days(platform, args.start, args.end)
    with instance:
        outcome = _run(instance, defs, Job.SCORING, "score", first=days[0], last=days[-1])
    md = outcome.metadata(SCORES)
    if md:
        print(
            f"{SCORES} {outcome.partitions}: {md.get('rows')} rows scored by"
            f" v{md.get('model_version')} ({md.get('alias')}, mode {md.get('mode')}) for"
            f" {len(md.get('partitions') or [])} day(s) (run {outcome.run_id})"
        )
        for asset in sorted(set(outcome.materializations) - {SCORES}):
            print(f"{asset}: written")
        return 0 if outcome.success else 1
    why = (
        [m for step, _, m in outcome.logs if step == SCORES]
        or outcome.failures
        or ["nothing was scored"]
    )
    print(f"{SCORES} {outcome.partitions}: not written — " + "; ".join(why))
    return 1


# ---- specs and files
# -------------------------------------------------------------------------------------
def _dataset_name(path: Path) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")
    return name if re.match(r"^[a-z]", name) else f"dataset_{name}"


def cmd_spec_infer(args) -> int:
    files = [Path(f) for f in args.files]
    opts = InferOptions(
        target=args.target,
        timestamp=args.timestamp,
        id=args.id,
        name=args.name or _dataset_name(files[0]),
        landing=args.landing,
        formats=tuple(sorted({f.suffix.lower().lstrip(".") for f in files})),
        labels=args.labels,
        label_delay=args.label_delay,
        window_days=args.window_days,
        holdout_days=args.holdout_days,
        margin=args.margin,
    )
    inferred = infer_spec(read_samples(files), opts, [f.name for f in files])
    text = inferred.to_yaml()
    print(text, end="")
    spec = parse_spec(yaml.load(text, Loader=SpecLoader), "<inferred spec>")  # SpecError: exit 2
    _err(
        f"inferred {spec.task} spec {spec.name}: {len(spec.numeric_features)} numeric,"
        f" {len(spec.categorical_features)} categorical, {len(spec.calendar_features)} calendar"
        f" feature(s); pii {spec.pii or 'none'}; left out:"
        f" {', '.join(c for c, _ in inferred.left_out) or 'nothing'}"
    )
    return 0


def cmd_spec_check(args) -> int:
    spec = load_spec(args.file)  # SpecError names the field: exit 2
    lints = spec_lints(spec)
    root = Platform.from_env(spec).home.root
    for field_name, path in (
        ("landing.path", spec.landing.path),
        ("labels.path", spec.labels and spec.labels.path),
    ):
        if path and not spec.resolve(path, root).exists():
            lints.append(
                (
                    field_name,
                    f"{spec.resolve(path, root)} does not exist yet (under MLOPS_HOME={root})",
                )
            )
    print(
        f"ok: {args.file} is a valid {spec.task} spec {spec.name!r} ({len(spec.model_features)}"
        f" features, {'label feed' if spec.labels else 'target in the events'})"
    )
    for field_name, why in lints:
        print(f"warning: {field_name}: {why}")
    return 2 if lints and args.strict else 0


def _drift_columns(frame: pl.DataFrame, names: str | None, numeric: bool) -> list[str]:
    if names:
        return [c.strip() for c in names.split(",") if c.strip()]
    return [
        c
        for c in frame.columns
        if frame[c].dtype.is_numeric() == numeric
        and frame[c].dtype != pl.Boolean
        and not isinstance(frame[c].dtype, pl.Datetime | pl.Date)
        and (numeric or frame[c].n_unique() <= 1000)
    ]


def cmd_drift(args) -> int:
    reference, current = read_samples([Path(args.reference)]), read_samples([Path(args.current)])
    numeric = _drift_columns(reference, args.numeric, True)
    categorical = _drift_columns(reference, args.categorical, False)
    missing = [
        c for c in numeric + categorical if c not in reference.columns or c not in current.columns
    ]
    if missing:
        raise ValueError(f"columns {missing} are not in both files")
    spec = parse_spec(
        {
            "name": "adhoc_drift",
            "task": "regression",
            "landing": {"path": "."},
            "timestamp": "__timestamp__",
            "id": "__id__",
            "target": "__target__",
            "features": {
                "numeric": {c: {} for c in numeric},
                "categorical": {c: {} for c in categorical},
            },
            "partition_start": "2000-01-01",
            "training": {"window_days": 2, "holdout_days": 1},
            "model": {"registered_name": "adhoc_drift"},
        },
        "<drift command>",
    )
    profile = build_reference_profile(
        reference.with_columns(pl.col(categorical).cast(pl.String)), numeric, categorical
    )
    result = feature_drift(profile, current.with_columns(pl.col(categorical).cast(pl.String)), spec)
    report = {
        "columns": [
            {
                "column": c,
                "method": f.get("method"),
                "statistic": f.get("score"),
                "threshold": f.get("threshold"),
                "drifted": bool(f.get("drifted")),
                "status": f.get("status"),
            }
            for c, f in result["features"].items()
        ],
        "share_drifted": result["share_drifted"],
        "dataset_drifted": bool(result["dataset_drifted"]),
    }
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    for c in report["columns"]:
        stat = "-" if c["statistic"] is None else f"{c['statistic']:.4g}"
        mark = "DRIFT" if c["drifted"] else "ok   "
        print(f"{mark} {c['column']}: {c['method']} {stat} (threshold {c['threshold']})")
    print(
        f"dataset {'DRIFTED' if report['dataset_drifted'] else 'not drifted'}: "
        f"share drifted {report['share_drifted']:.2f} (threshold {spec.drift.share_drifted})"
    )
    return 0


def cmd_instance(args) -> int:
    platform, instance, _ = open_platform()
    instance.dispose()
    warning = instance_warning(platform)
    info = {
        "dagster_home": str(platform.home.dagster),
        "mlops_home": str(platform.home.root),
        "export": f"export DAGSTER_HOME={platform.home.dagster}",
        "warning": warning,
    }
    print(
        json.dumps(info)
        if args.json
        else "\n".join(
            [
                f"DAGSTER_HOME={info['dagster_home']} (MLOPS_HOME={info['mlops_home']})",
                info["export"],
            ]
            + ([f"warning: {warning}"] if warning else [])
        )
    )
    return 0


def _timestamp(text: str) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a timestamp (YYYY-MM-DD[THH:MM[:SS]]): {text!r}"
        ) from None
    return (
        at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo else at
    )  # the ledger keeps naive UTC


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops-assets", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "simulate", help="write the default dataset's landing files (events + delayed labels)"
    )
    s.add_argument(
        "--out", required=True, help="landing folder (events/ and labels/ are written under it)"
    )
    s.add_argument("--start", required=True, type=_date)
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

    _add_control_commands(sub)
    st = sub.add_parser("status", help="the state of the platform")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)
    _add_data_commands(sub)
    return p


def _add_control_commands(sub) -> None:
    """promote, approve, rollback, reproduce, reconcile, audit verify, history: the control plane."""
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
    hi.add_argument("--at", type=_timestamp, help="a UTC timestamp: the champion at that moment")
    hi.add_argument("--json", action="store_true")
    hi.set_defaults(fn=cmd_history)


def _add_data_commands(sub) -> None:
    """ingest, train, score, spec infer/check, drift, instance: the commands for one's own data."""
    ig = sub.add_parser(
        "ingest",
        help=(
            "landing files of D1..D2 (and labels that arrived then) → raw tables, checks, "
            "features: one range run per feed"
        ),
    )
    ig.add_argument("--from", dest="start", required=True, type=_date)
    ig.add_argument("--to", dest="end", required=True, type=_date)
    ig.set_defaults(fn=cmd_ingest)

    tr = sub.add_parser(
        "train",
        help=(
            "the training job at cutoff D: exit 0 promoted or challenger, 3 rejected by "
            "the gates, 1 pipeline error"
        ),
    )
    tr.add_argument("--cutoff", required=True, type=_date)
    tr.add_argument(
        "--json", action="store_true", help="one line: version, cutoff, decision, metrics, reasons"
    )
    tr.set_defaults(fn=cmd_train)

    sc = sub.add_parser(
        "score", help="score D1..D2 with the champion (scores, shadow scores, drift): one range run"
    )
    sc.add_argument("--from", dest="start", required=True, type=_date)
    sc.add_argument("--to", dest="end", required=True, type=_date)
    sc.set_defaults(fn=cmd_score)

    sp = sub.add_parser("spec", help="write a spec from sample files; validate and lint a spec")
    sp_sub = sp.add_subparsers(dest="spec_command", required=True)
    si = sp_sub.add_parser("infer", help="a spec YAML on stdout from sample CSV/Parquet files")
    si.add_argument("files", nargs="+", metavar="FILE")
    si.add_argument("--target", required=True)
    si.add_argument(
        "--timestamp", help="the event time column (default: the first datetime column)"
    )
    si.add_argument("--id", help="the event id column (default: a column unique per row)")
    si.add_argument("--name", help="dataset name (default: from the first file's name)")
    si.add_argument(
        "--landing", help="landing folder (default landing/<name>/events under $MLOPS_HOME)"
    )
    si.add_argument(
        "--labels", metavar="PATH", help="a delayed label feed's folder (labels/<arrival date>/*)"
    )
    si.add_argument("--label-delay", type=int, default=1, metavar="DAYS")
    si.add_argument("--window-days", type=int, default=28)
    si.add_argument("--holdout-days", type=int)
    si.add_argument(
        "--margin", type=float, default=0.25, help="ranges widened by this share of their span"
    )
    si.set_defaults(fn=cmd_spec_infer)
    sk = sp_sub.add_parser("check", help="validate (exit 2 naming the field) and lint a spec")
    sk.add_argument("file")
    sk.add_argument("--strict", action="store_true", help="exit 2 on a lint warning too")
    sk.set_defaults(fn=cmd_spec_check)

    dr = sub.add_parser(
        "drift", help="drift between two files with the platform's drift statistics"
    )
    dr.add_argument("--reference", required=True, metavar="FILE")
    dr.add_argument("--current", required=True, metavar="FILE")
    dr.add_argument(
        "--numeric", metavar="C,..", help="numeric columns (default: every numeric column)"
    )
    dr.add_argument(
        "--categorical", metavar="C,..", help="categorical columns (default: every text column)"
    )
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(fn=cmd_drift)

    ins = sub.add_parser("instance", help="the Dagster instance every command and `make ui` use")
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(fn=cmd_instance)


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
