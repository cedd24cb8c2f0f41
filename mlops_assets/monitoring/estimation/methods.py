"""Performance before the labels: CBPE for classification, DLE for regression (NannyML's
definitions).

Fitted on the candidate's time holdout at training time (``fit_method``: the estimation method
of the task, not a scikit-learn estimator), stored and verified with the model version
(``monitoring.estimation.bundle``), applied to a scored day before any of its labels exist
(``estimate``). Plain numpy (scikit-learn only inside the fitting functions); no Dagster, no MLflow.

**CBPE** (confidence-based performance estimation, ``fit_cbpe``): calibrated probabilities make
each label a Bernoulli draw, so the expected confusion matrix and curves are sums of them
(``binary_estimates``, ``multiclass_estimates``). **DLE** (direct loss estimation, ``fit_dle``):
regressors trained on the holdout predict each row's absolute and squared error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BINARY_THRESHOLD = 0.5  # the score rows' label: positive at probability >= 0.5
CBPE, DLE = "cbpe", "dle"
# the most frequent holdout categories get a code each; the rest are unknown (NaN)
MAX_CATEGORIES = 250
DLE_PARAMS = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20}
METHOD_TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
"""The only types a stored estimation method may need beyond skops' defaults (DLE's regressors);
CBPE's calibrators are plain arrays."""


# ---- fitting (training time) ---------------------------------------------------------------------
def _isotonic(scores: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True).fit(
        scores, target
    )
    return {
        "x": np.asarray(iso.X_thresholds_, np.float64),
        "y": np.asarray(iso.y_thresholds_, np.float64),
    }


def fit_cbpe(y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Calibrators from the holdout: ``y`` class codes, ``scores`` (n,) or (n, k).

    Per class an isotonic calibrator maps the model's score to the probability that the row is
    of that class (fitted on the holdout's scores and labels, as NannyML's
    ``IsotonicCalibrator``); multiclass: one per class, one vs rest (``calibrated`` renormalises
    the rows)."""
    import numpy as np

    s, y = np.asarray(scores, np.float64), np.asarray(y).astype(np.int64)
    columns = [s] if s.ndim == 1 else [s[:, j] for j in range(s.shape[1])]
    targets = [y == 1] if s.ndim == 1 else [(y == j) for j in range(s.shape[1])]
    return {
        "kind": CBPE,
        "classes": 2 if s.ndim == 1 else s.shape[1],
        "calibrators": [
            _isotonic(c, t.astype(np.float64)) for c, t in zip(columns, targets, strict=True)
        ],
    }


def dle_encoding(X: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """What DLE's regressors see: numeric columns as they are, categoricals as codes of the
    holdout's categories (the most frequent ``MAX_CATEGORIES``)."""
    cats = {
        c: X[c].astype(str).value_counts().index[:MAX_CATEGORIES].sort_values().tolist()
        for c in categorical
    }
    return {"numeric": list(numeric), "categorical": cats}


def dle_matrix(X: pd.DataFrame, prediction: np.ndarray, encoding: dict[str, Any]) -> np.ndarray:
    """Numeric columns, categorical codes (unknown: NaN), then the prediction."""
    import numpy as np

    parts = [X[c].to_numpy(np.float64) for c in encoding["numeric"]]
    for c, cats in encoding["categorical"].items():
        index = {v: float(i) for i, v in enumerate(cats)}
        parts.append(np.array([index.get(v, np.nan) for v in X[c].astype(str)], np.float64))
    parts.append(np.asarray(prediction, np.float64))
    return np.column_stack(parts)


def fit_dle(
    X: pd.DataFrame, y: np.ndarray, prediction: np.ndarray, encoding: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Two gradient-boosting regressors trained on the holdout to predict each row's absolute
    and squared error from the features and the prediction (``estimate``: ``mae`` = mean
    predicted |error|, ``rmse`` = sqrt(mean predicted error²))."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

    # categorical codes as plain numbers: a native categorical mask would need
    # functools.partial trusted by skops
    M = dle_matrix(X, prediction, encoding)
    error = np.asarray(y, np.float64) - np.asarray(prediction, np.float64)
    models = {}
    for name, target in (("abs", np.abs(error)), ("sq", error**2)):
        model = HistGradientBoostingRegressor(**DLE_PARAMS, random_state=seed)
        models[name] = model.fit(M, target)
    return {"kind": DLE, "encoding": encoding, "models": models}


def fit_method(
    task: str,
    y: np.ndarray,
    scores: np.ndarray,
    X: pd.DataFrame | None = None,
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The estimation method for ``task`` (CBPE | DLE) fitted on the holdout: labels ``y``, the
    model's (served, i.e. clipped) ``scores``, and for regression its model frame ``X`` with the
    feature lists."""
    if task == "classification":
        return fit_cbpe(y, scores)
    encoding = dle_encoding(X, numeric or [], categorical or [])
    return fit_dle(X, y, scores, encoding, seed)


# ---- estimating (a scored day) -------------------------------------------------------------------
def _apply(cal: dict[str, np.ndarray], s: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.clip(np.interp(s, cal["x"], cal["y"]), 0.0, 1.0)


def calibrated(method: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities (CBPE ``method``): (n,) of the positive class, or (n, k) rows
    summing to 1."""
    import numpy as np

    s = np.asarray(scores, np.float64)
    if s.ndim == 1:
        return _apply(method["calibrators"][0], s)
    P = np.stack([_apply(c, s[:, j]) for j, c in enumerate(method["calibrators"])], axis=1)
    total = P.sum(axis=1, keepdims=True)
    return np.where(total > 0, P / np.where(total > 0, total, 1.0), 1.0 / P.shape[1])


def _steps(p: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected (TP, FP) counts as the threshold walks down the score, one step per distinct
    score."""
    import numpy as np

    order = np.argsort(-s, kind="stable")
    s_sorted, p_sorted = s[order], p[order]
    last = np.r_[np.diff(s_sorted) != 0, True]
    return np.cumsum(p_sorted)[last], np.cumsum(1.0 - p_sorted)[last]


def expected_roc_auc(p: np.ndarray, s: np.ndarray) -> float | None:
    """The area under the expected ROC curve (None when no positive or no negative is expected)."""
    import numpy as np

    if len(p) == 0:
        return None
    tps, fps = _steps(p, s)
    if tps[-1] <= 0 or fps[-1] <= 0:
        return None
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def expected_pr_auc(p: np.ndarray, s: np.ndarray) -> float | None:
    """Average precision of the expected precision-recall steps (None when no positive is
    expected)."""
    import numpy as np

    if len(p) == 0:
        return None
    tps, fps = _steps(p, s)
    if tps[-1] <= 0:
        return None
    recall, precision = np.r_[0.0, tps / tps[-1]], tps / np.maximum(tps + fps, 1e-12)
    return float(np.sum(np.diff(recall) * precision))


def _div(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def binary_estimates(p: np.ndarray, s: np.ndarray) -> dict[str, float | None]:
    """Expected metrics from calibrated probabilities ``p`` and scores ``s``. Predicted label
    ``s >= 0.5`` (the score rows' label): TP = Σ p·ŷ, FP = Σ (1-p)·ŷ, FN = Σ p·(1-ŷ),
    TN = Σ (1-p)·(1-ŷ) → ``accuracy``, ``precision``, ``recall``, ``f1``; ``roc_auc``: the ROC
    curve of the expected counts as the threshold walks down the score (NannyML
    ``estimate_roc_auc``: rows ordered by the raw score, ties as one step); ``pr_auc``: the
    average precision of the same curve; ``brier``: its expectation Σ p(1-s)² + (1-p)s² / n."""
    import numpy as np

    yhat = (s >= BINARY_THRESHOLD).astype(np.float64)
    tp, fp = float(np.sum(p * yhat)), float(np.sum((1 - p) * yhat))
    fn, tn = float(np.sum(p * (1 - yhat))), float(np.sum((1 - p) * (1 - yhat)))
    return {
        "roc_auc": expected_roc_auc(p, s),
        "pr_auc": expected_pr_auc(p, s),
        "brier": float(np.mean(p * (1 - s) ** 2 + (1 - p) * s**2)),
        "accuracy": _div(tp + tn, len(p)),
        "precision": _div(tp, tp + fp),
        "recall": _div(tp, tp + fn),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
    }


def expected_confusion(P: np.ndarray, s: np.ndarray) -> np.ndarray:
    """CM[true class j, predicted class k] = Σ over the rows predicted k of p_j."""
    import numpy as np

    k, predicted = P.shape[1], np.argmax(s, axis=1)
    return np.stack([P[predicted == c].sum(axis=0) for c in range(k)], axis=1)


def multiclass_estimates(P: np.ndarray, s: np.ndarray) -> dict[str, float | None]:
    """Expected metrics from calibrated probabilities ``P`` (rows sum to 1) and scores ``s``:
    predicted class = argmax of the scores; ``accuracy`` (trace / n) and ``macro_f1`` of
    ``expected_confusion``; ``roc_auc`` macro one-vs-rest of the per-class estimates; ``brier``
    half the expected multiclass Brier score (the catalogue's definition)."""
    import numpy as np

    cm = expected_confusion(P, s)
    diag, true, pred = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    used = (true + pred) > 1e-9
    f1 = np.where(used, 2 * diag / np.where(used, true + pred, 1.0), 0.0)
    aucs = [
        a for a in (expected_roc_auc(P[:, j], s[:, j]) for j in range(P.shape[1])) if a is not None
    ]
    return {
        "roc_auc": float(np.mean(aucs)) if aucs else None,
        "accuracy": _div(float(diag.sum()), float(cm.sum())),
        "macro_f1": float(np.mean(f1[used])) if used.any() else None,
        "brier": float(np.mean(np.sum(P * (1 - s) ** 2 + (1 - P) * s**2, axis=1)) / 2),
    }


def estimate(
    method: dict[str, Any], scores: np.ndarray, X: pd.DataFrame | None = None
) -> dict[str, float | None]:
    """Estimated metrics of one sample by a fitted estimation ``method``: ``scores`` as the score
    rows hold them (``scoring.scored_values``); ``X`` the rows' model frame (DLE only)."""
    import numpy as np

    s = np.asarray(scores, np.float64)
    if len(s) == 0:
        return {}
    if method["kind"] == CBPE:
        return (
            binary_estimates(calibrated(method, s), s)
            if s.ndim == 1
            else multiclass_estimates(calibrated(method, s), s)
        )
    M = dle_matrix(X, s, method["encoding"])
    abs_err = np.clip(method["models"]["abs"].predict(M), 0.0, None)
    sq_err = np.clip(method["models"]["sq"].predict(M), 0.0, None)
    return {"mae": float(abs_err.mean()), "rmse": float(np.sqrt(sq_err.mean()))}
