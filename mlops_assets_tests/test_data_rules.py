"""The data plane's rules on a handful of rows: a landing run's verdicts (one per check, combined
over its days; freshness once over the table) and when stale data is worth an alert."""

from __future__ import annotations

import datetime as dt

import polars as pl

from mlops_assets.core.spec import load_spec
from mlops_assets.core.tables import QUARANTINE_SCHEMA
from mlops_assets.core.vocabulary import PARTITION_COLUMN
from mlops_assets.data.contract import Contract
from mlops_assets.data.contract_checks import (
    BLOCKING_CHECKS,
    FRESHNESS,
    VOLUME,
    freshness_alert,
    landing_verdicts,
)
from mlops_assets.data.ingest import IngestedRange, IngestResult

SPEC = load_spec()  # the bundled card_transactions spec: volume and freshness settings
CONTRACT = Contract(
    {"id": pl.String(), "amount": pl.Float64()}, ("id",), "id", {"amount": (0.0, 100.0)}, {}
)
NOW = dt.datetime(2026, 3, 3, 12)
ALL_CHECKS = [*BLOCKING_CHECKS, VOLUME, FRESHNESS]


def day(name: str, ids: list[str], rejected_rule: str | None = None) -> IngestResult:
    accepted = pl.DataFrame({"id": ids, "amount": [1.0] * len(ids)})
    rejected = [
        {
            PARTITION_COLUMN: name,
            "file": "a.csv",
            "row": 3,
            "column": "amount",
            "rule": rejected_rule,
            "reason": "amount: 500 is above the maximum 100",
            "record": None,
        }
    ]
    quarantine = pl.DataFrame(rejected if rejected_rule else [], schema=QUARANTINE_SCHEMA)
    return IngestResult(name, accepted, quarantine, [{"file": "a.csv"}], [], "fp")


def test_a_run_has_one_verdict_per_check_in_order_and_names_the_failing_day():
    results = {
        "2026-03-01": day("2026-03-01", ["a", "b"]),
        "2026-03-02": day("2026-03-02", ["c"], rejected_rule="range"),
    }
    stale_by = dt.timedelta(hours=SPEC.freshness.max_lag_hours + 1)
    stats = ({"2026-03-01": 2, "2026-03-02": 1}, NOW - stale_by)

    verdicts = landing_verdicts(results, CONTRACT, SPEC, "raw_events", ALL_CHECKS, stats, NOW)

    assert [v.name for v in verdicts] == ALL_CHECKS
    by_name = {v.name: v for v in verdicts}
    ranges = by_name["contract_ranges_and_categories"]
    assert not ranges.passed and ranges.metadata == {"failed_partitions": ["2026-03-02"]}
    assert by_name["contract_schema"].passed and by_name["contract_unique_ids"].passed
    assert by_name[VOLUME].passed  # fewer than 3 earlier partitions: nothing to compare with
    fresh = by_name[FRESHNESS]
    assert not fresh.passed and fresh.metadata["lag_hours"] == SPEC.freshness.max_lag_hours + 1


def test_a_one_day_run_reports_that_days_verdict_and_a_fresh_table_passes():
    results = {"2026-03-03": day("2026-03-03", ["a"])}
    stats = ({"2026-03-03": 1}, NOW - dt.timedelta(hours=1))

    verdicts = landing_verdicts(results, CONTRACT, SPEC, "raw_events", ALL_CHECKS, stats, NOW)

    assert all(v.passed for v in verdicts)
    assert verdicts[0].description.startswith("2026-03-03: contract_schema passed over 1 file(s)")
    assert freshness_alert(verdicts, ["2026-03-03"], NOW.date()) is None


def test_a_feed_without_volume_and_freshness_gets_contract_verdicts_only():
    results = {"2026-03-03": day("2026-03-03", ["a", "a"])}  # a duplicate that slipped past ingest

    verdicts = landing_verdicts(
        results, CONTRACT, SPEC, "raw_labels", list(BLOCKING_CHECKS), None, NOW
    )

    assert [v.name for v in verdicts] == list(BLOCKING_CHECKS)
    typed = verdicts[0]  # the accepted rows are re-validated as a typed frame: ids must be unique
    assert not typed.passed and "contract type" in typed.description
    assert freshness_alert(verdicts, ["2026-03-03"], NOW.date()) is None


def test_stale_data_alerts_only_for_a_run_about_the_present():
    results = {"2026-03-02": day("2026-03-02", ["a"])}
    stats = ({"2026-03-02": 1}, NOW - dt.timedelta(days=30))
    verdicts = landing_verdicts(results, CONTRACT, SPEC, "raw_events", ALL_CHECKS, stats, NOW)
    fresh = next(v for v in verdicts if v.name == FRESHNESS)

    assert freshness_alert(verdicts, ["2026-03-02"], NOW.date()) is fresh
    assert freshness_alert(verdicts, ["2026-01-05", "2026-01-06"], NOW.date()) is None  # backfill


def test_an_ingested_range_counts_its_rows_and_says_what_each_day_did():
    ingested = IngestedRange(
        {
            "2026-03-01": day("2026-03-01", ["a", "b"]),
            "2026-03-02": day("2026-03-02", ["c"], "null"),
        }
    )

    assert ingested.rows == 3
    assert ingested.summary_lines("raw_events") == [
        "raw_events[2026-03-01]: 2 rows accepted, 0 quarantined from 1 file(s)",
        "raw_events[2026-03-02]: 1 rows accepted, 1 quarantined from 1 file(s)",
    ]
    quarantine = ingested.quarantine("raw_events", "run-1", NOW)
    assert quarantine.select("feed", "run_id", "rule").rows() == [("raw_events", "run-1", "null")]
