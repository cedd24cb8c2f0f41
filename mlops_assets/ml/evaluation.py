"""Model evaluation: metrics, slices, promotion gates and the comparison table.

Plain functions; no Dagster and no MLflow. Metric dicts map a metric name to a float,
an int count (``rows``, ``positives``) or ``None`` when the metric is undefined on the
data (a single-class holdout has no ROC AUC); the reason for every ``None`` is under
the ``"undefined"`` key. ``loggable_metrics`` strips a dict to what
``mlflow.log_metrics`` accepts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from mlops_assets.ml.training import MISSING_CATEGORY
from mlops_assets.spec import DatasetSpec

CALIBRATION_BINS = 10
"""Expected calibration error uses this many **equal-frequency** bins (by sorted score).

Equal-frequency rather than equal-width because the default task has a rare positive
class: almost every probability is near 0, so equal-width bins would put nearly all
rows into the first bin and say little about the scores that matter.
"""

CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error")
REGRESSION_METRICS = ("rmse", "mae", "r2")
COUNTS = ("rows", "positives")

HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "calibration_error": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
"""Direction of every metric (counts have none)."""

DEFAULT_PRIMARY_METRIC = {"classification": "roc_auc", "regression": "rmse"}


# ---- metrics -----------------------------------------------------------------------------


def _float_array(values: Any) -> np.ndarray:
    if isinstance(values, (pl.Series, pd.Series)):
        values = values.to_numpy()
    return np.asarray(values, dtype=np.float64)


def _as_arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = _float_array(y), _float_array(p)
    if y_arr.shape != p_arr.shape or y_arr.ndim != 1:
        raise ValueError(
            "y and predictions must be 1-d of the same length, "
            f"got {y_arr.shape} and {p_arr.shape}"
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
    out: dict[str, Any] = {m: None for m in CLASSIFICATION_METRICS}
    out.update(positives=positives, rows=n, undefined={})
    if n == 0:
        out["undefined"] = {m: "no rows" for m in CLASSIFICATION_METRICS}
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


def regression_metrics(y: Any, yhat: Any) -> dict[str, Any]:
    """rmse, mae, r2, rows. ``r2`` is ``None`` for fewer than two rows or a constant ``y``
    (where scikit-learn would return an arbitrary 0.0 or 1.0)."""
    y_arr, p_arr = _as_arrays(y, yhat)
    n = int(y_arr.size)
    out: dict[str, Any] = {m: None for m in REGRESSION_METRICS}
    out.update(rows=n, undefined={})
    if n == 0:
        out["undefined"] = {m: "no rows" for m in REGRESSION_METRICS}
        return out
    out["rmse"] = float(root_mean_squared_error(y_arr, p_arr))
    out["mae"] = float(mean_absolute_error(y_arr, p_arr))
    if n < 2 or float(np.ptp(y_arr)) == 0.0:
        out["undefined"]["r2"] = "fewer than two rows" if n < 2 else "y is constant"
    else:
        out["r2"] = float(r2_score(y_arr, p_arr))
    return out


def task_metrics(task: str, y: Any, p: Any) -> dict[str, Any]:
    """``classification_metrics`` or ``regression_metrics`` by task."""
    if task == "classification":
        return classification_metrics(y, p)
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


def primary_metric(spec: DatasetSpec) -> str:
    """``gates.primary_metric`` or the task default (roc_auc / rmse), checked against the task."""
    name = spec.gates.primary_metric or DEFAULT_PRIMARY_METRIC[spec.task]
    known = CLASSIFICATION_METRICS if spec.task == "classification" else REGRESSION_METRICS
    if name not in known:
        raise ValueError(
            f"gates.primary_metric: {name!r} is not a {spec.task} metric; "
            f"expected one of {list(known)}"
        )
    return name


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
    """
    y_arr, p_arr = _as_arrays(y, p)
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


# ---- gates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    """One promotion gate's verdict. ``value``/``threshold`` are ``None`` when not numeric."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x != 0 and abs(x) < 0.001:
        return f"{x:.3g}"
    return f"{x:.3f}"


def _status(passed: bool) -> str:
    return "passed" if passed else "failed"


def gate_names(spec: DatasetSpec) -> list[str]:
    """The names ``evaluate_gates`` returns for this spec, in order (the spec owns the list)."""
    return spec.gate_names


def _undefined(metrics: dict[str, Any], metric: str) -> str:
    reason = (metrics.get("undefined") or {}).get(metric)
    if reason:
        return f"undefined ({reason})"
    return "undefined" if metric in metrics else "not computed"


def _compare(value: float, threshold: float, higher_is_better: bool) -> tuple[bool, str]:
    """Whether ``value`` is on the good side of ``threshold``, and the operator to print."""
    if higher_is_better:
        return (True, ">=") if value >= threshold else (False, "<")
    return (True, "<=") if value <= threshold else (False, ">")


def _bound_gate(
    name: str, metrics: dict[str, Any], metric: str, threshold: float, floor: bool
) -> GateResult:
    value = metrics.get(metric)
    if value is None:
        # Fail closed: a gate that cannot be evaluated must not let a model through.
        msg = f"{name} failed: {metric} {_undefined(metrics, metric)}"
        return GateResult(name, False, None, threshold, msg)
    passed, op = _compare(value, threshold, higher_is_better=floor)
    msg = f"{name} {_status(passed)}: {_fmt(value)} {op} {_fmt(threshold)}"
    return GateResult(name, passed, float(value), threshold, msg)


def _no_regression(
    spec: DatasetSpec, metric: str, cand: dict[str, Any], champ: dict[str, Any] | None
) -> GateResult:
    name, slack = "no_regression", spec.gates.max_regression
    value = cand.get(metric)
    if value is None:
        msg = f"{name} failed: candidate {metric} {_undefined(cand, metric)}"
        return GateResult(name, False, None, None, msg)
    if champ is None:
        msg = f"{name} passed: no champion to compare with"
        return GateResult(name, True, float(value), None, msg)
    base = champ.get(metric)
    if base is None:
        msg = f"{name} passed: champion {metric} {_undefined(champ, metric)}"
        return GateResult(name, True, float(value), None, msg)
    higher = HIGHER_IS_BETTER[metric]
    threshold = base - slack if higher else base + slack
    passed, op = _compare(value, threshold, higher)
    sign = "-" if higher else "+"
    return GateResult(
        name,
        passed,
        float(value),
        float(threshold),
        f"{name} {_status(passed)}: {metric} {_fmt(value)} {op} {_fmt(threshold)} "
        f"(champion {_fmt(base)} {sign} max_regression {_fmt(slack)})",
    )


def _slice_floor(spec: DatasetSpec, metric: str, slices: Sequence[dict[str, Any]]) -> GateResult:
    """Every judged slice must reach the floor: ``>=`` for higher-is-better metrics, ``<=``
    (a ceiling) for error metrics such as rmse. Slices whose metric is undefined (a slice
    without positives has no ROC AUC) cannot be judged and are reported, not failed."""
    name, floor = "slice_floor", float(spec.gates.slice_floor)  # type: ignore[arg-type]
    higher = HIGHER_IS_BETTER[metric]
    judged, undefined = [], []
    for s in slices:
        if not s["enough_rows"]:
            continue
        v = s["metrics"].get(metric)
        (undefined if v is None else judged).append((v, s))
    note = f"; {len(undefined)} slice(s) skipped, {metric} undefined" if undefined else ""
    if not judged:
        msg = f"{name} passed: no slice with enough rows to judge{note}"
        return GateResult(name, True, None, floor, msg)
    worst_v, worst = (min if higher else max)(judged, key=lambda t: t[0])
    n_bad = sum(not _compare(v, floor, higher)[0] for v, _ in judged)
    passed, op = _compare(worst_v, floor, higher)
    where = f"{worst['column']}={worst['value']}"
    summary = f"all {len(judged)} slices ok" if passed else f"{n_bad} of {len(judged)} slices below"
    msg = (
        f"{name} {_status(passed)}: worst slice {where} {metric} {_fmt(worst_v)} {op} "
        f"{_fmt(floor)} ({summary}{note})"
    )
    return GateResult(name, passed, float(worst_v), floor, msg)


INTEGRITY_CHECKS = ("sha256_match", "loads", "predictions_identical")


def _integrity(integrity: dict[str, Any]) -> GateResult:
    """All of ``INTEGRITY_CHECKS`` must be present and true; a missing one fails."""
    failing = [
        f"{k}={integrity[k]}" if k in integrity else f"{k} not checked"
        for k in INTEGRITY_CHECKS
        if integrity.get(k) is not True
    ]
    ok = len(INTEGRITY_CHECKS) - len(failing)
    if failing:
        msg = f"integrity failed: {', '.join(failing)}"
    else:
        msg = f"integrity passed: {', '.join(INTEGRITY_CHECKS)}"
    return GateResult("integrity", not failing, float(ok), float(len(INTEGRITY_CHECKS)), msg)


def evaluate_gates(
    spec: DatasetSpec,
    candidate_metrics: dict[str, Any],
    champion_metrics: dict[str, Any] | None,
    slices: Sequence[dict[str, Any]],
    integrity: dict[str, Any],
) -> list[GateResult]:
    """Every promotion gate of the spec, in ``gate_names(spec)`` order.

    * ``floor:<m>`` / ``ceiling:<m>``: candidate metric ``>=`` floor / ``<=`` ceiling.
    * ``no_regression``: the primary metric may be worse than the champion's by at most
      ``gates.max_regression`` (direction-aware). Compare on the same rows: the caller
      scores the champion on the candidate's holdout. Passes when there is no champion.
    * ``slice_floor``: every slice with enough rows reaches ``gates.slice_floor`` on the
      primary metric; the message names the worst slice.
    * ``calibration`` (classification): ``calibration_error <= gates.max_calibration_error``.
    * ``integrity``: the artifact's sha256 matched, it loaded, and its predictions equal
      the in-memory model's.

    A gate whose metric is undefined or missing fails (fail closed), except that an
    undefined champion metric cannot block the candidate.
    """
    metric = primary_metric(spec)
    gates = spec.gates
    results = [
        _bound_gate(f"floor:{m}", candidate_metrics, m, t, floor=True)
        for m, t in gates.floors.items()
    ]
    results += [
        _bound_gate(f"ceiling:{m}", candidate_metrics, m, t, floor=False)
        for m, t in gates.ceilings.items()
    ]
    results.append(_no_regression(spec, metric, candidate_metrics, champion_metrics))
    if gates.slice_floor is not None:
        results.append(_slice_floor(spec, metric, slices))
    if spec.task == "classification" and gates.max_calibration_error is not None:
        ece_limit = gates.max_calibration_error
        calibration = _bound_gate(
            "calibration", candidate_metrics, "calibration_error", ece_limit, floor=False
        )
        results.append(calibration)
    results.append(_integrity(integrity))
    return results


# ---- comparison table --------------------------------------------------------------------


def comparison_markdown(candidate: dict[str, Any], champion: dict[str, Any] | None) -> str:
    """A markdown table: metric | candidate | champion | delta (candidate - champion) | verdict.

    The verdict is direction-aware (``better``/``worse``/``same``); counts get none.
    Undefined values show as ``n/a``. With no champion the champion column is ``-``.
    """
    keys = [k for k in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS, *COUNTS) if k in candidate]
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
