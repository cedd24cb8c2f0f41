"""Reads of the Dagster instance that more than one part of the platform needs.

Read-only, public Dagster API only (no ``dagster._*`` import): the latest asset-check
outcomes per partition, the failed checks of one partition, the latest materialisation of
each partition (its run, its metadata) and the runs carrying a tag.

Check histories are read with ``event_log_storage.get_asset_check_execution_history``
*without* its ``partition_filter`` (whose type is private) and filtered on
``record.partition`` here. A record without an evaluation — the check was planned but its
run failed before evaluating it — is never an outcome: the latest *evaluated* record wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, DagsterInstance, RunRecord, RunsFilter

UNPARTITIONED = "(all)"
"""The partition under which ``latest_check_outcomes`` reports an unpartitioned result."""

_PAGE = 500  # records per history page when scanning back for one partition


@dataclass(frozen=True)
class CheckOutcome:
    """One evaluated asset-check result."""

    passed: bool
    severity: str  # "ERROR" | "WARN"
    run_id: str
    description: str | None = None


def _outcome(rec: Any) -> CheckOutcome | None:
    """The evaluation of an execution record; None when it was planned but never evaluated."""
    event = rec.event.dagster_event if rec.event is not None else None
    evaluation = event.event_specific_data if event is not None else None
    if evaluation is None or not hasattr(evaluation, "passed"):
        return None
    return CheckOutcome(bool(evaluation.passed), evaluation.severity.value, rec.run_id, evaluation.description)


def _history(instance: DagsterInstance, check_key: AssetCheckKey, page: int) -> Iterator[Any]:
    """Every execution record of ``check_key``, newest first, ``page`` records per query."""
    cursor = None
    while True:
        records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=page, cursor=cursor)
        yield from records
        if len(records) < page:
            return
        cursor = records[-1].id


def latest_check_outcomes(instance: DagsterInstance, check_key: AssetCheckKey,
                          limit: int = 5000) -> dict[str, CheckOutcome]:
    """partition (``UNPARTITIONED`` for an unpartitioned result) → its latest evaluated
    outcome, over the newest ``limit`` execution records of ``check_key``."""
    latest: dict[str, CheckOutcome] = {}
    for rec in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=limit):  # newest first
        part = rec.partition or UNPARTITIONED
        if part in latest:
            continue
        outcome = _outcome(rec)
        if outcome is not None:
            latest[part] = outcome
    return latest


def latest_check_outcome(instance: DagsterInstance, check_key: AssetCheckKey, partition: str) -> CheckOutcome | None:
    """The latest evaluated outcome of ``check_key`` on ``partition`` (None when never evaluated)."""
    for rec in _history(instance, check_key, _PAGE):
        if rec.partition == partition:
            outcome = _outcome(rec)
            if outcome is not None:
                return outcome
    return None


def failed_checks(instance: DagsterInstance, asset: str, check_names: Iterable[str], partition: str) -> list[str]:
    """The checks of ``asset`` (in ``check_names`` order) whose latest evaluated result on
    ``partition`` failed. A check never evaluated on that partition has not failed."""
    failed = []
    for name in check_names:
        outcome = latest_check_outcome(instance, AssetCheckKey(AssetKey(asset), name), partition)
        if outcome is not None and not outcome.passed:
            failed.append(name)
    return failed


def latest_run_by_partition(instance: DagsterInstance, asset: str) -> dict[str, str]:
    """partition → run id of its latest materialisation."""
    latest: dict[str, str] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=5000, cursor=cursor)
        for rec in page.records:  # newest first
            if rec.partition_key and rec.partition_key not in latest:
                latest[rec.partition_key] = rec.run_id
        if not page.has_more:
            return latest
        cursor = page.cursor


def latest_materialization_metadata(instance: DagsterInstance, asset: str, partition: str) -> dict[str, Any]:
    """The metadata of the latest materialisation of ``asset[partition]``, as plain values
    (each ``MetadataValue`` unwrapped to its ``.value``: a JSON entry is a dict, text a str);
    ``{}`` when that partition was never materialised."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:
        return {}
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def runs_with_tag(instance: DagsterInstance, key: str, value: str, limit: int | None = None, *,
                  created_before: Any = None) -> list[RunRecord]:
    """Run records tagged ``key=value``, newest first (at most ``limit``; optionally only
    those created before the datetime ``created_before``)."""
    return list(instance.get_run_records(RunsFilter(tags={key: value}, created_before=created_before), limit=limit))
