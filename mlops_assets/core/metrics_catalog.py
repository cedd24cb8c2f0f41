"""The metrics the platform knows: their names per task, their direction, the primary metric.

Pure facts (no scikit-learn), shared by the gates, the performance guard and the spec's
validation; ``model.evaluation`` computes the values.

Classification is binary (the default 0/1 target, or two declared ``classes``) or multiclass
(more than two declared ``classes``); the two compute different metric sets
(``spec_metric_names``). Shared names mean the same thing in both: ``roc_auc`` is macro
one-vs-rest for multiclass, ``brier`` is half the multiclass Brier score (equal to the binary
Brier score at two classes, so it stays in [0, 1]) and ``calibration_error`` is the top-label
expected calibration error. The default primary metric is ``roc_auc`` for both: it needs no
threshold, lies in [0, 1] with the same direction, so ``slice_floor`` and ``guard.floor`` mean
the same for a binary and a multiclass model (``log_loss`` is unbounded and dominated by a few
confident mistakes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the spec validates against this module: no runtime import back
    from mlops_assets.core.spec import DatasetSpec

CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error")
"""Binary classification (positive class: 1, or the second declared class)."""
MULTICLASS_METRICS = ("roc_auc", "accuracy", "macro_f1", "log_loss", "brier", "calibration_error")
"""More than two declared classes."""
REGRESSION_METRICS = ("rmse", "mae", "r2")
COUNTS = (
    "rows",
    "positives",
    "min_class_rows",
)  # min_class_rows: multiclass, rows of the rarest class

HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "calibration_error": False,
    "accuracy": True,
    "macro_f1": True,
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
    "accuracy": (0.0, 1.0),
    "macro_f1": (0.0, 1.0),
    "log_loss": (0.0, None),
    "rmse": (0.0, None),
    "mae": (0.0, None),
    "r2": (None, 1.0),
}
"""The values each metric can take (None: unbounded on that side); a threshold outside can never be
met or always is. ``spec`` checks gate floors and ceilings, the slice floor and the guard floor
against it."""


def task_metric_names(task: str) -> tuple[str, ...]:
    """Every metric name a ``task`` model may compute (binary and multiclass for classification);
    ``spec_metric_names`` narrows it to what one spec's model computes."""
    if task == "classification":
        return CLASSIFICATION_METRICS + tuple(
            m for m in MULTICLASS_METRICS if m not in CLASSIFICATION_METRICS
        )
    return REGRESSION_METRICS


def classification_metric_names(multiclass: bool) -> tuple[str, ...]:
    return MULTICLASS_METRICS if multiclass else CLASSIFICATION_METRICS


def spec_metric_names(spec: DatasetSpec) -> tuple[str, ...]:
    """The metrics the spec's model computes: regression, binary or multiclass."""
    if spec.task != "classification":
        return REGRESSION_METRICS
    return classification_metric_names(spec.multiclass)


def higher_is_better(metric: str) -> bool:
    return HIGHER_IS_BETTER.get(metric, True)


def primary_metric(spec: DatasetSpec) -> str:
    """``gates.primary_metric`` or the task default (roc_auc / rmse), checked against what the
    spec's model computes (binary and multiclass differ)."""
    name = spec.gates.primary_metric or DEFAULT_PRIMARY_METRIC[spec.task]
    known = spec_metric_names(spec)
    if name not in known:
        raise ValueError(
            f"gates.primary_metric: {name!r} is not a {metric_kind(spec)} metric; "
            f"expected one of {list(known)}"
        )
    return name


def metric_kind(spec: DatasetSpec) -> str:
    """``regression``, ``binary classification`` or ``multiclass classification`` (for messages)."""
    if spec.task != "classification":
        return spec.task
    return f"{'multiclass' if spec.multiclass else 'binary'} classification"


def metric_range_problem(metric: str, value: float) -> str | None:
    """Why ``value`` cannot be a threshold on ``metric`` (outside ``METRIC_RANGES``), or None."""
    lo, hi = METRIC_RANGES.get(metric, (None, None))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        shown = f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"
        return (
            f"{value:g} is outside the range of {metric} {shown}: the threshold could never be met"
            " or always is"
        )
    return None
