"""Scoring and monitoring assets, daily partitions D:
scores[D] (champion), shadow_scores[D] (challenger), drift_report[D], model_performance[D].

`scores` never runs on a partition whose blocking contract failed, degrades to the
spec's fallback when the champion is unusable, and stops on the kill switch — in each
case with the reason in the log and metadata. Assets that have nothing to do (no
champion yet, no challenger, labels not matured) produce no materialisation.
"""

import datetime as dt
import json

import polars as pl
from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.alerts import AlertSink
from mlops_assets.contract_checks import BLOCKING_CHECKS
from mlops_assets.defs.data import follow_upstream
from mlops_assets.defs.model import REFERENCE_PROFILE
from mlops_assets.lake import DeltaLake
from mlops_assets.platform import (
    DRIFT,
    DRIFT_REPORT,
    FEATURES,
    MODEL_PERFORMANCE,
    PERFORMANCE,
    RAW_EVENTS,
    RAW_LABELS,
    SCORES,
    SHADOW_SCORES,
    Platform,
)
from mlops_assets.registry import ModelRegistry
from mlops_assets.scoring import score_column



def contract_failures(instance, day: str) -> list[str]:
    """Blocking contract checks of raw_events whose latest result for ``day`` failed."""
    from dagster._core.event_api import PartitionKeyFilter

    failed = []
    for name in BLOCKING_CHECKS:
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey(RAW_EVENTS), name), limit=5, partition_filter=PartitionKeyFilter(key=day))
        for rec in history:
            evaluation = rec.event.dagster_event.event_specific_data if rec.event and rec.event.dagster_event else None
            if evaluation is None or not hasattr(evaluation, "passed"):
                continue
            if not evaluation.passed:
                failed.append(name)
            break
    return failed


def choose_serving_model(spec, registry: ModelRegistry, alias: str = "champion"):
    """The model that scores: the champion when usable, else the spec's fallback (degraded).
    None when there is nothing to serve under ``alias``."""
    from mlops_assets.monitoring import GUARD_REASON_TAG, GUARD_TAG
    from mlops_assets.registry import IntegrityError, LAST_KNOWN_GOOD
    from mlops_assets.scoring import BASELINE_VERSION, DEGRADED, NORMAL, ConstantBaseline, ServingModel

    version = registry.get_alias(alias)
    if version is None:
        return None
    tags = registry.version_tags(version)
    problem = None
    if tags.get(GUARD_TAG) == "tripped":
        problem = f"{alias} v{version} unusable: guard tripped ({tags.get(GUARD_REASON_TAG, '')})"
    else:
        try:
            return ServingModel(registry.load_model(version), version, alias, NORMAL, f"{alias} v{version}")
        except IntegrityError as err:
            problem = f"{alias} v{version} unusable: artifact integrity failed ({err})"
    if alias != "champion":
        return None
    if spec.fallback == "last_known_good":
        lkg = registry.get_alias(LAST_KNOWN_GOOD)
        if lkg is not None and lkg != version:
            try:
                return ServingModel(registry.load_model(lkg), lkg, LAST_KNOWN_GOOD, DEGRADED,
                                    f"{problem}; serving last_known_good v{lkg}")
            except IntegrityError as err:
                problem += f"; last_known_good v{lkg} also unusable ({err})"
    profile = registry.load_artifact_json(version, REFERENCE_PROFILE)
    prior = float((profile.get("prediction") or {}).get("mean") or 0.0)
    return ServingModel(ConstantBaseline(prior), BASELINE_VERSION, "baseline", DEGRADED,
                        f"{problem}; serving the constant baseline {prior:.4f}")


def build_monitoring_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily

    @asset(
        name=SCORES,
        partitions_def=daily,
        deps=[FEATURES],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name="monitoring",
        kinds={"sklearn", "delta"},
        description="The champion's predictions for features[D]; every row names the model version, alias, mode "
        "(normal | degraded) and scoring time. Not produced from a partition whose contract failed.",
    )
    def scores(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry, alerts: AlertSink):
        from mlops_assets.monitoring import kill_switch
        from mlops_assets.scoring import DEGRADED, score_frame

        stop = kill_switch(spec)
        if stop:
            context.log.warning(f"scores skipped: {stop}")
            return
        serving = choose_serving_model(spec, registry)
        if serving is None:
            context.log.info("scores skipped: no champion yet")
            return
        keys = [k for k in context.partition_keys if not contract_failures(context.instance, k)]
        for k in sorted(set(context.partition_keys) - set(keys)):
            context.log.warning(f"scores[{k}] not produced: blocking contract checks failed "
                                f"({', '.join(contract_failures(context.instance, k))})")
        if not keys:
            return
        if serving.mode == DEGRADED:
            context.log.warning(f"scoring DEGRADED: {serving.reason}")
            alerts.send("guard_rollback", severity="warning", reason=f"scoring degraded: {serving.reason}",
                        run_id=context.run.run_id, asset=SCORES, partition=",".join(keys))
        features = lake.scan(FEATURES).filter(pl.col("ds").is_in(keys))
        out = score_frame(serving, features, spec)
        version = lake.write_partitions(SCORES, out, keys, run_id=context.run.run_id,
                                        metadata={"model_version": serving.version, "mode": serving.mode})
        value = score_column(spec)
        yield MaterializeResult(metadata={
            "rows": out.height,
            "model_version": serving.version,
            "alias": serving.alias,
            "mode": serving.mode,
            "serving_reason": serving.reason,
            "mean_score": float(out[value].mean()) if out.height else 0.0,
            "delta_version": version,
            "partitions": MetadataValue.json(keys),
        })

    @asset(
        name=SHADOW_SCORES,
        partitions_def=daily,
        deps=[scores],
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        group_name="monitoring",
        kinds={"sklearn", "delta"},
        description="The challenger (passed every gate, not champion) scored on the same rows; compared with the "
        "champion's scores. Evidence for the shadow-days gate.",
    )
    def shadow_scores(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.registry import CHALLENGER
        from mlops_assets.scoring import score_frame

        serving = choose_serving_model(spec, registry, alias=CHALLENGER)
        if serving is None:
            context.log.info("shadow_scores skipped: no challenger")
            return
        keys = context.partition_keys
        champion_scores = lake.read(SCORES, keys)
        if champion_scores.is_empty():
            context.log.info("shadow_scores skipped: no champion scores to compare with")
            return
        keys = sorted(set(champion_scores["ds"].to_list()))
        out = score_frame(serving, lake.scan(FEATURES).filter(pl.col("ds").is_in(keys)), spec)
        version = lake.write_partitions(SHADOW_SCORES, out, keys, run_id=context.run.run_id)
        value = score_column(spec)
        both = out.select(spec.id, pl.col(value).alias("shadow")).join(
            champion_scores.select(spec.id, pl.col(value).alias("champion")), on=spec.id)
        delta = (both["shadow"] - both["champion"]).abs()
        meta = {"rows": out.height, "challenger_version": serving.version, "delta_version": version,
                "mean_abs_score_delta": float(delta.mean()) if both.height else 0.0,
                "max_abs_score_delta": float(delta.max()) if both.height else 0.0}
        if spec.task == "classification":
            meta["label_agreement"] = float(((both["shadow"] >= 0.5) == (both["champion"] >= 0.5)).mean())
        yield MaterializeResult(metadata=meta)

    @asset(
        name=DRIFT_REPORT,
        partitions_def=daily,
        deps=[FEATURES, scores],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name="monitoring",
        kinds={"polars", "evidently"},
        description="Per-feature and prediction drift of D against the champion's training reference profile "
        "(PSI, KS, normalised Wasserstein, Jensen–Shannon, chi²; Evidently's definitions), dataset verdict, "
        "and an Evidently HTML report when the dataset drifted.",
    )
    def drift_report(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.ml.drift import feature_drift
        from mlops_assets.monitoring import drift_view
        from mlops_assets.registry import CHAMPION

        champion = registry.get_alias(CHAMPION)
        if champion is None:
            context.log.info("drift_report skipped: no champion (no reference profile)")
            return
        profile = registry.load_artifact_json(champion, REFERENCE_PROFILE)
        view = drift_view(spec)
        value = score_column(spec)
        rows, meta, reports = [], {}, {}
        for day in context.partition_keys:
            feats = lake.read(FEATURES, [day])
            if feats.is_empty():
                continue
            sc = lake.read(SCORES, [day])
            prediction = (feats.select(spec.id).join(sc.select(spec.id, value), on=spec.id, how="left",
                                                     maintain_order="left")[value].to_numpy()
                          if not sc.is_empty() else None)
            result = feature_drift(profile, feats, view, prediction=prediction)
            drifted = [f for f, r in result["features"].items() if r.get("drifted")]
            for name, r in result["features"].items():
                rows.append({"ds": day, "feature": name, "method": r.get("method"), "score": r.get("score"),
                             "threshold": r.get("threshold"), "drifted": bool(r.get("drifted"))})
            pred = result.get("prediction") or {}
            rows.append({"ds": day, "feature": "__prediction__", "method": pred.get("method"),
                         "score": pred.get("score"), "threshold": pred.get("threshold"),
                         "drifted": bool(pred.get("drifted"))})
            rows.append({"ds": day, "feature": "__dataset__", "method": "share_drifted",
                         "score": result["share_drifted"], "threshold": spec.drift.share_drifted,
                         "drifted": bool(result["dataset_drifted"])})
            meta[day] = {"share_drifted": result["share_drifted"], "dataset_drifted": result["dataset_drifted"],
                         "drifted_features": drifted}
            if result["dataset_drifted"]:
                reports[day] = str(_drift_html(platform, lake, registry, champion, feats, day))
        if not rows:
            return
        frame = pl.DataFrame(rows, schema={"ds": pl.String, "feature": pl.String, "method": pl.String,
                                           "score": pl.Float64, "threshold": pl.Float64, "drifted": pl.Boolean})
        frame = frame.with_columns(pl.lit(champion, pl.Int64).alias("champion_version"))
        version = lake.write_partitions(DRIFT, frame, sorted(meta), run_id=context.run.run_id)
        last = meta[max(meta)]
        numeric = {f"drift_{r['feature']}": float(r["score"]) for r in rows
                   if r["ds"] == max(meta) and r["score"] is not None and r["feature"] != "__dataset__"}
        yield MaterializeResult(metadata={
            "share_drifted": float(last["share_drifted"]),
            "dataset_drifted": bool(last["dataset_drifted"]),
            "drifted_features": MetadataValue.json(last["drifted_features"]),
            **numeric,
            "reference_version": champion,
            "delta_version": version,
            "per_partition": MetadataValue.json(meta),
            **({"evidently_report": MetadataValue.path(reports[max(reports)])} if reports else {}),
        })

    @asset(
        name=MODEL_PERFORMANCE,
        partitions_def=daily,
        deps=[scores] + ([RAW_LABELS] if spec.labels else []),
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        group_name="monitoring",
        kinds={"sklearn", "delta"},
        description="Matured-label performance of the model that scored D (and of last_known_good on the same "
        "rows); re-materialised as late labels arrive.",
    )
    def model_performance(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.ml import training as T
        from mlops_assets.ml.datasets import latest_labels_before
        from mlops_assets.ml.evaluation import primary_metric, task_metrics
        from mlops_assets.registry import LAST_KNOWN_GOOD

        metric = primary_metric(spec)
        value = score_column(spec)
        lkg = registry.get_alias(LAST_KNOWN_GOOD)
        lkg_model = registry.load_model(lkg) if lkg is not None else None
        rows = []
        # every label known now (any arrival date), the latest per id
        labels = (latest_labels_before(lake.read(RAW_LABELS), spec, dt.date.today() + dt.timedelta(days=1))
                  if spec.labels else None)
        for day in context.partition_keys:
            sc = lake.read(SCORES, [day])
            if sc.is_empty():
                continue
            if labels is not None:
                joined = sc.join(labels.select(spec.id, spec.target), on=spec.id, how="inner")
            else:
                joined = sc.join(lake.read(FEATURES, [day]).select(spec.id, spec.target), on=spec.id, how="inner")
            if joined.is_empty():
                continue
            for version, part in joined.group_by("model_version"):
                version = int(version[0])
                y = part[spec.target].to_numpy()
                metrics = task_metrics(spec.task, y, part[value].to_numpy())
                lkg_primary = None
                if lkg_model is not None and lkg != version:
                    # one frame: the same labelled rows, features and label side by side
                    rows_lkg = lake.read(FEATURES, [day]).drop(spec.target, strict=False).join(
                        part.select(spec.id, spec.target), on=spec.id, how="inner")
                    lkg_scores = T.predict_scores(lkg_model, T.to_model_frame(rows_lkg, spec), spec.task)
                    lkg_primary = task_metrics(spec.task, rows_lkg[spec.target].to_numpy(), lkg_scores).get(metric)
                rows.append({"ds": day, "model_version": version, "mode": part["mode"][0],
                             "labelled_rows": part.height, "coverage": part.height / sc.height,
                             "primary": metrics.get(metric), "metric": metric,
                             "metrics": json.dumps({k: v for k, v in metrics.items() if k != "undefined"}),
                             "lkg_version": lkg if lkg_primary is not None else None, "lkg_primary": lkg_primary})
        if not rows:
            context.log.info("model_performance skipped: no matured labels yet")
            return
        frame = pl.DataFrame(rows, schema={"ds": pl.String, "model_version": pl.Int64, "mode": pl.String,
                                           "labelled_rows": pl.Int64, "coverage": pl.Float64, "primary": pl.Float64,
                                           "metric": pl.String, "metrics": pl.String, "lkg_version": pl.Int64,
                                           "lkg_primary": pl.Float64})
        days = sorted(set(frame["ds"].to_list()))
        version = lake.write_partitions(PERFORMANCE, frame, days, run_id=context.run.run_id)
        last = frame.filter(pl.col("ds") == days[-1]).row(0, named=True)
        yield MaterializeResult(metadata={
            f"{metric}": float(last["primary"]) if last["primary"] is not None else float("nan"),
            "coverage": float(last["coverage"]),
            "labelled_rows": int(last["labelled_rows"]),
            "model_version": int(last["model_version"]),
            **({f"lkg_{metric}": float(last["lkg_primary"])} if last["lkg_primary"] is not None else {}),
            "delta_version": version,
            "per_partition": MetadataValue.json(frame.drop("metrics").to_dicts()),
        })

    return [scores, shadow_scores, drift_report, model_performance]


def _drift_html(platform: Platform, lake: DeltaLake, registry: ModelRegistry, champion: int,
                current: pl.DataFrame, day: str):
    """Evidently data-drift HTML of D vs a sample of the champion's training rows (time travel)."""
    from mlops_assets.monitoring import drift_view
    from mlops_assets.platform import TRAINING_SET
    from mlops_assets.promotion import CUTOFF_TAG
    from mlops_assets.reports import drift_report as evidently_drift

    spec = drift_view(platform.spec)
    tags = registry.version_tags(champion)
    versions = json.loads(tags.get("lineage.delta_versions", "{}"))
    reference = lake.read(TRAINING_SET, [tags[CUTOFF_TAG]], version=versions.get(TRAINING_SET)).filter(
        pl.col("split") == "train")
    path = platform.home.reports / "drift" / f"{day}_vs_v{champion}.html"
    return evidently_drift(spec, current, reference, path, spec.drift.report_sample_rows)
