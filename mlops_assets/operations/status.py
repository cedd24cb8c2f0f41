"""``mlops-assets status``: the state of the platform as one JSON object.

Sources: the Dagster instance (materialised partitions, check executions) and the
Delta tables (versions, quarantine). Later planes add their own keys via
``STATUS_SECTIONS``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl
from dagster import AssetKey, DagsterInstance

from mlops_assets.control.alerts import read_alerts
from mlops_assets.control.instance_queries import (
    RUNNING,
    CheckOutcome,
    latest_check_outcomes,
    latest_run_by_partition,
    run_progress,
    runs_with_tag,
)
from mlops_assets.control.ledger import reconcile, verify_chain
from mlops_assets.core.platform import Platform
from mlops_assets.core.redaction import redact
from mlops_assets.core.vocabulary import (
    DRIFT,
    ESTIMATED_PERFORMANCE,
    ESTIMATION_RECONCILIATION,
    MODEL_VERSION_COLUMN,
    MULTIVARIATE_DRIFT,
    PARTITION_COLUMN,
    PERFORMANCE,
    QUARANTINE,
    SCORECARD,
    SCORES,
    TABLES,
    Alias,
    LineageTag,
    Meta,
    RunTag,
    Sensor,
    Status,
    VersionTag,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.model.lineage import lineage_completeness
from mlops_assets.model.promotion import gate_results, read_audit
from mlops_assets.monitoring.drift.methods import drift_summary
from mlops_assets.operations.scorecard_sources import compute_scorecard

RETRAINS_SHOWN = 20  # the latest drift-sensor retrains in ``retrains``


def tables_status(lake: DeltaLake, tables: tuple[str, ...] = TABLES) -> dict:
    return {t: {"uri": lake.uri(t), "version": lake.version(t)} for t in tables if lake.exists(t)}


def partitions_status(instance: DagsterInstance, defs) -> dict:
    out = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        parts = instance.get_materialized_partitions(key)
        if parts:
            out[key.to_user_string()] = sorted(parts)
    return out


def _check_entry(outcome: CheckOutcome) -> dict:
    entry = {"passed": outcome.passed, "severity": outcome.severity, "run_id": outcome.run_id}
    if not outcome.passed:
        entry["reason"] = outcome.description
    return entry


def checks_status(instance: DagsterInstance, defs) -> dict:
    """Per check: the latest pass/fail per partition, with the failure reason."""
    out: dict[str, dict] = {}
    for check_key in defs.resolve_asset_graph().asset_check_keys:
        latest = latest_check_outcomes(instance, check_key)
        if latest:
            name = f"{check_key.asset_key.to_user_string()}:{check_key.name}"
            failed = sorted(p for p, o in latest.items() if not o.passed)
            out[name] = {
                "partitions": {p: _check_entry(o) for p, o in sorted(latest.items())},
                "failed": failed,
            }
    return out


def quarantine_status(lake: DeltaLake, instance: DagsterInstance, limit: int = 50) -> dict:
    """Rejections of each partition's latest ingest ("current") and the whole append-only log."""
    if not lake.exists(QUARANTINE):
        return {
            "rows": 0,
            "files": 0,
            "by_file": [],
            "rejected_files": [],
            "history": {"rows": 0, "files": 0},
        }
    log = lake.read(QUARANTINE)
    latest = [
        (feed, ds, run)
        for feed in log["feed"].unique().to_list()
        for ds, run in latest_run_by_partition(instance, feed).items()
    ]
    current_runs = pl.DataFrame(
        latest,
        schema={"feed": pl.String, PARTITION_COLUMN: pl.String, "run_id": pl.String},
        orient="row",
    )
    current = log.join(current_runs, on=["feed", PARTITION_COLUMN, "run_id"], how="semi")

    def summary(q: pl.DataFrame) -> dict:
        file_level = q.filter(pl.col("row").is_null() | (pl.col("rule") == "unreadable"))
        by_file = (
            q.group_by("feed", PARTITION_COLUMN, "file", "rule")
            .agg(pl.len().alias("rows"), pl.col("reason").first().alias("example"))
            .sort("feed", PARTITION_COLUMN, "file", "rule")
        )
        return {
            "rows": q.height - file_level.height,
            "files": file_level.height,
            "by_file": by_file.to_dicts()[:limit],
            "rejected_files": (
                file_level.sort("feed", PARTITION_COLUMN, "file")
                .select("feed", PARTITION_COLUMN, "file", "rule", "reason")
                .to_dicts()[:limit]
            ),
        }

    out = summary(current)
    out["history"] = summary(log)
    return out


def audit_status(lake: DeltaLake, registry) -> dict:
    """Whether the audit ledger's chain holds; when it does, moves that died half-way are completed
    and aliases that drifted from the ledger restored (what was repaired is reported)."""
    report, repaired, problem = verify_chain(lake), None, None
    if report.ok:  # repair only from a ledger that can be trusted
        try:
            repaired = reconcile(lake, registry, actor="status")
        # status reports an outage, it does not crash on one
        except Exception as err:
            problem = redact(f"{type(err).__name__}: {err}")[:500]
        if repaired and any(repaired.values()):
            report = verify_chain(lake)
    out = {
        "verified": report.ok,
        "rows": report.rows,
        "broken_at": report.broken_at,
        "summary": str(report),
    }
    return (
        out
        | ({"reconciled": repaired} if repaired else {})
        | ({"reconcile_error": problem} if problem else {})
    )


def registry_status(platform: Platform, registry, lake: DeltaLake) -> dict:
    """champion / last_known_good / challenger with why, gate results and lineage; the latest
    audit rows."""
    versions = {v["version"]: v for v in registry.list_versions()}
    audit = read_audit(lake, limit=20, strict=False)

    def describe(alias: str) -> dict | None:
        version = registry.get_alias(alias)
        if version is None:
            return None
        tags = versions.get(version, {}).get("tags", {})
        moves = (
            audit.filter((pl.col("to_version") == version) & (pl.col("alias") == alias))
            if audit.height
            else audit
        )
        last = moves.row(0, named=True) if moves.height else {}
        return {
            "version": version,
            "status": tags.get(VersionTag.STATUS),
            "cutoff": tags.get(VersionTag.CUTOFF),
            "since": str(last.get("at")) if last else tags.get(VersionTag.PROMOTED_AT),
            "why": last.get("reason") if last else tags.get(VersionTag.PROMOTION_REASON),
            "by": last.get("actor") if last else None,
            "gates": gate_results(lake, version),
        }

    champion = describe(Alias.CHAMPION)
    lineage = {}
    if champion:
        tags = versions[champion["version"]]["tags"]
        lineage = {k: v for k, v in tags.items() if k.startswith(LineageTag.PREFIX)}
        lineage["completeness"] = lineage_completeness(tags)
    return {
        "champion": champion,
        "last_known_good": describe(Alias.LAST_KNOWN_GOOD),
        "challenger": describe(Alias.CHALLENGER),
        "lineage": lineage,
        "models": [
            {
                "version": v,
                "status": d["tags"].get(VersionTag.STATUS),
                "cutoff": d["tags"].get(VersionTag.CUTOFF),
                "aliases": d["aliases"],
                "rejected_reasons": d["tags"].get(VersionTag.REJECTED_REASONS),
            }
            for v, d in sorted(versions.items())
        ],
        "audit": [
            {k: str(v) if k == "at" else v for k, v in row.items() if k != "gate_results"}
            for row in audit.to_dicts()
        ],
    }


def scores_status(lake: DeltaLake) -> dict:
    """Partitions by the model version and mode that scored them."""
    if not lake.exists(SCORES):
        return {"partitions": 0, "by_version": []}
    by = (
        lake.scan(SCORES)
        .group_by(MODEL_VERSION_COLUMN, "mode")
        .agg(pl.col(PARTITION_COLUMN).unique().sort().alias("partitions"), pl.len().alias("rows"))
        .collect()
        .sort(MODEL_VERSION_COLUMN)
    )
    return {
        "partitions": int(
            lake.scan(SCORES).select(pl.col(PARTITION_COLUMN).n_unique()).collect().item()
        ),
        "by_version": by.to_dicts(),
    }


def drift_status(lake: DeltaLake, limit: int = 7) -> list[dict]:
    return drift_summary(lake.read(DRIFT)).tail(limit).to_dicts()


def performance_status(lake: DeltaLake, limit: int = 7) -> list[dict]:
    if not lake.exists(PERFORMANCE):
        return []
    return lake.read(PERFORMANCE).sort(PARTITION_COLUMN).drop("metrics").tail(limit).to_dicts()


def estimated_performance_status(lake: DeltaLake, limit_days: int = 14) -> list[dict]:
    """The estimates of the latest ``limit_days`` estimated days, beside the realised metric once
    labels matured (``realised`` / ``abs_error`` null until then)."""
    est = lake.read(ESTIMATED_PERFORMANCE)
    if est.is_empty():
        return []
    days = sorted(set(est[PARTITION_COLUMN].to_list()))[-limit_days:]
    recon = lake.read(ESTIMATION_RECONCILIATION, days)
    keys = [PARTITION_COLUMN, MODEL_VERSION_COLUMN, "metric"]
    realised = (
        recon.select(*keys, "realised", "abs_error")
        if not recon.is_empty()
        else pl.DataFrame(
            schema={
                **{k: est.schema[k] for k in keys},
                "realised": pl.Float64,
                "abs_error": pl.Float64,
            }
        )
    )
    return (
        est.filter(pl.col(PARTITION_COLUMN).is_in(days))
        .select(*keys, "estimate")
        .join(realised, on=keys, how="left")
        .sort(keys)
        .to_dicts()
    )


def multivariate_drift_status(lake: DeltaLake, limit_days: int = 14) -> list[dict]:
    mv = lake.read(MULTIVARIATE_DRIFT)
    if mv.is_empty():
        return []
    return (
        mv.sort(PARTITION_COLUMN)
        .tail(limit_days)
        .select(PARTITION_COLUMN, "reconstruction_error", "threshold", "drifted")
        .to_dicts()
    )


def retrains_status(instance: DagsterInstance) -> list[dict]:
    """Runs the drift sensor triggered, with why."""
    runs = [
        rec.dagster_run
        for rec in runs_with_tag(instance, RunTag.TRIGGER, Sensor.DRIFT, limit=RETRAINS_SHOWN)
    ]
    return [
        {
            "run_id": r.run_id,
            "cutoff": r.tags.get(RunTag.PARTITION),
            "status": r.status.value,
            "reason": r.tags.get(RunTag.REASON),
            "features": r.tags.get(RunTag.DRIFT_FEATURES),
        }
        for r in runs
    ]


def runs_status(instance: DagsterInstance) -> dict:
    """Runs queued (waiting for the daemon), in progress, and stuck: in progress but dead
    (``instance_queries.stuck_reason``: the worker process is gone, or nothing logged for 30
    min)."""
    progress = run_progress(instance)
    running = {s.value for s in RUNNING}
    return {
        "queued": [p.as_dict() for p in progress if p.status not in running and not p.stuck],
        "in_progress": [p.as_dict() for p in progress if p.status in running and not p.stuck],
        "stuck": [p.as_dict() for p in progress if p.stuck],
    }


# Each plane registers its section: name -> fn(platform, instance, defs, lake) -> JSON-able.
STATUS_SECTIONS: dict[str, Callable] = {
    "tables": lambda p, i, d, lake: tables_status(lake),
    "partitions": lambda p, i, d, lake: partitions_status(i, d),
    "checks": lambda p, i, d, lake: checks_status(i, d),
    "quarantine": lambda p, i, d, lake: quarantine_status(lake, i),
    "scores": lambda p, i, d, lake: scores_status(lake),
    "drift": lambda p, i, d, lake: drift_status(lake),
    "performance": lambda p, i, d, lake: performance_status(lake),
    "estimated_performance": lambda p, i, d, lake: estimated_performance_status(lake),
    "multivariate_drift": lambda p, i, d, lake: multivariate_drift_status(lake),
    "retrains": lambda p, i, d, lake: retrains_status(i),
    "runs": lambda p, i, d, lake: runs_status(i),
    "alerts": lambda p, i, d, lake: read_alerts(p.home.alerts),
}


def scorecard_status(instance: DagsterInstance, lake: DeltaLake, registry, spec) -> dict:
    """The scorecard's latest materialisation (the point the UI plots last; ``source:
    materialization``, with when and by which run), else the card computed now (``source:
    computed``)."""
    event = instance.get_latest_materialization_event(AssetKey(SCORECARD))
    entry = (
        event.asset_materialization.metadata.get(Meta.SCORECARD_BREAKDOWN)
        if event and event.asset_materialization
        else None
    )
    if entry is not None and isinstance(entry.value, dict):
        at = dt.datetime.fromtimestamp(event.timestamp, dt.UTC).isoformat(timespec="seconds")
        return {
            **entry.value,
            "source": "materialization",
            "materialized_at": at,
            "run_id": event.run_id,
        }
    return {**compute_scorecard(instance, lake, registry, spec), "source": "computed"}


def collect_status(platform: Platform, instance: DagsterInstance, defs) -> dict:
    lake = defs.resources["lake"]
    status = {"spec": platform.spec.name, "mlops_home": str(platform.home.root)}
    status["audit_ledger"] = audit_status(lake, defs.resources["registry"])
    for name, fn in STATUS_SECTIONS.items():
        status[name] = fn(platform, instance, defs, lake)
    status.update(registry_status(platform, defs.resources["registry"], lake))
    status["scorecard"] = scorecard_status(
        instance, lake, defs.resources["registry"], platform.spec
    )
    return status


def render_text(status: dict) -> str:
    """What is running, and why — then the state of the data."""
    lines = [f"mlops_assets — dataset {status['spec']} under {status['mlops_home']}"]
    for section in (_serving_lines, _run_lines, _data_lines, _monitoring_lines):
        lines += section(status)
    return "\n".join(lines)


def _serving_lines(status: dict) -> list[str]:
    """The audit ledger, the champion with its gates and lineage, fallback and challenger."""
    lines = []
    ledger = status.get("audit_ledger") or {}
    if ledger:
        lines.append(
            f"  {ledger['summary']}"
            + (
                f"; reconciled {ledger['reconciled']}"
                if any((ledger.get("reconciled") or {}).values())
                else ""
            )
        )
    champ = status.get("champion")
    if champ:
        lines.append(
            f"  serving: champion = version {champ['version']} (cutoff {champ['cutoff']}), since"
            f" {champ['since']}, by {champ['by']}: {champ['why']}"
        )
        failed = [g["gate"] for g in champ["gates"] if not g["passed"]]
        lines.append(
            f"    gates: {len(champ['gates']) - len(failed)}/{len(champ['gates'])} passed"
            + (f"; waived: {', '.join(failed)}" if failed else "")
        )
        lines.append(
            f"    lineage: git {status['lineage'].get(LineageTag.GIT_SHA, '?')[:10]}, "
            f"data {status['lineage'].get(LineageTag.DELTA_VERSIONS)}, "
            f"completeness {status['lineage'].get('completeness', 0):.0%}"
        )
    else:
        lines.append("  serving: no champion yet")
    if status.get("last_known_good"):
        lines.append(
            f"  fallback: last_known_good = version {status['last_known_good']['version']}"
        )
    if status.get("challenger"):
        why = (
            status["challenger"].get("why") or "needs `mlops-assets approve`"
        )  # approval, or shadow days
        lines.append(f"  waiting: challenger = version {status['challenger']['version']} ({why})")
    return lines + _decision_lines(status)


def _decision_lines(status: dict) -> list[str]:
    """The latest rejected versions and audit rows."""
    lines = []
    rejected = [m for m in status.get("models", []) if m["status"] == Status.REJECTED]
    for m in rejected[-3:]:
        lines.append(
            f"  rejected: version {m['version']} (cutoff {m['cutoff']}):"
            f" {(m['rejected_reasons'] or '')[:120]}"
        )
    for row in status.get("audit", [])[:3]:
        lines.append(
            f"  audit: {row['at'][:19]} {row['action']} {row['from_version']}→{row['to_version']} "
            f"by {row['actor']}: {(row['reason'] or '')[:100]}"
        )
    return lines


def _run_lines(status: dict) -> list[str]:
    """Runs queued, in progress and stuck (with what to do about a stuck one)."""
    lines = []
    runs = status.get("runs") or {}
    if runs:
        lines.append(
            f"  runs: {len(runs['queued'])} queued, {len(runs['in_progress'])} in progress, "
            f"{len(runs['stuck'])} stuck"
        )
    for r in runs.get("in_progress", [])[:5]:
        lines.append(
            f"    running: {r['job']} {r['run_id'][:8]} {r['status']} since {r['created_at'][:19]}"
        )
    for r in runs.get("stuck", []):
        lines.append(
            f"    STUCK: {r['job']} {r['run_id']} {r['status']} since {r['created_at'][:19]}:"
            f" {r['stuck']} — terminate it in the UI (force termination marks it canceled), then"
            " re-run it"
        )
    return lines


def _data_lines(status: dict) -> list[str]:
    """Tables, materialised partitions, failing checks, quarantine, scores by version."""
    lines = []
    for name, t in status["tables"].items():
        lines.append(f"  table {name}: version {t['version']} at {t['uri']}")
    for key, parts in status["partitions"].items():
        lines.append(f"  {key}: {len(parts)} partition(s) materialised, {parts[0]} .. {parts[-1]}")
    failed = {c: v["failed"] for c, v in status["checks"].items() if v["failed"]}
    lines.append(f"  checks: {len(status['checks'])} with results, {len(failed)} failing somewhere")
    for c, parts in failed.items():
        lines.append(f"    {c} failing on {', '.join(parts[:5])}{' …' if len(parts) > 5 else ''}")
    q = status["quarantine"]
    lines.append(f"  quarantine: {q['rows']} row(s) and {q['files']} file(s) rejected")
    sc = status.get("scores") or {}
    for entry in sc.get("by_version", []):
        lines.append(
            f"  scores: v{entry[MODEL_VERSION_COLUMN]} ({entry['mode']}) scored"
            f" {len(entry['partitions'])} day(s)"
        )
    return lines


def _monitoring_lines(status: dict) -> list[str]:
    """The latest drift, estimated performance, multivariate drift, retrains and alerts."""
    lines = []
    if status.get("drift"):
        last = status["drift"][-1]
        lines.append(
            f"  drift: {last[PARTITION_COLUMN]} share {last['share_drifted']:.2f}"
            f" ({'DRIFTED' if last['dataset_drifted'] else 'stable'})"
            f" {last.get('drifted_features') or ''}"
        )
    for r in [
        r for r in status.get("estimated_performance", []) if r["metric"] in ("roc_auc", "rmse")
    ][-3:]:
        lines.append(
            f"  estimated {r['metric']}: {r[PARTITION_COLUMN]} v{r[MODEL_VERSION_COLUMN]}"
            f" {r['estimate']:.3f}"
            + (
                f", realised {r['realised']:.3f} (|error| {r['abs_error']:.3f})"
                if r["realised"] is not None
                else ", labels not matured"
            )
        )
    if status.get("multivariate_drift"):
        m = status["multivariate_drift"][-1]
        lines.append(
            f"  multivariate drift: {m[PARTITION_COLUMN]} reconstruction error "
            + (
                f"{m['reconstruction_error']:.3f} vs threshold {m['threshold']:.3f} "
                f"({'DRIFTED' if m['drifted'] else 'stable'})"
                if m["reconstruction_error"] is not None
                else "not judged"
            )
        )
    for r in status.get("retrains", [])[:3]:
        lines.append(f"  retrain: cutoff {r['cutoff']} {r['status']} — {(r['reason'] or '')[:100]}")
    for a in status.get("alerts", [])[:3]:
        lines.append(
            f"  alert: {a['at']} {a['kind']}: {a['reason'][:100]} (runbook {a['runbook']})"
        )
    return lines
