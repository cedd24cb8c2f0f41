"""Model plane assets, partitioned by training cutoff C:
training_set[C] → candidate_model[C] → evaluation_report[C] (gates = blocking checks) → champion[C].

Each asset is thin: pure logic lives in ``ml.datasets``, ``ml.training``,
``ml.evaluation``, ``registry``, ``promotion`` and ``reports``; heavy imports
(sklearn, mlflow, evidently) happen inside the asset bodies, never at load.
"""

import datetime as dt
import json
import re

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from mlops_assets.defs.data import follow_upstream
from mlops_assets.lake import DeltaLake
from mlops_assets.platform import (
    CANDIDATE_MODEL,
    CHAMPION,
    EVALUATION_REPORT,
    EVALUATIONS,
    FEATURES,
    RAW_LABELS,
    TRAINING_SET,
    Platform,
)
from mlops_assets.registry import ModelRegistry

HOLDOUT_SCORES = "holdout_scores.json"
REFERENCE_PROFILE = "reference_profile.json"


def gate_check_name(gate: str) -> str:
    """``floor:roc_auc`` → ``gate_floor_roc_auc`` (Dagster check names are identifiers)."""
    return "gate_" + re.sub(r"[^A-Za-z0-9_]", "_", gate)


def _numeric(metrics: dict, prefix: str) -> dict:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float) and v == v}


def candidate_for_cutoff(registry: ModelRegistry, cutoff: str) -> dict:
    from mlops_assets.promotion import CUTOFF_TAG

    versions = [v for v in registry.list_versions() if v["tags"].get(CUTOFF_TAG) == cutoff]
    if not versions:
        raise Failure(f"no candidate version registered for cutoff {cutoff}: materialise candidate_model[{cutoff}] first")
    return versions[-1]


def read_training_set(lake: DeltaLake, cutoff: str, id_col: str, version: int | None = None) -> pl.DataFrame:
    frame = lake.read(TRAINING_SET, [cutoff], version=version)
    if frame.is_empty():
        raise Failure(f"training_set[{cutoff}] is empty or missing")
    # A total order (the one reproduce uses): the fit must not depend on an unstable sort's ties.
    return frame.sort("event_ds", id_col)


def training_set_commit(lake: DeltaLake, cutoff: str) -> dict:
    """The Delta commit that last wrote training_set[cutoff] (its version and input versions)."""
    commit = next((h for h in lake.history(TRAINING_SET) if h.get("partitions") == cutoff), None)
    if commit is None:
        raise Failure(f"training_set[{cutoff}] was never written: materialise it first")
    return commit


def build_model_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily
    window = TimeWindowPartitionMapping(start_offset=-spec.training.window_days, end_offset=-1)
    deps = [AssetDep(FEATURES, partition_mapping=window)]
    if spec.labels is not None:
        deps.append(AssetDep(RAW_LABELS, partition_mapping=window))

    @asset(
        name=TRAINING_SET,
        partitions_def=daily,
        deps=deps,
        group_name="model",
        kinds={"polars", "delta"},
        description=f"Point-in-time training set for cutoff C: features of the {spec.training.window_days} days "
        "before C joined with labels that arrived before C; time holdout of the last matured days.",
    )
    def training_set(context: AssetExecutionContext, lake: DeltaLake):
        from mlops_assets.ml.datasets import build_training_set, feature_window, training_set_summary

        cutoff = dt.date.fromisoformat(context.partition_key)
        first, last = feature_window(spec, cutoff)
        features = lake.scan(FEATURES).filter(pl.col("ds").is_between(pl.lit(first.isoformat()), pl.lit(last.isoformat()))).collect()
        present = set(features["ds"].unique().to_list())
        expected = {(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)}
        labels = lake.scan(RAW_LABELS).filter(pl.col("ds") < cutoff.isoformat()).collect() if spec.labels else None
        ts = build_training_set(features, labels, spec, cutoff)
        summary = training_set_summary(ts, spec)
        if summary.get("train_rows", 0) == 0 or summary.get("holdout_rows", 0) == 0:
            raise Failure(f"training_set[{cutoff}] has no train or no holdout rows ({summary}); "
                          f"missing feature partitions: {sorted(expected - present)[:10]}")
        inputs = {FEATURES: lake.version(FEATURES)}
        if spec.labels:
            inputs[RAW_LABELS] = lake.version(RAW_LABELS)
        version = lake.write_partitions(TRAINING_SET, ts, [cutoff.isoformat()], run_id=context.run.run_id,
                                        metadata={"input_versions": json.dumps(inputs)})
        return MaterializeResult(metadata={
            **summary,
            "feature_window": f"{first}..{last}",
            "missing_feature_partitions": MetadataValue.json(sorted(expected - present)),
            "input_delta_versions": MetadataValue.json(inputs),
            "delta_version": version,
        })

    @asset(
        name=CANDIDATE_MODEL,
        partitions_def=daily,
        deps=[training_set],
        group_name="model",
        kinds={"sklearn", "mlflow"},
        description="A candidate trained on training_set[C]'s train split, logged and registered in MLflow with "
        "full lineage tags and its drift reference profile.",
    )
    def candidate_model(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.lineage import lineage_tags
        from mlops_assets.ml import training as T
        from mlops_assets.ml.evaluation import loggable_metrics, task_metrics
        from mlops_assets.promotion import CUTOFF_TAG, STATUS_TAG

        cutoff = context.partition_key
        # Lineage of THIS cutoff's training set, not of the table's newest commit (another cutoff's).
        commit = training_set_commit(lake, cutoff)
        ts_version = int(commit["version"])
        ts = read_training_set(lake, cutoff, spec.id, ts_version)
        train, holdout = ts.filter(pl.col("split") == "train"), ts.filter(pl.col("split") == "holdout")
        X_train = T.to_model_frame(train, spec)
        pipeline = T.fit(spec, X_train, train[spec.target].to_numpy())
        train_scores = T.predict_scores(pipeline, X_train, spec.task)
        holdout_scores = T.predict_scores(pipeline, T.to_model_frame(holdout, spec), spec.task)
        train_metrics = task_metrics(spec.task, train[spec.target].to_numpy(), train_scores)
        profile = T.reference_profile(train, spec, prediction=train_scores)
        input_versions = json.loads(commit.get("input_versions", "{}"))
        tags = lineage_tags(
            spec,
            delta_versions={**input_versions, TRAINING_SET: ts_version},
            partition_range=(train["event_ds"].min(), holdout["event_ds"].max()),
            run_id=context.run.run_id,
            seed=spec.training.seed,
        )
        tags.update({CUTOFF_TAG: cutoff, STATUS_TAG: "candidate"})
        candidate = registry.log_candidate(
            spec,
            pipeline,
            input_example=X_train.head(5),
            params={"estimator": spec.model.estimator, **spec.model.params, "cutoff": cutoff,
                    "train_rows": train.height, "holdout_rows": holdout.height, "seed": spec.training.seed},
            metrics=loggable_metrics(train_metrics, prefix="train_"),
            tags=tags,
            extra_artifacts={
                REFERENCE_PROFILE: profile,
                HOLDOUT_SCORES: {"ids": holdout[spec.id].to_list(), "scores": holdout_scores.tolist()},
            },
        )
        context.log.info(f"registered {spec.model.registered_name} version {candidate.version} for cutoff {cutoff}")
        return MaterializeResult(metadata={
            "model_version": candidate.version,
            "mlflow_run_id": candidate.run_id,
            "model_uri": candidate.model_uri,
            "model_sha256": candidate.artifact_sha256,
            "train_rows": train.height,
            **_numeric(train_metrics, "train_"),
            "lineage": MetadataValue.json(tags),
        })

    check_specs = [AssetCheckSpec(gate_check_name(g), asset=EVALUATION_REPORT, blocking=True, partitions_def=daily,
                                  description=f"Promotion gate {g}") for g in spec.gate_names]

    @asset(
        name=EVALUATION_REPORT,
        partitions_def=daily,
        deps=[candidate_model, training_set],
        check_specs=check_specs,
        group_name="model",
        kinds={"sklearn", "evidently"},
        description="Candidate and current champion on the same time holdout: metrics, slices, calibration, "
        "integrity, an Evidently report. Its checks are the promotion gates (blocking).",
    )
    def evaluation_report(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.ml import training as T
        from mlops_assets.ml.evaluation import comparison_markdown, evaluate_gates, slice_metrics, task_metrics
        from mlops_assets.promotion import GATES_TAG, REASONS_TAG, STATUS_TAG, append_audit, now
        from mlops_assets.registry import CHAMPION as CHAMPION_ALIAS
        from mlops_assets.reports import PREDICTION, TARGET, evaluation_report as evidently_report

        cutoff = context.partition_key
        cand = candidate_for_cutoff(registry, cutoff)
        version = cand["version"]
        holdout = read_training_set(lake, cutoff, spec.id).filter(pl.col("split") == "holdout").sort(spec.id)
        X = T.to_model_frame(holdout, spec)
        y = holdout[spec.target].to_numpy()
        recorded = registry.load_artifact_json(version, HOLDOUT_SCORES)
        expected = (pl.DataFrame({spec.id: recorded["ids"], "s": recorded["scores"]})
                    .join(holdout.select(spec.id), on=spec.id, how="right", maintain_order="right")["s"].to_numpy())
        integrity = registry.verify_integrity(version, X, expected)
        if integrity["loads"]:
            candidate_scores = T.predict_scores(registry.load_model(version, verify=False), X, spec.task)
        else:
            candidate_scores = expected
        cand_metrics = task_metrics(spec.task, y, candidate_scores)
        champion_version = registry.get_alias(CHAMPION_ALIAS)
        champion_metrics = champion_scores = None
        if champion_version is not None and champion_version != version:
            champion_scores = T.predict_scores(registry.load_model(champion_version), X, spec.task)
            champion_metrics = task_metrics(spec.task, y, champion_scores)
        slices = slice_metrics(spec.task, holdout, y, candidate_scores, spec.categorical_features, spec.gates.min_slice_rows)
        gates = evaluate_gates(spec, cand_metrics, champion_metrics, slices, integrity)

        frame = X.assign(**{TARGET: y, PREDICTION: candidate_scores})
        ref = X.assign(**{TARGET: y, PREDICTION: champion_scores}) if champion_scores is not None else None
        report = evidently_report(spec, frame, ref, platform.home.reports / "evaluation" / f"{cutoff}_v{version}.html",
                                  spec.drift.report_sample_rows)

        evaluated_at = now()
        rows = pl.DataFrame([{"ds": cutoff, "version": version, "gate": g.name, "passed": g.passed,
                              "value": None if g.value is None else float(g.value),
                              "threshold": None if g.threshold is None else float(g.threshold),
                              "message": g.message, "champion_version": champion_version,
                              "evaluated_at": evaluated_at, "run_id": context.run.run_id} for g in gates],
                            schema_overrides={"value": pl.Float64, "threshold": pl.Float64, "champion_version": pl.Int64})
        lake.append(EVALUATIONS, rows, run_id=context.run.run_id)
        failed = [g for g in gates if not g.passed]
        if failed:
            reasons = "; ".join(g.message for g in failed)
            registry.set_version_tags(version, {STATUS_TAG: "rejected", GATES_TAG: "failed", REASONS_TAG: reasons[:4000]})
            append_audit(lake, actor=f"dagster:{context.run.run_id[:8]}", action="reject", alias=None,
                         from_version=champion_version, to_version=version, reason=reasons,
                         gate_results=json.dumps([g.to_dict() for g in gates], default=str), run_id=context.run.run_id)
            context.log.warning(f"version {version} rejected: {reasons}")
        else:
            registry.set_version_tags(version, {GATES_TAG: "passed"})
        return MaterializeResult(
            metadata={
                "candidate_version": version,
                "champion_version": champion_version if champion_version is not None else -1,
                "holdout_rows": holdout.height,
                **_numeric(cand_metrics, "candidate_"),
                **(_numeric(champion_metrics, "champion_") if champion_metrics else {}),
                "comparison": MetadataValue.md(comparison_markdown(cand_metrics, champion_metrics)),
                "slices": MetadataValue.json([{k: s[k] for k in ("column", "value", "rows", "enough_rows")}
                                              | {"metrics": {m: v for m, v in s["metrics"].items() if m != "undefined"}}
                                              for s in slices]),
                "gates": MetadataValue.json([g.to_dict() for g in gates]),
                "integrity": MetadataValue.json({k: v for k, v in integrity.items()}),
                "evidently_report": MetadataValue.path(str(report)),
            },
            check_results=[
                AssetCheckResult(check_name=gate_check_name(g.name), passed=g.passed, severity=AssetCheckSeverity.ERROR,
                                 description=g.message,
                                 metadata={"value": g.value if g.value is not None else float("nan"),
                                           "threshold": g.threshold if g.threshold is not None else float("nan"),
                                           "candidate_version": version})
                for g in gates
            ],
        )

    @asset(
        name=CHAMPION,
        partitions_def=daily,
        deps=[evaluation_report],
        automation_condition=follow_upstream(),
        group_name="model",
        kinds={"mlflow"},
        description="The promotion step: moves the MLflow alias `champion` to C's candidate (previous champion → "
        "`last_known_good`) only when every blocking gate passed; audited.",
    )
    def champion(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.promotion import PromotionRefused, promote_if_passed

        cutoff = context.partition_key
        version = candidate_for_cutoff(registry, cutoff)["version"]
        try:
            outcome = promote_if_passed(lake, registry, version, require_approval=spec.model.require_approval,
                                        actor=f"dagster:{context.run.run_id[:8]}", run_id=context.run.run_id,
                                        shadow_days=spec.gates.shadow_days)
        except PromotionRefused as err:
            raise Failure(str(err)) from None
        context.log.info(f"champion[{cutoff}]: {outcome}")
        return MaterializeResult(metadata={k: (v if v is not None else -1) if not isinstance(v, str) else v
                                           for k, v in outcome.items()})

    return [training_set, candidate_model, evaluation_report, champion]

