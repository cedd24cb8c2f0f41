"""Estimation plane wiring, daily partitions D: estimated_performance[D] and multivariate_drift[D].

``estimated_performance[D]``: the performance of every model version that scored D, estimated
from the
score rows before any label of D exists (CBPE / DLE, ``ml.estimation``), with the version's
estimator
loaded through the verified skops path (``registry.integrity.load_artifact_skops``). Its checks: the
estimated primary metric beyond ``guard.floor`` for ``estimation.consecutive_days`` days, and the
estimator's recent reconciliation error above ``estimation.tolerance``.

``multivariate_drift[D]``: D's PCA reconstruction error against the champion's training reference
(``ml.multivariate_drift``), its threshold and verdict; after ``scores`` as ``drift_report`` is
(not run when
scoring was stopped: kill switch, failed contract).

``reconcile_estimates`` is the one call ``model_performance`` makes: the estimates of the days it
judges,
beside the realised metric (``estimation_reconciliation`` table and two ``performance`` columns).
A version registered without the monitoring artifact is skipped with a note. Heavy modules load
inside
the bodies.
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
from mlops_assets.control.registry.integrity import load_artifact_skops
from mlops_assets.core.metrics_catalog import primary_metric
from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    ESTIMATED_PERFORMANCE,
    ESTIMATION_RECONCILIATION,
    FEATURES,
    MULTIVARIATE_DRIFT,
    PARTITION_COLUMN,
    SCORES,
    Alias,
    Artifact,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import check_result, follow_upstream, owned_checks
from mlops_assets.monitoring.drift.multivariate import judge
from mlops_assets.monitoring.estimation.methods import ESTIMATOR_TRUSTED_TYPES, estimate
from mlops_assets.monitoring.estimation.rules import (
    estimate_rows,
    estimate_table,
    estimator_trust,
    floor_run,
    reconcile,
    with_estimates,
)
from mlops_assets.scoring.rows import scored_values

ESTIMATE_FLOOR_CHECK, RECONCILIATION_CHECK = (
    "estimate_above_guard_floor",
    "estimator_reconciliation",
)
MV_SCHEMA = {
    "ds": pl.String,
    "champion_version": pl.Int64,
    "rows": pl.Int64,
    "reconstruction_error": pl.Float64,
    "threshold": pl.Float64,
    "drifted": pl.Boolean,
    "note": pl.String,
}


class Bundles:
    """Each version's monitoring bundle, loaded (verified) once per run; None for a version without
    one.
    """

    def __init__(self, registry: ModelRegistry):
        self.registry, self.loaded, self.notes = registry, {}, []

    def get(self, version: int) -> dict | None:
        if version not in self.loaded:
            bundle = load_artifact_skops(
                self.registry, version, Artifact.MONITOR_MODELS, ESTIMATOR_TRUSTED_TYPES
            )
            if bundle is None:
                self.notes.append(
                    f"v{version} was registered without {Artifact.MONITOR_MODELS} (before"
                    " estimation existed): skipped; retrain to get estimates and multivariate"
                    " drift"
                )
            self.loaded[version] = bundle
        return self.loaded[version]


def build_estimation_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily

    @asset(
        name=ESTIMATED_PERFORMANCE,
        partitions_def=daily,
        deps=[SCORES, FEATURES],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name="monitoring",
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
        bundles = Bundles(registry)
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
                "estimated_performance: nothing to estimate (no scores, or no estimator)"
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
        group_name="monitoring",
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
            bundles = Bundles(registry)
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
            schema=MV_SCHEMA,
        ).filter(pl.col("rows") > 0)
        if frame.is_empty():
            return
        days = sorted(frame[PARTITION_COLUMN].to_list())
        version = lake.write_partitions(MULTIVARIATE_DRIFT, frame, days, run_id=context.run.run_id)
        yield MaterializeResult(metadata=multivariate_metadata(frame, version))

    return [estimated_performance, estimation_checks, multivariate_drift]


# ---- the work of one day
# -----------------------------------------------------------------------------
def estimate_day(lake: DeltaLake, spec: DatasetSpec, bundles: Bundles, day: str) -> list[dict]:
    """Estimate rows of ``day`` for every model version (with an estimator) that scored it."""
    scores = lake.read(SCORES, [day])
    if scores.height < spec.estimation.min_rows:
        return []
    out = []
    for (version,), part in scores.group_by("model_version", maintain_order=True):
        bundle = (
            bundles.get(int(version)) if int(version) >= 0 else None
        )  # -1: the constant baseline
        if bundle is None:
            continue
        est = bundle["estimator"]
        X = model_frame(lake, spec, day, part) if est["kind"] == "dle" else None
        out += estimate_rows(
            day,
            int(version),
            estimate(est, scored_values(part, spec), X),
            part.height,
            est["kind"],
            spec,
        )
    return out


def model_frame(lake: DeltaLake, spec: DatasetSpec, day: str, scores: pl.DataFrame):
    """The model frame of ``scores``' rows, in their order (DLE reads the features)."""
    from mlops_assets.model.training import to_model_frame

    feats = scores.select(spec.id).join(
        lake.read(FEATURES, [day]).drop(PARTITION_COLUMN, strict=False),
        on=spec.id,
        how="left",
        maintain_order="left",
    )
    return to_model_frame(feats, spec)


def judge_day(lake: DeltaLake, reference: dict, day: str, champion: int) -> dict:
    feats = lake.read(FEATURES, [day])
    if feats.is_empty():
        return {"ds": day, "champion_version": champion, "rows": 0}
    return {"ds": day, "champion_version": champion, **judge(feats, reference)}


# ---- reconciliation (called by model_performance)
# ----------------------------------------------------
def reconcile_estimates(lake: DeltaLake, performance: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """``performance`` rows with their estimate beside the realised primary metric; every estimate
    of the
    judged days reconciled into ``estimation_reconciliation``."""
    days = sorted(set(performance[PARTITION_COLUMN].to_list()))
    recon = reconcile(performance, lake.read(ESTIMATED_PERFORMANCE, days))
    if not recon.is_empty():
        lake.write_partitions(
            ESTIMATION_RECONCILIATION,
            recon,
            sorted(set(recon[PARTITION_COLUMN].to_list())),
            run_id=run_id,
        )
    return with_estimates(performance, recon)


# ---- checks and metadata
# -----------------------------------------------------------------------------
def estimate_checks(lake: DeltaLake, spec: DatasetSpec) -> list:
    """Both check results for the (newest) version that scored the newest estimated day."""
    history = lake.read(ESTIMATED_PERFORMANCE)
    recon = lake.read(ESTIMATION_RECONCILIATION)
    last_day = history[PARTITION_COLUMN].max()
    results = []
    for version in sorted(
        set(history.filter(pl.col(PARTITION_COLUMN) == last_day)["model_version"].to_list())
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
                {"model_version": version, "days": list(run.days) if run else []},
                blocking=True,
            )
        )
        trust = estimator_trust(recon, spec, version)
        failed = trust.median_error is not None and not trust.trusted
        results.append(
            check_result(
                RECONCILIATION_CHECK,
                not failed,
                trust.reason,
                {
                    "model_version": version,
                    "median_abs_error": trust.median_error,
                    "reconciled_days": list(trust.days),
                },
                blocking=True,
            )
        )
    return results


def estimate_metadata(frame: pl.DataFrame, last_day: str, version: int, notes: list[str]) -> dict:
    last = frame.filter(pl.col(PARTITION_COLUMN) == last_day).sort("model_version")
    serving = int(last["model_version"].max())
    mine = last.filter(pl.col("model_version") == serving)
    return {
        **{f"estimated_{r['metric']}": float(r["estimate"]) for r in mine.iter_rows(named=True)},
        "model_version": serving,
        "rows": int(mine["rows"][0]),
        "estimator": mine["estimator"][0],
        "delta_version": version,
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
        "delta_version": version,
        "per_partition": MetadataValue.json(frame.to_dicts()),
    }
