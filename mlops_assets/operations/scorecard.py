"""The operational scorecard: how well the platform runs, as numbers that can be plotted.

Here, the pure measure functions (``pipeline_measures``, ``freshness_measures``,
``scoring_measures``, ``promotion_measures``, ``drift_detection_measures``,
``provenance_measures``, ``estimation_measures``) and the failure classes (``classify_failure``):
plain inputs (lists, dicts, a polars frame), plain outputs, no I/O; each function's docstring
defines its measures, ``MEASURES`` names them all. ``operations.scorecard_sources`` gathers their
inputs read-only (Dagster instance, Delta tables, model registry) and ``compute_scorecard`` ties
them together; ``operations.assets.build_scorecard_asset`` materialises the card (every measure as
numeric metadata, so the UI plots it over time, and the breakdown as JSON).

Conventions: every timestamp is compared as naive UTC; durations are in hours, rates in
[0, 1]. A measure with nothing to measure (no runs, no audit, no table, no registered
version) is ``None`` — never 0, never an exception. Counts are plain ints (0 when empty).
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from mlops_assets.core.clock import utc_now
from mlops_assets.core.vocabulary import (
    EVALUATION_REPORT,
    PARTITION_COLUMN,
    RAW_EVENTS,
    RAW_LABELS,
    Action,
)
from mlops_assets.model.lineage import lineage_completeness

WINDOW_DAYS = 7  # pipeline runs counted: created in the last WINDOW_DAYS days
SCORING_PARTITIONS = 7  # the latest K due feature partitions judged against the scoring SLA
SCORING_SLA_DAYS = 1  # partition D scored by the end of day D + 1

CONTRACT_ASSETS = frozenset({RAW_EVENTS, RAW_LABELS})
GATE_ASSETS = frozenset({EVALUATION_REPORT})

CONTRACT, GATE, OTHER = "contract", "gate", "other"
# RunOutcome.status of a run in progress whose worker died (see pipeline_measures)
STUCK = "STUCK"

# The measure names, in order: the numeric metadata of the asset, the keys of "measures".
COUNT_MEASURES = (
    "pipeline_runs",
    "pipeline_runs_succeeded",
    "pipeline_runs_failed",
    "pipeline_runs_canceled",
    "pipeline_runs_stuck",
    "pipeline_failures_contract",
    "pipeline_failures_gate",
    "pipeline_failures_other",
    "promotions",
    "rollbacks",
    "drift_retrains",
    "registered_versions",
)
VALUE_MEASURES = (
    "pipeline_success_rate",
    "data_freshness_lag_hours",
    "scoring_completion",
    "scoring_on_time",
    "lead_time_hours_median",
    "lead_time_hours_last",
    "change_failure_rate",
    "time_to_restore_hours_median",
    "time_to_restore_hours_last",
    "drift_detection_delay_hours_median",
    "drift_detection_delay_hours_last",
    "provenance_completeness",
    "estimator_abs_error_median",
    "estimator_abs_error_last",
)
MEASURES = VALUE_MEASURES + COUNT_MEASURES


# ---- small helpers ------------------------------------------------------------------------
def utc_naive(value: dt.datetime | None) -> dt.datetime:
    """``value`` as a naive UTC datetime; ``None`` → the current time."""
    if value is None:
        return utc_now()
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _hours(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 3600.0


def _day_start(day: str | dt.date) -> dt.datetime:
    """00:00 UTC (naive) of an ISO date (a longer ISO datetime string is cut to its date)."""
    d = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])
    return dt.datetime(d.year, d.month, d.day)


def _parse_day(value: str | None) -> dt.datetime | None:
    try:
        return _day_start(value) if value else None
    except ValueError:
        return None


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# ---- pipeline runs ------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOutcome:
    """One finished or dead run: ``status`` is ``SUCCESS`` | ``FAILURE`` | ``CANCELED`` | ``STUCK``;
    ``failure_text`` the failure messages and error chain of a FAILURE run, why a STUCK run is
    dead."""

    run_id: str
    job_name: str
    status: str
    created_at: dt.datetime
    failure_text: str = ""


_BLOCKING_HEADER = re.compile(r"blocking asset checks? failed with ERROR severity:", re.IGNORECASE)
_CHECK_LINE = re.compile(r"^\s*([^\s:][^:\n]*):\s*\S")


def failed_check_assets(text: str) -> set[str]:
    """Asset names (last key component) listed under Dagster's "N blocking asset check(s)
    failed with ERROR severity:" errors in ``text`` (lines ``<asset key>: <check>,<check>``)."""
    assets: set[str] = set()
    for match in _BLOCKING_HEADER.finditer(text):
        for line in text[match.end() :].lstrip("\n").splitlines():
            m = _CHECK_LINE.match(line)
            if not m:
                break
            assets.add(m.group(1).strip().split("/")[-1])
    return assets


def classify_failure(text: str) -> str:
    """``contract`` (a blocking check of raw_events / raw_labels failed) | ``gate`` (a blocking
    check of evaluation_report failed) | ``other``. Contract wins when both are listed. The
    ``alert_on_run_failure`` sensor's rule, read from Dagster's error lines (a run's RUN_FAILURE
    and STEP_FAILURE messages and error chain)."""
    assets = failed_check_assets(text)
    if assets & CONTRACT_ASSETS:
        return CONTRACT
    if assets & GATE_ASSETS:
        return GATE
    return OTHER


def pipeline_measures(runs: Iterable[RunOutcome]) -> dict:
    """Success rate and failure classes of finished and stuck runs.

    ``runs``: the Dagster runs *created* in ``[now - window_days, now)`` that finished (SUCCESS,
    FAILURE or CANCELED) or died (STUCK). ``success_rate`` = SUCCESS / (SUCCESS + FAILURE +
    STUCK): a run whose worker was killed stays STARTED in Dagster forever when no daemon or code
    server marks it failed, and it counts as a failure here, so the rate is never 1.0 while runs
    died. Cancelled runs are counted but are neither success nor failure; queued runs and runs
    still alive (the scorecard's own run included) are not passed in. A STUCK run is one that
    ``instance_queries.stuck_reason`` judges dead (its worker's pid gone on the embedded SQLite
    instance; on any instance, no event for ``STUCK_AFTER``): listed in ``failures`` as class
    ``stuck``, but not in ``failed`` nor the failure classes, which count FAILURE runs only (a
    run marked FAILURE by run monitoring after its worker died is class *other*)."""
    runs = list(runs)
    succeeded = [r for r in runs if r.status == "SUCCESS"]
    failed = [r for r in runs if r.status == "FAILURE"]
    canceled = [r for r in runs if r.status == "CANCELED"]
    stuck = [r for r in runs if r.status == STUCK]
    classes = {CONTRACT: 0, GATE: 0, OTHER: 0}
    failures = []
    for r in sorted(failed + stuck, key=lambda r: r.created_at, reverse=True):
        kind = "stuck" if r.status == STUCK else classify_failure(r.failure_text)
        if kind in classes:
            classes[kind] += 1
        failures.append(
            {
                "run_id": r.run_id,
                "job": r.job_name,
                "created_at": r.created_at.isoformat(),
                "class": kind,
                "message": " ".join(r.failure_text.split())[:300],
            }
        )
    return {
        "success_rate": _ratio(len(succeeded), len(succeeded) + len(failed) + len(stuck)),
        "runs": len(runs),
        "succeeded": len(succeeded),
        "failed": len(failed),
        "canceled": len(canceled),
        "stuck": len(stuck),
        "failure_classes": classes,
        "failures": failures,
    }


# ---- freshness ----------------------------------------------------------------------------
def freshness_measures(newest_event: dt.datetime | None, now: dt.datetime) -> dict:
    """``lag_hours``: ``now`` minus the newest event timestamp of ``raw_events``, never negative:
    events stamped ahead of the clock (clock skew at the source, or a simulated future) give 0
    and ``ahead_of_clock_hours`` says by how much. None when there is no event."""
    if newest_event is None:
        return {"lag_hours": None, "ahead_of_clock_hours": None, "newest_event": None}
    lag = _hours(utc_naive(now) - utc_naive(newest_event))
    return {
        "lag_hours": max(lag, 0.0),
        "ahead_of_clock_hours": max(-lag, 0.0),
        "newest_event": newest_event.isoformat(),
    }


# ---- scoring SLA --------------------------------------------------------------------------
def scoring_deadline(day: str, sla_days: int = SCORING_SLA_DAYS) -> dt.datetime:
    """Partition ``day`` must be scored before this instant: the end of day ``day + sla_days``."""
    return _day_start(day) + dt.timedelta(days=sla_days + 1)


def scoring_measures(
    feature_days: Iterable[str],
    first_scored: Mapping[str, dt.datetime],
    now: dt.datetime,
    *,
    partitions: int = SCORING_PARTITIONS,
    sla_days: int = SCORING_SLA_DAYS,
) -> dict:
    """The scoring SLA: partition D must be scored by the end of day D + ``sla_days`` (the spec
    has no scoring-SLA field, hence the parameter).

    ``feature_days``: the partitions of ``features``; ``first_scored``: day → when it was first
    scored (only days that have scores now; the earliest of the ``scores`` commits that wrote it
    and its rows' ``scored_at``, so a day re-scored after a rollback keeps its first time).
    Judges the latest ``partitions`` days that are due (deadline ≤ ``now``): ``completion`` =
    share with scores of any version or mode, degraded included; ``on_time`` = share first
    scored by the deadline. None when no day is due."""
    now = utc_naive(now)
    due = sorted(d for d in set(feature_days) if scoring_deadline(d, sla_days) <= now)
    due = due[-partitions:] if partitions > 0 else []
    rows = []
    for day in due:
        deadline = scoring_deadline(day, sla_days)
        first = first_scored.get(day)
        rows.append(
            {
                PARTITION_COLUMN: day,
                "deadline": deadline.isoformat(),
                "first_scored": first.isoformat() if first else None,
                "scored": first is not None,
                "on_time": first is not None and utc_naive(first) <= deadline,
            }
        )
    return {
        "completion": _ratio(sum(r["scored"] for r in rows), len(rows)),
        "on_time": _ratio(sum(r["on_time"] for r in rows), len(rows)),
        "sla": f"partition D scored by the end of day D+{sla_days} (UTC)",
        "partitions": rows,
    }


# ---- promotions: lead time, change failure rate, time to restore ---------------------------
def promotion_measures(audit: pl.DataFrame, registered: Mapping[int, dt.datetime | None]) -> dict:
    """``audit``: rows of the audit table (any order); ``registered``: version → when it was
    registered (naive UTC). Over every move of the champion by ``promote``, ``approve`` or
    ``waiver_promote``: *lead time* = ``at`` minus the registration of ``to_version`` (wall clock,
    not the cutoff: a backfill trains old cutoffs today), median and latest; a promotion of a
    version with no known registration is skipped (``promotions_without_registration``). *Change
    failure rate* = share of promotions of V at t followed by a ``rollback`` from V after t and
    before V's next promotion (a re-approved version is judged afresh). *Time to restore* = each
    rollback's ``at`` minus the latest promotion of its ``from_version`` before it (how long the
    bad version was champion; its first scored day is not kept, as the rescore sensor rewrites
    its scores), median and latest; a rollback without such a promotion is skipped."""
    if audit.is_empty() or "action" not in audit.columns:
        rows: list[dict] = []
    else:
        rows = audit.select("at", "action", "from_version", "to_version").sort("at").to_dicts()
    promotions = [
        r for r in rows if r["action"] in Action.PROMOTIONS and r["to_version"] is not None
    ]
    rollbacks = [
        r for r in rows if r["action"] == Action.ROLLBACK and r["from_version"] is not None
    ]

    detail = []
    for i, p in enumerate(promotions):
        version, at = int(p["to_version"]), p["at"]
        later = [q["at"] for q in promotions[i + 1 :] if int(q["to_version"]) == version]
        until = later[0] if later else None
        rolled = [
            r["at"]
            for r in rollbacks
            if int(r["from_version"]) == version
            and r["at"] > at
            and (until is None or r["at"] < until)
        ]
        start = registered.get(version)
        detail.append(
            {
                "version": version,
                "action": p["action"],
                "at": at.isoformat(),
                "registered_at": start.isoformat() if start else None,
                "lead_time_hours": _hours(at - utc_naive(start)) if start else None,
                "rolled_back_at": rolled[0].isoformat() if rolled else None,
            }
        )
    leads = [d["lead_time_hours"] for d in detail if d["lead_time_hours"] is not None]

    restores = []
    for r in rollbacks:
        version = int(r["from_version"])
        before = [
            p["at"] for p in promotions if int(p["to_version"]) == version and p["at"] < r["at"]
        ]
        if before:
            restores.append(
                {
                    "version": version,
                    "promoted_at": before[-1].isoformat(),
                    "rolled_back_at": r["at"].isoformat(),
                    "to_version": r["to_version"],
                    "hours": _hours(r["at"] - before[-1]),
                }
            )
    restore_hours = [x["hours"] for x in restores]
    return {
        "lead_time_hours_median": _median(leads),
        "lead_time_hours_last": leads[-1] if leads else None,
        "promotions_without_registration": sum(d["lead_time_hours"] is None for d in detail),
        "change_failure_rate": _ratio(
            sum(d["rolled_back_at"] is not None for d in detail), len(detail)
        ),
        "time_to_restore_hours_median": _median(restore_hours),
        "time_to_restore_hours_last": restore_hours[-1] if restore_hours else None,
        "promotions": detail,
        "rollbacks": restores,
        "rollbacks_total": len(rollbacks),
    }


# ---- drift detection delay ----------------------------------------------------------------
@dataclass(frozen=True)
class DriftRetrain:
    run_id: str
    created_at: dt.datetime
    drift_partitions: str  # the "a..b" tag
    status: str = ""
    cutoff: str | None = None  # the run's partition (the retrain's cutoff), event time


def drift_detection_measures(retrains: Iterable[DriftRetrain]) -> dict:
    """Delay (event time) from the end of an episode's first drifted day to its retrain's cutoff.

    ``retrains``: every run tagged ``mlops/trigger=drift_sensor`` created before ``now`` (not only
    the window: retrains are rare), with ``mlops/drift_partitions = "a..b"``. The delay is the
    start of the cutoff partition minus the end of day a, in hours: how much drifted data it took
    to act, whatever the wall clock (a replay of old days acts with the same delay). Without a
    cutoff, the run's creation time stands in."""
    rows = []
    for r in sorted(retrains, key=lambda r: r.created_at):
        first = _parse_day((r.drift_partitions or "").split("..")[0].strip())
        if first is None:
            continue  # no or malformed tag: not measurable
        end_of_first = first + dt.timedelta(days=1)
        acted = _parse_day(r.cutoff) or utc_naive(r.created_at)
        rows.append(
            {
                "run_id": r.run_id,
                "status": r.status,
                "drift_partitions": r.drift_partitions,
                "created_at": utc_naive(r.created_at).isoformat(),
                "cutoff": r.cutoff,
                "delay_hours": _hours(acted - end_of_first),
            }
        )
    delays = [x["delay_hours"] for x in rows]
    return {
        "delay_hours_median": _median(delays),
        "delay_hours_last": delays[-1] if delays else None,
        "retrains": rows,
    }


# ---- provenance ---------------------------------------------------------------------------
def provenance_measures(versions: Iterable[Mapping[str, Any]]) -> dict:
    """``versions``: ``registry.list_versions()`` rows (``version``, ``tags``). ``completeness``:
    share whose ``lineage_completeness(tags) == 1.0`` (every required ``lineage.*`` fact known)."""
    per = {int(v["version"]): lineage_completeness(v.get("tags") or {}) for v in versions}
    return {
        "completeness": _ratio(sum(c == 1.0 for c in per.values()), len(per)),
        "incomplete_versions": sorted(v for v, c in per.items() if c < 1.0),
        "per_version": {str(v): c for v, c in sorted(per.items())},
    }


def estimation_measures(reconciliation: pl.DataFrame, metric: str, window_days: int = 7) -> dict:
    """How wrong the performance estimate (``estimated_performance``, made before the labels)
    turned out: |estimate - realised| of ``metric`` over the latest ``window_days`` reconciled
    days (``estimation_reconciliation``, labelled coverage >= 0.8) — median, and of the newest
    day. None when no day is reconciled."""
    rows = (
        reconciliation.filter(
            (pl.col("metric") == metric)
            & (pl.col("coverage") >= 0.8)
            & pl.col("abs_error").is_not_null()
        )
        if not reconciliation.is_empty()
        else None
    )
    if rows is None or rows.is_empty():
        return {"metric": metric, "abs_error_median": None, "abs_error_last": None, "days": []}
    days = sorted(set(rows[PARTITION_COLUMN].to_list()))[-window_days:]
    recent = rows.filter(pl.col(PARTITION_COLUMN).is_in(days)).sort(PARTITION_COLUMN)
    return {
        "metric": metric,
        "abs_error_median": _median(recent["abs_error"].to_list()),
        "abs_error_last": float(recent["abs_error"][-1]),
        "days": days,
    }


# ---- the whole card -----------------------------------------------------------------------
def assemble_scorecard(
    now: dt.datetime,
    window_days: int,
    *,
    pipeline: dict,
    freshness: dict,
    scoring: dict,
    promotions: dict,
    drift: dict,
    provenance: dict,
    registered_versions: int,
    estimation: dict | None = None,
) -> dict:
    """The card from each family's breakdown: ``{"computed_at", "window_days", "measures":
    {name: number | None, ...} (keys = ``MEASURES``), and the breakdowns "pipeline",
    "freshness", "scoring", "promotions", "drift_detection", "provenance"}``."""
    measures = {
        "pipeline_success_rate": pipeline["success_rate"],
        "data_freshness_lag_hours": freshness["lag_hours"],
        "scoring_completion": scoring["completion"],
        "scoring_on_time": scoring["on_time"],
        "lead_time_hours_median": promotions["lead_time_hours_median"],
        "lead_time_hours_last": promotions["lead_time_hours_last"],
        "change_failure_rate": promotions["change_failure_rate"],
        "time_to_restore_hours_median": promotions["time_to_restore_hours_median"],
        "time_to_restore_hours_last": promotions["time_to_restore_hours_last"],
        "drift_detection_delay_hours_median": drift["delay_hours_median"],
        "drift_detection_delay_hours_last": drift["delay_hours_last"],
        "provenance_completeness": provenance["completeness"],
        "estimator_abs_error_median": (estimation or {}).get("abs_error_median"),
        "estimator_abs_error_last": (estimation or {}).get("abs_error_last"),
        "pipeline_runs": pipeline["runs"],
        "pipeline_runs_succeeded": pipeline["succeeded"],
        "pipeline_runs_failed": pipeline["failed"],
        "pipeline_runs_canceled": pipeline["canceled"],
        "pipeline_runs_stuck": pipeline["stuck"],
        "pipeline_failures_contract": pipeline["failure_classes"][CONTRACT],
        "pipeline_failures_gate": pipeline["failure_classes"][GATE],
        "pipeline_failures_other": pipeline["failure_classes"][OTHER],
        "promotions": len(promotions["promotions"]),
        "rollbacks": promotions["rollbacks_total"],
        "drift_retrains": len(drift["retrains"]),
        "registered_versions": registered_versions,
    }
    return {
        "computed_at": utc_naive(now).isoformat(),
        "window_days": window_days,
        "measures": measures,
        "pipeline": pipeline,
        "freshness": freshness,
        "scoring": scoring,
        "promotions": promotions,
        "drift_detection": drift,
        "provenance": provenance,
        "estimation": estimation or {},
    }
