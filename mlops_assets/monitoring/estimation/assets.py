"""Estimation plane wiring, daily partitions D: estimated_performance[D] and multivariate_drift[D].

``estimated_performance[D]``: the performance of every model version that scored D, estimated
from the score rows before any label of D exists (CBPE / DLE, ``monitoring.estimation.methods``),
with the version's estimation method loaded through the verified skops path
(``registry.integrity.load_artifact_skops``). Its checks: the estimated primary metric beyond
``guard.floor`` for ``estimation.consecutive_days`` days, and the estimation method's recent
reconciliation error above ``estimation.tolerance``.

``multivariate_drift[D]``: D's PCA reconstruction error against the champion's training reference
(``monitoring.drift.multivariate``), its threshold and verdict; after ``scores`` as
``drift_report`` is (not run when scoring was stopped: kill switch, failed contract). The work of
a day is ``monitoring.estimation.service``; a version registered without the monitoring artifact
is skipped with a note.
"""

import polars as pl
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset_check,
)

from mlops_assets.control.registry import ModelRegistry, RegistryUnavailable
from mlops_assets.core.metrics_catalog import primary_metric
from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.tables import MULTIVARIATE_DRIFT_SCHEMA
from mlops_assets.core.vocabulary import (
    ESTIMATED_PERFORMANCE,
    ESTIMATION_RECONCILIATION,
    FEATURES,
    MODEL_VERSION_COLUMN,
    MULTIVARIATE_DRIFT,
    PARTITION_COLUMN,
    SCORES,
    Alias,
    Group,
    Meta,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import check_result, follow_upstream, owned_checks
from mlops_assets.monitoring.estimation.rules import (
    estimate_table,
    floor_run,
    method_trust,
)
from mlops_assets.monitoring.estimation.service import estimate_day, judge_day, registry_bundles

ESTIMATE_FLOOR_CHECK, RECONCILIATION_CHECK = (
    "estimate_above_guard_floor",
    "estimator_reconciliation",
)


def build_estimation_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily

    @asset(
        name=ESTIMATED_PERFORMANCE,
        partitions_def=daily,
        deps=[SCORES, FEATURES],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name=Group.MONITORING,
        kinds={"sklearn", "delta"},
        description=(
            "Performance of the model that scored D, estimated before D's labels (CBPE for "
            "classification, DLE for regression; fitted on the holdout at training time)."
        ),
    )
    def estimated_performance(
        context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry
    ):
        if not spec.estimation.enabled:
            context.log.info("estimated_performance skipped: estimation.enabled is false")
            return
        bundles = registry_bundles(registry)
        try:
            rows = [
                r for day in context.partition_keys for r in estimate_day(lake, spec, bundles, day)
            ]
        except RegistryUnavailable as err:
            context.log.warning(f"estimated_performance skipped: {err}")
            return
        for note in bundles.notes:
            context.log.warning(f"estimated_performance: {note}")
        if not rows:
            context.log.info(
                "estimated_performance: nothing to estimate (no scores, or no estimation method)"
            )
            return
        frame = estimate_table(rows)
        days = sorted(set(frame[PARTITION_COLUMN].to_list()))
        version = lake.write_partitions(
            ESTIMATED_PERFORMANCE, frame, days, run_id=context.run.run_id
        )
        yield MaterializeResult(metadata=estimate_metadata(frame, days[-1], version, bundles.notes))

    @multi_asset_check(
        name="estimation_checks",
        specs=owned_checks(
            [
                AssetCheckSpec(
                    ESTIMATE_FLOOR_CHECK,
                    asset=ESTIMATED_PERFORMANCE,
                    description=(
                        "Estimated primary metric beyond guard.floor on estimation.consecutive_days"
                        " consecutive days (before the labels), for the version of the newest"
                        " estimated day"
                    ),
                ),
                AssetCheckSpec(
                    RECONCILIATION_CHECK,
                    asset=ESTIMATED_PERFORMANCE,
                    description=(
                        "Recent median |estimate - realised| of the primary metric within "
                        "estimation.tolerance (else the guard ignores estimates), for that version"
                    ),
                ),
            ],
            spec.owners,
        ),
    )
    def estimation_checks(
        lake: DeltaLake,
    ):  # one step after each materialisation (not run when it is skipped)
        yield from estimate_checks(lake, spec)

    @asset(
        name=MULTIVARIATE_DRIFT,
        partitions_def=daily,
        deps=[FEATURES, SCORES],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name=Group.MONITORING,
        kinds={"polars", "delta"},
        description=(
            "PCA reconstruction error of D against the champion's training reference, with a"
            " threshold from the reference's own resampled spread (drift in how features move"
            " together)."
        ),
    )
    def multivariate_drift(
        context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry
    ):
        try:
            champion = (
                None if spec.drift.multivariate == "off" else registry.get_alias(Alias.CHAMPION)
            )
            bundles = registry_bundles(registry)
            bundle = bundles.get(champion) if champion is not None else None
        except RegistryUnavailable as err:
            context.log.warning(f"multivariate_drift skipped: {err}")
            return
        if champion is None:
            context.log.info(
                "multivariate_drift skipped: "
                + (
                    "drift.multivariate is off"
                    if spec.drift.multivariate == "off"
                    else "no champion (no reference)"
                )
            )
            return
        if bundle is None or bundle.get("multivariate_reference") is None:
            context.log.warning(
                f"multivariate_drift skipped: {(bundles.notes or ['no reference features'])[0]}"
            )
            return
        frame = pl.DataFrame(
            [
                judge_day(lake, bundle["multivariate_reference"], day, champion)
                for day in context.partition_keys
            ],
            schema=MULTIVARIATE_DRIFT_SCHEMA,
        ).filter(pl.col("rows") > 0)
        if frame.is_empty():
            return
        days = sorted(frame[PARTITION_COLUMN].to_list())
        version = lake.write_partitions(MULTIVARIATE_DRIFT, frame, days, run_id=context.run.run_id)
        yield MaterializeResult(metadata=multivariate_metadata(frame, version))

    return [estimated_performance, estimation_checks, multivariate_drift]


# ---- checks and metadata -------------------------------------------------------------------------
def estimate_checks(lake: DeltaLake, spec: DatasetSpec) -> list:
    """Both check results for the (newest) version that scored the newest estimated day."""
    history = lake.read(ESTIMATED_PERFORMANCE)
    recon = lake.read(ESTIMATION_RECONCILIATION)
    last_day = history[PARTITION_COLUMN].max()
    results = []
    for version in sorted(
        set(history.filter(pl.col(PARTITION_COLUMN) == last_day)[MODEL_VERSION_COLUMN].to_list())
    )[-1:]:
        run = floor_run(history, spec, version)
        quiet = (
            f"v{version}: estimated {primary_metric(spec)} not beyond the guard floor"
            f" {spec.guard.floor} on {spec.estimation.consecutive_days} consecutive days"
            if spec.guard.floor is not None
            else "no guard.floor: nothing to compare"
        )
        results.append(
            check_result(
                ESTIMATE_FLOOR_CHECK,
                run is None,
                run.reason if run else quiet,
                {Meta.MODEL_VERSION: version, "days": list(run.days) if run else []},
                blocking=True,
            )
        )
        trust = method_trust(recon, spec, version)
        failed = trust.median_error is not None and not trust.trusted
        results.append(
            check_result(
                RECONCILIATION_CHECK,
                not failed,
                trust.reason,
                {
                    Meta.MODEL_VERSION: version,
                    "median_abs_error": trust.median_error,
                    "reconciled_days": list(trust.days),
                },
                blocking=True,
            )
        )
    return results


def estimate_metadata(frame: pl.DataFrame, last_day: str, version: int, notes: list[str]) -> dict:
    last = frame.filter(pl.col(PARTITION_COLUMN) == last_day).sort(MODEL_VERSION_COLUMN)
    serving = int(last[MODEL_VERSION_COLUMN].max())
    mine = last.filter(pl.col(MODEL_VERSION_COLUMN) == serving)
    return {
        **{f"estimated_{r['metric']}": float(r["estimate"]) for r in mine.iter_rows(named=True)},
        Meta.MODEL_VERSION: serving,
        "rows": int(mine["rows"][0]),
        "estimator": mine["estimator"][0],
        Meta.DELTA_VERSION: version,
        "notes": MetadataValue.json(notes),
        "per_partition": MetadataValue.json(frame.to_dicts()),
    }


def multivariate_metadata(frame: pl.DataFrame, version: int) -> dict:
    last = frame.sort(PARTITION_COLUMN).row(-1, named=True)
    judged = last["reconstruction_error"] is not None
    return {
        "reconstruction_error": float(last["reconstruction_error"]) if judged else float("nan"),
        "threshold": float(last["threshold"]) if judged else float("nan"),
        "drifted": bool(last["drifted"]) if judged else False,
        "rows": int(last["rows"]),
        "reference_version": int(last["champion_version"]),
        "note": last["note"] or "",
        Meta.DELTA_VERSION: version,
        "per_partition": MetadataValue.json(frame.to_dicts()),
    }
