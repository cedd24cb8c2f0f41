"""Model plane wiring, partitioned by training cutoff C:
training_set[C] → candidate_model[C] → evaluation_report[C] (gates = blocking checks) → champion[C].

Each asset reads its inputs, calls the rules (``model.datasets``, ``model.lineage``, ``gates``,
``promotion``) and the services (``model.services``) and attaches metadata. ``candidate_model[C]``
first marks FAILED the MLflow runs a dead attempt at C left RUNNING, and after registering tags C's
ungated earlier versions ``superseded`` (both listed in its log and metadata). The ML stack
(sklearn, mlflow, evidently) loads inside the asset bodies, never when the code location loads.
"""

import datetime as dt
import json

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
from mlops_assets.core.vocabulary import (
    CANDIDATE_MODEL,
    CHAMPION,
    EVALUATION_REPORT,
    FEATURES,
    RAW_LABELS,
    TRAINING_SET,
    Group,
    Meta,
    Status,
    VersionTag,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import check_result, follow_upstream, numeric, owned_checks, urls
from mlops_assets.model.bounds import partial_window_problem
from mlops_assets.model.datasets import AssembledTrainingSet, assemble_training_set
from mlops_assets.model.gates import gate_check_name, gate_names
from mlops_assets.model.lineage import candidate_tags
from mlops_assets.model.promotion import PromotionRefused, dagster_actor, promote_if_passed
from mlops_assets.model.services import (
    candidate_for_cutoff,
    input_versions,
    judge_candidate,
    read_training_inputs,
    read_training_set,
    record_evaluation,
    register_candidate,
    training_set_commit,
)
from mlops_assets.monitoring.estimation.bundle import monitor_artifacts


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
        group_name=Group.MODEL,
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
        built = assemble_training_set(*read_training_inputs(lake, spec, cutoff), spec, cutoff)
        if built.problem:
            raise Failure(built.problem)
        inputs = input_versions(lake, spec)
        version = lake.write_partitions(
            TRAINING_SET,
            built.frame,
            [cutoff.isoformat()],
            run_id=context.run.run_id,
            metadata={"input_versions": json.dumps(inputs)},
        )
        return MaterializeResult(metadata=training_set_metadata(built, inputs, version))

    @asset(
        name=CANDIDATE_MODEL,
        partitions_def=daily,
        deps=[training_set],
        group_name=Group.MODEL,
        kinds={"sklearn", "mlflow"},
        description=(
            "A candidate trained on training_set[C]'s train split, logged and registered in MLflow"
            " with full lineage tags and its drift reference profile."
        ),
    )
    def candidate_model(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.model.candidate import train_candidate

        cutoff, run_id = context.partition_key, context.run.run_id
        orphans = registry.fail_orphan_runs(
            cutoff, is_live=attempt_is_live(context), by=dagster_actor(run_id)
        )
        # lineage of THIS cutoff's training set, not of the table's newest commit (another's)
        commit = training_set_commit(lake, cutoff)
        trained = train_candidate(
            read_training_set(lake, cutoff, spec, int(commit["version"])), spec
        )
        monitor, monitor_tags = monitor_artifacts(trained, spec)  # estimator + multivariate ref
        tags = candidate_tags(
            spec,
            cutoff=cutoff,
            commit=commit,
            partition_range=trained.partition_range,
            run_id=run_id,
            extra=monitor_tags,
        )
        candidate = register_candidate(
            registry, spec, trained, cutoff=cutoff, tags=tags, artifacts=monitor
        )
        context.log.info(
            f"registered {spec.model.registered_name} version {candidate.version} for cutoff"
            f" {cutoff}"
        )
        superseded = registry.supersede_ungated(cutoff, candidate.version)
        return MaterializeResult(
            metadata={
                **candidate_metadata(candidate, trained, tags, registry),
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
        group_name=Group.MODEL,
        kinds={"sklearn", "evidently"},
        description=(
            "Candidate and current champion on the same time holdout: metrics, slices, calibration,"
            " integrity, an Evidently report. Its checks are the promotion gates (blocking)."
        ),
    )
    def evaluation_report(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        from mlops_assets.monitoring.reports import evaluation_report_html

        cutoff, run_id = context.partition_key, context.run.run_id
        version = candidate_for_cutoff(registry, cutoff)["version"]
        result, integrity, champion_version = judge_candidate(lake, registry, spec, cutoff, version)
        report = evaluation_report_html(
            spec,
            *evaluation_frames(result),
            platform.home.reports / "evaluation" / f"{cutoff}_v{version}.html",
            spec.drift.report_sample_rows,
        )
        verdict = record_evaluation(
            lake,
            registry,
            result.gates,
            cutoff=cutoff,
            version=version,
            champion_version=champion_version,
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
        group_name=Group.MODEL,
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


def training_set_metadata(
    built: AssembledTrainingSet, inputs: dict[str, int], version: int
) -> dict:
    first, last = built.window
    return {
        **built.summary,
        "feature_window": f"{first}..{last}",
        "missing_feature_partitions": MetadataValue.json(built.missing),
        "input_delta_versions": MetadataValue.json(inputs),
        Meta.DELTA_VERSION: version,
    }


def candidate_metadata(candidate, trained, tags: dict[str, str], registry: ModelRegistry) -> dict:
    return {
        Meta.MODEL_VERSION: candidate.version,
        "mlflow_run_id": candidate.run_id,
        "model_uri": candidate.model_uri,
        "model_sha256": candidate.artifact_sha256,
        "train_rows": trained.train.height,
        **urls(version_links(registry, candidate.version)),
        **numeric(trained.train_metrics, "train_"),
        "lineage": MetadataValue.json(tags),
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
    (``candidate_<m>``, ``champion_<m>``, ``delta_<m>`` = candidate - champion; NaN without a
    champion), so the UI plots the pair over the cutoffs."""
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
