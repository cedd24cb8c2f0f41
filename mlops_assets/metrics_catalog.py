"""The metrics the platform knows: their names per task, their direction, the primary metric.

Pure facts (no scikit-learn), shared by the gates, the performance guard and the spec's
validation; ``ml.evaluation`` computes the values.
"""

from __future__ import annotations

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
