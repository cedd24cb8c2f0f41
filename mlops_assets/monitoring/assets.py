"""Scoring and monitoring wiring, daily partitions D:
scores[D] (champion), shadow_scores[D] (challenger), drift_report[D], model_performance[D].

`scores` never runs on a partition whose blocking contract failed, degrades to the
spec's fallback when the champion is unusable (guard tripped, or its files differ from the
registration manifest: alert ``model_integrity``), scores from the local verified model cache
when MLflow is unreachable (metadata ``model_source: cache``, alert ``registry_unavailable``),
and stops on the kill switch — in each case with the reason in the log and metadata. Assets that
have nothing to do (no
champion yet, no challenger, labels not matured) produce no materialisation.
"""

import datetime as dt
from pathlib import Path

import polars as pl
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.control.alerts import AlertSink
from mlops_assets.control.instance_queries import failed_checks
from mlops_assets.control.registry import IntegrityError, ModelRegistry, RegistryUnavailable
from mlops_assets.control.registry.links import log_report, version_links
from mlops_assets.core.platform import Platform
from mlops_assets.core.redaction import redact
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    DATASET_ROW,
    DRIFT,
    DRIFT_REPORT,
    FEATURES,
    MODEL_PERFORMANCE,
    PARTITION_COLUMN,
    PERFORMANCE,
    PREDICTION_ROW,
    RAW_EVENTS,
    RAW_LABELS,
    SCORES,
    SHADOW_SCORES,
    TRAINING_SET,
    Alias,
    Artifact,
    Meta,
    VersionTag,
    recorded_delta_versions,
)
from mlops_assets.data.contract_checks import BLOCKING_CHECKS
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import follow_upstream, urls
from mlops_assets.model.datasets import latest_labels_before, split_rows
from mlops_assets.monitoring.drift.methods import (
    DRIFT_METHODS,
    check_drift_methods,
    drift_rows,
    drift_summary,
    drift_table,
    feature_drift,
    insufficient_data,
)
from mlops_assets.monitoring.estimation.assets import reconcile_estimates
from mlops_assets.monitoring.rules import (
    drift_view,
    drift_window,
    episode_start_days,
    kill_switch,
    partition_constant_features,
)
from mlops_assets.scoring.rows import (
    CACHE,
    DEGRADED,
    LABEL,
    ScoreTally,
    ServingModel,
    drift_prediction_column,
    predictor,
    score_batches,
    score_column,
    score_columns,
)
from mlops_assets.scoring.serving import choose_serving_model


def _features_of(lake: DeltaLake, keys: list[str]) -> pl.LazyFrame:
    return lake.scan(FEATURES).filter(pl.col(PARTITION_COLUMN).is_in(keys))


def build_monitoring_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily
    value = score_column(spec)
    check_drift_methods(spec)  # a pinned drift method unknown for its column: SpecError at load

    @asset(
        name=SCORES,
        partitions_def=daily,
        deps=[FEATURES],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name="monitoring",
        kinds={"sklearn", "delta"},
        description=(
            "The champion's predictions for features[D]; every row names the model version, alias,"
            " mode (normal | degraded) and scoring time. Not produced from a partition whose"
            " contract failed."
        ),
    )
    def scores(
        context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry, alerts: AlertSink
    ):
        stop = kill_switch(spec)
        if stop:
            context.log.warning(f"scores skipped: {stop}")
            return
        serving = serving_or_fail(context, spec, registry, alerts)
        if serving is None:
            context.log.info("scores skipped: no champion yet")
            return
        blocked = {
            k: failed_checks(context.instance, RAW_EVENTS, BLOCKING_CHECKS, k)
            for k in context.partition_keys
        }
        for k, failed in sorted(blocked.items()):
            if failed:
                context.log.warning(
                    f"scores[{k}] not produced: blocking contract checks failed"
                    f" ({', '.join(failed)})"
                )
        keys = [k for k in context.partition_keys if not blocked[k]]
        if not keys:
            return
        announce_serving(context, alerts, serving, keys)
        tally = ScoreTally(value)  # the rows stream to the lake batch by batch: counted on the way
        version = lake.write_stream(
            SCORES,
            lambda: tally.count(
                score_batches(
                    serving,
                    lake.iter_batches(FEATURES, keys, dictionary_columns=spec.categorical_features),
                    spec,
                )
            ),
            score_columns(spec),
            keys,
            run_id=context.run.run_id,
            metadata={
                "model_version": serving.version,
                "mode": serving.mode,
                Meta.MODEL_SOURCE: serving.source,
            },
        )
        yield MaterializeResult(
            metadata={
                **tally.metadata(),
                "model_version": serving.version,
                "alias": serving.alias,
                "mode": serving.mode,
                Meta.MODEL_SOURCE: serving.source,
                "serving_reason": serving.reason,
                **urls(version_links(registry, serving.version) if serving.source != CACHE else {}),
                "delta_version": version,
                "partitions": MetadataValue.json(keys),
            }
        )

    @asset(
        name=SHADOW_SCORES,
        partitions_def=daily,
        deps=[scores],
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        group_name="monitoring",
        kinds={"sklearn", "delta"},
        description=(
            "The challenger (passed every gate, not champion) scored on the same rows; compared"
            " with the champion's scores. Evidence for the shadow-days gate."
        ),
    )
    def shadow_scores(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        try:
            serving = choose_serving_model(spec, registry, alias=Alias.CHALLENGER)
        except RegistryUnavailable as err:
            context.log.warning(f"shadow_scores skipped: {err}")
            return
        champion_scores = lake.read(SCORES, context.partition_keys) if serving is not None else None
        if serving is None or champion_scores.is_empty():
            context.log.info(
                "shadow_scores skipped: "
                + ("no challenger" if serving is None else "no champion scores to compare with")
            )
            return
        keys = sorted(set(champion_scores[PARTITION_COLUMN].to_list()))
        tally = ScoreTally(value)
        version = lake.write_stream(
            SHADOW_SCORES,
            lambda: tally.count(
                score_batches(
                    serving,
                    lake.iter_batches(FEATURES, keys, dictionary_columns=spec.categorical_features),
                    spec,
                )
            ),
            score_columns(spec),
            keys,
            run_id=context.run.run_id,
        )
        out = lake.read(SHADOW_SCORES, keys, version=version)
        yield MaterializeResult(
            metadata={
                "rows": tally.rows,
                "challenger_version": serving.version,
                "delta_version": version,
                **shadow_agreement(out, champion_scores, spec),
            }
        )

    @asset(
        name=DRIFT_REPORT,
        partitions_def=daily,
        deps=[FEATURES, scores],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name="monitoring",
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
        judged, excluded = judge_drift(lake, spec, profile, context.partition_keys, cutoff)
        if not judged:
            return
        rows = [
            r
            for day, (_, result) in sorted(judged.items())
            for r in drift_rows(day, result, spec.drift.share_drifted)
        ]
        for day, (window, _) in sorted(judged.items()):
            if not window.sufficient:
                context.log.warning(
                    f"drift_report[{day}]: {window.note} (drift.min_rows {spec.drift.min_rows}): "
                    "not judged"
                )
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
        deps=[scores] + ([RAW_LABELS] if spec.labels else []),
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        group_name="monitoring",
        kinds={"sklearn", "delta"},
        description=(
            "Matured-label performance of the model that scored D (and of last_known_good on the"
            " same rows); re-materialised as late labels arrive."
        ),
    )
    def model_performance(
        context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry, alerts: AlertSink
    ):
        from mlops_assets.monitoring.performance import day_performance, performance_table

        lkg = registry.get_alias(Alias.LAST_KNOWN_GOOD)
        lkg_predict = lkg_predictor(
            registry,
            lkg,
            spec,
            on_refused=lambda why: refused(
                context, alerts, why, asset=MODEL_PERFORMANCE, keys=context.partition_keys
            ),
        )
        truth = known_labels(lake, spec)
        rows = []
        for day in context.partition_keys:
            sc = lake.read(SCORES, [day])
            if not sc.is_empty():
                feats = lake.read(FEATURES, [day])
                rows += day_performance(
                    day,
                    sc,
                    feats if truth is None else truth,
                    feats,
                    spec,
                    lkg_version=lkg,
                    lkg_predict=lkg_predict,
                )
        if not rows:
            context.log.info("model_performance skipped: no matured labels yet")
            return
        frame = reconcile_estimates(
            lake, performance_table(rows), context.run.run_id
        )  # estimate beside realised
        days = sorted(set(frame[PARTITION_COLUMN].to_list()))
        version = lake.write_partitions(
            PERFORMANCE, frame, days, run_id=context.run.run_id, merge_schema=True
        )
        yield MaterializeResult(metadata=performance_metadata(frame, days[-1], version, registry))

    return [scores, shadow_scores, drift_report, model_performance]


# ---- inputs --------------------------------------------------------------------------------------
def day_predictions(features: pl.DataFrame, scores: pl.DataFrame, spec: DatasetSpec):
    """The day's scores aligned to its feature rows (None when the day was not scored)."""
    if scores.is_empty():
        return None
    value = drift_prediction_column(
        spec
    )  # the predicted class of a multiclass model, else the score
    return features.select(spec.id).join(
        scores.select(spec.id, value), on=spec.id, how="left", maintain_order="left"
    )[value]


def known_labels(lake: DeltaLake, spec: DatasetSpec) -> pl.DataFrame | None:
    """Every label known now (any arrival date), the latest per id; None when the target
    travels in the events (the day's features carry it)."""
    if spec.labels is None:
        return None
    return latest_labels_before(lake.read(RAW_LABELS), spec, dt.date.today() + dt.timedelta(days=1))


def lkg_predictor(registry: ModelRegistry, lkg: int | None, spec: DatasetSpec, on_refused=None):
    """``features -> scores`` of last_known_good, or None when there is none or its files
    differ from its registration manifest (then ``on_refused(message)``: no comparison)."""
    if lkg is None:
        return None
    try:
        model = registry.load_model(lkg)
    except IntegrityError as err:
        if on_refused is not None:
            on_refused(str(err))
        return None
    return predictor(model, spec)


# ---- which model serves, said out loud
# ------------------------------------------------------------
def serving_or_fail(
    context: AssetExecutionContext, spec: DatasetSpec, registry: ModelRegistry, alerts: AlertSink
) -> ServingModel | None:
    """The champion's ``ServingModel``; a redacted ``Failure`` (and an alert) when neither MLflow
    nor the local cache can serve it."""
    where = {
        "run_id": context.run.run_id,
        "asset": SCORES,
        "partition": ",".join(context.partition_keys),
    }
    try:
        return choose_serving_model(spec, registry)
    except RegistryUnavailable as err:
        message = redact(str(err), registry.secrets())
        alerts.send(
            "registry_unavailable",
            reason="scoring stopped: MLflow unreachable and no verified cached champion",
            details={"error": message},
            **where,
        )
        raise Failure(
            f"{message}. Way out: restore MLflow (check MLFLOW_TRACKING_URI), then re-run scoring; "
            "a champion served once before is scored from the local cache"
        ) from None
    except IntegrityError as err:
        refused(context, alerts, str(err), asset=SCORES, keys=context.partition_keys)
        raise Failure(
            redact(
                f"{err}. Way out: restore or re-register the model (see the runbook)",
                registry.secrets(),
            )
        ) from None


def refused(
    context: AssetExecutionContext, alerts: AlertSink, message: str, *, asset: str, keys
) -> None:
    context.log.error(f"integrity: {message}")
    alerts.send(
        "model_integrity",
        reason=f"refused to load: {message}",
        run_id=context.run.run_id,
        asset=asset,
        partition=",".join(keys),
    )


def announce_serving(
    context: AssetExecutionContext, alerts: AlertSink, serving: ServingModel, keys
) -> None:
    """Log and alert what is unusual about the serving model: integrity refusals on the way,
    serving from the local cache, degraded mode."""
    where = {"run_id": context.run.run_id, "asset": SCORES, "partition": ",".join(keys)}
    for message in serving.refused:
        refused(context, alerts, message, asset=SCORES, keys=keys)
    if serving.source == CACHE:
        context.log.warning(f"scoring from the local model cache: {serving.reason}")
        alerts.send(
            "registry_unavailable",
            severity="warning",
            reason=(
                f"MLflow unreachable: {serving.alias} "
                f"v{serving.version} served from the local model cache"
            ),
            **where,
        )
    if serving.mode == DEGRADED:
        context.log.warning(f"scoring DEGRADED: {serving.reason}")
        alerts.send(
            "guard_rollback",
            severity="warning",
            reason=f"scoring degraded: {serving.reason}",
            **where,
        )


def judge_drift(lake: DeltaLake, spec: DatasetSpec, profile: dict, keys, cutoff: str | None):
    """Each partition of ``keys`` with rows, judged on its window (``monitoring.drift_window``):
    ({day: (window, feature_drift result)}, {feature: note} of the features found constant within
    partitions over the lookback)."""
    d = spec.drift
    first = dt.date.fromisoformat(min(keys)) - dt.timedelta(days=d.max_lookback_partitions - 1)
    span = [
        (first + dt.timedelta(days=i)).isoformat()
        for i in range((dt.date.fromisoformat(max(keys)) - first).days + 1)
    ]
    if not lake.exists(FEATURES):
        return {}, {}
    names = [c for c in spec.model_features if c not in d.exclude]
    recent = _features_of(lake, span)
    counts = dict(recent.group_by(PARTITION_COLUMN).len().collect().iter_rows())
    excluded = partition_constant_features(recent.select(PARTITION_COLUMN, *names), names)
    windows = {
        k: drift_window(counts, k, d.min_rows, d.max_lookback_partitions, cutoff)
        for k in keys
        if counts.get(k, 0) > 0
    }
    needed = sorted({day for w in windows.values() if w.sufficient for day in w.days})
    feats, scored = lake.read(FEATURES, needed), lake.read(SCORES, needed)
    judged = {}
    for day, w in windows.items():
        if not w.sufficient:
            judged[day] = (w, insufficient_data(spec, w.rows, w.note))
            continue
        current = feats.filter(pl.col(PARTITION_COLUMN).is_in(w.days))
        window_scores = (
            scored.filter(pl.col(PARTITION_COLUMN).is_in(w.days))
            if not scored.is_empty()
            else scored
        )
        result = feature_drift(
            profile,
            current,
            spec,
            prediction=day_predictions(current, window_scores, spec),
            excluded=excluded,
        )
        judged[day] = (w, {**result, "note": w.note})
    return judged, excluded


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
    travel).
    """
    from mlops_assets.monitoring.reports import drift_report as evidently_drift

    spec = drift_view(platform.spec, excluded)
    tags = registry.version_tags(champion)
    training = lake.read(
        TRAINING_SET,
        [tags[VersionTag.CUTOFF]],
        version=recorded_delta_versions(tags).get(TRAINING_SET),
    )
    reference, _ = split_rows(training, spec)
    path = drift_reports_folder(platform) / f"{day}_vs_v{champion}.html"
    return evidently_drift(
        spec, lake.read(FEATURES, window), reference, path, spec.drift.report_sample_rows
    )


# ---- metadata ------------------------------------------------------------------------------------
def shadow_agreement(
    shadow: pl.DataFrame, champion_scores: pl.DataFrame, spec: DatasetSpec
) -> dict:
    value = score_column(spec)
    both = shadow.select(spec.id, pl.col(value).alias("shadow")).join(
        champion_scores.select(spec.id, pl.col(value).alias("champion")), on=spec.id
    )
    delta = (both["shadow"] - both["champion"]).abs()
    meta = {
        "mean_abs_score_delta": float(delta.mean()) if both.height else 0.0,
        "max_abs_score_delta": float(delta.max()) if both.height else 0.0,
    }
    if spec.named_classes:  # compare the predicted classes themselves
        labels = shadow.select(spec.id, pl.col(LABEL).alias("s")).join(
            champion_scores.select(spec.id, pl.col(LABEL).alias("c")), on=spec.id
        )
        meta["label_agreement"] = (
            float((labels["s"] == labels["c"]).mean()) if labels.height else 0.0
        )
    elif spec.task == "classification":
        meta["label_agreement"] = float(
            ((both["shadow"] >= 0.5) == (both["champion"] >= 0.5)).mean()
        )
    return meta


TOP_DRIFTED = (
    3  # drift_top<i>_score / drift_top<i>_feature: the strongest drifts of the day, plotted
)


def drift_strength(row: dict) -> float:
    """How far past its threshold a feature's score is (> 1: drifted), whichever way its rule points
    (distances drift above the threshold, p-values below it); NaN when unscored."""
    score, threshold = row.get("score"), row.get("threshold")
    if score is None or threshold is None or score != score:
        return float("nan")
    method = DRIFT_METHODS.get(row.get("method") or "")
    if method is not None and method.rule != ">=":
        return threshold / score if score > 0 else float("inf")
    return score / threshold if threshold > 0 else float("inf")


def top_drifted(rows: list[dict], day: str, k: int = TOP_DRIFTED) -> dict:
    """The ``k`` strongest feature drifts of ``day`` under fixed names (NaN / "" when fewer were
    scored).
    """
    feats = [
        r for r in rows if r["ds"] == day and r["feature"] not in (DATASET_ROW, PREDICTION_ROW)
    ]
    ranked = sorted(
        (r for r in feats if drift_strength(r) == drift_strength(r)),
        key=drift_strength,
        reverse=True,
    )
    out: dict = {}
    for i in range(k):
        r = ranked[i] if i < len(ranked) else None
        out[f"drift_top{i + 1}_score"] = float(r["score"]) if r else float("nan")
        out[f"drift_top{i + 1}_strength"] = min(drift_strength(r), 1e6) if r else float("nan")
        out[f"drift_top{i + 1}_feature"] = r["feature"] if r else ""
    out["drifted_feature_count"] = sum(bool(r["drifted"]) for r in feats)
    return out


def drift_metadata(
    rows: list[dict], judged: dict, excluded: dict, reports: dict, champion: int, version: int
) -> dict:
    last_day = max(judged)
    window, last = judged[last_day]
    # every feature every day (NaN when unscored, e.g. insufficient data): the plots line up
    numeric = {
        f"drift_{r['feature']}": float("nan") if r["score"] is None else float(r["score"])
        for r in rows
        if r["ds"] == last_day and r["feature"] != DATASET_ROW
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
        "share_drifted": float(last["share_drifted"]),
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
        "delta_version": version,
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
        "model_version": int(last["model_version"]),
        # always present (NaN without last_known_good): one plot across partitions
        f"lkg_{metric}": lkg,
        "realised_minus_lkg": realised - lkg,
        **(
            urls(version_links(registry, int(last["model_version"])))
            if registry is not None
            else {}
        ),
        "delta_version": version,
        "per_partition": MetadataValue.json(frame.drop("metrics").to_dicts()),
    }
