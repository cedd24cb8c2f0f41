"""Sensors: the landing sensor re-processes new, late and changed landing files."""


import datetime as dt

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from mlops_assets.landing_scan import LandingCursor, scan_landing
from mlops_assets.platform import RAW_EVENTS, Platform

TRIGGER_TAG, REASON_TAG, FILES_TAG = "mlops/trigger", "mlops/reason", "mlops/files"


def _materialized_fingerprint(context: SensorEvaluationContext):
    def lookup(day: str) -> str | None:
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(RAW_EVENTS), asset_partitions=[day]), limit=1
        ).records
        if not records:
            return None
        meta = records[0].asset_materialization.metadata if records[0].asset_materialization else {}
        value = meta.get("landing_fingerprint")
        return value.value if value is not None and isinstance(value.value, str) else None

    return lookup


def build_landing_sensor(platform: Platform, job):
    @sensor(
        name="landing_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Requests a run for exactly the partitions whose landing files are new, late or changed "
        "(content hash), once per content (run_key).",
    )
    def landing_sensor(context: SensorEvaluationContext):
        last_day = dt.date.fromisoformat(platform.daily.get_last_partition_key())
        changes, cursor, ignored = scan_landing(
            platform.landing,
            LandingCursor.parse(context.cursor),
            first_day=platform.spec.partition_start,
            last_day=last_day,
            materialized_fingerprint=_materialized_fingerprint(context),
        )
        for note in ignored[:20]:
            context.log.warning(f"landing_sensor ignored {note}")
        if not changes:
            return SensorResult(skip_reason=SkipReason("no new, late or changed landing files"), cursor=cursor.dumps())
        requests = [
            RunRequest(
                run_key=c.run_key,
                partition_key=c.day,
                tags={TRIGGER_TAG: "landing_sensor", REASON_TAG: c.reason, FILES_TAG: ",".join(c.files)[:200]},
            )
            for c in changes
        ]
        context.log.info("landing_sensor: " + ", ".join(f"{c.day} ({c.reason})" for c in changes))
        return SensorResult(run_requests=requests, cursor=cursor.dumps())

    return landing_sensor
