"""Operations: Delta table maintenance on a schedule, protecting what `reproduce` needs, and
the operational scorecard (measures defined in ``mlops_assets.operations.scorecard``)."""

# No ``from __future__ import annotations``: Dagster inspects the asset functions'
# ``context: AssetExecutionContext`` annotations at definition time.
import json
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import (
    SCORECARD,
    TABLE_MAINTENANCE,
    TABLES,
    Alias,
    Group,
    Job,
    Meta,
    Schedule,
    recorded_delta_versions,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import assets_named
from mlops_assets.operations.scorecard import COUNT_MEASURES, VALUE_MEASURES
from mlops_assets.operations.scorecard_sources import compute_scorecard


# ---- table maintenance ----------------------------------------------------------------------
def protected_versions(registry: ModelRegistry) -> dict[str, set[int]]:
    """table -> the versions that the lineage of champion and last_known_good records."""
    keep: dict[str, set[int]] = {}
    for alias in (Alias.CHAMPION, Alias.LAST_KNOWN_GOOD):
        version = registry.get_alias(alias)
        if version is None:
            continue
        for table, v in recorded_delta_versions(registry.version_tags(version)).items():
            keep.setdefault(table, set()).add(v)
    return keep


def build_operations(platform: Platform) -> tuple[AssetsDefinition, Any, ScheduleDefinition]:
    """The ``table_maintenance`` asset, its job and its daily schedule."""
    spec = platform.spec

    @asset(
        name=TABLE_MAINTENANCE,
        group_name=Group.OPERATIONS,
        kinds={"delta"},
        description=(
            "Compacts and vacuums every Delta table with the spec's retention, never removing a"
            " version that the lineage of champion or last_known_good needs for `reproduce`; then"
            " checkpoints each table (and each protected version) and drops log entries older than"
            " `maintenance.log_retention_days`, so loading a table never lists or replays a long"
            " log."
        ),
    )
    def table_maintenance(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        keep = protected_versions(registry)
        report = {}
        for table in TABLES:
            if lake.exists(table):
                report[table] = lake.maintain(
                    table,
                    retention_hours=spec.maintenance.retention_hours,
                    keep_versions=sorted(keep.get(table, ())),
                    log_retention_hours=spec.maintenance.log_retention_days * 24,
                )
                if report[table]["lost"]:
                    context.log.warning(
                        f"{table}: versions {report[table]['lost']} of the champion's lineage can "
                        "no longer be loaded: `reproduce` of that model will fail"
                    )
                context.log.info(f"{table}: {report[table]}")
        return MaterializeResult(
            metadata={
                "tables": len(report),
                "vacuumed_files": sum(r["vacuumed_files"] for r in report.values()),
                "files_after": sum(r["files_after"] for r in report.values()),
                "checkpoints": MetadataValue.json(
                    {t: r["checkpoint_version"] for t, r in report.items()}
                ),
                "protected_versions": MetadataValue.json({t: sorted(v) for t, v in keep.items()}),
                "log_entries_dropped": sum(r["log_entries_dropped"] for r in report.values()),
                "lost_versions": MetadataValue.json(
                    {t: r["lost"] for t, r in report.items() if r["lost"]}
                ),
                "report": MetadataValue.json(report),
            }
        )

    job = define_asset_job(Job.MAINTENANCE, selection=assets_named(TABLE_MAINTENANCE))
    schedule = ScheduleDefinition(
        name=Schedule.MAINTENANCE, job=job, cron_schedule="0 3 * * *", execution_timezone="UTC"
    )
    return table_maintenance, job, schedule


# ---- the scorecard --------------------------------------------------------------------------
def scorecard_metadata(card: dict) -> dict[str, Any]:
    """Asset metadata: every measure numeric (None → NaN, so the key set — and each plot —
    is stable), plus the JSON breakdown."""
    meta: dict[str, Any] = {}
    for name, value in card["measures"].items():
        if name in COUNT_MEASURES:
            meta[name] = MetadataValue.int(int(value))
        else:
            meta[name] = MetadataValue.float(float("nan") if value is None else float(value))
    meta[Meta.SCORECARD_BREAKDOWN] = MetadataValue.json(json.loads(json.dumps(card, default=str)))
    return meta


def build_scorecard_asset(platform: Platform) -> AssetsDefinition:
    """The unpartitioned ``scorecard`` asset (group ``operations``)."""
    spec = platform.spec

    @asset(
        name=SCORECARD,
        group_name=Group.OPERATIONS,
        kinds={"python"},
        description=(
            "Operational scorecard: pipeline success rate and failure classes, data freshness,"
            " scoring SLA, lead time cutoff→promotion, change failure rate, time to restore, drift"
            " detection delay, provenance completeness (definitions:"
            " mlops_assets/operations/scorecard.py). Each measure is numeric metadata."
        ),
    )
    def scorecard(
        context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry
    ) -> MaterializeResult:
        card = compute_scorecard(context.instance, lake, registry, spec)
        shown = {k: v for k, v in card["measures"].items() if k in VALUE_MEASURES}
        context.log.info(f"scorecard: {json.dumps(shown, default=str)}")
        return MaterializeResult(metadata=scorecard_metadata(card))

    return scorecard


def build_scorecard(platform: Platform) -> tuple[AssetsDefinition, Any, ScheduleDefinition]:
    """The ``scorecard`` asset, its job and its hourly schedule."""
    scorecard = build_scorecard_asset(platform)
    job = define_asset_job(
        Job.SCORECARD,
        selection=assets_named(SCORECARD),
        description="The operational scorecard (plotted over time in the UI).",
    )
    # RUNNING by default: the daemon materialises it every hour without anyone switching it on, so
    # each measure is a series in the UI's plots (and `status` reads the latest point).
    schedule = ScheduleDefinition(
        name=Schedule.SCORECARD,
        job=job,
        cron_schedule="0 * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Materialises the scorecard hourly (on by default).",
    )
    return scorecard, job, schedule
