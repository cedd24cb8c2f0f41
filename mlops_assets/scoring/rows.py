"""Batch scoring (pure): features → score rows stamped with the model that made them.

Scoring streams the partition in fixed-size batches (``score_batches``; the asset writes them to
the lake as they come, ``DeltaLake.write_stream``: one commit) so memory stays bounded by the
batch, not the partition; every row carries the model version, the alias it was served under,
the mode (``normal`` | ``degraded``) and the scoring time. A fitted pipeline gets its categoricals
encoded in polars with its own fitted categories (``model.encoded_input``): the same scores, bit
for bit. The columns of a score row depend on the task (``score_columns``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from mlops_assets.core.clock import utc_now
from mlops_assets.core.spec import DatasetSpec, class_slug
from mlops_assets.core.vocabulary import MODEL_VERSION_COLUMN, PARTITION_COLUMN
from mlops_assets.data.features import predicted_labels
from mlops_assets.model.bounds import clip_predictions
from mlops_assets.model.encoded_input import compile_input

if TYPE_CHECKING:
    import numpy as np

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
        import numpy as np

        self.value: float | list[float] = (
            float(value) if np.ndim(value) == 0 else [float(v) for v in value]
        )  # type: ignore[union-attr]

    def predict_scores(self, n: int) -> np.ndarray:
        import numpy as np

        if isinstance(self.value, list):
            return np.tile(np.asarray(self.value, dtype=np.float64), (n, 1))
        return np.full(n, self.value, dtype=np.float64)


def score_column(spec: DatasetSpec) -> str:
    """The column of a score row holding the model's output (see ``score_columns``)."""
    return "probability" if spec.task == "classification" else "prediction"


def drift_prediction_column(spec: DatasetSpec) -> str:
    """The score-row column whose drift is compared with the reference profile's ``prediction``:
    the predicted class for a multiclass model (a categorical profile), else ``score_column``."""
    return LABEL if spec.multiclass else score_column(spec)


def class_probability_columns(spec: DatasetSpec) -> list[str]:
    """``probability__<class>`` per declared class, in the spec's order ([] without ``classes``)."""
    return (
        [CLASS_PROBABILITY_PREFIX + class_slug(c) for c in spec.target_classes]
        if spec.named_classes
        else []
    )


def label_dtype(spec: DatasetSpec) -> pl.DataType:
    if not spec.named_classes:
        return pl.Int8()
    return pl.String() if isinstance(spec.target_classes[0], str) else pl.Int64()


def class_probabilities(scores: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """``(rows, classes)`` probabilities from model scores: a multiclass model's as they are, a
    binary model's positive-class probability ``p`` as ``[1 - p, p]``."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    return scores if scores.ndim == 2 else np.column_stack([1.0 - scores, scores])


def scored_values(rows: pl.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """What the metrics judge, read back from score rows: the per-class probabilities of a
    multiclass model (spec order), else the score column."""
    import numpy as np

    if spec.multiclass:
        return rows.select(class_probability_columns(spec)).to_numpy().astype(np.float64)
    return rows[score_column(spec)].to_numpy()


def _score_series(scores: np.ndarray, spec: DatasetSpec, threshold: float) -> list[pl.Series]:
    import numpy as np

    if spec.task != "classification":
        return [pl.Series("prediction", scores)]
    if not spec.named_classes:
        return [
            pl.Series("probability", scores),
            pl.Series(LABEL, (scores >= threshold).astype(np.int8)),
        ]
    probs = class_probabilities(scores, spec)
    top = probs.max(axis=1) if spec.multiclass else probs[:, 1]
    return [
        pl.Series("probability", top),
        pl.Series(LABEL, predicted_labels(scores, spec, threshold), dtype=label_dtype(spec)),
        *(pl.Series(name, probs[:, i]) for i, name in enumerate(class_probability_columns(spec))),
    ]


def score_columns(spec: DatasetSpec) -> dict[str, pl.DataType]:
    """The score table's columns and types for ``spec``'s task. The model's output:

    - regression: ``prediction``;
    - binary 0/1 (no ``classes``): ``probability`` (of class 1) and ``label`` (Int8,
      ``probability >= 0.5``);
    - declared ``classes`` (any number): ``label`` is the predicted class (the spec's label,
      String or Int64) and ``probability__<class>`` the probability of each class (``<class>``
      through ``spec.class_slug``), summing to 1 per row. ``probability`` stays the score column
      (``score_column``): with two classes the probability of the positive (second) class, as
      for 0/1; with more, the probability of the predicted class (the row's largest). Drift of a
      multiclass model's predictions is judged on ``label`` (``drift_prediction_column``).
    """
    cols: dict[str, pl.DataType] = {
        PARTITION_COLUMN: pl.String(),
        spec.id: pl.String(),
        spec.timestamp: pl.Datetime("us"),
    }
    if spec.task == "classification":
        cols.update({"probability": pl.Float64(), LABEL: label_dtype(spec)})
        cols.update({name: pl.Float64() for name in class_probability_columns(spec)})
    else:
        cols["prediction"] = pl.Float64()
    cols.update(
        {
            MODEL_VERSION_COLUMN: pl.Int64(),
            "alias": pl.String(),
            "mode": pl.String(),
            "scored_at": pl.Datetime("us"),
        }
    )
    return cols


Features = pl.DataFrame | pl.LazyFrame | Iterable[pl.DataFrame]


def _batches(features: Features, batch_rows: int) -> Iterator[pl.DataFrame]:
    """A LazyFrame (e.g. a Delta scan) is streamed; batches (``DeltaLake.iter_batches``) are taken
    as they come: only one batch of features is in memory at a time."""
    if isinstance(features, pl.LazyFrame):
        yield from features.collect_batches(chunk_size=batch_rows, maintain_order=True)
    elif isinstance(features, pl.DataFrame):
        yield from features.iter_slices(n_rows=batch_rows)
    else:
        yield from features


def predictor(model: Any, spec: DatasetSpec) -> Callable[[pl.DataFrame], np.ndarray]:
    """``features batch -> scores`` of a model (the serving one, or last_known_good re-scored beside
    it). A fitted pipeline of a known shape gets its categoricals encoded in polars with the fitted
    categories (``model.encoded_input``: the same matrix, hence the same scores, bit for bit); any
    other model goes through ``to_model_frame`` and itself."""
    if isinstance(model, ConstantBaseline):
        return lambda batch: model.predict_scores(batch.height)
    from mlops_assets.model.training import predict_scores, to_model_frame

    encoded = compile_input(model, spec)
    if encoded is None:
        return lambda batch: clip_predictions(
            predict_scores(model, to_model_frame(batch, spec), spec.task), spec
        )
    return lambda batch: clip_predictions(
        predict_scores(encoded, encoded.matrix(batch), spec.task), spec
    )


def score_batches(
    serving: ServingModel,
    features: Features,
    spec: DatasetSpec,
    *,
    batch_rows: int = 100_000,
    threshold: float = 0.5,
    scored_at: dt.datetime | None = None,
) -> Iterator[pl.DataFrame]:
    """Score rows batch by batch (columns ``score_columns``), in input order: one batch of features
    and one of scores in memory at a time."""
    scored_at = scored_at or utc_now()
    predict, columns = predictor(serving.model, spec), list(score_columns(spec))
    stamp = [
        pl.lit(serving.version, pl.Int64).alias(MODEL_VERSION_COLUMN),
        pl.lit(serving.alias).alias("alias"),
        pl.lit(serving.mode).alias("mode"),
        pl.lit(scored_at, pl.Datetime("us")).alias("scored_at"),
    ]
    for batch in _batches(features, batch_rows):
        if batch.height == 0:
            continue
        scores = predict(batch)
        yield (
            batch.select(PARTITION_COLUMN, spec.id, spec.timestamp)
            .with_columns(_score_series(scores, spec, threshold))
            .with_columns(stamp)
            .select(columns)
        )


def score_frame(
    serving: ServingModel,
    features: pl.DataFrame | pl.LazyFrame,
    spec: DatasetSpec,
    *,
    batch_rows: int = 100_000,
    threshold: float = 0.5,
    scored_at: dt.datetime | None = None,
) -> pl.DataFrame:
    """Score ``features`` batch by batch; one output row per input row, in input order (in memory:
    the asset streams ``score_batches`` into the lake instead)."""
    out = list(
        score_batches(
            serving, features, spec, batch_rows=batch_rows, threshold=threshold, scored_at=scored_at
        )
    )
    return pl.concat(out) if out else pl.DataFrame(schema=score_columns(spec))


@dataclass
class ScoreTally:
    """What the ``scores`` metadata says about rows that were streamed to the lake, not kept: rows,
    rows per mode (``normal`` and ``degraded`` always present) and the mean score."""

    value_column: str
    rows: int = 0
    score_sum: float = 0.0
    by_mode: dict[str, int] | None = None

    def count(self, batches: Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        """Pass ``batches`` through, counting them (a new pass, e.g. a retried commit, starts from
        zero).
        """
        self.rows, self.score_sum, self.by_mode = 0, 0.0, {NORMAL: 0, DEGRADED: 0}
        for batch in batches:
            self.rows += batch.height
            self.score_sum += float(batch[self.value_column].sum() or 0.0)
            for mode, n in batch.group_by("mode").len().iter_rows():
                self.by_mode[mode] = self.by_mode.get(mode, 0) + n
            yield batch

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.rows if self.rows else 0.0

    def metadata(self) -> dict[str, Any]:
        modes = self.by_mode or {NORMAL: 0, DEGRADED: 0}
        return {
            "rows": self.rows,
            "mean_score": self.mean_score,
            **{f"score_rows_{mode}": int(n) for mode, n in sorted(modes.items())},
        }


def shadow_agreement(
    shadow: pl.DataFrame, champion_scores: pl.DataFrame, spec: DatasetSpec
) -> dict[str, float]:
    """How the challenger's score rows agree with the champion's on the same ids: mean and max
    absolute score difference, and for classification the share of ids given the same class."""
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
