"""Model evaluation: metrics, slices and the candidate-vs-champion comparison table.

Plain functions; no Dagster and no MLflow. Metric dicts map a metric name to a float,
an int count (``rows``, ``positives``; multiclass: ``rows``, ``min_class_rows``) or ``None``
when the metric is undefined on the data (a single-class holdout has no ROC AUC); the reason
for every ``None`` is under the ``"undefined"`` key. A classification score is the
positive-class probability (1-d, binary) or the class probabilities (2-d, multiclass: one
column per class code, labels are codes 0..k-1); ``task_metrics`` dispatches on its shape.
``loggable_metrics`` strips a dict to what
``mlflow.log_metrics`` accepts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from mlops_assets.core.metrics_catalog import (
    CLASSIFICATION_METRICS,
    COUNTS,
    HIGHER_IS_BETTER,
    MULTICLASS_METRICS,
    REGRESSION_METRICS,
)
from mlops_assets.model.training import MISSING_CATEGORY

CALIBRATION_BINS = 10
"""Expected calibration error uses this many **equal-frequency** bins (by sorted score).

Equal-frequency rather than equal-width because the default task has a rare positive
class: almost every probability is near 0, so equal-width bins would put nearly all
rows into the first bin and say little about the scores that matter.
"""


# ---- metrics -----------------------------------------------------------------------------


def _float_array(values: Any) -> np.ndarray:
    if isinstance(values, (pl.Series, pd.Series)):
        values = values.to_numpy()
    return np.asarray(values, dtype=np.float64)


def _as_arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = _float_array(y), _float_array(p)
    if y_arr.shape != p_arr.shape or y_arr.ndim != 1:
        raise ValueError(
            f"y and predictions must be 1-d of the same length, got {y_arr.shape} and {p_arr.shape}"
        )
    for name, arr in (("y", y_arr), ("predictions", p_arr)):
        bad = int((~np.isfinite(arr)).sum())
        if bad:
            raise ValueError(f"{name} has {bad} missing or non-finite values")
    return y_arr, p_arr


def expected_calibration_error(y: Any, p: Any, bins: int = CALIBRATION_BINS) -> float:
    """ECE over ``bins`` equal-frequency bins: sum of |mean(y) - mean(p)| weighted by bin size.

    Rows are ordered by score with a stable sort and cut into ``bins`` nearly equal
    chunks, so tied scores may straddle a bin edge; the result is still deterministic.
    """
    y_arr, p_arr = _as_arrays(y, p)
    if y_arr.size == 0:
        raise ValueError("calibration error of an empty sample is undefined")
    order = np.argsort(p_arr, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, y_arr.size)):
        total += chunk.size * abs(float(y_arr[chunk].mean()) - float(p_arr[chunk].mean()))
    return total / y_arr.size


def classification_metrics(y: Any, p: Any) -> dict[str, Any]:
    """roc_auc, pr_auc (average precision), log_loss, brier, calibration_error, positives, rows.

    ``y`` is 0/1 (or bool), ``p`` the positive-class probability. Ranking metrics are
    ``None`` when only one class is present (pr_auc only when there are no positives;
    with all positives it is trivially 1.0), everything is ``None`` on zero rows, and
    ``metrics["undefined"]`` says why.
    """
    y_arr, p_arr = _as_arrays(y, p)
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("classification labels must be 0/1")
    if ((p_arr < 0) | (p_arr > 1)).any():
        raise ValueError("classification scores must be probabilities in [0, 1]")
    n, positives = int(y_arr.size), int(y_arr.sum())
    out: dict[str, Any] = dict.fromkeys(CLASSIFICATION_METRICS)
    out.update(positives=positives, rows=n, undefined={})
    if n == 0:
        out["undefined"] = dict.fromkeys(CLASSIFICATION_METRICS, "no rows")
        return out
    y_int = y_arr.astype(np.int64)
    if 0 < positives < n:
        out["roc_auc"] = float(roc_auc_score(y_int, p_arr))
    else:
        which = "all positive" if positives else "no positives"
        out["undefined"]["roc_auc"] = f"only one class in y ({which})"
    if positives:
        out["pr_auc"] = float(average_precision_score(y_int, p_arr))
    else:
        out["undefined"]["pr_auc"] = "no positives in y"
    out["log_loss"] = float(log_loss(y_int, p_arr, labels=[0, 1]))
    out["brier"] = float(brier_score_loss(y_int, p_arr, pos_label=1))
    out["calibration_error"] = expected_calibration_error(y_arr, p_arr)
    return out


def _as_multiclass(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = _float_array(y), _float_array(p)
    if y_arr.ndim != 1 or p_arr.ndim != 2 or p_arr.shape[0] != y_arr.size:
        raise ValueError(
            f"multiclass y must be 1-d and probabilities (rows, classes), got {y_arr.shape} "
            f"and {p_arr.shape}"
        )
    if not np.isfinite(y_arr).all() or not np.isfinite(p_arr).all():
        raise ValueError("y or probabilities have missing or non-finite values")
    if not np.isin(y_arr, np.arange(p_arr.shape[1])).all():
        raise ValueError(f"multiclass labels must be class codes 0..{p_arr.shape[1] - 1}")
    if ((p_arr < 0) | (p_arr > 1)).any():
        raise ValueError("classification scores must be probabilities in [0, 1]")
    return y_arr.astype(np.int64), p_arr


def top_label_calibration_error(y: Any, p: Any, bins: int = CALIBRATION_BINS) -> float:
    """Top-label ECE: ``expected_calibration_error`` of "the predicted class is right" against the
    predicted class's probability (equal-frequency bins)."""
    y_arr, p_arr = _as_multiclass(y, p)
    predicted = np.argmax(p_arr, axis=1)
    return expected_calibration_error(
        (predicted == y_arr).astype(np.float64), p_arr.max(axis=1), bins
    )


def multiclass_metrics(y: Any, p: Any) -> dict[str, Any]:
    """roc_auc (macro one-vs-rest over the classes present in ``y``), accuracy, macro_f1 (over the
    classes in ``y`` or predicted), log_loss, brier (half the multiclass Brier score: the binary
    one at two classes), calibration_error (top-label ECE), rows, min_class_rows (rows of the
    rarest class, 0 when one is absent).

    ``y`` holds class codes, ``p`` one probability column per code. ``roc_auc`` is None when
    fewer than two classes are present; everything is None on zero rows."""
    y_arr, p_arr = _as_multiclass(y, p)
    n, k = int(y_arr.size), p_arr.shape[1]
    counts = np.bincount(y_arr, minlength=k) if n else np.zeros(k, dtype=np.int64)
    out: dict[str, Any] = dict.fromkeys(MULTICLASS_METRICS)
    out.update(rows=n, min_class_rows=int(counts.min()), undefined={})
    if n == 0:
        out["undefined"] = dict.fromkeys(MULTICLASS_METRICS, "no rows")
        return out
    present = [c for c in range(k) if 0 < counts[c] < n]
    if present:
        out["roc_auc"] = float(np.mean([roc_auc_score(y_arr == c, p_arr[:, c]) for c in present]))
    else:
        out["undefined"]["roc_auc"] = "only one class in y"
    predicted = np.argmax(p_arr, axis=1)
    out["accuracy"] = float(np.mean(predicted == y_arr))
    out["macro_f1"] = float(f1_score(y_arr, predicted, average="macro", zero_division=0))
    out["log_loss"] = float(log_loss(y_arr, p_arr, labels=list(range(k))))
    out["brier"] = float(np.mean(np.sum((p_arr - np.eye(k)[y_arr]) ** 2, axis=1)) / 2)
    out["calibration_error"] = top_label_calibration_error(y_arr, p_arr)
    return out


def regression_metrics(y: Any, yhat: Any) -> dict[str, Any]:
    """rmse, mae, r2, rows. ``r2`` is ``None`` for fewer than two rows or a constant ``y``
    (where scikit-learn would return an arbitrary 0.0 or 1.0)."""
    y_arr, p_arr = _as_arrays(y, yhat)
    n = int(y_arr.size)
    out: dict[str, Any] = dict.fromkeys(REGRESSION_METRICS)
    out.update(rows=n, undefined={})
    if n == 0:
        out["undefined"] = dict.fromkeys(REGRESSION_METRICS, "no rows")
        return out
    out["rmse"] = float(root_mean_squared_error(y_arr, p_arr))
    out["mae"] = float(mean_absolute_error(y_arr, p_arr))
    if n < 2 or float(np.ptp(y_arr)) == 0.0:
        out["undefined"]["r2"] = "fewer than two rows" if n < 2 else "y is constant"
    else:
        out["r2"] = float(r2_score(y_arr, p_arr))
    return out


def task_metrics(task: str, y: Any, p: Any) -> dict[str, Any]:
    """``classification_metrics`` (1-d scores), ``multiclass_metrics`` (2-d class probabilities)
    or ``regression_metrics`` by task."""
    if task == "classification":
        return multiclass_metrics(y, p) if np.ndim(p) == 2 else classification_metrics(y, p)
    if task == "regression":
        return regression_metrics(y, p)
    raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


def loggable_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The defined numeric entries as floats (for ``mlflow.log_metrics``)."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


# ---- slices ------------------------------------------------------------------------------


def slice_metrics(
    task: str,
    frame: pd.DataFrame | pl.DataFrame,
    y: Any,
    p: Any,
    categorical_columns: Sequence[str],
    min_rows: int,
) -> list[dict[str, Any]]:
    """Metrics per value of each categorical column, sorted by column then value.

    Each entry: ``{"column", "value", "rows", "enough_rows", "metrics"}``; nulls are the
    value ``MISSING_CATEGORY``. Metrics are computed for every slice, but only slices
    with ``enough_rows`` (``rows >= min_rows``) should be judged: small slices are noise.
    No categorical column: no slices. ``p`` may be 2-d (multiclass class probabilities).
    """
    y_arr, p_arr = _as_multiclass(y, p) if np.ndim(p) == 2 else _as_arrays(y, p)
    if not categorical_columns:
        return []
    if isinstance(frame, pl.DataFrame):
        frame = frame.select(list(categorical_columns)).to_pandas()
    if len(frame) != y_arr.size:
        raise ValueError(f"frame has {len(frame)} rows but y has {y_arr.size}")
    out: list[dict[str, Any]] = []
    for col in categorical_columns:
        column = frame[col].astype(object)
        values = column.where(column.notna(), MISSING_CATEGORY).astype(str).to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            rows = int(mask.sum())
            out.append(
                {
                    "column": col,
                    "value": value,
                    "rows": rows,
                    "enough_rows": rows >= min_rows,
                    "metrics": task_metrics(task, y_arr[mask], p_arr[mask]),
                }
            )
    return out


# ---- comparison table --------------------------------------------------------------------


def comparison_markdown(candidate: dict[str, Any], champion: dict[str, Any] | None) -> str:
    """A markdown table: metric | candidate | champion | delta (candidate - champion) | verdict.

    The verdict is direction-aware (``better``/``worse``/``same``); counts get none.
    Undefined values show as ``n/a``. With no champion the champion column is ``-``.
    """
    ordered = dict.fromkeys(
        (*CLASSIFICATION_METRICS, *MULTICLASS_METRICS, *REGRESSION_METRICS, *COUNTS)
    )
    keys = [k for k in ordered if k in candidate]
    keys += [
        k
        for k, v in candidate.items()
        if k not in keys and k != "undefined" and (v is None or _is_number(v))
    ]
    lines = [
        "| metric | candidate | champion | delta | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for k in keys:
        c = candidate.get(k)
        h = champion.get(k) if champion is not None else None
        delta, verdict = "", ""
        if champion is None:
            champ_cell = "-"
        else:
            champ_cell = _cell(k, h)
            if _is_number(c) and _is_number(h):
                d = float(c) - float(h)
                delta = f"{int(d):+d}" if k in COUNTS else f"{d:+.4f}"
                if k in HIGHER_IS_BETTER:
                    gain = d if HIGHER_IS_BETTER[k] else -d
                    verdict = "same" if abs(gain) < 1e-12 else ("better" if gain > 0 else "worse")
        lines.append(f"| {k} | {_cell(k, c)} | {champ_cell} | {delta} | {verdict} |")
    return "\n".join(lines) + "\n"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _cell(key: str, v: Any) -> str:
    if not _is_number(v):
        return "n/a"
    return str(int(v)) if key in COUNTS else f"{float(v):.4f}"
