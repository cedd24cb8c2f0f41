"""Matured-label performance of scored partitions (the rows of the ``performance`` table).

For each model version that scored a day: its metrics on the rows whose label is known,
the labelled coverage, and — on exactly the same rows — the primary metric of
``last_known_good``, so the performance guard compares like with like. A multiclass model is
judged on the per-class probabilities of its score rows (``scoring.scored_values``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import polars as pl

from mlops_assets.core.metrics_catalog import primary_metric
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.tables import PERFORMANCE_SCHEMA
from mlops_assets.core.vocabulary import FEATURES, MODEL_VERSION_COLUMN, PARTITION_COLUMN, SCORES
from mlops_assets.model.evaluation import task_metrics
from mlops_assets.monitoring.estimation.methods import BINARY_THRESHOLD
from mlops_assets.scoring.rows import scored_values


def day_performance(
    day: str,
    scores: pl.DataFrame,
    truth: pl.DataFrame,
    features: pl.DataFrame,
    spec: DatasetSpec,
    *,
    lkg_version: int | None = None,
    lkg_predict: Callable[[pl.DataFrame], np.ndarray] | None = None,
) -> list[dict]:
    """Rows for one day. ``scores``: the day's score rows; ``truth``: (id, target) of every known
    label; ``features``: the day's features (re-scored by ``lkg_predict`` for the comparison)."""
    metric = primary_metric(spec)
    joined = scores.join(truth.select(spec.id, spec.target), on=spec.id, how="inner")
    rows = []
    for (version,), part in joined.group_by(MODEL_VERSION_COLUMN, maintain_order=True):
        version = int(version)
        metrics = task_metrics(spec.task, part[spec.target].to_numpy(), scored_values(part, spec))
        if spec.task == "classification":
            metrics.update(
                confusion_metrics(part[spec.target].to_numpy(), scored_values(part, spec))
            )
        lkg_primary = None
        if lkg_predict is not None and lkg_version != version:
            # one frame: the same labelled rows, features and label side by side
            same_rows = features.drop(spec.target, strict=False).join(
                part.select(spec.id, spec.target), on=spec.id, how="inner"
            )
            lkg_primary = task_metrics(
                spec.task, same_rows[spec.target].to_numpy(), lkg_predict(same_rows)
            ).get(metric)
        rows.append(
            {
                PARTITION_COLUMN: day,
                MODEL_VERSION_COLUMN: version,
                "mode": part["mode"][0],
                "labelled_rows": part.height,
                "coverage": part.height / scores.height,
                "primary": metrics.get(metric),
                "metric": metric,
                "metrics": json.dumps({k: v for k, v in metrics.items() if k != "undefined"}),
                "lkg_version": lkg_version if lkg_primary is not None else None,
                "lkg_primary": lkg_primary,
            }
        )
    return rows


def performance_rows(
    read: Callable[[str, list[str]], pl.DataFrame],
    days: list[str],
    truth: pl.DataFrame | None,
    spec: DatasetSpec,
    *,
    lkg_version: int | None = None,
    lkg_predict: Callable[[pl.DataFrame], np.ndarray] | None = None,
) -> list[dict]:
    """``day_performance`` of every scored day of ``days`` (an unscored day has no row).
    ``read(table, days)``: the rows of ``scores`` or ``features``; ``truth``: every known label,
    or None when the day's features carry the target."""
    rows = []
    for day in days:
        scores = read(SCORES, [day])
        if not scores.is_empty():
            features = read(FEATURES, [day])
            rows += day_performance(
                day,
                scores,
                features if truth is None else truth,
                features,
                spec,
                lkg_version=lkg_version,
                lkg_predict=lkg_predict,
            )
    return rows


def confusion_metrics(y: np.ndarray, scores: np.ndarray) -> dict:
    """Binary only: accuracy, precision, recall and f1 of the score rows' label (probability >=
    0.5), the realised side of the estimated confusion matrix (``monitoring.estimation``); {} for
    other tasks."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0 or not np.isin(np.unique(y), [0, 1]).all():
        return {}
    yt, yp = np.asarray(y).astype(np.int64), (s >= BINARY_THRESHOLD).astype(np.int64)
    tp, fp = int(((yp == 1) & (yt == 1)).sum()), int(((yp == 1) & (yt == 0)).sum())
    fn = int(((yp == 0) & (yt == 1)).sum())
    out = {"accuracy": float((yp == yt).mean())}
    for name, num, den in (
        ("precision", tp, tp + fp),
        ("recall", tp, tp + fn),
        ("f1", 2 * tp, 2 * tp + fp + fn),
    ):
        if den:
            out[name] = num / den
    return out


def performance_table(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PERFORMANCE_SCHEMA)
