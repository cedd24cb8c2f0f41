"""The estimation plane's work over the lake and the registry, without Dagster: each version's
monitoring bundle (verified), the estimates and the multivariate verdict of one day, and the
reconciliation of the estimates with the realised metric when a day's labels mature.

``reconcile_estimates`` is the one call ``model_performance`` makes: the estimates of the days it
judges beside the realised metric (``estimation_reconciliation`` table and two ``performance``
columns).
"""

from __future__ import annotations

import polars as pl

from mlops_assets.control.registry import ModelRegistry
from mlops_assets.control.registry.integrity import load_artifact_skops
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    ESTIMATED_PERFORMANCE,
    ESTIMATION_RECONCILIATION,
    FEATURES,
    MODEL_VERSION_COLUMN,
    PARTITION_COLUMN,
    SCORES,
    Artifact,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.monitoring.drift.multivariate import judge
from mlops_assets.monitoring.estimation.bundle import Bundles
from mlops_assets.monitoring.estimation.methods import METHOD_TRUSTED_TYPES, estimate
from mlops_assets.monitoring.estimation.rules import (
    estimate_rows,
    estimates_beside_realised,
    with_estimates,
)
from mlops_assets.scoring.rows import scored_values


def registry_bundles(registry: ModelRegistry) -> Bundles:
    """The run's bundle cache over ``registry``'s verified skops path."""
    return Bundles(
        lambda version: load_artifact_skops(
            registry, version, Artifact.MONITOR_MODELS, METHOD_TRUSTED_TYPES
        )
    )


def estimate_day(lake: DeltaLake, spec: DatasetSpec, bundles: Bundles, day: str) -> list[dict]:
    """Estimate rows of ``day`` for every model version (with an estimation method) that scored
    it."""
    scores = lake.read(SCORES, [day])
    if scores.height < spec.estimation.min_rows:
        return []
    out = []
    for (version,), part in scores.group_by(MODEL_VERSION_COLUMN, maintain_order=True):
        # -1: the constant baseline, which has no bundle
        bundle = bundles.get(int(version)) if int(version) >= 0 else None
        if bundle is None:
            continue
        method = bundle["estimator"]
        X = model_frame(lake, spec, day, part) if method["kind"] == "dle" else None
        out += estimate_rows(
            day,
            int(version),
            estimate(method, scored_values(part, spec), X),
            part.height,
            method["kind"],
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
    """The multivariate verdict of ``day`` against ``reference`` (rows 0: nothing to judge)."""
    feats = lake.read(FEATURES, [day])
    if feats.is_empty():
        return {PARTITION_COLUMN: day, "champion_version": champion, "rows": 0}
    return {PARTITION_COLUMN: day, "champion_version": champion, **judge(feats, reference)}


def reconcile_estimates(lake: DeltaLake, performance: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """``performance`` rows with their estimate beside the realised primary metric; every estimate
    of the judged days reconciled into ``estimation_reconciliation``."""
    days = sorted(set(performance[PARTITION_COLUMN].to_list()))
    recon = estimates_beside_realised(performance, lake.read(ESTIMATED_PERFORMANCE, days))
    if not recon.is_empty():
        lake.write_partitions(
            ESTIMATION_RECONCILIATION,
            recon,
            sorted(set(recon[PARTITION_COLUMN].to_list())),
            run_id=run_id,
        )
    return with_estimates(performance, recon)
