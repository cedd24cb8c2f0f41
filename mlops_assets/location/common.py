"""Wiring helpers every asset and sensor module shares: the automation rule, job selections,
metadata formatting, and run requests for sets of days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    MetadataValue,
    RunRequest,
)

from mlops_assets.core.vocabulary import RunTag

OWNERS = "owners"  # check metadata: AssetCheckSpec has no owners of its own


def follow_upstream() -> AutomationCondition:
    """Re-materialise ANY partition whose upstream changed (eager() alone only handles the
    latest time window), and only once upstream blocking checks passed (across runs)."""
    return (
        AutomationCondition.eager().without(AutomationCondition.in_latest_time_window())
        & AutomationCondition.all_deps_blocking_checks_passed()
    )


def assets_named(*names: str) -> AssetSelection:
    """A job's selection by asset names. Dagster parses a list of strings with its selection
    grammar (antlr, 10 ms of code-location load); names need no parsing."""
    return AssetSelection.assets(*names)


def numeric(metrics: dict, prefix: str) -> dict[str, float]:
    """The defined numeric entries of a metrics dict, prefixed (plottable metadata)."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v == v
    }


def json_values(metadata: dict) -> dict:
    """Lists and dicts as JSON metadata; scalars as they are."""
    return {
        k: (MetadataValue.json(v) if isinstance(v, list | dict) else v) for k, v in metadata.items()
    }


def check_result(
    name: str, passed: bool, description: str, metadata: dict, *, blocking: bool
) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name,
        passed=passed,
        description=description,
        metadata=json_values(metadata),
        severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
    )


def markdown(frame: pl.DataFrame) -> str:
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_cols=-1,
        fmt_str_lengths=40,
    ):
        return str(frame)


def owned_spec(owners: list[str], tags: dict[str, str]) -> Callable[[AssetSpec], AssetSpec]:
    """``AssetSpec -> AssetSpec`` adding the spec's owners and tags (for ``map_asset_specs``)."""
    return lambda asset_spec: asset_spec.merge_attributes(owners=list(owners), tags=dict(tags))


def owned_checks(check_specs: list[AssetCheckSpec], owners: list[str]) -> list[AssetCheckSpec]:
    """The same check specs with the owners in their metadata (the most the public API allows a
    check).
    """
    if not owners:
        return list(check_specs)
    return [
        AssetCheckSpec(
            c.name,
            asset=c.asset_key,
            description=c.description,
            additional_deps=c.additional_deps,
            blocking=c.blocking,
            metadata={**c.metadata, OWNERS: MetadataValue.json(list(owners))},
            automation_condition=c.automation_condition,
            partitions_def=c.partitions_def,
        )
        for c in check_specs
    ]


def urls(links: dict[str, str | None]) -> dict[str, MetadataValue]:
    """Link metadata (clickable in the UI); entries without a URL are left out."""
    return {k: MetadataValue.url(v) for k, v in links.items() if v}


def consecutive_blocks(days: Iterable[str]) -> list[list[str]]:
    """ISO days, sorted and split where a day is missing: each block is one run's partitions."""
    blocks: list[list[str]] = []
    for day in sorted(set(days)):
        if blocks and dt.date.fromisoformat(day) - dt.date.fromisoformat(
            blocks[-1][-1]
        ) == dt.timedelta(days=1):
            blocks[-1].append(day)
        else:
            blocks.append([day])
    return blocks


def days_requests(
    days: Iterable[str], run_key: Callable[[str], str], tags: dict[str, str]
) -> list[RunRequest]:
    """One run per block of consecutive ``days``: a one-day block as that partition, a longer one as
    a single-run range (Dagster's range tags; every asset of these jobs takes a range in one run),
    so a catch-up of N days is one process, not N. ``run_key(block)`` gets ``"first"`` or
    ``"first..last"``."""
    requests = []
    for block in consecutive_blocks(days):
        if len(block) == 1:
            requests.append(
                RunRequest(run_key=run_key(block[0]), partition_key=block[0], tags=tags)
            )
        else:
            requests.append(
                RunRequest(
                    run_key=run_key(f"{block[0]}..{block[-1]}"),
                    tags={**tags, RunTag.RANGE_START: block[0], RunTag.RANGE_END: block[-1]},
                )
            )
    return requests
