"""Contract verdicts for one partition: pure functions from ingest results to check outcomes.

Blocking ERROR checks come from the quarantine (which rule each rejection broke);
the accepted rows are validated a second time as a dagster-pandas typed frame built
from the spec, so a bug in the polars row filter cannot let bad rows through.
WARN checks: volume against the trailing median, and freshness of the newest event.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from mlops_assets.core.clock import utc_now
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.data.contract import RULES_BY_CHECK, Contract
from mlops_assets.data.ingest import IngestResult, summarize_quarantine

VOLUME, FRESHNESS = "volume_anomaly", "freshness"  # freshness: the one table-level check
BLOCKING_CHECKS = tuple(RULES_BY_CHECK)
WARN_CHECKS = (VOLUME, FRESHNESS)

CHECK_DESCRIPTIONS = {
    "contract_schema": (
        "Every landing file is readable, safely named, has the declared columns and types."
    ),
    "contract_not_null": (
        "Required columns (id, timestamp, target, non-nullable features) have no null/NaN."
    ),
    "contract_ranges_and_categories": (
        "Numeric values within the declared range, categories allowed, events on the partition"
        " date."
    ),
    "contract_unique_ids": "Event ids are unique within the partition (across files).",
    VOLUME: "Row count within tolerance of the trailing median of earlier partitions.",
    FRESHNESS: "The newest event in the table is not older than the spec's max lag.",
}


@dataclass
class ContractVerdict:
    """The outcome of one landing check (contract, volume or freshness) on a partition or a run."""

    name: str
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def contract_verdicts(
    result: IngestResult, contract: Contract, type_name: str
) -> list[ContractVerdict]:
    out = []
    q = result.quarantine
    for check, rules in RULES_BY_CHECK.items():
        hits = q.filter(pl.col("rule").is_in(list(rules)))
        passed = hits.is_empty()
        meta = {"rejected": hits.height, "examples": summarize_quarantine(hits, 5)}
        if passed:
            desc = (
                f"{result.day}: {check} passed over {len(result.files)} file(s),"
                f" {result.accepted.height} rows"
            )
        else:
            first = hits.row(0, named=True)
            where = f"file {first['file']}" + (
                f" row {first['row']}" if first["row"] is not None else ""
            )
            desc = (
                f"{result.day}: {hits.height} rejection(s) quarantined; first: {where}"
                f"{' column ' + first['column'] if first['column'] else ''}: {first['reason']}"
            )
        out.append(ContractVerdict(check, passed, desc, meta))
    typed = typed_frame_check(result.accepted, contract, type_name)
    schema = out[0]
    schema.metadata["dagster_pandas_typecheck"] = typed.description or "passed"
    if not typed.success:
        schema.passed = False
        schema.description = (
            f"{result.day}: accepted rows violate the contract type: {typed.description}"
        )
    return out


def contract_columns(contract: Contract) -> list:
    """The contract as dagster-pandas column constraints (existence, dtype, nulls, ranges,
    categories, uniqueness).
    """
    from dagster_pandas import PandasColumn

    cols = []
    for col, dtype in contract.dtypes.items():
        non_null = col in contract.required
        if col == contract.id:
            cols.append(PandasColumn.string_column(col, non_nullable=True, unique=True))
        elif dtype == pl.Datetime("us"):
            cols.append(PandasColumn.datetime_column(col, non_nullable=non_null))
        elif col in contract.allowed and dtype == pl.Int64:  # a binary label: 0/1
            allowed = contract.allowed[col]
            cols.append(
                PandasColumn.integer_column(
                    col, min_value=min(allowed), max_value=max(allowed), non_nullable=non_null
                )
            )
        elif col in contract.allowed:
            cols.append(
                PandasColumn.categorical_column(
                    col, categories=set(contract.allowed[col]), non_nullable=non_null
                )
            )
        elif dtype in (pl.Int64, pl.Float64):
            lo, hi = contract.ranges.get(col, (None, None))
            # pandas turns a nullable int column into float64: judge it as numeric then
            ctor = (
                PandasColumn.integer_column
                if dtype == pl.Int64 and non_null
                else PandasColumn.numeric_column
                if dtype == pl.Int64
                else PandasColumn.float_column
            )
            cols.append(
                ctor(
                    col,
                    min_value=-float("inf") if lo is None else lo,
                    max_value=float("inf") if hi is None else hi,
                    non_nullable=non_null,
                    ignore_missing_vals=not non_null,
                )
            )
        else:
            cols.append(PandasColumn.string_column(col, non_nullable=non_null))
    return cols


@dataclass
class TypedFrameCheck:
    success: bool
    description: str | None


def validate_typed_frame(frame, columns: list) -> TypedFrameCheck:
    """Validate a pandas frame against dagster-pandas column constraints (the same checks a
    dagster-pandas DataFrame type runs, without building a Dagster type and instance per call)."""
    from dagster_pandas.constraints import ConstraintViolationException
    from dagster_pandas.validation import validate_constraints

    try:
        validate_constraints(frame, pandas_columns=columns)
    except ConstraintViolationException as err:
        return TypedFrameCheck(False, str(err)[:1000])
    return TypedFrameCheck(True, None)


def typed_frame_check(accepted: pl.DataFrame, contract: Contract, name: str) -> TypedFrameCheck:
    """Re-validate the accepted rows as a typed pandas frame (pandas wants ns timestamps)."""
    frame = (
        accepted.select(list(contract.dtypes))
        .with_columns(pl.col(pl.Datetime).cast(pl.Datetime("ns")))
        .to_pandas()
    )
    return validate_typed_frame(frame, contract_columns(contract))


def volume_verdict(
    day: str, rows: int, earlier_counts: dict[str, int], spec: DatasetSpec
) -> ContractVerdict:
    trailing = [earlier_counts[k] for k in sorted(k for k in earlier_counts if k < day)][
        -spec.volume.trailing_partitions :
    ]
    if len(trailing) < 3:
        return ContractVerdict(
            VOLUME,
            True,
            f"{day}: {rows} rows; fewer than 3 earlier partitions to compare",
            {"rows": rows, "trailing_partitions": len(trailing)},
        )
    median = statistics.median(trailing)
    ratio = rows / median if median else float("inf")
    passed = abs(ratio - 1) <= spec.volume.tolerance
    desc = (
        f"{day}: {rows} rows vs trailing median {median:g} of {len(trailing)} partitions "
        f"(ratio {ratio:.2f}, tolerance ±{spec.volume.tolerance:.0%})"
    )
    return ContractVerdict(
        VOLUME,
        passed,
        desc,
        {"rows": rows, "trailing_median": float(median), "ratio": float(ratio)},
    )


def freshness_verdict(
    newest_event: dt.datetime | None, spec: DatasetSpec, now: dt.datetime | None = None
) -> ContractVerdict:
    now = now or utc_now()
    if newest_event is None:
        return ContractVerdict(FRESHNESS, False, "no events in the table yet", {})
    lag_h = (now - newest_event).total_seconds() / 3600
    passed = lag_h <= spec.freshness.max_lag_hours
    desc = (
        f"newest event {newest_event.isoformat()} is {lag_h:.1f} h old (max"
        f" {spec.freshness.max_lag_hours:g} h)"
    )
    return ContractVerdict(
        FRESHNESS,
        passed,
        desc,
        {"lag_hours": float(lag_h), "newest_event": newest_event.isoformat()},
    )


def combine_verdicts(
    verdicts_by_day: dict[str, list[ContractVerdict]], name: str
) -> ContractVerdict:
    """One verdict of check ``name`` for a range run: fails if any day failed, naming the failing
    days.
    """
    per_day = {day: next(v for v in vs if v.name == name) for day, vs in verdicts_by_day.items()}
    if len(per_day) == 1:
        return next(iter(per_day.values()))
    failed = {d: v for d, v in per_day.items() if not v.passed}
    desc = (
        f"{len(failed)} of {len(per_day)} partitions failed: "
        + "; ".join(v.description for v in failed.values())
        if failed
        else f"passed on all {len(per_day)} partitions"
    )
    return ContractVerdict(name, not failed, desc[:2000], {"failed_partitions": sorted(failed)})


def partition_verdicts(
    results: dict[str, IngestResult],
    contract: Contract,
    type_name: str,
    spec: DatasetSpec,
    earlier_counts: dict[str, int] | None,
) -> dict[str, list[ContractVerdict]]:
    """Every per-partition verdict of each ingested day; volume too when ``earlier_counts`` is
    given.
    """
    verdicts = {day: contract_verdicts(r, contract, type_name) for day, r in results.items()}
    if earlier_counts is not None:
        for day, r in results.items():
            verdicts[day].append(volume_verdict(day, r.accepted.height, earlier_counts, spec))
    return verdicts


def freshness_alert_due(verdict: ContractVerdict, partitions: list[str], today: dt.date) -> bool:
    """Alert on stale data only when the run was about the present (a backfill of old days is
    stale by design)."""
    return not verdict.passed and max(partitions) >= (today - dt.timedelta(days=1)).isoformat()


def landing_verdicts(
    results: dict[str, IngestResult],
    contract: Contract,
    spec: DatasetSpec,
    feed: str,
    checks: Sequence[str],
    table_stats: tuple[dict[str, int], dt.datetime | None] | None,
    now: dt.datetime,
) -> list[ContractVerdict]:
    """One verdict per check of a run of ``feed``, in ``checks`` order: a partitioned check combined
    over the run's days (``combine_verdicts``), freshness judged once over the whole table.
    ``table_stats``: the table's (rows per partition, newest event) after the write, which volume
    and freshness judge; None for a feed checked for neither."""
    counts, newest = table_stats if table_stats is not None else (None, None)
    by_day = partition_verdicts(results, contract, f"{spec.name}_{feed}", spec, counts)
    return [
        freshness_verdict(newest, spec, now)
        if name == FRESHNESS
        else combine_verdicts(by_day, name)
        for name in checks
    ]


def freshness_alert(
    verdicts: Sequence[ContractVerdict], partitions: list[str], today: dt.date
) -> ContractVerdict | None:
    """The freshness verdict to alert on: failed, in a run about the present; else None."""
    fresh = next((v for v in verdicts if v.name == FRESHNESS), None)
    return fresh if fresh is not None and freshness_alert_due(fresh, partitions, today) else None
