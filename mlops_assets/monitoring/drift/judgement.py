"""Drift of daily partitions judged (pure): each day on its window of recent rows, against the
champion's reference profile, and the strongest drifts of a day ranked for the plots.

The lake comes in as two callables (``scan_features(days)`` lazily, ``read(table, days)``), so the
rules run on plain frames in the tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import polars as pl

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    DATASET_ROW,
    FEATURES,
    PARTITION_COLUMN,
    PREDICTION_ROW,
    SCORES,
)
from mlops_assets.monitoring.drift.methods import DRIFT_METHODS, feature_drift, insufficient_data
from mlops_assets.monitoring.rules import drift_window, partition_constant_features
from mlops_assets.scoring.rows import drift_prediction_column

TOP_DRIFTED = (
    3  # drift_top<i>_score / drift_top<i>_feature: the strongest drifts of the day, plotted
)


def lookback_days(keys: Iterable[str], max_lookback: int) -> list[str]:
    """Every day from ``max_lookback - 1`` days before the earliest of ``keys`` to the latest."""
    keys = list(keys)
    first = dt.date.fromisoformat(min(keys)) - dt.timedelta(days=max_lookback - 1)
    return [
        (first + dt.timedelta(days=i)).isoformat()
        for i in range((dt.date.fromisoformat(max(keys)) - first).days + 1)
    ]


def day_predictions(features: pl.DataFrame, scores: pl.DataFrame, spec: DatasetSpec):
    """The day's scores aligned to its feature rows (None when the day was not scored)."""
    if scores.is_empty():
        return None
    value = drift_prediction_column(spec)  # the predicted class of a multiclass model, else score
    return features.select(spec.id).join(
        scores.select(spec.id, value), on=spec.id, how="left", maintain_order="left"
    )[value]


def judge_drift(
    scan_features: Callable[[list[str]], pl.LazyFrame],
    read: Callable[[str, list[str]], pl.DataFrame],
    spec: DatasetSpec,
    profile: dict,
    keys,
    cutoff: str | None,
) -> tuple[dict, dict]:
    """Each partition of ``keys`` with rows, judged on its window (``monitoring.drift_window``):
    ({day: (window, feature_drift result)}, {feature: note} of the features found constant within
    partitions over the lookback). ``scan_features(days)``: the features of ``days``, lazily;
    ``read(table, days)``: the rows of ``features`` or ``scores`` of ``days``."""
    d = spec.drift
    names = [c for c in spec.model_features if c not in d.exclude]
    recent = scan_features(lookback_days(keys, d.max_lookback_partitions))
    counts = dict(recent.group_by(PARTITION_COLUMN).len().collect().iter_rows())
    excluded = partition_constant_features(recent.select(PARTITION_COLUMN, *names), names)
    windows = {
        k: drift_window(counts, k, d.min_rows, d.max_lookback_partitions, cutoff)
        for k in keys
        if counts.get(k, 0) > 0
    }
    needed = sorted({day for w in windows.values() if w.sufficient for day in w.days})
    feats, scored = read(FEATURES, needed), read(SCORES, needed)
    judged = {}
    for day, w in windows.items():
        if not w.sufficient:
            judged[day] = (w, insufficient_data(spec, w.rows, w.note))
            continue
        current = feats.filter(pl.col(PARTITION_COLUMN).is_in(w.days))
        window_scores = (
            scored.filter(pl.col(PARTITION_COLUMN).is_in(w.days))
            if not scored.is_empty()
            else scored
        )
        result = feature_drift(
            profile,
            current,
            spec,
            prediction=day_predictions(current, window_scores, spec),
            excluded=excluded,
        )
        judged[day] = (w, {**result, "note": w.note})
    return judged, excluded


def drift_strength(row: dict) -> float:
    """How far past its threshold a feature's score is (> 1: drifted), whichever way its rule points
    (distances drift above the threshold, p-values below it); NaN when unscored."""
    score, threshold = row.get("score"), row.get("threshold")
    if score is None or threshold is None or score != score:
        return float("nan")
    method = DRIFT_METHODS.get(row.get("method") or "")
    if method is not None and method.rule != ">=":
        return threshold / score if score > 0 else float("inf")
    return score / threshold if threshold > 0 else float("inf")


def top_drifted(rows: list[dict], day: str, k: int = TOP_DRIFTED) -> dict:
    """The ``k`` strongest feature drifts of ``day`` under fixed names (NaN / "" when fewer were
    scored), and how many features drifted that day."""
    feats = [
        r
        for r in rows
        if r[PARTITION_COLUMN] == day and r["feature"] not in (DATASET_ROW, PREDICTION_ROW)
    ]
    ranked = sorted(
        (r for r in feats if drift_strength(r) == drift_strength(r)),
        key=drift_strength,
        reverse=True,
    )
    out: dict = {}
    for i in range(k):
        r = ranked[i] if i < len(ranked) else None
        out[f"drift_top{i + 1}_score"] = float(r["score"]) if r else float("nan")
        out[f"drift_top{i + 1}_strength"] = min(drift_strength(r), 1e6) if r else float("nan")
        out[f"drift_top{i + 1}_feature"] = r["feature"] if r else ""
    out["drifted_feature_count"] = sum(bool(r["drifted"]) for r in feats)
    return out
