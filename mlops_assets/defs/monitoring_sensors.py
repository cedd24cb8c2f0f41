"""Monitoring sensors: labels → performance, drift → retrain, guard → rollback,
rollback → re-score, shadow evidence → promotion, and alerts on run failures.

Each gathers its inputs from the Delta tables and the registry and acts on a verdict
from ``mlops_assets.monitoring`` / ``promotion``.
"""

import datetime as dt
import json

import polars as pl
from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from mlops_assets.alerts import AlertSink
from mlops_assets.lake import DeltaLake
from mlops_assets.platform import CHAMPION, DRIFT, PERFORMANCE, RAW_LABELS, SCORES, Platform
from mlops_assets.registry import ModelRegistry
from mlops_assets.scorecard import CONTRACT, GATE, classify_failure

TRIGGER_TAG, REASON_TAG = "mlops/trigger", "mlops/reason"


def drift_summary(lake: DeltaLake) -> pl.DataFrame:
    """One row per partition: ds, share_drifted, dataset_drifted, drifted_features."""
    d = lake.read(DRIFT)
    if d.is_empty():
        return pl.DataFrame(schema={"ds": pl.String, "share_drifted": pl.Float64, "dataset_drifted": pl.Boolean,
                                    "drifted_features": pl.String})
    dataset = d.filter(pl.col("feature") == "__dataset__").select(
        "ds", pl.col("score").alias("share_drifted"), pl.col("drifted").alias("dataset_drifted"))
    feats = (d.filter(~pl.col("feature").str.starts_with("__") & pl.col("drifted"))
             .group_by("ds").agg(pl.col("feature").sort().str.join(",").alias("drifted_features")))
    return dataset.join(feats, on="ds", how="left").sort("ds")


def build_monitoring_sensors(platform: Platform, *, training_job, scoring_job, performance_job) -> list:
    spec = platform.spec

    @sensor(name="drift_sensor", job=training_job, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING,
            description="Dataset drift on `drift.consecutive_partitions` consecutive days → one retraining run per "
            "episode (run_key), at most one per `drift.cooldown_days`.")
    def drift_sensor(context: SensorEvaluationContext, lake: DeltaLake, alerts: AlertSink):
        from mlops_assets.monitoring import drift_episode

        episode = drift_episode(drift_summary(lake), spec)
        cursor = json.loads(context.cursor) if context.cursor else {}
        if episode is None:
            return SkipReason("no drift episode")
        if episode.run_key in cursor.get("episodes", []):
            return SkipReason(f"episode starting {episode.days[0]} already triggered a retrain")
        last = cursor.get("last_trigger_day")
        day = dt.date.fromisoformat(episode.days[-1])
        if last and (day - dt.date.fromisoformat(last)).days < spec.drift.cooldown_days:
            return SkipReason(f"cooldown: last drift retrain for {last}, cooldown {spec.drift.cooldown_days} days")
        cutoff = min(day + dt.timedelta(days=1), dt.date.fromisoformat(platform.daily.get_last_partition_key()))
        alerts.send("drift_retrain", severity="warning", reason=episode.reason, partition=cutoff.isoformat(),
                    asset="drift_report", details={"features": list(episode.features), "days": list(episode.days)})
        cursor = {"episodes": [*cursor.get("episodes", []), episode.run_key][-50:], "last_trigger_day": day.isoformat()}
        return SensorResult(
            run_requests=[RunRequest(run_key=episode.run_key, partition_key=cutoff.isoformat(), tags={
                TRIGGER_TAG: "drift_sensor", REASON_TAG: episode.reason[:250],
                "mlops/drift_features": ",".join(episode.features)[:250],
                "mlops/drift_partitions": f"{episode.days[0]}..{episode.days[-1]}"})],
            cursor=json.dumps(cursor))

    @sensor(name="performance_sensor", job=performance_job, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING,
            description="When labels arrive (a new raw_labels commit), requests model_performance for exactly the "
            "scored event days those labels belong to.")
    def performance_sensor(context: SensorEvaluationContext, lake: DeltaLake):
        if spec.labels is None:
            return SkipReason("no label feed: performance follows scores")
        seen = int(context.cursor) if context.cursor else -1
        current = lake.version(RAW_LABELS)
        if current is None or current <= seen or not lake.exists(SCORES):
            return SkipReason("no new labels")
        arrivals = sorted({p for h in lake.history(RAW_LABELS) if h.get("version", -1) > seen
                           for p in (h.get("partitions") or "").split(",") if p})
        ids = lake.scan(RAW_LABELS).filter(pl.col("ds").is_in(arrivals)).select(pl.col(spec.labels.id).alias(spec.id))
        days = (lake.scan(SCORES).select("ds", spec.id).join(ids, on=spec.id, how="semi")
                .select("ds").unique().collect()["ds"].sort().to_list())
        requests = [RunRequest(run_key=f"perf:{d}:labels@v{current}", partition_key=d,
                               tags={TRIGGER_TAG: "performance_sensor",
                                     REASON_TAG: f"labels arrived {arrivals[0]}..{arrivals[-1]}"}) for d in days]
        return SensorResult(run_requests=requests, cursor=str(current))

    @sensor(name="performance_guard_sensor", minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
            description="Champion's matured performance below the guard floor, or behind last_known_good by the "
            "margin → automatic rollback (or alert only, per the spec); once per breach.")
    def performance_guard_sensor(context: SensorEvaluationContext, lake: DeltaLake, registry: ModelRegistry,
                                 alerts: AlertSink):
        from mlops_assets.monitoring import GUARD_REASON_TAG, GUARD_TAG, guard_breach
        from mlops_assets.promotion import PromotionRefused, rollback

        champion = registry.get_alias(CHAMPION)
        if champion is None or not lake.exists(PERFORMANCE):
            return SkipReason("no champion or no matured performance yet")
        handled = json.loads(context.cursor) if context.cursor else []
        breach = guard_breach(lake.read(PERFORMANCE), spec, champion)
        if breach is None:
            return SkipReason(f"champion v{champion} within its guard")
        if champion in handled:
            return SkipReason(f"breach of v{champion} already handled")
        handled.append(champion)
        action = spec.guard.action
        if action == "rollback":
            try:
                outcome = rollback(lake, registry, reason=breach.reason, actor="performance_guard_sensor")
                context.log.warning(f"guard rolled back: {outcome}")
            except PromotionRefused as err:
                action = f"degrade ({err})"
        if action != "rollback":
            registry.set_version_tags(champion, {GUARD_TAG: "tripped", GUARD_REASON_TAG: breach.reason[:500]})
        alerts.send("guard_rollback", reason=f"{breach.reason}; action: {action}", asset="model_performance",
                    details={"version": champion, "metric": breach.metric, "value": breach.value})
        return SensorResult(skip_reason=SkipReason(f"guard acted: {action}"), cursor=json.dumps(handled[-50:]))

    @sensor(name="rescore_sensor", job=scoring_job, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING,
            description="Re-scores every partition that a rolled-back version scored, with the current champion.")
    def rescore_sensor(context: SensorEvaluationContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.promotion import STATUS_TAG

        champion = registry.get_alias(CHAMPION)
        if champion is None or not lake.exists(SCORES):
            return SkipReason("nothing scored yet")
        by_version = lake.scan(SCORES).select("ds", "model_version").unique().collect()
        rolled = {v for v in by_version["model_version"].unique().to_list()
                  if v >= 0 and registry.version_tags(v).get(STATUS_TAG) == "rolled_back"}
        days = sorted(by_version.filter(pl.col("model_version").is_in(list(rolled)))["ds"].unique().to_list())
        if not days:
            return SkipReason("no partition scored by a rolled-back version")
        return [RunRequest(run_key=f"rescore:{d}:v{champion}", partition_key=d,
                           tags={TRIGGER_TAG: "rescore_sensor",
                                 REASON_TAG: f"scored by rolled-back version(s) {sorted(rolled)}; champion v{champion}"})
                for d in days]

    @sensor(name="shadow_promotion_sensor", job=training_job, minimum_interval_seconds=300,
            default_status=DefaultSensorStatus.RUNNING,
            description="With `gates.shadow_days`, re-runs champion[C] once the challenger has that many days of "
            "shadow scores.")
    def shadow_promotion_sensor(context: SensorEvaluationContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.promotion import CUTOFF_TAG, shadow_days_observed
        from mlops_assets.registry import CHALLENGER

        challenger = registry.get_alias(CHALLENGER)
        if spec.gates.shadow_days == 0 or challenger is None or spec.model.require_approval:
            return SkipReason("no challenger waiting for shadow evidence")
        observed = shadow_days_observed(lake, challenger)
        if observed < spec.gates.shadow_days:
            return SkipReason(f"challenger v{challenger}: {observed}/{spec.gates.shadow_days} shadow days")
        cutoff = registry.version_tags(challenger)[CUTOFF_TAG]
        return [RunRequest(run_key=f"shadow:{challenger}", partition_key=cutoff, asset_selection=[_key(CHAMPION)],
                           tags={TRIGGER_TAG: "shadow_promotion_sensor",
                                 REASON_TAG: f"challenger v{challenger} has {observed} shadow days"})]

    @run_failure_sensor(name="alert_on_run_failure", default_status=DefaultSensorStatus.RUNNING,
                        description="Every failed run → an alert with the run, asset, partition, reason and runbook.")
    def alert_on_run_failure(context: RunFailureSensorContext, alerts: AlertSink):
        run = context.dagster_run
        message = context.failure_event.message or ""
        errors = " ".join(e.event_specific_data.error.message for e in context.get_step_failure_events()
                          if e.event_specific_data and e.event_specific_data.error)
        text = f"{message} {errors}"
        # one rule for "what kind of failure" (the scorecard counts failures by the same classes)
        kind = {CONTRACT: "data_contract_failure", GATE: "gate_failure"}.get(classify_failure(text), "pipeline_failure")
        alerts.send(kind, reason=f"run of {run.job_name} failed: {text.strip()[:500]}", run_id=run.run_id,
                    partition=run.tags.get("dagster/partition"), asset=run.job_name)

    return [drift_sensor, performance_sensor, performance_guard_sensor, rescore_sensor, shadow_promotion_sensor,
            alert_on_run_failure]


def _key(name: str):
    from dagster import AssetKey

    return AssetKey(name)
