"""Landing sensors: new, late and changed files (events or labels) → runs for exactly those
partitions.
"""

import datetime as dt
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from mlops_assets.control.instance_queries import latest_materialization_metadata
from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import Meta, RunTag, recorded_fingerprint
from mlops_assets.data.landing_scan import LandingCursor, scan_landing


def materialized_fingerprint(context: SensorEvaluationContext, asset: str):
    """day -> the landing fingerprint recorded by the latest materialisation of that day (or
    None)."""

    def lookup(day: str) -> str | None:
        recorded = latest_materialization_metadata(context.instance, asset, day).get(
            Meta.LANDING_FINGERPRINT
        )
        return recorded_fingerprint(recorded, day)

    return lookup


def build_landing_sensor(platform: Platform, *, name: str, landing: Path, asset: str, job):
    """A sensor over one landing folder that requests ``job`` for exactly the partitions
    whose files are new, late or changed (content hash), once per change (run_key: day, previous
    and new content, revision)."""

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=platform.spec.sensors.landing_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Requests a {job.name} run for exactly the partitions whose files under {landing} are"
            " new, late or changed (content hash), once per change (run_key: day, previous and new"
            " content, revision)."
        ),
    )
    def _landing_sensor(context: SensorEvaluationContext):
        last_day = dt.date.fromisoformat(platform.daily.get_last_partition_key())
        changes, cursor, ignored = scan_landing(  # never follows a link out of the landing root
            landing,
            LandingCursor.parse(context.cursor),
            first_day=platform.spec.partition_start,
            last_day=last_day,
            materialized_fingerprint=materialized_fingerprint(context, asset),
        )
        for note in ignored[
            :20
        ]:  # folders ignored, and entries that are never read (their runs quarantine them)
            context.log.warning(f"{name}: {note}")
        if not changes:
            return SensorResult(
                skip_reason=SkipReason("no new, late or changed landing files"),
                cursor=cursor.dumps(),
            )
        requests = [
            RunRequest(
                run_key=c.run_key,
                partition_key=c.day,
                tags={
                    RunTag.TRIGGER: name,
                    RunTag.REASON: c.reason,
                    RunTag.FILES: ",".join(c.files)[:200],
                },
            )
            for c in changes
        ]
        context.log.info(f"{name}: " + ", ".join(f"{c.day} ({c.reason})" for c in changes))
        return SensorResult(run_requests=requests, cursor=cursor.dumps())

    return _landing_sensor
