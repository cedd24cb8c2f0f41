"""Monitoring wiring, daily partitions D: drift_report[D] and model_performance[D].

Both follow ``scores`` (``scoring.assets``): they do not run when scoring was stopped (kill switch,
failed contract). Each has nothing to do without a champion, or before the labels matured, and
then produces no materialisation. The verdicts are rules (``monitoring.drift.judgement``,
``monitoring.performance``); the reconciliation of estimates with the realised metric is
``monitoring.estimation.service``.
"""

import datetime as dt
from pathlib import Path

import polars as pl
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.control.alerts import AlertSink
from mlops_assets.control.registry import ModelRegistry
from mlops_assets.control.registry.links import log_report, version_links
from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    DATASET_ROW,
    DRIFT,
    DRIFT_REPORT,
    FEATURES,
    MODEL_PERFORMANCE,
    MODEL_VERSION_COLUMN,
    PARTITION_COLUMN,
    PERFORMANCE,
    RAW_LABELS,
    SCORES,
    TRAINING_SET,
    Alias,
    Artifact,
    Group,
    Meta,
    VersionTag,
    recorded_delta_versions,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import follow_upstream, urls
from mlops_assets.model.datasets import latest_labels_before, split_rows
from mlops_assets.monitoring.drift.judgement import judge_drift, top_drifted
from mlops_assets.monitoring.drift.methods import (
    check_drift_methods,
    drift_rows,
    drift_summary,
    drift_table,
)
from mlops_assets.monitoring.estimation.service import reconcile_estimates
from mlops_assets.monitoring.rules import drift_view, episode_start_days
from mlops_assets.scoring.serving import lkg_predictor, refused


def _features_of(lake: DeltaLake, keys: list[str]) -> pl.LazyFrame:
    return lake.scan(FEATURES).filter(pl.col(PARTITION_COLUMN).is_in(keys))


def build_monitoring_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily
    check_drift_methods(spec)  # a pinned drift method unknown for its column: SpecError at load

    @asset(
        name=DRIFT_REPORT,
        partitions_def=daily,
        deps=[FEATURES, SCORES],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name=Group.MONITORING,
        kinds={"polars", "evidently"},
        description=(
            "Per-feature and prediction drift of D (with the partitions before it until"
            " `drift.min_rows` rows) against the champion's training reference profile, methods"
            " chosen as Evidently's DataDriftPreset does; dataset verdict or 'insufficient data';"
            " features constant within partitions left out with a note; an Evidently HTML report"
            " when a drift episode starts."
        ),
    )
    def drift_report(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        champion = registry.get_alias(Alias.CHAMPION)
        if champion is None:
            context.log.info("drift_report skipped: no champion (no reference profile)")
            return
        profile = registry.load_artifact_json(champion, Artifact.REFERENCE_PROFILE)
        cutoff = registry.version_tags(champion).get(VersionTag.CUTOFF)
        judged, excluded = judge_partitions(lake, spec, profile, context.partition_keys, cutoff)
        if not judged:
            return
        rows = [
            r
            for day, (_, result) in sorted(judged.items())
            for r in drift_rows(day, result, spec.drift.share_drifted)
        ]
        for day, (window, _) in sorted(judged.items()):
            if not window.sufficient:
                context.log.warning(f"drift_report[{day}]: {insufficient_note(window, spec)}")
        version = lake.write_partitions(
            DRIFT,
            drift_table(rows, champion),
            sorted(judged),
            run_id=context.run.run_id,
            merge_schema=True,
        )
        reports = episode_reports(platform, lake, registry, champion, judged, excluded)
        links = {
            **version_links(registry, champion, prefix="reference_"),
            "evidently_report_mlflow": (
                log_report(registry, champion, Path(reports[max(reports)]), "drift")
                if reports
                else None
            ),
        }
        yield MaterializeResult(
            metadata={
                **drift_metadata(rows, judged, excluded, reports, champion, version),
                **urls(links),
            }
        )

    @asset(
        name=MODEL_PERFORMANCE,
        partitions_def=daily,
        deps=[SCORES] + ([RAW_LABELS] if spec.labels else []),
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        group_name=Group.MONITORING,
        kinds={"sklearn", "delta"},
        description=(
            "Matured-label performance of the model that scored D (and of last_known_good on the"
            " same rows); re-materialised as late labels arrive."
        ),
    )
    def model_performance(
        context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry, alerts: AlertSink
    ):
        from mlops_assets.monitoring.performance import performance_rows, performance_table

        lkg = registry.get_alias(Alias.LAST_KNOWN_GOOD)
        lkg_predict = lkg_predictor(
            registry,
            lkg,
            spec,
            on_refused=lambda why: refused(
                context.log,
                alerts,
                why,
                run_id=context.run.run_id,
                asset=MODEL_PERFORMANCE,
                keys=context.partition_keys,
            ),
        )
        rows = performance_rows(
            lake.read,
            context.partition_keys,
            known_labels(lake, spec),
            spec,
            lkg_version=lkg,
            lkg_predict=lkg_predict,
        )
        if not rows:
            context.log.info("model_performance skipped: no matured labels yet")
            return
        # the estimate of each day beside its realised metric
        frame = reconcile_estimates(lake, performance_table(rows), context.run.run_id)
        days = sorted(set(frame[PARTITION_COLUMN].to_list()))
        version = lake.write_partitions(
            PERFORMANCE, frame, days, run_id=context.run.run_id, merge_schema=True
        )
        yield MaterializeResult(metadata=performance_metadata(frame, days[-1], version, registry))

    return [drift_report, model_performance]


# ---- inputs --------------------------------------------------------------------------------------
def judge_partitions(lake: DeltaLake, spec: DatasetSpec, profile: dict, keys, cutoff: str | None):
    """``judge_drift`` over the lake: nothing judged before the features table exists."""
    if not lake.exists(FEATURES):
        return {}, {}
    return judge_drift(
        lambda days: _features_of(lake, days), lake.read, spec, profile, keys, cutoff
    )


def insufficient_note(window, spec: DatasetSpec) -> str:
    return f"{window.note} (drift.min_rows {spec.drift.min_rows}): not judged"


def known_labels(lake: DeltaLake, spec: DatasetSpec) -> pl.DataFrame | None:
    """Every label known now (any arrival date), the latest per id; None when the target
    travels in the events (the day's features carry it)."""
    if spec.labels is None:
        return None
    return latest_labels_before(lake.read(RAW_LABELS), spec, dt.date.today() + dt.timedelta(days=1))


def episode_reports(
    platform: Platform,
    lake: DeltaLake,
    registry: ModelRegistry,
    champion: int,
    judged: dict,
    excluded: dict,
) -> dict[str, str]:
    """Evidently HTML for the judged days that start a drift episode (day → path); the report folder
    keeps the newest ``drift.report_retention`` files."""
    days = sorted(judged)
    before = (dt.date.fromisoformat(days[0]) - dt.timedelta(days=1)).isoformat()
    starts = episode_start_days(drift_summary(lake.read(DRIFT, [before, *days])), champion, days)
    reports = {
        day: str(drift_html(platform, lake, registry, champion, judged[day][0].days, day, excluded))
        for day in starts
    }
    if reports:
        from mlops_assets.monitoring.reports import prune_reports

        prune_reports(drift_reports_folder(platform), platform.spec.drift.report_retention)
    return reports


def drift_reports_folder(platform: Platform):
    return platform.home.reports / "drift"


def drift_html(
    platform: Platform,
    lake: DeltaLake,
    registry: ModelRegistry,
    champion: int,
    window,
    day: str,
    excluded=(),
):
    """Evidently data-drift HTML of D's window vs a sample of the champion's training rows (time
    travel)."""
    from mlops_assets.monitoring.reports import drift_report_html

    spec = drift_view(platform.spec, excluded)
    tags = registry.version_tags(champion)
    training = lake.read(
        TRAINING_SET,
        [tags[VersionTag.CUTOFF]],
        version=recorded_delta_versions(tags).get(TRAINING_SET),
    )
    reference, _ = split_rows(training, spec)
    path = drift_reports_folder(platform) / f"{day}_vs_v{champion}.html"
    return drift_report_html(
        spec, lake.read(FEATURES, window), reference, path, spec.drift.report_sample_rows
    )


# ---- metadata ------------------------------------------------------------------------------------
def drift_metadata(
    rows: list[dict], judged: dict, excluded: dict, reports: dict, champion: int, version: int
) -> dict:
    last_day = max(judged)
    window, last = judged[last_day]
    # every feature every day (NaN when unscored, e.g. insufficient data): the plots line up
    numeric = {
        f"drift_{r['feature']}": float("nan") if r["score"] is None else float(r["score"])
        for r in rows
        if r[PARTITION_COLUMN] == last_day and r["feature"] != DATASET_ROW
    }
    per_day = {
        day: {
            "status": res["status"],
            "share_drifted": res["share_drifted"],
            "dataset_drifted": res["dataset_drifted"],
            "drifted_features": res["drifted_features"],
            "rows": res["rows"],
            "window": list(w.days),
        }
        for day, (w, res) in sorted(judged.items())
    }
    return {
        Meta.SHARE_DRIFTED: float(last["share_drifted"]),
        **top_drifted(rows, last_day),
        "dataset_drifted": bool(last["dataset_drifted"]),
        "drift_status": last["status"],
        "current_rows": int(last["rows"]),
        "window_partitions": len(window.days),
        "window": window.note,
        "drifted_features": MetadataValue.json(last["drifted_features"]),
        "excluded_features": MetadataValue.json({**last["excluded"], **excluded}),
        **numeric,
        "reference_version": champion,
        Meta.DELTA_VERSION: version,
        "per_partition": MetadataValue.json(per_day),
        **({"evidently_report": MetadataValue.path(reports[max(reports)])} if reports else {}),
    }


def performance_metadata(
    frame: pl.DataFrame, last_day: str, version: int, registry: ModelRegistry | None = None
) -> dict:
    last = frame.filter(pl.col(PARTITION_COLUMN) == last_day).row(0, named=True)
    metric = last["metric"]
    realised = float(last["primary"]) if last["primary"] is not None else float("nan")
    lkg = float(last["lkg_primary"]) if last["lkg_primary"] is not None else float("nan")
    return {
        metric: realised,
        "realised_primary": realised,  # the same value under one name for every spec
        "coverage": float(last["coverage"]),
        "labelled_rows": int(last["labelled_rows"]),
        Meta.MODEL_VERSION: int(last[MODEL_VERSION_COLUMN]),
        # always present (NaN without last_known_good): one plot across partitions
        f"lkg_{metric}": lkg,
        "realised_minus_lkg": realised - lkg,
        **(
            urls(version_links(registry, int(last[MODEL_VERSION_COLUMN])))
            if registry is not None
            else {}
        ),
        Meta.DELTA_VERSION: version,
        "per_partition": MetadataValue.json(frame.drop("metrics").to_dicts()),
    }
