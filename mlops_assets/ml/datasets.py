"""Point-in-time training sets (pure polars).

``training_set[C]`` may only contain what was *known* before the cutoff C:
feature rows dated before C, joined with labels that *arrived* before C (the delayed
label feed's partition is its arrival date). A label that matures on or after C is
not there, so its event row is not in the training set either. The holdout is the
last ``holdout_days`` of matured event dates (ending at C − label delay), by time,
never at random.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from mlops_assets.spec import DatasetSpec

SPLIT = "split"
LABEL_ARRIVED = "label_arrived"


def feature_window(spec: DatasetSpec, cutoff: dt.date) -> tuple[dt.date, dt.date]:
    """First and last feature partition (inclusive) that training_set[cutoff] reads."""
    return cutoff - dt.timedelta(days=spec.training.window_days), cutoff - dt.timedelta(days=1)


def maturity_horizon(spec: DatasetSpec, cutoff: dt.date) -> dt.date:
    """Events before this date have had the full label delay to mature by the cutoff."""
    delay = spec.labels.delay_days if spec.labels else 0
    return cutoff - dt.timedelta(days=delay)


def latest_labels_before(labels: pl.DataFrame, spec: DatasetSpec, cutoff: dt.date) -> pl.DataFrame:
    """One label per id: the latest that arrived strictly before ``cutoff``."""
    assert spec.labels is not None
    known = labels.filter(pl.col("ds") < cutoff.isoformat())
    return (
        known.sort("ds")
        .group_by(spec.labels.id, maintain_order=True)
        .agg(pl.col(spec.label_target).last().alias(spec.target), pl.col("ds").last().alias(LABEL_ARRIVED))
        .rename({spec.labels.id: spec.id})
    )


def build_training_set(
    features: pl.DataFrame, labels: pl.DataFrame | None, spec: DatasetSpec, cutoff: dt.date
) -> pl.DataFrame:
    """Feature rows of the window with their matured label and a ``split`` column (train | holdout)."""
    first, last = feature_window(spec, cutoff)
    rows = features.filter(pl.col("ds").is_between(pl.lit(first.isoformat()), pl.lit(last.isoformat())))
    if spec.labels is not None:
        assert labels is not None, "the spec has a label feed: labels are required"
        rows = rows.drop(spec.target, strict=False).join(
            latest_labels_before(labels, spec, cutoff), on=spec.id, how="inner"
        )
    else:
        rows = rows.with_columns(pl.col("ds").alias(LABEL_ARRIVED))
    rows = rows.filter(pl.col(spec.target).is_not_null())
    horizon = maturity_horizon(spec, cutoff)
    holdout_start = horizon - dt.timedelta(days=spec.training.holdout_days)
    event_day = pl.col(spec.timestamp).dt.date()
    rows = rows.filter(event_day < horizon).with_columns(
        pl.when(event_day >= holdout_start).then(pl.lit("holdout")).otherwise(pl.lit("train")).alias(SPLIT)
    )
    return rows.rename({"ds": "event_ds"}).with_columns(pl.lit(cutoff.isoformat()).alias("ds")).sort("event_ds", spec.id)


def training_set_summary(ts: pl.DataFrame, spec: DatasetSpec) -> dict:
    out: dict = {"rows": ts.height}
    for split in ("train", "holdout"):
        part = ts.filter(pl.col(SPLIT) == split)
        out[f"{split}_rows"] = part.height
        if part.height:
            out[f"{split}_dates"] = f"{part['event_ds'].min()}..{part['event_ds'].max()}"
            y = part[spec.target].cast(pl.Float64)
            if spec.task == "classification":
                out[f"{split}_positives"] = int(y.sum())
                out[f"{split}_positive_rate"] = float(y.mean())
            else:
                out[f"{split}_target_mean"] = float(y.mean())
                out[f"{split}_target_std"] = float(y.std() or 0.0)
    return out
