"""Data plane assets: raw_events[D] (with contract checks) and features[D]."""


import polars as pl
from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AutomationCondition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.contract_checks import (
    BLOCKING_CHECKS,
    CHECK_DESCRIPTIONS,
    WARN_CHECKS,
    Verdict,
    contract_verdicts,
    freshness_verdict,
    volume_verdict,
)
from mlops_assets.features import compute_features
from mlops_assets.ingest import event_contract, ingest_partition, summarize_quarantine
from mlops_assets.lake import DeltaLake
from mlops_assets.platform import FEATURES, QUARANTINE, RAW_EVENTS, Platform


def follow_upstream() -> AutomationCondition:
    """Re-materialise ANY partition whose upstream changed (eager() alone only handles the
    latest time window), and only once upstream blocking checks passed (across runs)."""
    return (
        AutomationCondition.eager().without(AutomationCondition.in_latest_time_window())
        & AutomationCondition.all_deps_blocking_checks_passed()
    )


def _check_result(v: Verdict, blocking: bool) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=v.name,
        passed=v.passed,
        severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
        description=v.description,
        metadata={k: (MetadataValue.json(val) if isinstance(val, list | dict) else val) for k, val in v.metadata.items()},
    )


def _combine(verdicts_by_day: dict[str, list[Verdict]], name: str) -> Verdict:
    """One verdict for a range run: fails if any day failed, naming the failing days."""
    per_day = {day: next(v for v in vs if v.name == name) for day, vs in verdicts_by_day.items()}
    failed = {d: v for d, v in per_day.items() if not v.passed}
    if len(per_day) == 1:
        return next(iter(per_day.values()))
    desc = (f"{len(failed)} of {len(per_day)} partitions failed: " + "; ".join(v.description for v in failed.values())
            if failed else f"passed on all {len(per_day)} partitions")
    return Verdict(name, not failed, desc[:2000], {"failed_partitions": sorted(failed)})


def _now():
    import datetime as dt

    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def build_data_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily
    contract = event_contract(spec)
    # Contract and volume checks are per partition; freshness is a property of the whole table.
    check_specs = [
        AssetCheckSpec(name, asset=RAW_EVENTS, blocking=name in BLOCKING_CHECKS, description=CHECK_DESCRIPTIONS[name],
                       partitions_def=None if name == "freshness" else daily)
        for name in (*BLOCKING_CHECKS, *WARN_CHECKS)
    ]

    @asset(
        name=RAW_EVENTS,
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=check_specs,
        group_name="data",
        kinds={"polars", "delta"},
        description="All landing files of day D that pass the data contract; rejects go to the quarantine table.",
    )
    def raw_events(context: AssetExecutionContext, lake: DeltaLake):
        keys = context.partition_keys
        results = {day: ingest_partition(platform.landing, day, contract) for day in keys}
        run_id = context.run.run_id
        raw = pl.concat([r.accepted for r in results.values()], how="diagonal_relaxed")
        merge = spec.schema_evolution == "merge"
        raw_version = lake.write_partitions(RAW_EVENTS, raw, keys, run_id=run_id, merge_schema=merge)
        # The quarantine is an append-only log: a rejection stays on record after the file is fixed.
        quarantine = pl.concat([r.quarantine for r in results.values()]).with_columns(
            pl.lit(run_id).alias("run_id"), pl.lit(_now()).alias("quarantined_at")
        )
        q_version = lake.append(QUARANTINE, quarantine, run_id=run_id)

        counts = lake.partition_counts(RAW_EVENTS)
        newest = lake.scan(RAW_EVENTS).select(pl.col(spec.timestamp).max()).collect().item()
        verdicts = {
            day: [*contract_verdicts(r, contract, f"{spec.name}_events"), volume_verdict(day, r.accepted.height, counts, spec)]
            for day, r in results.items()
        }
        for day, r in results.items():
            context.log.info(f"raw_events[{day}]: {r.accepted.height} rows accepted, {r.quarantine.height} quarantined "
                             f"from {len(r.files)} file(s)")
        check_results = [_check_result(_combine(verdicts, n), n in BLOCKING_CHECKS) for n in (*BLOCKING_CHECKS, "volume_anomaly")]
        check_results.append(_check_result(freshness_verdict(newest, spec), blocking=False))
        files = [dict(f, ds=day) for day, r in results.items() for f in r.files]
        fingerprints = {day: r.fingerprint for day, r in results.items()}
        return MaterializeResult(
            metadata={
                "rows": raw.height,
                "quarantined_rows": quarantine.height,
                "files": MetadataValue.json(files),
                "file_count": len(files),
                "landing_fingerprint": fingerprints[keys[0]] if len(keys) == 1 else MetadataValue.json(fingerprints),
                "extra_columns": MetadataValue.json(sorted({c for r in results.values() for c in r.extra_columns})),
                "delta_version": raw_version,
                "quarantine_delta_version": q_version,
                "table_uri": lake.uri(RAW_EVENTS),
                "quarantine_examples": MetadataValue.json(summarize_quarantine(quarantine, 10)),
            },
            check_results=check_results,
        )

    @asset(
        name=FEATURES,
        partitions_def=daily,
        deps=[raw_events],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        group_name="data",
        kinds={"polars", "delta"},
        description="Model features of day D: one pure function (features.compute_features) shared by training and scoring.",
    )
    def features(context: AssetExecutionContext, lake: DeltaLake):
        keys = context.partition_keys
        feats = compute_features(lake.scan(RAW_EVENTS).filter(pl.col("ds").is_in(keys)), spec).collect()
        version = lake.write_partitions(FEATURES, feats, keys, run_id=context.run.run_id)
        nulls = {c: n for c, n in feats.null_count().row(0, named=True).items() if n}
        return MaterializeResult(
            metadata={
                "rows": feats.height,
                "columns": MetadataValue.json(feats.columns),
                "null_counts": MetadataValue.json(nulls),
                "delta_version": version,
                "table_uri": lake.uri(FEATURES),
                "preview": MetadataValue.md(_markdown(feats.head(5))),
            }
        )

    return [raw_events, features]



def _markdown(frame: pl.DataFrame) -> str:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_cols=-1, fmt_str_lengths=40):
        return str(frame)
