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
from dataclasses import dataclass

import polars as pl

from mlops_assets.core.spec import DatasetSpec, class_slug
from mlops_assets.core.vocabulary import HOLDOUT, PARTITION_COLUMN, SPLIT_COLUMN, TRAIN
from mlops_assets.data.features import target_code

LABEL_ARRIVED = "label_arrived"
EVENT_DAY = "event_ds"  # training_set: the event's partition (``ds`` is the cutoff)


def feature_window(spec: DatasetSpec, cutoff: dt.date) -> tuple[dt.date, dt.date]:
    """First and last feature partition (inclusive) that training_set[cutoff] reads."""
    return cutoff - dt.timedelta(days=spec.training.window_days), cutoff - dt.timedelta(days=1)


def maturity_horizon(spec: DatasetSpec, cutoff: dt.date) -> dt.date:
    """Events before this date have had the full label delay to mature by the cutoff."""
    delay = spec.labels.delay_days if spec.labels else 0
    return cutoff - dt.timedelta(days=delay)


def latest_labels_before(labels: pl.DataFrame, spec: DatasetSpec, cutoff: dt.date) -> pl.DataFrame:
    """One label per id: the latest that arrived strictly before ``cutoff``, as the model's target
    (a classification label becomes its class code, as in the features:
    ``features.target_code``)."""
    assert spec.labels is not None
    known = labels.filter(pl.col(PARTITION_COLUMN) < cutoff.isoformat())
    return (
        known.sort(PARTITION_COLUMN)
        .group_by(spec.labels.id, maintain_order=True)
        .agg(
            target_code(pl.col(spec.label_target), spec).last().alias(spec.target),
            pl.col(PARTITION_COLUMN).last().alias(LABEL_ARRIVED),
        )
        .rename({spec.labels.id: spec.id})
    )


def build_training_set(
    features: pl.DataFrame, labels: pl.DataFrame | None, spec: DatasetSpec, cutoff: dt.date
) -> pl.DataFrame:
    """Feature rows of the window with their matured label and a ``split`` column (train |
    holdout)."""
    first, last = feature_window(spec, cutoff)
    rows = features.filter(
        pl.col(PARTITION_COLUMN).is_between(pl.lit(first.isoformat()), pl.lit(last.isoformat()))
    )
    if spec.labels is not None:
        assert labels is not None, "the spec has a label feed: labels are required"
        rows = rows.drop(spec.target, strict=False).join(
            latest_labels_before(labels, spec, cutoff), on=spec.id, how="inner"
        )
    else:
        rows = rows.with_columns(pl.col(PARTITION_COLUMN).alias(LABEL_ARRIVED))
    rows = rows.filter(pl.col(spec.target).is_not_null())
    horizon = maturity_horizon(spec, cutoff)
    holdout_start = horizon - dt.timedelta(days=spec.training.holdout_days)
    event_day = pl.col(spec.timestamp).dt.date()
    rows = rows.filter(event_day < horizon).with_columns(
        pl.when(event_day >= holdout_start)
        .then(pl.lit(HOLDOUT))
        .otherwise(pl.lit(TRAIN))
        .alias(SPLIT_COLUMN)
    )
    return in_row_order(
        rows.rename({PARTITION_COLUMN: EVENT_DAY}).with_columns(
            pl.lit(cutoff.isoformat()).alias(PARTITION_COLUMN)
        ),
        spec,
    )


def in_row_order(ts: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """The one total order of training rows (event day, id): fits and re-fits never depend on
    an unstable sort's ties."""
    return ts.sort(EVENT_DAY, spec.id)


def split_rows(ts: pl.DataFrame, spec: DatasetSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, holdout) of a training set, each in the one row order."""
    ordered = in_row_order(ts, spec)
    return (
        ordered.filter(pl.col(SPLIT_COLUMN) == TRAIN),
        ordered.filter(pl.col(SPLIT_COLUMN) == HOLDOUT),
    )


def expected_days(first: dt.date, last: dt.date) -> list[str]:
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def missing_partitions(features: pl.DataFrame, first: dt.date, last: dt.date) -> list[str]:
    """The days of ``first..last`` (inclusive) with no row in ``features``, in order."""
    present = set(features[PARTITION_COLUMN].unique().to_list())
    return sorted(set(expected_days(first, last)) - present)


def class_shares(codes: pl.Series, spec: DatasetSpec, prefix: str = "") -> dict[str, float]:
    """``{prefix + class: share of rows}`` for every declared class (0.0 when absent), from class
    codes.
    """
    n = max(codes.len() - codes.null_count(), 1)
    return {
        f"{prefix}{class_slug(c)}": float((codes == i).sum()) / n
        for i, c in enumerate(spec.target_classes)
    }


def training_set_summary(ts: pl.DataFrame, spec: DatasetSpec) -> dict:
    out: dict = {"rows": ts.height}
    for split, part in zip((TRAIN, HOLDOUT), split_rows(ts, spec), strict=True):
        out[f"{split}_rows"] = part.height
        if part.height:
            out[f"{split}_dates"] = f"{part[EVENT_DAY].min()}..{part[EVENT_DAY].max()}"
            y = part[spec.target].cast(pl.Float64)
            if spec.multiclass:
                out.update(class_shares(y, spec, f"{split}_share__"))
            elif spec.task == "classification":
                out[f"{split}_positives"] = int(y.sum())
                out[f"{split}_positive_rate"] = float(y.mean())
            else:
                out[f"{split}_target_mean"] = float(y.mean())
                out[f"{split}_target_std"] = float(y.std() or 0.0)
    return out


@dataclass(frozen=True)
class AssembledTrainingSet:
    """``training_set[cutoff]`` as built, with what its materialisation reports."""

    cutoff: dt.date
    frame: pl.DataFrame
    summary: dict
    window: tuple[dt.date, dt.date]  # the feature partitions read (first, last), inclusive
    missing: list[str]  # feature partitions of the window that had no rows

    @property
    def problem(self) -> str | None:
        """Why the set may not be written (no train or no holdout rows); None: fine."""
        if self.summary.get("train_rows", 0) and self.summary.get("holdout_rows", 0):
            return None
        return (
            f"training_set[{self.cutoff}] has no train or no holdout rows ({self.summary}); "
            f"missing feature partitions: {self.missing[:10]}"
        )


def assemble_training_set(
    features: pl.DataFrame, labels: pl.DataFrame | None, spec: DatasetSpec, cutoff: dt.date
) -> AssembledTrainingSet:
    """``build_training_set`` over the window's feature rows, with its summary, its window and the
    window's days that had no feature rows."""
    first, last = feature_window(spec, cutoff)
    frame = build_training_set(features, labels, spec, cutoff)
    return AssembledTrainingSet(
        cutoff,
        frame,
        training_set_summary(frame, spec),
        (first, last),
        missing_partitions(features, first, last),
    )
