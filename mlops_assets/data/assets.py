"""Data plane wiring: raw_events[D] and raw_labels[D] (with contract checks) and features[D]."""

from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.control.alerts import AlertKind, AlertSink
from mlops_assets.control.resources import PII_KEY_ENV, PiiKey
from mlops_assets.core.clock import utc_now
from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import (
    FEATURES,
    PARTITION_COLUMN,
    QUARANTINE,
    RAW_EVENTS,
    RAW_LABELS,
    Group,
    Meta,
    fingerprints_metadata,
)
from mlops_assets.data.contract import Contract, event_contract, label_contract
from mlops_assets.data.contract_checks import (
    BLOCKING_CHECKS,
    CHECK_DESCRIPTIONS,
    FRESHNESS,
    WARN_CHECKS,
    ContractVerdict,
    freshness_alert,
    landing_verdicts,
)
from mlops_assets.data.features import compute_features, input_columns
from mlops_assets.data.ingest import IngestedRange, ingest_range, summarize_quarantine
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import check_result, follow_upstream, markdown, owned_checks


def _result(v: ContractVerdict):
    return check_result(
        v.name, v.passed, v.description, v.metadata, blocking=v.name in BLOCKING_CHECKS
    )


def landing_check_specs(name: str, daily, volume_and_freshness: bool) -> list[AssetCheckSpec]:
    """Contract and volume checks are per partition; freshness is a property of the whole table."""
    checks = (*BLOCKING_CHECKS, *(WARN_CHECKS if volume_and_freshness else ()))
    return [
        AssetCheckSpec(
            c,
            asset=name,
            blocking=c in BLOCKING_CHECKS,
            description=CHECK_DESCRIPTIONS[c],
            partitions_def=None if c == FRESHNESS else daily,
        )
        for c in checks
    ]


def pii_treatment(contract: Contract, key: bytes | None) -> dict:
    """How the PII columns were stored (``pii`` metadata): keyed-hashed or dropped; never the
    key."""
    treatment = "hmac_sha256" if contract.pii_key(key) else "dropped"
    why = {
        "hmac_sha256": f"keyed hash (key from ${PII_KEY_ENV})",
        "dropped": (
            "pii_mode: drop" if contract.pii_mode == "drop" else f"${PII_KEY_ENV} is not set"
        ),
    }[treatment]
    return {"columns": list(contract.pii), "treatment": treatment, "why": why}


def store_landing(
    lake: DeltaLake, name: str, ingested: IngestedRange, contract: Contract, run_id: str
) -> tuple[tuple[int, int], pl.DataFrame]:
    """Write the accepted rows to table ``name`` and append the rejections to the quarantine log:
    ((table version, quarantine version), the quarantine rows appended)."""
    version = lake.write_partitions(
        name,
        ingested.accepted,
        list(ingested.results),
        run_id=run_id,
        merge_schema=contract.merges_schema,
    )
    # The quarantine is an append-only log: a rejection stays on record after the file is fixed.
    quarantine = ingested.quarantine(name, run_id, utc_now())
    return (version, lake.append(QUARANTINE, quarantine, run_id=run_id)), quarantine


def landing_metadata(
    name: str,
    lake: DeltaLake,
    ingested: IngestedRange,
    quarantine: pl.DataFrame,
    versions: tuple[int, int],
    protection: dict | None,
) -> dict:
    """The materialisation metadata of a landing asset; ``versions``: (table, quarantine log)."""
    rows = ingested.rows
    metadata = {
        "rows": rows,
        "quarantined_rows": quarantine.height,
        "contract_pass_rate": (
            rows / (rows + quarantine.height) if rows + quarantine.height else 1.0
        ),  # plotted
        "files": MetadataValue.json(ingested.files),
        "file_count": len(ingested.files),
        Meta.LANDING_FINGERPRINT: MetadataValue.json(fingerprints_metadata(ingested.fingerprints)),
        "extra_columns": MetadataValue.json(ingested.extra_columns),
        Meta.DELTA_VERSION: versions[0],
        "quarantine_delta_version": versions[1],
        "table_uri": lake.uri(name),
        "quarantine_examples": MetadataValue.json(summarize_quarantine(quarantine, 10)),
    }
    return metadata | ({"pii": MetadataValue.json(protection)} if protection else {})


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
    check_specs = owned_checks(landing_check_specs(name, daily, volume_and_freshness), spec.owners)
    check_names = [c.name for c in check_specs]

    @asset(
        name=name,
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=check_specs,
        group_name=Group.DATA,
        kinds={"polars", "delta"},
        description=description,
    )
    def _landing_asset(
        context: AssetExecutionContext, lake: DeltaLake, alerts: AlertSink, pii: PiiKey
    ):
        keys, run_id, key = context.partition_keys, context.run.run_id, pii.key_bytes()
        protection = pii_treatment(contract, key) if contract.pii else None
        if protection and protection["treatment"] == "dropped":
            context.log.warning(
                f"{name}: PII columns {protection['columns']} dropped ({protection['why']})"
            )
        ingested = ingest_range(landing, keys, contract, key)
        versions, quarantine = store_landing(lake, name, ingested, contract, run_id)
        for line in ingested.summary_lines(name):
            context.log.info(line)
        # one load of the log: rows per partition from its file statistics, the newest event from
        # the newest partition (events lie on their partition's date), never a scan of the table
        stats = lake.counts_and_newest(name, contract.timestamp) if volume_and_freshness else None
        verdicts = landing_verdicts(
            ingested.results, contract, spec, name, check_names, stats, utc_now()
        )
        if stale := freshness_alert(verdicts, keys, utc_now().date()):
            alerts.send(
                AlertKind.FRESHNESS_BREACH,
                severity="warning",
                reason=stale.description,
                run_id=run_id,
                asset=name,
                partition=max(keys),
            )
        return MaterializeResult(
            metadata=landing_metadata(name, lake, ingested, quarantine, versions, protection),
            check_results=[_result(v) for v in verdicts],
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
        description=(
            "All landing files of day D that pass the data contract; rejects go to the quarantine"
            " table."
        ),
    )
    assets = [raw_events]
    if spec.labels is not None:
        assets.append(
            landing_asset(
                name=RAW_LABELS,
                platform=platform,
                landing=platform.label_landing,
                contract=label_contract(spec),
                volume_and_freshness=False,
                description=(
                    "Delayed labels that ARRIVED on day D (partition = arrival date, the"
                    " point-in-time key)."
                ),
            )
        )

    @asset(
        name=FEATURES,
        partitions_def=daily,
        deps=[raw_events],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        group_name=Group.DATA,
        kinds={"polars", "delta"},
        description=(
            "Model features of day D: one pure function (features.compute_features) shared by"
            " training and scoring."
        ),
    )
    def features(context: AssetExecutionContext, lake: DeltaLake):
        keys = context.partition_keys
        raw = (
            lake.scan(RAW_EVENTS)
            .filter(pl.col(PARTITION_COLUMN).is_in(keys))
            .select(input_columns(spec))
            .collect()
        )
        feats = compute_features(raw, spec)  # rows already in (ds, id) order are not sorted again
        version = lake.write_partitions(FEATURES, feats, keys, run_id=context.run.run_id)
        return MaterializeResult(
            metadata={
                "rows": feats.height,
                "columns": MetadataValue.json(feats.columns),
                "null_counts": MetadataValue.json(
                    {c: n for c, n in feats.null_count().row(0, named=True).items() if n}
                ),
                Meta.DELTA_VERSION: version,
                "table_uri": lake.uri(FEATURES),
                "preview": MetadataValue.md(markdown(feats.head(5))),
            }
        )

    return [*assets, features]
