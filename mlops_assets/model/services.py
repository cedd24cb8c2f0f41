"""The model plane's services over the lake and the registry, one per step of its assets.

``training_set[C]`` reads its window (``read_training_inputs``) and the versions it is built from;
``candidate_model[C]`` reads the set at the commit that wrote it and registers the fitted candidate
(``register_candidate``); ``evaluation_report[C]`` judges C's candidate against the champion on the
same holdout (``judge_candidate``) and records the verdict (``record_evaluation``). A missing input
is a Dagster ``Failure`` that says what to materialise. The ML stack loads inside the functions.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import polars as pl
from dagster import Failure

from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.clock import utc_now
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    EVALUATIONS,
    FEATURES,
    PARTITION_COLUMN,
    RAW_LABELS,
    TRAINING_SET,
    Alias,
    Artifact,
    VersionTag,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.model.datasets import feature_window, in_row_order, split_rows
from mlops_assets.model.estimators import ESTIMATORS
from mlops_assets.model.gates import GateResult, GateVerdict, evaluation_rows
from mlops_assets.model.promotion import dagster_actor, record_gate_verdict

if TYPE_CHECKING:
    from mlops_assets.model.candidate import Evaluation, TrainedCandidate


def candidate_for_cutoff(registry: ModelRegistry, cutoff: str) -> dict:
    """The newest version registered for ``cutoff``."""
    versions = [v for v in registry.list_versions() if v["tags"].get(VersionTag.CUTOFF) == cutoff]
    if not versions:
        raise Failure(
            f"no candidate version registered for cutoff {cutoff}: materialise"
            f" candidate_model[{cutoff}] first"
        )
    return versions[-1]


def read_training_inputs(
    lake: DeltaLake, spec: DatasetSpec, cutoff: dt.date
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(feature rows of the window, labels that arrived before ``cutoff``; None without a label
    feed): what ``training_set[cutoff]`` is built from."""
    first, last = feature_window(spec, cutoff)
    window = pl.col(PARTITION_COLUMN).is_between(
        pl.lit(first.isoformat()), pl.lit(last.isoformat())
    )
    features = lake.scan(FEATURES).filter(window).collect()
    labels = (
        lake.scan(RAW_LABELS).filter(pl.col(PARTITION_COLUMN) < cutoff.isoformat()).collect()
        if spec.labels
        else None
    )
    return features, labels


def input_versions(lake: DeltaLake, spec: DatasetSpec) -> dict[str, int]:
    """The Delta versions a training set is built from (recorded in its commit, then in lineage)."""
    tables = [FEATURES] + ([RAW_LABELS] if spec.labels else [])
    return {t: lake.version(t) for t in tables}


def read_training_set(
    lake: DeltaLake, cutoff: str, spec: DatasetSpec, version: int | None = None
) -> pl.DataFrame:
    """``training_set[cutoff]`` (at table ``version``, else the newest), in the one row order."""
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


def register_candidate(
    registry: ModelRegistry,
    spec: DatasetSpec,
    trained: TrainedCandidate,
    *,
    cutoff: str,
    tags: dict[str, str],
    artifacts: dict[str, Any],
):
    """Log ``trained`` as an MLflow run and register it, with its tags, params, train metrics, drift
    reference, recorded holdout scores and ``artifacts`` (the monitoring bundle)."""
    from mlops_assets.model.candidate import candidate_params, scorer
    from mlops_assets.model.evaluation import loggable_metrics

    return registry.log_candidate(
        spec,
        trained.pipeline,
        input_example=trained.X_train.head(5),
        tags=tags,
        params=candidate_params(spec, cutoff, trained.train.height, trained.holdout.height),
        metrics=loggable_metrics(trained.train_metrics, prefix="train_"),
        extra_artifacts={
            Artifact.REFERENCE_PROFILE: trained.profile,
            Artifact.HOLDOUT_SCORES: trained.holdout_record(spec.id),
            **artifacts,
        },
        score=scorer(spec),
        trusted_types=ESTIMATORS[spec.model.estimator].trusted_types,
    )


def judge_candidate(
    lake: DeltaLake, registry: ModelRegistry, spec: DatasetSpec, cutoff: str, version: int
) -> tuple[Evaluation, dict, int | None]:
    """(evaluation, integrity, champion version) of ``version`` on ``training_set[cutoff]``'s
    holdout: the registered model re-scores the holdout scores recorded at training (integrity),
    then candidate, champion (when another version serves) and the baseline are judged."""
    from mlops_assets.model.candidate import evaluate_candidate, recorded_scores_for, scorer
    from mlops_assets.model.training import to_model_frame

    train, holdout = split_rows(read_training_set(lake, cutoff, spec), spec)
    recorded = recorded_scores_for(
        registry.load_artifact_json(version, Artifact.HOLDOUT_SCORES), holdout, spec.id
    )
    integrity = registry.verify_integrity(
        version, to_model_frame(holdout, spec), recorded, score=scorer(spec)
    )
    champion = registry.get_alias(Alias.CHAMPION)
    result = evaluate_candidate(
        holdout,
        spec,
        train=train,
        recorded=recorded,
        integrity=integrity,
        candidate=registry.load_model(version) if integrity["loads"] else None,
        champion=(
            registry.load_model(champion) if champion is not None and champion != version else None
        ),
    )
    return result, integrity, champion


def record_evaluation(
    lake: DeltaLake,
    registry: ModelRegistry,
    gates: list[GateResult],
    *,
    cutoff: str,
    version: int,
    champion_version: int | None,
    run_id: str,
) -> GateVerdict:
    """Append the gates to the ``evaluations`` table and tag (or reject, audited) the version."""
    lake.append(
        EVALUATIONS,
        evaluation_rows(
            gates,
            cutoff=cutoff,
            version=version,
            run_id=run_id,
            champion_version=champion_version,
            evaluated_at=utc_now(),
        ),
        run_id=run_id,
    )
    verdict = GateVerdict(gates)
    record_gate_verdict(
        lake,
        registry,
        version,
        verdict,
        champion_version=champion_version,
        actor=dagster_actor(run_id),
        run_id=run_id,
    )
    return verdict
