"""Wiring helpers every asset module shares: the automation rule and metadata formatting."""

from __future__ import annotations

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AutomationCondition, MetadataValue


def follow_upstream() -> AutomationCondition:
    """Re-materialise ANY partition whose upstream changed (eager() alone only handles the
    latest time window), and only once upstream blocking checks passed (across runs)."""
    return (
        AutomationCondition.eager().without(AutomationCondition.in_latest_time_window())
        & AutomationCondition.all_deps_blocking_checks_passed()
    )


def numeric(metrics: dict, prefix: str) -> dict[str, float]:
    """The defined numeric entries of a metrics dict, prefixed (plottable metadata)."""
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v == v}


def json_values(metadata: dict) -> dict:
    """Lists and dicts as JSON metadata; scalars as they are."""
    return {k: (MetadataValue.json(v) if isinstance(v, list | dict) else v) for k, v in metadata.items()}


def check_result(name: str, passed: bool, description: str, metadata: dict, *, blocking: bool) -> AssetCheckResult:
    return AssetCheckResult(check_name=name, passed=passed, description=description, metadata=json_values(metadata),
                            severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN)


def markdown(frame: pl.DataFrame) -> str:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_cols=-1, fmt_str_lengths=40):
        return str(frame)
