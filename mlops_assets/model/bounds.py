"""Bounds the data sets on a model: the range a regression target can take, and the first partition
a training window may start at.

Pure (numpy and the spec only), so scoring, evaluation and the ``training_set`` asset all call the
same rules. ``clip_predictions`` is applied wherever predictions are *used* (metrics, score rows,
the drift profile); the integrity gate compares raw model output, so the stored artifact is judged
on what it computes.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.model.datasets import feature_window

if TYPE_CHECKING:
    import numpy as np


def target_bounds(spec: DatasetSpec) -> tuple[float | None, float | None]:
    """(target_min, target_max) of a regression spec; (None, None) for other tasks."""
    if spec.task != "regression":
        return None, None
    return spec.target_min, spec.target_max


def clip_predictions(scores: Any, spec: DatasetSpec) -> np.ndarray:
    """Regression predictions clipped to ``[target_min, target_max]`` (either may be absent); other
    tasks and unbounded targets come back unchanged (as float64)."""
    import numpy as np

    arr = np.asarray(scores, dtype=np.float64)
    lo, hi = target_bounds(spec)
    if lo is None and hi is None:
        return arr
    return np.clip(arr, -np.inf if lo is None else lo, np.inf if hi is None else hi)


def clip_report(scores: Any, spec: DatasetSpec) -> dict[str, float | int]:
    """How many raw predictions fall outside the target bounds: ``clipped_below``, ``clipped_above``
    and ``clip_rate`` (their share of all rows; 0.0 without bounds or rows)."""
    import numpy as np

    arr = np.asarray(scores, dtype=np.float64)
    lo, hi = target_bounds(spec)
    below = int((arr < lo).sum()) if lo is not None else 0
    above = int((arr > hi).sum()) if hi is not None else 0
    return {
        "clipped_below": below,
        "clipped_above": above,
        "clip_rate": (below + above) / arr.size if arr.size else 0.0,
    }


def partial_window_problem(spec: DatasetSpec, cutoff: dt.date) -> str | None:
    """Why ``training_set[cutoff]`` may not be built: its window starts before ``partition_start``
    (the model would train on a partial window), unless ``training.allow_partial_window``; None
    when it may."""
    first, _ = feature_window(spec, cutoff)
    if first >= spec.partition_start or spec.training.allow_partial_window:
        return None
    earliest = spec.partition_start + dt.timedelta(days=spec.training.window_days)
    return (
        f"training_set[{cutoff}]: its {spec.training.window_days}-day training window starts"
        f" {first}, before the first partition (partition_start {spec.partition_start}), so the"
        f" model would train on a partial window: use a cutoff on or after {earliest}, or set"
        " training.allow_partial_window: true in the spec"
    )
