"""The scorecard's read-only gatherers, and ``compute_scorecard`` tying them to the pure
measures of ``mlops_assets.operations.scorecard`` (where every measure is defined).

Sources: the Dagster instance (finished runs and their failure events, runs in progress whose worker
died, drift-sensor retrains), the Delta tables (``raw_events``, ``features``, ``scores``, ``audit``)
and the model registry. Nothing here writes anything.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import polars as pl
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from mlops_assets.control.instance_queries import run_progress, runs_with_tag
from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.metrics_catalog import primary_metric
from mlops_assets.core.vocabulary import (
    ESTIMATION_RECONCILIATION,
    FEATURES,
    PARTITION_COLUMN,
    RAW_EVENTS,
    SCORES,
    RunTag,
    Sensor,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.model.promotion import read_audit
from mlops_assets.operations.scorecard import (
    SCORING_PARTITIONS,
    SCORING_SLA_DAYS,
    STUCK,
    WINDOW_DAYS,
    DriftRetrain,
    RunOutcome,
    assemble_scorecard,
    drift_detection_measures,
    estimation_measures,
    freshness_measures,
    pipeline_measures,
    promotion_measures,
    provenance_measures,
    scoring_measures,
    utc_naive,
)

if TYPE_CHECKING:
    from mlops_assets.core.spec import DatasetSpec

_FINISHED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


# ---- the Dagster instance -------------------------------------------------------------------
def _error_text(error: Any, depth: int = 0) -> list[str]:
    """Messages of a SerializableErrorInfo and its cause/context chain."""
    if error is None or depth > 5:
        return []
    out = [str(getattr(error, "message", "") or "")]
    out += _error_text(getattr(error, "cause", None), depth + 1)
    out += _error_text(getattr(error, "context", None), depth + 1)
    return out


def failure_text(instance: DagsterInstance, run_id: str) -> str:
    """The RUN_FAILURE / STEP_FAILURE messages of a run with their error chains."""
    parts: list[str] = []
    for entry in instance.all_logs(
        run_id, of_type={DagsterEventType.RUN_FAILURE, DagsterEventType.STEP_FAILURE}
    ):
        parts.append(entry.message or "")
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        parts += _error_text(getattr(data, "error", None))
    return "\n\n".join(p for p in parts if p)  # blank line: the end of a "blocking check" list


def finished_runs(
    instance: DagsterInstance, since: dt.datetime, until: dt.datetime
) -> list[RunOutcome]:
    """Runs created in ``[since, until)`` that finished (SUCCESS, FAILURE or CANCELED)."""
    records = instance.get_run_records(
        RunsFilter(
            statuses=list(_FINISHED),
            created_after=utc_naive(since),
            created_before=utc_naive(until),
        )
    )
    return [
        RunOutcome(
            rec.dagster_run.run_id,
            rec.dagster_run.job_name,
            rec.dagster_run.status.value,
            utc_naive(rec.create_timestamp),
            failure_text(instance, rec.dagster_run.run_id)
            if rec.dagster_run.status == DagsterRunStatus.FAILURE
            else "",
        )
        for rec in records
    ]


def stuck_runs(
    instance: DagsterInstance, since: dt.datetime, until: dt.datetime
) -> list[RunOutcome]:
    """Runs created in ``[since, until)`` still in progress whose worker died
    (``instance_queries.run_progress``
    judged as of ``until``), as STUCK outcomes carrying the reason."""
    return [
        RunOutcome(p.run_id, p.job_name, STUCK, p.created_at, p.stuck)
        for p in run_progress(instance, now=until, created_after=utc_naive(since))
        if p.stuck and p.created_at < utc_naive(until)
    ]


def drift_retrains(instance: DagsterInstance, until: dt.datetime) -> list[DriftRetrain]:
    """Every drift-sensor retraining run created before ``until``."""
    records = runs_with_tag(instance, RunTag.TRIGGER, Sensor.DRIFT, created_before=utc_naive(until))
    return [
        DriftRetrain(
            rec.dagster_run.run_id,
            utc_naive(rec.create_timestamp),
            rec.dagster_run.tags.get(RunTag.DRIFT_PARTITIONS, ""),
            rec.dagster_run.status.value,
            rec.dagster_run.tags.get(RunTag.PARTITION),
        )
        for rec in records
    ]


# ---- the Delta tables -----------------------------------------------------------------------
def newest_event(lake: DeltaLake, spec: DatasetSpec) -> dt.datetime | None:
    if not lake.exists(RAW_EVENTS):
        return None
    value = lake.scan(RAW_EVENTS).select(pl.col(spec.timestamp).max()).collect().item()
    return value if isinstance(value, dt.datetime) else None


def partitions_with_rows(lake: DeltaLake, table: str) -> list[str]:
    return sorted(d for d, n in lake.partition_counts(table).items() if n and d is not None)


def first_scored(lake: DeltaLake) -> dict[str, dt.datetime]:
    """Day → when scores of that day were first written, for every day that has scores now."""
    if not lake.exists(SCORES):
        return {}
    by_rows = lake.scan(SCORES).group_by(PARTITION_COLUMN).agg(pl.col("scored_at").min()).collect()
    first = {d: t for d, t in by_rows.iter_rows() if d is not None and t is not None}
    present = set(by_rows[PARTITION_COLUMN].to_list())
    for commit in lake.history(SCORES):
        if not commit.get("timestamp") or not commit.get("partitions"):
            continue  # not one of our partition writes (e.g. OPTIMIZE, VACUUM)
        at = dt.datetime.fromtimestamp(commit["timestamp"] / 1000, dt.UTC).replace(tzinfo=None)
        for day in filter(None, (commit.get("partitions") or "").split(",")):
            if day in present:
                first[day] = min(first.get(day, at), at)
    return first


def read_audit_rows(lake: DeltaLake) -> pl.DataFrame:
    return read_audit(
        lake, strict=False
    )  # one row per move; none when the table is unreadable (status says so)


# ---- the scorecard ------------------------------------------------------------------------
def compute_scorecard(
    instance: DagsterInstance,
    lake: DeltaLake,
    registry: ModelRegistry,
    spec: DatasetSpec,
    now: dt.datetime | None = None,
    *,
    window_days: int = WINDOW_DAYS,
    scoring_partitions: int = SCORING_PARTITIONS,
    sla_days: int = SCORING_SLA_DAYS,
) -> dict:
    """Every measure of ``mlops_assets.operations.scorecard``, as of ``now`` (default: the current
    time).

    Returns ``{"computed_at", "window_days", "measures": {name: number | None, ...}, and one
    breakdown section per measure family: "pipeline", "freshness", "scoring", "promotions",
    "drift_detection", "provenance"}`` — JSON-serialisable. Read-only.
    """
    now = utc_naive(now)
    versions = registry.list_versions()
    registered = {
        int(v["version"]): dt.datetime.fromisoformat(v["created_at"]).replace(tzinfo=None)
        if v.get("created_at")
        else None
        for v in versions
    }
    return assemble_scorecard(
        now,
        window_days,
        pipeline=pipeline_measures(
            finished_runs(instance, now - dt.timedelta(days=window_days), now)
            + stuck_runs(instance, now - dt.timedelta(days=window_days), now)
        ),
        freshness=freshness_measures(newest_event(lake, spec), now),
        scoring=scoring_measures(
            partitions_with_rows(lake, FEATURES),
            first_scored(lake),
            now,
            partitions=scoring_partitions,
            sla_days=sla_days,
        ),
        promotions=promotion_measures(read_audit_rows(lake), registered),
        drift=drift_detection_measures(drift_retrains(instance, now)),
        provenance=provenance_measures(versions),
        registered_versions=len(versions),
        estimation=estimation_measures(lake.read(ESTIMATION_RECONCILIATION), primary_metric(spec)),
    )
