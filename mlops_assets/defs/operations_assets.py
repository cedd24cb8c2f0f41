"""Operations: Delta table maintenance on a schedule, protecting what `reproduce` needs."""

import json

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, ScheduleDefinition, asset, define_asset_job

from mlops_assets.lake import DeltaLake
from mlops_assets.platform import Platform
from mlops_assets.registry import ModelRegistry

MAINTENANCE = "table_maintenance"


def protected_versions(registry: ModelRegistry) -> dict[str, set[int]]:
    """table -> the versions that the lineage of champion and last_known_good records."""
    from mlops_assets.registry import CHAMPION, LAST_KNOWN_GOOD

    keep: dict[str, set[int]] = {}
    for alias in (CHAMPION, LAST_KNOWN_GOOD):
        version = registry.get_alias(alias)
        if version is None:
            continue
        recorded = json.loads(registry.version_tags(version).get("lineage.delta_versions", "{}"))
        for table, v in recorded.items():
            keep.setdefault(table, set()).add(int(v))
    return keep


def build_operations(platform: Platform):
    spec = platform.spec

    @asset(name=MAINTENANCE, group_name="operations", kinds={"delta"},
           description="Compacts and vacuums every Delta table with the spec's retention, never removing a "
           "version that the lineage of champion or last_known_good needs for `reproduce`.")
    def table_maintenance(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.status import TABLES

        keep = protected_versions(registry)
        report = {}
        for table in TABLES:
            if lake.exists(table):
                report[table] = lake.maintain(table, retention_hours=spec.maintenance.retention_hours,
                                              keep_versions=sorted(keep.get(table, ())))
                context.log.info(f"{table}: {report[table]}")
        return MaterializeResult(metadata={
            "tables": len(report),
            "vacuumed_files": sum(r["vacuumed_files"] for r in report.values()),
            "files_after": sum(r["files_after"] for r in report.values()),
            "protected_versions": MetadataValue.json({t: sorted(v) for t, v in keep.items()}),
            "report": MetadataValue.json(report),
        })

    job = define_asset_job("maintenance", selection=[MAINTENANCE])
    schedule = ScheduleDefinition(name="maintenance_schedule", job=job, cron_schedule="0 3 * * *",
                                  execution_timezone="UTC")
    return table_maintenance, job, schedule
