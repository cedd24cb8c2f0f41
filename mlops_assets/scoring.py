"""Batch scoring (pure): features → score rows stamped with the model that made them.

Scoring streams the partition in fixed-size batches (``iter_slices``) so memory stays
bounded by the batch, not the partition; every row carries the model version, the
alias it was served under, the mode (``normal`` | ``degraded``) and the scoring time.

Score rows (``score_columns``):

- regression: ``prediction``;
- binary 0/1 (no ``classes``): ``probability`` (of class 1) and ``label`` (Int8, ``probability >= 0.5``);
- declared ``classes`` (any number): ``label`` is the predicted class (the spec's label, String or
  Int64) and ``probability__<class>`` the probability of each class (``<class>`` through
  ``spec.class_slug``), summing to 1 per row. ``probability`` stays the score column
  (``score_column``): with two classes the probability of the positive (second) class, as for
  0/1; with more, the probability of the predicted class (the row's largest). Drift of a
  multiclass model's predictions is judged on ``label`` (``drift_prediction_column``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.features import predicted_labels
from mlops_assets.ml.bounds import clip_predictions
from mlops_assets.spec import DatasetSpec, class_slug

NORMAL, DEGRADED = "normal", "degraded"
REGISTRY, CACHE = "registry", "cache"  # where the serving model was loaded from (Meta.MODEL_SOURCE)
BASELINE_VERSION = -1  # the model_version stamped on rows scored by the baseline fallback
LABEL = "label"  # the predicted class of a classification score row
CLASS_PROBABILITY_PREFIX = "probability__"


@dataclass(frozen=True)
class ServingModel:
    """What scores a partition: a loaded pipeline (or a constant baseline) and why.

    ``source``: ``registry`` (downloaded from MLflow and verified) or ``cache`` (the local
    verified copy, MLflow unreachable). ``refused``: the integrity refusals met on the way
    (a version whose files differ from its registration manifest), one message each."""

    model: Any
    version: int
    alias: str
    mode: str
    reason: str
    source: str = REGISTRY
    refused: tuple[str, ...] = ()


class ConstantBaseline:
    """The degrade-of-last-resort: the training prior (binary classification), the class priors
    (multiclass: one probability per class) or the mean (regression)."""

    def __init__(self, value: float | list[float]):
        self.value: float | list[float] = (float(value) if np.ndim(value) == 0
                                           else [float(v) for v in value])  # type: ignore[union-attr]

    def predict_scores(self, n: int) -> np.ndarray:
        if isinstance(self.value, list):
            return np.tile(np.asarray(self.value, dtype=np.float64), (n, 1))
        return np.full(n, self.value, dtype=np.float64)


def score_column(spec: DatasetSpec) -> str:
    """The column of a score row holding the model's output (see the module docstring)."""
    return "probability" if spec.task == "classification" else "prediction"


def drift_prediction_column(spec: DatasetSpec) -> str:
    """The score-row column whose drift is compared with the reference profile's ``prediction``:
    the predicted class for a multiclass model (a categorical profile), else ``score_column``."""
    return LABEL if spec.multiclass else score_column(spec)


def class_probability_columns(spec: DatasetSpec) -> list[str]:
    """``probability__<class>`` per declared class, in the spec's order ([] without ``classes``)."""
    return [CLASS_PROBABILITY_PREFIX + class_slug(c) for c in spec.target_classes] if spec.named_classes else []


def label_dtype(spec: DatasetSpec) -> pl.DataType:
    if not spec.named_classes:
        return pl.Int8()
    return pl.String() if isinstance(spec.target_classes[0], str) else pl.Int64()


def class_probabilities(scores: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """``(rows, classes)`` probabilities from model scores: a multiclass model's as they are, a
    binary model's positive-class probability ``p`` as ``[1 - p, p]``."""
    scores = np.asarray(scores, dtype=np.float64)
    return scores if scores.ndim == 2 else np.column_stack([1.0 - scores, scores])


def scored_values(rows: pl.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """What the metrics judge, read back from score rows: the per-class probabilities of a
    multiclass model (spec order), else the score column."""
    if spec.multiclass:
        return rows.select(class_probability_columns(spec)).to_numpy().astype(np.float64)
    return rows[score_column(spec)].to_numpy()


def _score_series(scores: np.ndarray, spec: DatasetSpec, threshold: float) -> list[pl.Series]:
    if spec.task != "classification":
        return [pl.Series("prediction", scores)]
    if not spec.named_classes:
        return [pl.Series("probability", scores), pl.Series(LABEL, (scores >= threshold).astype(np.int8))]
    probs = class_probabilities(scores, spec)
    top = probs.max(axis=1) if spec.multiclass else probs[:, 1]
    return [pl.Series("probability", top), pl.Series(LABEL, predicted_labels(scores, spec, threshold),
                                                     dtype=label_dtype(spec)),
            *(pl.Series(name, probs[:, i]) for i, name in enumerate(class_probability_columns(spec)))]


def score_columns(spec: DatasetSpec) -> dict[str, pl.DataType]:
    cols: dict[str, pl.DataType] = {"ds": pl.String(), spec.id: pl.String(), spec.timestamp: pl.Datetime("us")}
    if spec.task == "classification":
        cols.update({"probability": pl.Float64(), LABEL: label_dtype(spec)})
        cols.update({name: pl.Float64() for name in class_probability_columns(spec)})
    else:
        cols["prediction"] = pl.Float64()
    cols.update({"model_version": pl.Int64(), "alias": pl.String(), "mode": pl.String(),
                 "scored_at": pl.Datetime("us")})
    return cols


def _batches(features: pl.DataFrame | pl.LazyFrame, batch_rows: int) -> Iterator[pl.DataFrame]:
    """A LazyFrame (e.g. a Delta scan) is streamed: only one batch of features is in memory."""
    if isinstance(features, pl.LazyFrame):
        yield from features.collect_batches(chunk_size=batch_rows, maintain_order=True)
    else:
        yield from features.iter_slices(n_rows=batch_rows)


def score_frame(
    serving: ServingModel, features: pl.DataFrame | pl.LazyFrame, spec: DatasetSpec, *, batch_rows: int = 100_000,
    threshold: float = 0.5, scored_at: dt.datetime | None = None,
) -> pl.DataFrame:
    """Score ``features`` batch by batch; one output row per input row, in input order."""
    from mlops_assets.ml.training import predict_scores, to_model_frame

    scored_at = scored_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    out = []
    for batch in _batches(features, batch_rows):
        if isinstance(serving.model, ConstantBaseline):
            scores = serving.model.predict_scores(batch.height)
        else:
            scores = clip_predictions(predict_scores(serving.model, to_model_frame(batch, spec), spec.task), spec)
        out.append(batch.select("ds", spec.id, spec.timestamp).with_columns(_score_series(scores, spec, threshold)))
    frame = pl.concat(out) if out else pl.DataFrame(schema=score_columns(spec))
    return frame.with_columns(
        pl.lit(serving.version, pl.Int64).alias("model_version"),
        pl.lit(serving.alias).alias("alias"),
        pl.lit(serving.mode).alias("mode"),
        pl.lit(scored_at, pl.Datetime("us")).alias("scored_at"),
    ).select(list(score_columns(spec)))
