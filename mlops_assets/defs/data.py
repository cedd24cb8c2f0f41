"""Data plane assets: raw_events[D] (with contract checks) and features[D]."""


import datetime as dt
from pathlib import Path

import polars as pl
from dagster import (
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

from mlops_assets.alerts import AlertSink
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
from mlops_assets.ingest import Contract, event_contract, ingest_partition, label_contract, summarize_quarantine
from mlops_assets.lake import DeltaLake
from mlops_assets.platform import FEATURES, QUARANTINE, RAW_EVENTS, RAW_LABELS, Platform


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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def landing_asset(
    *,
    name: str,
    platform: Platform,
    landing: Path,
    contract: Contract,
    volume_and_freshness: bool,
    description: str,
):
    """An asset that applies ``contract`` to the landing files of each partition: accepted
    rows → Delta table ``name``, rejects → the quarantine log, verdicts → partitioned checks."""
    spec, daily = platform.spec, platform.daily
    warn = WARN_CHECKS if volume_and_freshness else ()
    # Contract and volume checks are per partition; freshness is a property of the whole table.
    check_specs = [
        AssetCheckSpec(check, asset=name, blocking=check in BLOCKING_CHECKS, description=CHECK_DESCRIPTIONS[check],
                       partitions_def=None if check == "freshness" else daily)
        for check in (*BLOCKING_CHECKS, *warn)
    ]

    @asset(
        name=name,
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=check_specs,
        group_name="data",
        kinds={"polars", "delta"},
        description=description,
    )
    def _landing_asset(context: AssetExecutionContext, lake: DeltaLake, alerts: AlertSink):
        keys = context.partition_keys
        results = {day: ingest_partition(landing, day, contract) for day in keys}
        run_id = context.run.run_id
        raw = pl.concat([r.accepted for r in results.values()], how="diagonal_relaxed")
        merge = contract.schema_evolution == "merge"
        version = lake.write_partitions(name, raw, keys, run_id=run_id, merge_schema=merge)
        # The quarantine is an append-only log: a rejection stays on record after the file is fixed.
        quarantine = pl.concat([r.quarantine for r in results.values()]).with_columns(
            pl.lit(name).alias("feed"), pl.lit(run_id).alias("run_id"), pl.lit(_now()).alias("quarantined_at")
        )
        q_version = lake.append(QUARANTINE, quarantine, run_id=run_id)

        verdicts = {day: contract_verdicts(r, contract, f"{spec.name}_{name}") for day, r in results.items()}
        if volume_and_freshness:
            counts = lake.partition_counts(name)
            for day, r in results.items():
                verdicts[day].append(volume_verdict(day, r.accepted.height, counts, spec))
        for day, r in results.items():
            context.log.info(f"{name}[{day}]: {r.accepted.height} rows accepted, {r.quarantine.height} quarantined "
                             f"from {len(r.files)} file(s)")
        checks = [check for check in (*BLOCKING_CHECKS, *warn) if check != "freshness"]
        check_results = [_check_result(_combine(verdicts, check), check in BLOCKING_CHECKS) for check in checks]
        if volume_and_freshness:
            newest = lake.scan(name).select(pl.col(contract.timestamp).max()).collect().item()
            fresh = freshness_verdict(newest, spec)
            check_results.append(_check_result(fresh, blocking=False))
            # alert only when this run was about the present (a backfill of old days is stale by design)
            if not fresh.passed and max(keys) >= (_now().date() - dt.timedelta(days=1)).isoformat():
                alerts.send("freshness_breach", severity="warning", reason=fresh.description,
                            run_id=run_id, asset=name, partition=max(keys))
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
                "delta_version": version,
                "quarantine_delta_version": q_version,
                "table_uri": lake.uri(name),
                "quarantine_examples": MetadataValue.json(summarize_quarantine(quarantine, 10)),
            },
            check_results=check_results,
        )

    return _landing_asset


def build_data_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily
    raw_events = landing_asset(
        name=RAW_EVENTS,
        platform=platform,
        landing=platform.landing,
        contract=event_contract(spec),
        volume_and_freshness=True,
        description="All landing files of day D that pass the data contract; rejects go to the quarantine table.",
    )
    assets = [raw_events]
    if spec.labels is not None:
        assets.append(landing_asset(
            name=RAW_LABELS,
            platform=platform,
            landing=platform.label_landing,
            contract=label_contract(spec),
            volume_and_freshness=False,
            description="Delayed labels that ARRIVED on day D (partition = arrival date, the point-in-time key).",
        ))

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

    return [*assets, features]



def _markdown(frame: pl.DataFrame) -> str:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_cols=-1, fmt_str_lengths=40):
        return str(frame)
