"""The code location: ``dagster dev -m mlops_assets.definitions``.

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
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from mlops_assets.defs.data import build_data_assets
from mlops_assets.defs.model import build_model_assets
from mlops_assets.defs.monitoring import build_monitoring_assets
from mlops_assets.defs.monitoring_sensors import build_monitoring_sensors
from mlops_assets.defs.operations_assets import build_operations
from mlops_assets.scorecard import build_scorecard_asset
from mlops_assets.defs.resources import build_resources
from mlops_assets.defs.sensors import build_landing_sensor
from mlops_assets.platform import (
    CANDIDATE_MODEL,
    CHAMPION,
    DRIFT_REPORT,
    EVALUATION_REPORT,
    FEATURES,
    MODEL_PERFORMANCE,
    SCORES,
    SHADOW_SCORES,
    RAW_EVENTS,
    RAW_LABELS,
    TRAINING_SET,
    Platform,
)

# Partitioned asset checks (preview) and backfill policies (beta) are used on purpose.
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)

INGEST_JOB, LABELS_JOB, TRAINING_JOB = "ingest", "ingest_labels", "training"
SCORECARD = "scorecard"
DAILY_JOB, SCORING_JOB, PERFORMANCE_JOB = "daily", "scoring", "performance"


def build_definitions(platform: Platform | None = None) -> Definitions:
    platform = platform or Platform.from_env()
    maintenance_asset, maintenance_job, maintenance_schedule = build_operations(platform)
    scorecard = build_scorecard_asset(platform)
    assets = [*build_data_assets(platform), *build_model_assets(platform), *build_monitoring_assets(platform),
              maintenance_asset, scorecard]
    scorecard_job = define_asset_job("scorecard_job", selection=[SCORECARD],
                                     description="The operational scorecard (plotted over time in the UI).")
    daily_job = define_asset_job(
        DAILY_JOB,
        selection=[RAW_EVENTS, FEATURES, SCORES, SHADOW_SCORES, DRIFT_REPORT],
        partitions_def=platform.daily,
        description="One day end to end: landing files → raw_events → features → scores, shadow scores, drift.",
    )
    scoring = define_asset_job(
        SCORING_JOB,
        selection=[SCORES, SHADOW_SCORES, DRIFT_REPORT],
        partitions_def=platform.daily,
        description="(Re-)score days with the current champion; shadow scores and drift follow.",
    )
    performance = define_asset_job(
        PERFORMANCE_JOB, selection=[MODEL_PERFORMANCE], partitions_def=platform.daily,
        description="Matured-label performance of the days whose labels arrived.",
    )
    ingest = define_asset_job(
        INGEST_JOB,
        selection=[RAW_EVENTS, FEATURES],
        partitions_def=platform.daily,
        description="Landing files of one day (or a range) → raw_events → features.",
    )
    training = define_asset_job(
        TRAINING_JOB,
        selection=[TRAINING_SET, CANDIDATE_MODEL, EVALUATION_REPORT, CHAMPION],
        partitions_def=platform.daily,
        tags={"mlops/concurrency": "training"},  # deploy/dagster.yaml: one training run at a time
        description="Cutoff C: point-in-time training set → candidate → evaluation (gates) → promotion.",
    )
    jobs = [ingest, daily_job, scoring, performance, training, maintenance_job, scorecard_job]
    schedules = [training_schedule(platform, training), maintenance_schedule,
                 ScheduleDefinition(name="scorecard_schedule", job=scorecard_job, cron_schedule="0 * * * *",
                                    execution_timezone="UTC")]
    sensors = [
        build_landing_sensor(platform, name="landing_sensor", landing=platform.landing, asset=RAW_EVENTS, job=daily_job),
        *build_monitoring_sensors(platform, training_job=training, scoring_job=scoring, performance_job=performance),
    ]
    if platform.spec.labels is not None:
        labels = define_asset_job(LABELS_JOB, selection=[RAW_LABELS], partitions_def=platform.daily,
                                  description="Delayed labels that arrived on one day → raw_labels.")
        jobs.append(labels)
        sensors.append(build_landing_sensor(platform, name="label_sensor", landing=platform.label_landing,
                                            asset=RAW_LABELS, job=labels))
    return Definitions(assets=assets, jobs=jobs, sensors=sensors, schedules=schedules,
                       resources=build_resources(platform))


def training_schedule(platform: Platform, job):
    """Retrain every `training.cadence_days` days with today as the cutoff."""
    every = platform.spec.training.cadence_days
    cron = "0 4 * * 1" if every == 7 else f"0 4 */{every} * *"

    @schedule(name="training_schedule", cron_schedule=cron, job=job, execution_timezone="UTC",
              description=f"Trains a candidate with cutoff = the schedule's date ({cron}).")
    def _schedule(context: ScheduleEvaluationContext):
        cutoff = context.scheduled_execution_time.date().isoformat()
        return RunRequest(run_key=f"training:{cutoff}", partition_key=cutoff,
                          tags={"mlops/trigger": "training_schedule", "mlops/reason": "scheduled retrain"})

    return _schedule


defs = build_definitions()
