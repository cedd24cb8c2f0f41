"""Monitoring sensors: labels → performance, drift → retrain, guard → rollback,
rollback → re-score, shadow evidence → promotion, and alerts on run failures.

Each gathers its inputs from the Delta tables and the registry and acts on a verdict
from ``monitoring`` (drift episodes, the guard) or ``promotion``.
"""

import datetime as dt
import json

import polars as pl
from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from mlops_assets.control.alerts import AlertSink
from mlops_assets.control.ledger import MoveConflict, reconcile
from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import (
    AUDIT,
    CHAMPION,
    DRIFT,
    DRIFT_REPORT,
    ESTIMATED_PERFORMANCE,
    ESTIMATION_RECONCILIATION,
    GUARD_TRIPPED,
    MODEL_PERFORMANCE,
    MULTIVARIATE_DRIFT,
    PARTITION_COLUMN,
    PERFORMANCE,
    RAW_LABELS,
    SCORES,
    Alias,
    RunTag,
    Sensor,
    Status,
    VersionTag,
    run_partitions,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import days_requests
from mlops_assets.model.promotion import PromotionRefused, rollback, shadow_days_observed
from mlops_assets.monitoring.drift.methods import drift_summary
from mlops_assets.monitoring.drift.multivariate import as_drift_summary, merge_into_summary
from mlops_assets.monitoring.estimation.rules import estimator_trust, floor_run
from mlops_assets.monitoring.rules import RetrainRequest, drift_episode, drift_retrain, guard_breach
from mlops_assets.operations.scorecard import CONTRACT, GATE, classify_failure


def run_tags(trigger: str, reason: str, **extra: str) -> dict[str, str]:
    """The tags every run a sensor requests carries: who asked, and why."""
    return {RunTag.TRIGGER: trigger, RunTag.REASON: reason[:250], **extra}


def labelled_days(lake: DeltaLake, spec, after_version: int) -> tuple[list[str], list[str]]:
    """(arrival days of the labels committed after ``after_version``, scored event days they belong
    to).
    When the log no longer holds every commit since (dropped by maintenance after the log
    retention), every
    arrival day counts: a day's performance is recomputed rather than missed."""
    history = lake.history(RAW_LABELS)
    if min((h.get("version", 0) for h in history), default=0) > after_version + 1:
        arrivals = sorted(d for d in lake.partition_counts(RAW_LABELS) if d)
    else:
        arrivals = sorted(
            {
                p
                for h in history
                if h.get("version", -1) > after_version
                for p in (h.get("partitions") or "").split(",")
                if p
            }
        )
    ids = (
        lake.scan(RAW_LABELS)
        .filter(pl.col(PARTITION_COLUMN).is_in(arrivals))
        .select(pl.col(spec.labels.id).alias(spec.id))
    )
    days = (
        lake.scan(SCORES)
        .select(PARTITION_COLUMN, spec.id)
        .join(ids, on=spec.id, how="semi")
        .select(PARTITION_COLUMN)
        .unique()
        .collect()[PARTITION_COLUMN]
        .sort()
        .to_list()
    )
    return arrivals, days


def scored_by_rolled_back(lake: DeltaLake, registry: ModelRegistry) -> list[tuple[str, int]]:
    """(day, version) for every day holding rows of a rolled-back version, sorted."""
    by_version = lake.scan(SCORES).select(PARTITION_COLUMN, "model_version").unique().collect()
    rolled = [
        v
        for v in by_version["model_version"].unique().to_list()
        if v >= 0 and registry.version_tags(v).get(VersionTag.STATUS) == Status.ROLLED_BACK
    ]
    return sorted(by_version.filter(pl.col("model_version").is_in(rolled)).iter_rows())


def rescore_due(
    scored: list[tuple[str, int]], champion: int, cursor: str | None
) -> tuple[list[tuple[str, int]], str]:
    """(the ``scored`` (day, version) pairs not yet requested for ``champion``, the cursor after
    requesting
    them). A day is re-scored once per champion and rolled-back version that scored it, however
    the set of
    days moves between ticks (a daily run that scored with the old version after the rollback, a day
    re-processed): the runs are per block of days, so their run keys alone would request a moved
    block's
    days again. The cursor keeps only the pairs still scored (a re-scored day leaves it): it
    stays small."""
    before = json.loads(cursor) if cursor else {}
    requested = (
        {(day, version) for day, version in before.get("requested", [])}
        if before.get("champion") == champion
        else set()
    )
    due = [pair for pair in scored if pair not in requested]
    return due, json.dumps({"champion": champion, "requested": sorted(set(scored))})


def guard_act(
    context, lake: DeltaLake, registry: ModelRegistry, champion: int, reason: str, action: str
):
    """``rollback`` (or, when refused, degrade) or ``alert`` (degrade: the version is tagged
    guard-tripped);
    returns what was done, or a ``SkipReason`` when another alias move won the race."""
    if action == "rollback":
        try:
            context.log.warning(
                f"guard rolled back: {rollback(lake, registry, reason=reason, actor=Sensor.GUARD)}"
            )
        except MoveConflict as err:  # another move won the race: judge the new state next tick
            return SkipReason(f"guard deferred: {err}")
        except PromotionRefused as err:
            action = f"degrade ({err})"
    if action != "rollback":
        registry.set_version_tags(
            champion, {VersionTag.GUARD: GUARD_TRIPPED, VersionTag.GUARD_REASON: reason[:500]}
        )
    return action


def estimate_guard(
    context,
    lake: DeltaLake,
    registry: ModelRegistry,
    alerts: AlertSink,
    spec,
    champion: int,
    handled: list,
):
    """``guard.use_estimate``: the champion's estimate beyond the floor on
    ``estimation.consecutive_days`` days,
    acted on only while its estimator is trustworthy (``ml.estimate_rules``); once per version."""
    mode, key = spec.guard.use_estimate, f"estimate:v{champion}"
    run = floor_run(lake.read(ESTIMATED_PERFORMANCE), spec, champion) if mode != "off" else None
    if run is None:
        return SkipReason(f"champion v{champion} within its guard")
    trust = estimator_trust(lake.read(ESTIMATION_RECONCILIATION), spec, champion)
    if not trust.trusted:
        return SkipReason(
            f"{run.reason}; ignored: the estimator is not trustworthy ({trust.reason})"
        )
    if key in handled:
        return SkipReason(f"estimate breach of v{champion} already handled")
    action = "alert only (guard.use_estimate: alert)"
    if mode == "rollback":
        action = guard_act(context, lake, registry, champion, run.reason, spec.guard.action)
        if isinstance(action, SkipReason):
            return action
    alerts.send(
        "guard_rollback",
        severity="error" if mode == "rollback" else "warning",
        reason=f"{run.reason}; estimator trusted ({trust.reason}); action: {action}",
        asset=ESTIMATED_PERFORMANCE,
        details={
            "version": champion,
            "metric": run.metric,
            "values": list(run.values),
            "days": list(run.days),
        },
    )
    return SensorResult(
        skip_reason=SkipReason(f"guard acted on the estimate: {action}"),
        cursor=json.dumps([*handled, key][-50:]),
    )


def multivariate_feed(
    lake: DeltaLake, spec, summary: pl.DataFrame, champion: int | None, alerts: AlertSink
) -> pl.DataFrame:
    """``drift.multivariate``: ``retrain`` folds the multivariate verdicts into the drift summary
    the sensor
    judges; ``alert`` sends one alert per multivariate episode that per-column drift does not see
    (its latest day
    not drifted there) and leaves the summary as it is; ``off`` nothing."""
    mode = spec.drift.multivariate
    mv = lake.read(MULTIVARIATE_DRIFT) if mode != "off" else pl.DataFrame()
    if mv.is_empty():
        return summary
    if mode == "retrain":
        return merge_into_summary(summary, mv)
    episode = drift_episode(as_drift_summary(mv), spec, champion)
    seen = (
        set(summary.filter(pl.col("dataset_drifted").fill_null(False))["ds"].to_list())
        if episode
        else set()
    )
    if (
        episode is not None and episode.days[-1] not in seen
    ):  # news only: per-column drift did not see that day
        alerts.send(
            "drift_retrain",
            severity="warning",
            asset=MULTIVARIATE_DRIFT,
            partition=episode.days[-1],
            reason=(
                "multivariate drift (PCA reconstruction error above its threshold) from"
                f" {episode.days[0]} against champion v{episode.champion}'s reference; alert only"
                " (drift.multivariate: alert)"
            ),
            details={"days": list(episode.days), "error_over_threshold": list(episode.shares)},
        )
    return summary


def build_monitoring_sensors(
    platform: Platform, *, training_job, scoring_job, performance_job
) -> list:
    spec = platform.spec

    @sensor(
        name=Sensor.DRIFT,
        job=training_job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Dataset drift on `drift.consecutive_partitions` consecutive days against the"
            " champion's reference → a retraining run (run_key per episode and cooldown period), at"
            " most one per `drift.cooldown_days`; a new champion starts a new episode."
        ),
    )
    def drift_sensor(
        context: SensorEvaluationContext,
        lake: DeltaLake,
        registry: ModelRegistry,
        alerts: AlertSink,
    ):
        last_partition = dt.date.fromisoformat(platform.daily.get_last_partition_key())
        champion = registry.get_alias(Alias.CHAMPION)
        summary = multivariate_feed(lake, spec, drift_summary(lake.read(DRIFT)), champion, alerts)
        episode = drift_episode(summary, spec, champion)
        decision = drift_retrain(
            episode, json.loads(context.cursor) if context.cursor else {}, spec, last_partition
        )
        if not isinstance(decision, RetrainRequest):
            return SkipReason(decision)
        episode, cutoff = decision.episode, decision.cutoff.isoformat()
        alerts.send(
            "drift_retrain",
            severity="warning",
            reason=episode.reason,
            partition=cutoff,
            asset=DRIFT_REPORT,
            details={"features": list(episode.features), "days": list(episode.days)},
        )
        tags = run_tags(
            Sensor.DRIFT,
            episode.reason,
            **{
                RunTag.DRIFT_FEATURES: ",".join(episode.features)[:250],
                RunTag.DRIFT_PARTITIONS: f"{episode.days[0]}..{episode.days[-1]}",
            },
        )
        return SensorResult(
            run_requests=[RunRequest(run_key=episode.run_key, partition_key=cutoff, tags=tags)],
            cursor=json.dumps(decision.cursor),
        )

    @sensor(
        name=Sensor.PERFORMANCE,
        job=performance_job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "When labels arrive (a new raw_labels commit), requests model_performance for exactly"
            " the scored event days those labels belong to: one run per block of consecutive days."
        ),
    )
    def performance_sensor(context: SensorEvaluationContext, lake: DeltaLake):
        if spec.labels is None:
            return SkipReason("no label feed: performance follows scores")
        seen = int(context.cursor) if context.cursor else -1
        current = lake.version(RAW_LABELS)
        if current is None or current <= seen or not lake.exists(SCORES):
            return SkipReason("no new labels")
        arrivals, days = labelled_days(lake, spec, seen)
        reason = f"labels arrived {arrivals[0]}..{arrivals[-1]}" if arrivals else "labels rewritten"
        return SensorResult(
            run_requests=days_requests(
                days,
                lambda block: f"perf:{block}:labels@v{current}",
                run_tags(Sensor.PERFORMANCE, reason),
            ),
            cursor=str(current),
        )

    @sensor(
        name=Sensor.GUARD,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Champion's matured performance below the guard floor, or behind last_known_good by the"
            " margin → automatic rollback (or alert only, per the spec); once per breach."
        ),
    )
    def performance_guard_sensor(
        context: SensorEvaluationContext,
        lake: DeltaLake,
        registry: ModelRegistry,
        alerts: AlertSink,
    ):
        champion = registry.get_alias(Alias.CHAMPION)
        if champion is None or not lake.exists(PERFORMANCE):
            return SkipReason("no champion or no matured performance yet")
        handled = json.loads(context.cursor) if context.cursor else []
        breach = guard_breach(lake.read(PERFORMANCE), spec, champion)
        if breach is None:  # matured labels are fine: the estimate's turn (guard.use_estimate)
            return estimate_guard(context, lake, registry, alerts, spec, champion, handled)
        if champion in handled:
            return SkipReason(f"breach of v{champion} already handled")
        action = guard_act(context, lake, registry, champion, breach.reason, spec.guard.action)
        if isinstance(action, SkipReason):
            return action
        alerts.send(
            "guard_rollback",
            reason=f"{breach.reason}; action: {action}",
            asset=MODEL_PERFORMANCE,
            details={"version": champion, "metric": breach.metric, "value": breach.value},
        )
        return SensorResult(
            skip_reason=SkipReason(f"guard acted: {action}"),
            cursor=json.dumps([*handled, champion][-50:]),
        )

    @sensor(
        name=Sensor.RESCORE,
        job=scoring_job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Re-scores every partition that a rolled-back version scored, with the current"
            " champion: one run per block of consecutive days."
        ),
    )
    def rescore_sensor(context: SensorEvaluationContext, lake: DeltaLake, registry: ModelRegistry):
        champion = registry.get_alias(Alias.CHAMPION)
        if champion is None or not lake.exists(SCORES):
            return SkipReason("nothing scored yet")
        due, cursor = rescore_due(scored_by_rolled_back(lake, registry), champion, context.cursor)
        if not due:
            return SkipReason("no partition scored by a rolled-back version waits for re-scoring")
        days, rolled = sorted({day for day, _ in due}), sorted({version for _, version in due})
        reason = f"scored by rolled-back version(s) {rolled}; champion v{champion}"
        return SensorResult(
            run_requests=days_requests(
                days, lambda block: f"rescore:{block}:v{champion}", run_tags(Sensor.RESCORE, reason)
            ),
            cursor=cursor,
        )

    @sensor(
        name=Sensor.SHADOW_PROMOTION,
        job=training_job,
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "With `gates.shadow_days`, re-runs champion[C] once the challenger has that many days"
            " of shadow scores."
        ),
    )
    def shadow_promotion_sensor(
        context: SensorEvaluationContext, lake: DeltaLake, registry: ModelRegistry
    ):
        challenger = registry.get_alias(Alias.CHALLENGER)
        if spec.gates.shadow_days == 0 or challenger is None or spec.model.require_approval:
            return SkipReason("no challenger waiting for shadow evidence")
        observed = shadow_days_observed(lake, challenger)
        if observed < spec.gates.shadow_days:
            return SkipReason(
                f"challenger v{challenger}: {observed}/{spec.gates.shadow_days} shadow days"
            )
        cutoff = registry.version_tags(challenger)[VersionTag.CUTOFF]
        return [
            RunRequest(
                run_key=f"shadow:{challenger}",
                partition_key=cutoff,
                asset_selection=[AssetKey(CHAMPION)],
                tags=run_tags(
                    Sensor.SHADOW_PROMOTION, f"challenger v{challenger} has {observed} shadow days"
                ),
            )
        ]

    @sensor(
        name=Sensor.RECONCILE,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Completes alias moves whose process died half-way and restores aliases that drifted"
            " from the audit ledger (the source of truth)."
        ),
    )
    def reconcile_sensor(
        context: SensorEvaluationContext,
        lake: DeltaLake,
        registry: ModelRegistry,
        alerts: AlertSink,
    ):
        repaired = reconcile(lake, registry, actor=Sensor.RECONCILE)
        if repaired["completed_moves"] or repaired["restored_aliases"]:
            context.log.warning(f"reconciled: {repaired}")
            alerts.send(
                "control_plane_repair",
                severity="warning",
                reason=f"control plane reconciled: {repaired}",
                asset=AUDIT,
            )
            return SkipReason(f"reconciled: {repaired}")
        return SkipReason("aliases, tags and audit agree")

    @run_failure_sensor(
        name=Sensor.RUN_FAILURE,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Every failed run → an alert with the run, asset, partition, reason and runbook."
        ),
    )
    def alert_on_run_failure(context: RunFailureSensorContext, alerts: AlertSink):
        run = context.dagster_run
        errors = " ".join(
            e.event_specific_data.error.message
            for e in context.get_step_failure_events()
            if e.event_specific_data and e.event_specific_data.error
        )
        text = f"{context.failure_event.message or ''} {errors}"
        # one rule for "what kind of failure" (the scorecard counts failures by the same classes)
        kind = {CONTRACT: "data_contract_failure", GATE: "gate_failure"}.get(
            classify_failure(text), "pipeline_failure"
        )
        alerts.send(
            kind,
            reason=f"run of {run.job_name} failed: {text.strip()[:500]}",
            run_id=run.run_id,
            partition=run_partitions(run.tags),
            asset=run.job_name,
        )

    return [
        drift_sensor,
        performance_sensor,
        performance_guard_sensor,
        rescore_sensor,
        shadow_promotion_sensor,
        reconcile_sensor,
        alert_on_run_failure,
    ]
