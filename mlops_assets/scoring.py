"""Batch scoring (pure): features → score rows stamped with the model that made them.

Scoring streams the partition in fixed-size batches (``iter_slices``) so memory stays
bounded by the batch, not the partition; every row carries the model version, the
alias it was served under, the mode (``normal`` | ``degraded``) and the scoring time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.spec import DatasetSpec

NORMAL, DEGRADED = "normal", "degraded"
REGISTRY, CACHE = "registry", "cache"  # where the serving model was loaded from (Meta.MODEL_SOURCE)
BASELINE_VERSION = -1  # the model_version stamped on rows scored by the baseline fallback


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
    """The degrade-of-last-resort: the training prior (classification) or mean (regression)."""

    def __init__(self, value: float):
        self.value = float(value)

    def predict_scores(self, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=np.float64)


def score_column(spec: DatasetSpec) -> str:
    """The column of a score row holding the model's output."""
    return "probability" if spec.task == "classification" else "prediction"


def score_columns(spec: DatasetSpec) -> dict[str, pl.DataType]:
    cols: dict[str, pl.DataType] = {"ds": pl.String(), spec.id: pl.String(), spec.timestamp: pl.Datetime("us")}
    if spec.task == "classification":
        cols.update({"probability": pl.Float64(), "label": pl.Int8()})
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
            scores = predict_scores(serving.model, to_model_frame(batch, spec), spec.task)
        keys = batch.select("ds", spec.id, spec.timestamp)
        if spec.task == "classification":
            keys = keys.with_columns(pl.Series("probability", scores),
                                     pl.Series("label", (scores >= threshold).astype(np.int8)))
        else:
            keys = keys.with_columns(pl.Series("prediction", scores))
        out.append(keys)
    frame = pl.concat(out) if out else pl.DataFrame(schema=score_columns(spec))
    return frame.with_columns(
        pl.lit(serving.version, pl.Int64).alias("model_version"),
        pl.lit(serving.alias).alias("alias"),
        pl.lit(serving.mode).alias("mode"),
        pl.lit(scored_at, pl.Datetime("us")).alias("scored_at"),
    ).select(list(score_columns(spec)))
