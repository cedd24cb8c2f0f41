"""``build_definitions(platform)``: every asset, check, job, sensor, schedule and resource of
the code location, built from one spec.

Import cost matters (every webserver/daemon reload pays it): nothing here imports
mlflow, evidently or sklearn; those load inside the assets that use them.
"""

from __future__ import annotations

import warnings

from dagster import (
    BetaWarning,
    Definitions,
    PreviewWarning,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    map_asset_specs,
    schedule,
)

from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import (
    CANDIDATE_MODEL,
    CHAMPION,
    DRIFT_REPORT,
    ESTIMATED_PERFORMANCE,
    EVALUATION_REPORT,
    FEATURES,
    MODEL_PERFORMANCE,
    MULTIVARIATE_DRIFT,
    RAW_EVENTS,
    RAW_LABELS,
    SCORES,
    SHADOW_SCORES,
    TRAINING_SET,
    Job,
    RunTag,
    Schedule,
    Sensor,
)
from mlops_assets.data.assets import build_data_assets
from mlops_assets.data.sensors import build_landing_sensor
from mlops_assets.location.common import assets_named, owned_spec
from mlops_assets.location.resources import build_resources
from mlops_assets.model.assets import build_model_assets
from mlops_assets.monitoring.assets import build_monitoring_assets
from mlops_assets.monitoring.estimation.assets import build_estimation_assets
from mlops_assets.monitoring.sensors import build_monitoring_sensors
from mlops_assets.operations.assets import build_operations, build_scorecard
from mlops_assets.scoring.assets import build_scoring_assets

# Partitioned asset checks (preview) and backfill policies (beta) are used on purpose.
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)


def build_jobs(platform: Platform) -> dict[str, object]:
    daily = platform.daily
    # With the target in the events (no label feed) the labels are known when the day is scored:
    # performance follows the scores in the same run, so the guard has something to judge.
    performance = [MODEL_PERFORMANCE] if platform.spec.labels is None else []
    follows = ", performance" if performance else ""
    estimation = [
        ESTIMATED_PERFORMANCE,
        MULTIVARIATE_DRIFT,
    ]  # before the labels: estimates, multivariate drift
    jobs = {
        Job.DAILY: define_asset_job(
            Job.DAILY,
            selection=assets_named(
                RAW_EVENTS, FEATURES, SCORES, SHADOW_SCORES, DRIFT_REPORT, *estimation, *performance
            ),
            partitions_def=daily,
            description=(
                "One day end to end: landing files → raw_events → features → scores, shadow"
                f" scores, drift{follows}."
            ),
        ),
        Job.SCORING: define_asset_job(
            Job.SCORING,
            selection=assets_named(SCORES, SHADOW_SCORES, DRIFT_REPORT, *estimation, *performance),
            partitions_def=daily,
            description=(
                f"(Re-)score days with the current champion; shadow scores, drift{follows} follow."
            ),
        ),
        Job.PERFORMANCE: define_asset_job(
            Job.PERFORMANCE,
            selection=assets_named(MODEL_PERFORMANCE),
            partitions_def=daily,
            description="Matured-label performance of the days whose labels arrived.",
        ),
        Job.INGEST: define_asset_job(
            Job.INGEST,
            selection=assets_named(RAW_EVENTS, FEATURES),
            partitions_def=daily,
            description="Landing files of one day (or a range) → raw_events → features.",
        ),
        Job.TRAINING: define_asset_job(
            Job.TRAINING,
            selection=assets_named(TRAINING_SET, CANDIDATE_MODEL, EVALUATION_REPORT, CHAMPION),
            partitions_def=daily,
            tags={
                RunTag.CONCURRENCY: "training"
            },  # deploy/dagster.yaml: one training run at a time
            description=(
                "Cutoff C: point-in-time training set → candidate → evaluation (gates) → promotion."
            ),
        ),
    }
    if platform.spec.labels is not None:
        jobs[Job.INGEST_LABELS] = define_asset_job(
            Job.INGEST_LABELS,
            selection=assets_named(RAW_LABELS),
            partitions_def=daily,
            description="Delayed labels that arrived on one day → raw_labels.",
        )
    return jobs


def build_definitions(platform: Platform | None = None) -> Definitions:
    platform = platform or Platform.from_env()
    maintenance_asset, maintenance_job, maintenance_schedule = build_operations(platform)
    scorecard_asset, scorecard_job, scorecard_schedule = build_scorecard(platform)
    jobs = build_jobs(platform)
    sensors = [
        build_landing_sensor(
            platform,
            name=Sensor.LANDING,
            landing=platform.landing,
            asset=RAW_EVENTS,
            job=jobs[Job.DAILY],
        ),
        *build_monitoring_sensors(
            platform,
            training_job=jobs[Job.TRAINING],
            scoring_job=jobs[Job.SCORING],
            performance_job=jobs[Job.PERFORMANCE],
        ),
    ]
    if platform.spec.labels is not None:
        sensors.append(
            build_landing_sensor(
                platform,
                name=Sensor.LABELS,
                landing=platform.label_landing,
                asset=RAW_LABELS,
                job=jobs[Job.INGEST_LABELS],
            )
        )
    assets = [
        *build_data_assets(platform),
        *build_model_assets(platform),
        *build_scoring_assets(platform),
        *build_monitoring_assets(platform),
        *build_estimation_assets(platform),
        maintenance_asset,
        scorecard_asset,
    ]
    return Definitions(
        assets=map_asset_specs(owned_spec(platform.spec.owners, platform.spec.tags), assets),
        jobs=[*jobs.values(), maintenance_job, scorecard_job],
        sensors=sensors,
        schedules=[
            training_schedule(platform, jobs[Job.TRAINING]),
            maintenance_schedule,
            scorecard_schedule,
        ],
        resources=build_resources(platform),
    )


def training_schedule(platform: Platform, job):
    """Retrain every `training.cadence_days` days with today as the cutoff."""
    every = platform.spec.training.cadence_days
    cron = "0 4 * * 1" if every == 7 else f"0 4 */{every} * *"

    @schedule(
        name=Schedule.TRAINING,
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        description=f"Trains a candidate with cutoff = the schedule's date ({cron}).",
    )
    def _schedule(context: ScheduleEvaluationContext):
        cutoff = context.scheduled_execution_time.date().isoformat()
        return RunRequest(
            run_key=f"training:{cutoff}",
            partition_key=cutoff,
            tags={RunTag.TRIGGER: Schedule.TRAINING, RunTag.REASON: "scheduled retrain"},
        )

    return _schedule
