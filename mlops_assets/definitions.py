"""The code location: ``dagster dev -m mlops_assets.definitions``.

Import cost matters (every webserver/daemon reload pays it): nothing here imports
mlflow, evidently or sklearn; those load inside the assets that use them.
"""

from __future__ import annotations

import warnings

from dagster import BetaWarning, Definitions, PreviewWarning, define_asset_job

from mlops_assets.defs.data import build_data_assets
from mlops_assets.defs.resources import build_resources
from mlops_assets.defs.sensors import build_landing_sensor
from mlops_assets.platform import FEATURES, RAW_EVENTS, RAW_LABELS, Platform

# Partitioned asset checks (preview) and backfill policies (beta) are used on purpose.
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)

INGEST_JOB, LABELS_JOB = "ingest", "ingest_labels"


def build_definitions(platform: Platform | None = None) -> Definitions:
    platform = platform or Platform.from_env()
    assets = build_data_assets(platform)
    ingest = define_asset_job(
        INGEST_JOB,
        selection=[RAW_EVENTS, FEATURES],
        partitions_def=platform.daily,
        description="Landing files of one day (or a range) → raw_events → features.",
    )
    jobs = [ingest]
    sensors = [build_landing_sensor(platform, name="landing_sensor", landing=platform.landing, asset=RAW_EVENTS, job=ingest)]
    if platform.spec.labels is not None:
        labels = define_asset_job(LABELS_JOB, selection=[RAW_LABELS], partitions_def=platform.daily,
                                  description="Delayed labels that arrived on one day → raw_labels.")
        jobs.append(labels)
        sensors.append(build_landing_sensor(platform, name="label_sensor", landing=platform.label_landing,
                                            asset=RAW_LABELS, job=labels))
    return Definitions(assets=assets, jobs=jobs, sensors=sensors, resources=build_resources(platform))


defs = build_definitions()
