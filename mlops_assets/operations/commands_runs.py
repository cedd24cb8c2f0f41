"""``mlops-assets`` commands that run a job on the instance under ``$MLOPS_HOME/dagster``
(ingest, train, score) or name that instance (instance); progress goes to stderr, the
outcome to stdout."""

from __future__ import annotations

import json

from mlops_assets.core.vocabulary import FEATURES, RAW_EVENTS, RAW_LABELS, SCORES, Job, Meta, RunTag
from mlops_assets.operations.commands_common import parse_date, print_err
from mlops_assets.operations.runs import (
    DECISION_EXIT,
    PIPELINE_ERROR,
    LaunchedRunOutcome,
    instance_warning,
    launch_run,
    open_platform,
    partition_days,
    training_decision,
)


def _open_for_runs():
    """(platform, instance, defs), after warning when ``$DAGSTER_HOME`` is not the instance the
    UI shows."""
    platform, instance, defs = open_platform()
    if warning := instance_warning(platform):
        print_err(f"warning: {warning}")
    print_err(
        f"instance: {platform.home.dagster} (spec {platform.spec.name}); `make ui` shows these runs"
    )
    return platform, instance, defs


def _run(instance, defs, job: str, what: str, **kw) -> LaunchedRunOutcome:
    print_err(
        f"{what}: job {job} on {kw.get('partition') or kw.get('first') + '..' + kw.get('last')}"
    )
    tags = {RunTag.TRIGGER: "cli", RunTag.REASON: f"mlops-assets {what}"}
    outcome = launch_run(instance, defs, job, progress=print_err, tags=tags, **kw)
    print_err(f"{what}: run {outcome.run_id} {'succeeded' if outcome.success else 'FAILED'}")
    return outcome


def _landing_report(outcome: LaunchedRunOutcome, asset: str) -> tuple[list[str], int]:
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
            f" v{md.get(Meta.MODEL_VERSION)} ({md.get('alias')}, mode {md.get('mode')}) for"
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


def add_run_commands(sub) -> None:
    """ingest, train, score: one job run on the instance under $MLOPS_HOME."""
    ig = sub.add_parser(
        "ingest",
        help=(
            "landing files of D1..D2 (and labels that arrived then) → raw tables, checks, "
            "features: one range run per feed"
        ),
    )
    ig.add_argument("--from", dest="start", required=True, type=parse_date)
    ig.add_argument("--to", dest="end", required=True, type=parse_date)
    ig.set_defaults(fn=cmd_ingest)

    tr = sub.add_parser(
        "train",
        help=(
            "the training job at cutoff D: exit 0 promoted or challenger, 3 rejected by "
            "the gates, 1 pipeline error"
        ),
    )
    tr.add_argument("--cutoff", required=True, type=parse_date)
    tr.add_argument(
        "--json", action="store_true", help="one line: version, cutoff, decision, metrics, reasons"
    )
    tr.set_defaults(fn=cmd_train)

    sc = sub.add_parser(
        "score", help="score D1..D2 with the champion (scores, shadow scores, drift): one range run"
    )
    sc.add_argument("--from", dest="start", required=True, type=parse_date)
    sc.add_argument("--to", dest="end", required=True, type=parse_date)
    sc.set_defaults(fn=cmd_score)


def add_instance_command(sub) -> None:
    """instance: where every command's runs go, and the export that points a shell there."""
    ins = sub.add_parser("instance", help="the Dagster instance every command and `make ui` use")
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(fn=cmd_instance)
