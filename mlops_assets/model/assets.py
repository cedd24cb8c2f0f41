"""Model plane wiring, partitioned by training cutoff C:
training_set[C] → candidate_model[C] → evaluation_report[C] (gates = blocking checks) → champion[C].

Each asset reads its inputs, calls the rules (``ml.datasets``, ``ml.candidate``, ``gates``,
``promotion``) and attaches metadata. ``candidate_model[C]`` first marks FAILED the MLflow runs a
dead attempt at C left RUNNING, and after registering tags C's ungated earlier versions
``superseded`` (both listed in its log and metadata). The ML stack (sklearn, mlflow, evidently)
loads
inside the asset bodies, never when the code location loads.
"""

import datetime as dt
import json

import polars as pl
from dagster import (
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from mlops_assets.control.instance_queries import run_progress
from mlops_assets.control.registry import ModelRegistry
from mlops_assets.control.registry.links import log_report, version_links
from mlops_assets.core.platform import Platform
from mlops_assets.core.redaction import redact
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    CANDIDATE_MODEL,
    CHAMPION,
    EVALUATION_REPORT,
    EVALUATIONS,
    FEATURES,
    PARTITION_COLUMN,
    RAW_LABELS,
    TRAINING_SET,
    Alias,
    Artifact,
    Status,
    VersionTag,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import check_result, follow_upstream, numeric, owned_checks, urls
from mlops_assets.model.bounds import partial_window_problem
from mlops_assets.model.datasets import (
    build_training_set,
    expected_days,
    feature_window,
    in_row_order,
    split_rows,
    training_set_summary,
)
from mlops_assets.model.estimators import ESTIMATORS
from mlops_assets.model.gates import GateVerdict, evaluation_rows, gate_check_name, gate_names
from mlops_assets.model.lineage import lineage_tags
from mlops_assets.model.promotion import (
    PromotionRefused,
    dagster_actor,
    now,
    promote_if_passed,
    record_gate_verdict,
)
from mlops_assets.monitoring.estimation.bundle import monitor_artifacts


def candidate_for_cutoff(registry: ModelRegistry, cutoff: str) -> dict:
    versions = [v for v in registry.list_versions() if v["tags"].get(VersionTag.CUTOFF) == cutoff]
    if not versions:
        raise Failure(
            f"no candidate version registered for cutoff {cutoff}: materialise"
            f" candidate_model[{cutoff}] first"
        )
    return versions[-1]


def read_training_set(
    lake: DeltaLake, cutoff: str, spec: DatasetSpec, version: int | None = None
) -> pl.DataFrame:
    frame = lake.read(TRAINING_SET, [cutoff], version=version)
    if frame.is_empty():
        raise Failure(f"training_set[{cutoff}] is empty or missing")
    return in_row_order(frame, spec)


def training_set_commit(lake: DeltaLake, cutoff: str) -> dict:
    """The Delta commit that last wrote training_set[cutoff] (its version and input versions)."""
    commit = next((h for h in lake.history(TRAINING_SET) if h.get("partitions") == cutoff), None)
    if commit is None:
        raise Failure(
            f"training_set[{cutoff}] has no commit in the table's log (never written, or written"
            " before the log retention, maintenance.log_retention_days): materialise it first"
        )
    return commit


def input_versions(lake: DeltaLake, spec: DatasetSpec) -> dict[str, int]:
    """The Delta versions a training set is built from (recorded in its commit, then in lineage)."""
    tables = [FEATURES] + ([RAW_LABELS] if spec.labels else [])
    return {t: lake.version(t) for t in tables}


def attempt_is_live(context: AssetExecutionContext):
    """``dagster_run_id -> bool``: another Dagster run still in progress and not stuck
    (``instance_queries.run_progress``: a worker killed with -9 on this host is stuck). This run's
    own earlier attempts, a finished run and an unknown run are all dead."""
    in_progress = {p.run_id for p in run_progress(context.instance) if p.stuck is None}
    return lambda run_id: run_id != context.run.run_id and run_id in in_progress


def report_attempts(
    context: AssetExecutionContext, cutoff: str, orphans: list, superseded: list[int]
) -> dict:
    if orphans:
        context.log.warning(
            f"candidate_model[{cutoff}]: marked FAILED the MLflow runs of dead attempts: {orphans}"
        )
    if superseded:
        context.log.warning(
            f"candidate_model[{cutoff}]: versions {superseded} were registered but never gated; "
            f"tagged {VersionTag.STATUS}={Status.SUPERSEDED}"
        )
    return {
        "failed_orphan_runs": MetadataValue.json(orphans),
        "superseded_versions": MetadataValue.json(superseded),
    }


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
        description=(
            f"Point-in-time training set for cutoff C: features of the {spec.training.window_days}"
            " days before C joined with labels that arrived before C; time holdout of the last"
            " matured days."
        ),
    )
    def training_set(context: AssetExecutionContext, lake: DeltaLake):
        cutoff = dt.date.fromisoformat(context.partition_key)
        if problem := partial_window_problem(spec, cutoff):
            raise Failure(problem)
        first, last = feature_window(spec, cutoff)
        features = (
            lake.scan(FEATURES)
            .filter(
                pl.col(PARTITION_COLUMN).is_between(
                    pl.lit(first.isoformat()), pl.lit(last.isoformat())
                )
            )
            .collect()
        )
        missing = sorted(
            set(expected_days(first, last)) - set(features[PARTITION_COLUMN].unique().to_list())
        )
        labels = (
            lake.scan(RAW_LABELS).filter(pl.col(PARTITION_COLUMN) < cutoff.isoformat()).collect()
            if spec.labels
            else None
        )
        ts = build_training_set(features, labels, spec, cutoff)
        summary = training_set_summary(ts, spec)
        if summary.get("train_rows", 0) == 0 or summary.get("holdout_rows", 0) == 0:
            raise Failure(
                f"training_set[{cutoff}] has no train or no holdout rows ({summary}); "
                f"missing feature partitions: {missing[:10]}"
            )
        inputs = input_versions(lake, spec)
        version = lake.write_partitions(
            TRAINING_SET,
            ts,
            [cutoff.isoformat()],
            run_id=context.run.run_id,
            metadata={"input_versions": json.dumps(inputs)},
        )
        return MaterializeResult(
            metadata={
                **summary,
                "feature_window": f"{first}..{last}",
                "missing_feature_partitions": MetadataValue.json(missing),
                "input_delta_versions": MetadataValue.json(inputs),
                "delta_version": version,
            }
        )

    @asset(
        name=CANDIDATE_MODEL,
        partitions_def=daily,
        deps=[training_set],
        group_name="model",
        kinds={"sklearn", "mlflow"},
        description=(
            "A candidate trained on training_set[C]'s train split, logged and registered in MLflow"
            " with full lineage tags and its drift reference profile."
        ),
    )
    def candidate_model(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.model.candidate import scorer, train_candidate
        from mlops_assets.model.evaluation import loggable_metrics

        cutoff = context.partition_key
        orphans = registry.fail_orphan_runs(
            cutoff, is_live=attempt_is_live(context), by=dagster_actor(context.run.run_id)
        )
        # Lineage of THIS cutoff's training set, not of the table's newest commit (another
        # cutoff's).
        commit = training_set_commit(lake, cutoff)
        trained = train_candidate(
            read_training_set(lake, cutoff, spec, int(commit["version"])), spec
        )
        monitor, monitor_tags = monitor_artifacts(
            trained, spec
        )  # estimator + multivariate reference (skops)
        tags = {
            **lineage_tags(
                spec,
                delta_versions={
                    **json.loads(commit.get("input_versions", "{}")),
                    TRAINING_SET: int(commit["version"]),
                },
                partition_range=trained.partition_range,
                run_id=context.run.run_id,
                seed=spec.training.seed,
            ),
            VersionTag.CUTOFF: cutoff,
            VersionTag.STATUS: Status.CANDIDATE,
            **monitor_tags,
        }
        candidate = registry.log_candidate(
            spec,
            trained.pipeline,
            input_example=trained.X_train.head(5),
            tags=tags,
            params=candidate_params(spec, cutoff, trained.train.height, trained.holdout.height),
            metrics=loggable_metrics(trained.train_metrics, prefix="train_"),
            extra_artifacts={
                Artifact.REFERENCE_PROFILE: trained.profile,
                Artifact.HOLDOUT_SCORES: trained.holdout_record(spec.id),
                **monitor,
            },
            score=scorer(spec),
            trusted_types=ESTIMATORS[spec.model.estimator].trusted_types,
        )
        context.log.info(
            f"registered {spec.model.registered_name} version {candidate.version} for cutoff"
            f" {cutoff}"
        )
        superseded = registry.supersede_ungated(cutoff, candidate.version)
        return MaterializeResult(
            metadata={
                "model_version": candidate.version,
                "mlflow_run_id": candidate.run_id,
                "model_uri": candidate.model_uri,
                "model_sha256": candidate.artifact_sha256,
                "train_rows": trained.train.height,
                **urls(version_links(registry, candidate.version)),
                **numeric(trained.train_metrics, "train_"),
                "lineage": MetadataValue.json(tags),
                **report_attempts(context, cutoff, orphans, superseded),
            }
        )

    check_specs = owned_checks(
        [
            AssetCheckSpec(
                gate_check_name(g),
                asset=EVALUATION_REPORT,
                blocking=True,
                partitions_def=daily,
                description=f"Promotion gate {g}",
            )
            for g in gate_names(spec)
        ],
        spec.owners,
    )

    @asset(
        name=EVALUATION_REPORT,
        partitions_def=daily,
        deps=[candidate_model, training_set],
        check_specs=check_specs,
        group_name="model",
        kinds={"sklearn", "evidently"},
        description=(
            "Candidate and current champion on the same time holdout: metrics, slices, calibration,"
            " integrity, an Evidently report. Its checks are the promotion gates (blocking)."
        ),
    )
    def evaluation_report(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.model.candidate import (
            evaluate_candidate,
            recorded_scores_for,
            scorer,
        )
        from mlops_assets.model.training import to_model_frame
        from mlops_assets.monitoring.reports import evaluation_report as evidently_report

        cutoff, run_id = context.partition_key, context.run.run_id
        version = candidate_for_cutoff(registry, cutoff)["version"]
        train, holdout = split_rows(read_training_set(lake, cutoff, spec), spec)
        recorded = recorded_scores_for(
            registry.load_artifact_json(version, Artifact.HOLDOUT_SCORES), holdout, spec.id
        )
        integrity = registry.verify_integrity(
            version, to_model_frame(holdout, spec), recorded, score=scorer(spec)
        )
        champion_version = registry.get_alias(Alias.CHAMPION)
        result = evaluate_candidate(
            holdout,
            spec,
            train=train,
            recorded=recorded,
            integrity=integrity,
            candidate=registry.load_model(version) if integrity["loads"] else None,
            champion=(
                registry.load_model(champion_version)
                if champion_version is not None and champion_version != version
                else None
            ),
        )
        report = evidently_report(
            spec,
            *evaluation_frames(result),
            platform.home.reports / "evaluation" / f"{cutoff}_v{version}.html",
            spec.drift.report_sample_rows,
        )
        lake.append(
            EVALUATIONS,
            evaluation_rows(
                result.gates,
                cutoff=cutoff,
                version=version,
                run_id=run_id,
                champion_version=champion_version,
                evaluated_at=now(),
            ),
            run_id=run_id,
        )
        verdict = GateVerdict(result.gates)
        record_gate_verdict(
            lake,
            registry,
            version,
            verdict,
            champion_version=champion_version,
            actor=dagster_actor(run_id),
            run_id=run_id,
        )
        if not verdict.passed:
            context.log.warning(f"version {version} rejected: {verdict.reasons}")
        links = {
            **version_links(registry, version),
            **version_links(registry, champion_version, prefix="champion_"),
            "evidently_report_mlflow": log_report(registry, version, report, "evaluation"),
        }
        return MaterializeResult(
            metadata={
                **evaluation_metadata(result, version, champion_version, integrity, report),
                **urls(links),
            },
            check_results=gate_check_results(result.gates, version),
        )

    @asset(
        name=CHAMPION,
        partitions_def=daily,
        deps=[evaluation_report],
        automation_condition=follow_upstream(),
        group_name="model",
        kinds={"mlflow"},
        description=(
            "The promotion step: moves the MLflow alias `champion` to C's candidate (previous"
            " champion → `last_known_good`) only when every blocking gate passed; audited."
        ),
    )
    def champion(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        cutoff = context.partition_key
        version = candidate_for_cutoff(registry, cutoff)["version"]
        try:
            outcome = promote_if_passed(
                lake,
                registry,
                version,
                require_approval=spec.model.require_approval,
                actor=dagster_actor(context.run.run_id),
                run_id=context.run.run_id,
                shadow_days=spec.gates.shadow_days,
            )
        except PromotionRefused as err:
            raise Failure(redact(str(err), registry.secrets())) from None
        context.log.info(f"champion[{cutoff}]: {outcome}")
        links = {
            **version_links(registry, version, prefix="candidate_"),
            **version_links(registry, outcome.get("champion"), prefix="champion_"),
        }
        return MaterializeResult(
            metadata={
                **{
                    k: v if isinstance(v, str) else (-1 if v is None else v)
                    for k, v in outcome.items()
                },
                **urls(links),
            }
        )

    return [training_set, candidate_model, evaluation_report, champion]


def candidate_params(spec: DatasetSpec, cutoff: str, train_rows: int, holdout_rows: int) -> dict:
    return {
        "estimator": spec.model.estimator,
        **spec.model.params,
        "cutoff": cutoff,
        "train_rows": train_rows,
        "holdout_rows": holdout_rows,
        "seed": spec.training.seed,
    }


def evaluation_frames(result):
    """(current, reference) frames of the Evidently evaluation report: candidate vs champion."""
    from mlops_assets.monitoring.reports import PREDICTION, TARGET

    def frame(scores):
        # multiclass: the predicted class code (a row of probabilities has no one column)
        prediction = scores.argmax(axis=1) if getattr(scores, "ndim", 1) == 2 else scores
        return result.X.assign(**{TARGET: result.y, PREDICTION: prediction})

    return frame(result.candidate_scores), (
        frame(result.champion_scores) if result.champion_scores is not None else None
    )


def evaluation_metadata(
    result, version: int, champion_version: int | None, integrity: dict, report
) -> dict:
    from mlops_assets.model.evaluation import comparison_markdown

    slices = [
        {k: s[k] for k in ("column", "value", "rows", "enough_rows")}
        | {"metrics": {m: v for m, v in s["metrics"].items() if m != "undefined"}}
        for s in result.slices
    ]
    return {
        "candidate_version": version,
        "champion_version": champion_version if champion_version is not None else -1,
        "holdout_rows": len(result.y),
        **side_by_side(
            numeric(result.candidate_metrics, ""), numeric(result.champion_metrics or {}, "")
        ),
        **numeric(result.baseline_metrics, "baseline_"),
        **{f"candidate_{k}": v for k, v in result.clip.items()},
        "holdout_evidence": MetadataValue.json(result.evidence),
        "feature_skill": MetadataValue.json(result.leakage or {}),
        "comparison": MetadataValue.md(
            comparison_markdown(result.candidate_metrics, result.champion_metrics)
        ),
        "slices": MetadataValue.json(slices),
        "gates": MetadataValue.json([g.to_dict() for g in result.gates]),
        "integrity": MetadataValue.json(dict(integrity)),
        "evidently_report": MetadataValue.path(str(report)),
    }


def side_by_side(candidate: dict[str, float], champion: dict[str, float]) -> dict[str, float]:
    """Holdout metrics of candidate and champion under the same names every evaluation
    (``candidate_<m>``,
    ``champion_<m>``, ``delta_<m>`` = candidate - champion; NaN without a champion), so the UI
    plots the
    pair over the cutoffs."""
    nan, out = float("nan"), {}
    for metric, value in candidate.items():
        theirs = champion.get(metric, nan)
        out |= {
            f"candidate_{metric}": value,
            f"champion_{metric}": theirs,
            f"delta_{metric}": value - theirs,
        }
    return out


def gate_check_results(gates, version: int) -> list:
    nan = float("nan")
    return [
        check_result(
            gate_check_name(g.name),
            g.passed,
            g.message,
            blocking=True,
            metadata={
                "value": g.value if g.value is not None else nan,
                "threshold": g.threshold if g.threshold is not None else nan,
                "candidate_version": version,
            },
        )
        for g in gates
    ]
