"""The one feature function: training and scoring both call ``compute_features``.

Pure polars; works on a DataFrame or a LazyFrame (streams for large partitions).
PII columns never reach the output, and neither do provenance columns.
"""

from __future__ import annotations

import polars as pl

from mlops_assets.spec import DatasetSpec

_CALENDAR = {
    "hour": lambda ts: ts.dt.hour().cast(pl.Float64),
    "day_of_week": lambda ts: ts.dt.weekday().cast(pl.Float64),  # 1 = Monday … 7 = Sunday
    "is_weekend": lambda ts: (ts.dt.weekday() >= 6).cast(pl.Float64),
    "day_of_month": lambda ts: ts.dt.day().cast(pl.Float64),
    "month": lambda ts: ts.dt.month().cast(pl.Float64),
}


def feature_columns(spec: DatasetSpec) -> list[str]:
    """Columns of the ``features`` table, in order."""
    cols = ["ds", spec.id, spec.timestamp, *spec.model_features]
    if spec.target_in_events:
        cols.append(spec.target)
    return cols


def compute_features(raw: pl.DataFrame | pl.LazyFrame, spec: DatasetSpec) -> pl.DataFrame | pl.LazyFrame:
    """Raw (contract-checked) rows → model features, one row per event.

    Numeric features become Float64 (the model's input type; ints would trip MLflow's
    signature enforcement), calendar features come from the event timestamp (UTC),
    categoricals stay strings. Output order is by (ds, id) so it is deterministic.
    """
    ts = pl.col(spec.timestamp)
    exprs = [pl.col("ds"), pl.col(spec.id), ts]
    exprs += [pl.col(c).cast(pl.Float64) for c in spec.numeric_features]
    exprs += [_CALENDAR[c](ts).alias(c) for c in spec.calendar_features]
    exprs += [pl.col(c).cast(pl.String) for c in spec.categorical_features]
    if spec.target_in_events:
        exprs.append(pl.col(spec.target).cast(pl.Float64))
    return raw.select(exprs).sort("ds", spec.id)
