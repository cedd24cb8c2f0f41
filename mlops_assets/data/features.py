"""The one feature function: training and scoring both call ``compute_features``.

Pure polars; works on a DataFrame or a LazyFrame (streams for large partitions).
PII columns never reach the output, and neither do provenance columns.

A classification target leaves here as its class **code** (``target_code``): the index of its
label in ``spec.target_classes`` (Float64), so 0/1 stay 0/1, ``classes: [neg, pos]`` become 0/1
(pos is the positive class) and ``classes: [a, b, c]`` become 0, 1, 2. The raw tables keep the
labels; everything after them (features, training sets, metrics, the model) sees codes, and
score rows turn them back into labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import PARTITION_COLUMN

if TYPE_CHECKING:
    import numpy as np

_CALENDAR = {
    "hour": lambda ts: ts.dt.hour().cast(pl.Float64),
    "day_of_week": lambda ts: ts.dt.weekday().cast(pl.Float64),  # 1 = Monday … 7 = Sunday
    "is_weekend": lambda ts: (ts.dt.weekday() >= 6).cast(pl.Float64),
    "day_of_month": lambda ts: ts.dt.day().cast(pl.Float64),
    "month": lambda ts: ts.dt.month().cast(pl.Float64),
}


def target_code(target: pl.Expr, spec: DatasetSpec) -> pl.Expr:
    """A target column as the model's target: the class code (Float64) of a declared class label
    (null for a value outside ``spec.target_classes``, which the contract has already quarantined);
    a 0/1 or regression target unchanged (its type as stored)."""
    if not spec.named_classes:
        return target
    classes = spec.target_classes
    return target.replace_strict(
        classes, [float(i) for i in range(len(classes))], default=None, return_dtype=pl.Float64
    )


def predicted_labels(scores: np.ndarray, spec: DatasetSpec, threshold: float = 0.5) -> list:
    """The predicted class of every row, as the spec's labels: the most probable class (multiclass;
    ties go to the first listed), else the positive class when its probability reaches
    ``threshold``."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    codes = (
        np.argmax(scores, axis=1) if scores.ndim == 2 else (scores >= threshold).astype(np.int64)
    )
    labels = spec.target_classes
    return [labels[int(c)] for c in codes]


def feature_columns(spec: DatasetSpec) -> list[str]:
    """Columns of the ``features`` table, in order."""
    cols = [PARTITION_COLUMN, spec.id, spec.timestamp, *spec.model_features]
    if spec.target_in_events:
        cols.append(spec.target)
    return cols


def compute_features(
    raw: pl.DataFrame | pl.LazyFrame, spec: DatasetSpec
) -> pl.DataFrame | pl.LazyFrame:
    """Raw (contract-checked) rows → model features, one row per event.

    Numeric features become Float64 (the model's input type; ints would trip MLflow's
    signature enforcement), calendar features come from the event timestamp (UTC),
    categoricals stay strings. Output order is by (ds, id) so it is deterministic (a DataFrame
    already in that order is not sorted again; a LazyFrame is, as a streaming collect does not keep
    row order)."""
    ts = pl.col(spec.timestamp)
    exprs = [pl.col(PARTITION_COLUMN), pl.col(spec.id), ts]
    exprs += [pl.col(c).cast(pl.Float64) for c in spec.numeric_features]
    exprs += [_CALENDAR[c](ts).alias(c) for c in spec.calendar_features]
    exprs += [pl.col(c).cast(pl.String) for c in spec.categorical_features]
    if spec.target_in_events:
        exprs.append(target_code(pl.col(spec.target), spec).cast(pl.Float64).alias(spec.target))
    out = raw.select(exprs)
    if isinstance(out, pl.LazyFrame) or not in_order(out, PARTITION_COLUMN, spec.id):
        return out.sort(PARTITION_COLUMN, spec.id)
    return out  # already in (ds, id) order: no sort (linear in the rows)


def input_columns(spec: DatasetSpec) -> list[str]:
    """The raw columns ``compute_features`` reads."""
    cols = [
        PARTITION_COLUMN,
        spec.id,
        spec.timestamp,
        *spec.numeric_features,
        *spec.categorical_features,
    ]
    return [*cols, spec.target] if spec.target_in_events else cols


def in_order(frame: pl.DataFrame, first: str, second: str) -> bool:
    """Whether ``frame`` is sorted by (``first``, ``second``) ascending, nulls never in order — one
    vectorised comparison of each row with the one before it."""
    if frame.height < 2:
        return (
            frame.height == 0
            or frame.select(pl.col(first).is_not_null() & pl.col(second).is_not_null()).item()
        )
    a, b = pl.col(first), pl.col(second)
    step = (a > a.shift()) | ((a == a.shift()) & (b >= b.shift()))
    return bool(
        frame.select(
            step.slice(1).fill_null(False).all() & a.is_not_null().all() & b.is_not_null().all()
        ).item()
    )
