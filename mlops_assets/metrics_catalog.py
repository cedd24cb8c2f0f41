"""The metrics the platform knows: their names per task, their direction, the primary metric.

Pure facts (no scikit-learn), shared by the gates, the performance guard and the spec's
validation; ``ml.evaluation`` computes the values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the spec validates against this module: no runtime import back
    from mlops_assets.spec import DatasetSpec

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

METRIC_RANGES: dict[str, tuple[float | None, float | None]] = {
    "roc_auc": (0.0, 1.0),
    "pr_auc": (0.0, 1.0),
    "brier": (0.0, 1.0),
    "calibration_error": (0.0, 1.0),
    "log_loss": (0.0, None),
    "rmse": (0.0, None),
    "mae": (0.0, None),
    "r2": (None, 1.0),
}
"""The values each metric can take (None: unbounded on that side); a threshold outside can never be met
or always is. ``spec`` checks gate floors and ceilings, the slice floor and the guard floor against it."""


def task_metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def higher_is_better(metric: str) -> bool:
    return HIGHER_IS_BETTER.get(metric, True)


def primary_metric(spec: DatasetSpec) -> str:
    """``gates.primary_metric`` or the task default (roc_auc / rmse), checked against the task."""
    name = spec.gates.primary_metric or DEFAULT_PRIMARY_METRIC[spec.task]
    known = task_metric_names(spec.task)
    if name not in known:
        raise ValueError(
            f"gates.primary_metric: {name!r} is not a {spec.task} metric; "
            f"expected one of {list(known)}"
        )
    return name


def metric_range_problem(metric: str, value: float) -> str | None:
    """Why ``value`` cannot be a threshold on ``metric`` (outside ``METRIC_RANGES``), or None."""
    lo, hi = METRIC_RANGES.get(metric, (None, None))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        shown = f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"
        return f"{value:g} is outside the range of {metric} {shown}: the threshold could never be met or always is"
    return None
