"""Landing sensors: new, late and changed files (events or labels) → runs for exactly those partitions."""


import datetime as dt
from pathlib import Path

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
from mlops_assets.platform import Platform

TRIGGER_TAG, REASON_TAG, FILES_TAG = "mlops/trigger", "mlops/reason", "mlops/files"


def _materialized_fingerprint(context: SensorEvaluationContext, asset: str):
    def lookup(day: str) -> str | None:
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day]), limit=1
        ).records
        if not records:
            return None
        meta = records[0].asset_materialization.metadata if records[0].asset_materialization else {}
        value = meta.get("landing_fingerprint")
        if value is None:
            return None
        # a single-partition run records a string, a range run a {day: fingerprint} map
        recorded = value.value
        return recorded.get(day) if isinstance(recorded, dict) else recorded if isinstance(recorded, str) else None

    return lookup


def build_landing_sensor(platform: Platform, *, name: str, landing: Path, asset: str, job):
    """A sensor over one landing folder that requests ``job`` for exactly the partitions
    whose files are new, late or changed (content hash), once per content (run_key)."""

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Requests a {job.name} run for exactly the partitions whose files under {landing} are new, "
        "late or changed (content hash), once per content (run_key).",
    )
    def _landing_sensor(context: SensorEvaluationContext):
        last_day = dt.date.fromisoformat(platform.daily.get_last_partition_key())
        changes, cursor, ignored = scan_landing(
            landing,
            LandingCursor.parse(context.cursor),
            first_day=platform.spec.partition_start,
            last_day=last_day,
            materialized_fingerprint=_materialized_fingerprint(context, asset),
        )
        for note in ignored[:20]:
            context.log.warning(f"{name} ignored {note}")
        if not changes:
            return SensorResult(skip_reason=SkipReason("no new, late or changed landing files"), cursor=cursor.dumps())
        requests = [
            RunRequest(
                run_key=c.run_key,
                partition_key=c.day,
                tags={TRIGGER_TAG: name, REASON_TAG: c.reason, FILES_TAG: ",".join(c.files)[:200]},
            )
            for c in changes
        ]
        context.log.info(f"{name}: " + ", ".join(f"{c.day} ({c.reason})" for c in changes))
        return SensorResult(run_requests=requests, cursor=cursor.dumps())

    return _landing_sensor
