"""Monitoring sensors: labels → performance, drift → retrain, guard → rollback,
rollback → re-score, shadow evidence → promotion, and alerts on run failures.

Each gathers its inputs from the Delta tables and the registry and acts on a verdict
from ``monitoring.rules`` (drift episodes, the guard, what to request),
``monitoring.estimation.rules`` (the guard on estimates) or ``model.promotion``.
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

from mlops_assets.control.alerts import AlertKind, AlertSink
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
    MODEL_VERSION_COLUMN,
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
from mlops_assets.monitoring.estimation.rules import estimate_breach
from mlops_assets.monitoring.rules import (
    RetrainRequest,
    drift_episode,
    drift_retrain,
    guard_breach,
    label_arrivals,
    labelled_score_days,
    multivariate_news,
    rescore_due,
    rolled_back_pairs,
)
from mlops_assets.operations.scorecard import CONTRACT, GATE, classify_failure


def run_tags(trigger: str, reason: str, **extra: str) -> dict[str, str]:
    """The tags every run a sensor requests carries: who asked, and why."""
    return {RunTag.TRIGGER: trigger, RunTag.REASON: reason[:250], **extra}


def labelled_days(lake: DeltaLake, spec, after_version: int) -> tuple[list[str], list[str]]:
    """(arrival days of the labels committed after ``after_version``, scored event days they belong
    to): ``label_arrivals`` and ``labelled_score_days`` over the lake."""
    arrivals = label_arrivals(
        lake.history(RAW_LABELS), after_version, lambda: lake.partition_counts(RAW_LABELS)
    )
    return arrivals, labelled_score_days(lake.scan(SCORES), lake.scan(RAW_LABELS), arrivals, spec)


def scored_by_rolled_back(lake: DeltaLake, registry: ModelRegistry) -> list[tuple[str, int]]:
    """(day, version) for every day holding rows of a rolled-back version, sorted."""
    by_version = lake.scan(SCORES).select(PARTITION_COLUMN, MODEL_VERSION_COLUMN).unique().collect()
    return rolled_back_pairs(
        by_version,
        lambda v: registry.version_tags(v).get(VersionTag.STATUS) == Status.ROLLED_BACK,
    )


def guard_act(
    context, lake: DeltaLake, registry: ModelRegistry, champion: int, reason: str, action: str
):
    """``rollback`` (or, when refused, degrade) or ``alert`` (degrade: the version is tagged
    guard-tripped); returns what was done, or a ``SkipReason`` when another alias move won the
    race."""
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
    """``guard.use_estimate`` acted on (``estimate_breach``): rollback or alert, once a version."""
    breach = estimate_breach(
        lambda: lake.read(ESTIMATED_PERFORMANCE),
        lambda: lake.read(ESTIMATION_RECONCILIATION),
        spec,
        champion,
        handled,
    )
    if isinstance(breach, str):
        return SkipReason(breach)
    run, mode = breach.run, spec.guard.use_estimate
    action = "alert only (guard.use_estimate: alert)"
    if mode == "rollback":
        action = guard_act(context, lake, registry, champion, run.reason, spec.guard.action)
        if isinstance(action, SkipReason):
            return action
    alerts.send(
        AlertKind.GUARD_ROLLBACK,
        severity="error" if mode == "rollback" else "warning",
        reason=f"{run.reason}; estimator trusted ({breach.trust.reason}); action: {action}",
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
        cursor=json.dumps([*handled, breach.key][-50:]),
    )


def multivariate_feed(
    lake: DeltaLake, spec, summary: pl.DataFrame, champion: int | None, alerts: AlertSink
) -> pl.DataFrame:
    """The drift summary the drift sensor judges (``multivariate_news``); one alert per
    multivariate episode that per-column drift does not see (``drift.multivariate: alert``)."""
    mv = lake.read(MULTIVARIATE_DRIFT) if spec.drift.multivariate != "off" else pl.DataFrame()
    summary, episode = multivariate_news(summary, mv, spec, champion)
    if episode is not None:
        alerts.send(
            AlertKind.DRIFT_RETRAIN,
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
        minimum_interval_seconds=spec.sensors.monitoring_interval_seconds,
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
            AlertKind.DRIFT_RETRAIN,
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
        minimum_interval_seconds=spec.sensors.monitoring_interval_seconds,
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
        minimum_interval_seconds=spec.sensors.monitoring_interval_seconds,
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
            AlertKind.GUARD_ROLLBACK,
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
        minimum_interval_seconds=spec.sensors.monitoring_interval_seconds,
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
        minimum_interval_seconds=spec.sensors.shadow_promotion_interval_seconds,
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
        minimum_interval_seconds=spec.sensors.monitoring_interval_seconds,
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
                AlertKind.CONTROL_PLANE_REPAIR,
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
        kind = {CONTRACT: AlertKind.DATA_CONTRACT_FAILURE, GATE: AlertKind.GATE_FAILURE}.get(
            classify_failure(text), AlertKind.PIPELINE_FAILURE
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
