"""A candidate's life on its training set: fit on the train split, judge on the time holdout.

``train_candidate`` fits the spec's pipeline and returns everything the registry records
with it (scores on the holdout for the integrity gate, train metrics, the drift
reference profile). ``evaluate_candidate`` scores candidate, champion and the naive baseline on
the same holdout rows, computes metrics, slices, the holdout's evidence (rows per class) and the
per-feature skill the leakage gate reads, and judges every gate. Regression predictions are clipped
to the spec's target bounds wherever they are used (``model.bounds``); the scores recorded for the
integrity gate stay the model's raw output. No Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.metrics import r2_score, roc_auc_score

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.model import training as T
from mlops_assets.model.bounds import clip_predictions, clip_report
from mlops_assets.model.datasets import EVENT_DAY, split_rows
from mlops_assets.model.evaluation import slice_metrics, task_metrics
from mlops_assets.model.gates import GateResult, evaluate_gates, skill_metric


@dataclass(frozen=True)
class TrainedCandidate:
    pipeline: Any
    train: pl.DataFrame
    holdout: pl.DataFrame
    X_train: pd.DataFrame
    holdout_scores: np.ndarray
    train_metrics: dict[str, Any]
    profile: dict[str, Any]

    @property
    def partition_range(self) -> tuple[str, str]:
        return self.train[EVENT_DAY].min(), self.holdout[EVENT_DAY].max()

    def holdout_record(self, id_col: str) -> dict[str, list]:
        """What the integrity gate re-scores later: holdout ids and the in-memory model's scores."""
        return {"ids": self.holdout[id_col].to_list(), "scores": self.holdout_scores.tolist()}


def train_candidate(ts: pl.DataFrame, spec: DatasetSpec) -> TrainedCandidate:
    train, holdout = split_rows(ts, spec)
    X_train = T.to_model_frame(train, spec)
    pipeline = T.fit(spec, X_train, train[spec.target].to_numpy())
    train_scores = clip_predictions(T.predict_scores(pipeline, X_train, spec.task), spec)
    holdout_scores = T.predict_scores(
        pipeline, T.to_model_frame(holdout, spec), spec.task
    )  # raw: integrity
    return TrainedCandidate(
        pipeline=pipeline,
        train=train,
        holdout=holdout,
        X_train=X_train,
        holdout_scores=holdout_scores,
        train_metrics=task_metrics(spec.task, train[spec.target].to_numpy(), train_scores),
        profile=T.reference_profile(train, spec, prediction=train_scores),
    )


def candidate_params(spec: DatasetSpec, cutoff: str, train_rows: int, holdout_rows: int) -> dict:
    """The MLflow run parameters of a candidate: the estimator, its params, the cutoff, the split
    sizes and the seed."""
    return {
        "estimator": spec.model.estimator,
        **spec.model.params,
        "cutoff": cutoff,
        "train_rows": train_rows,
        "holdout_rows": holdout_rows,
        "seed": spec.training.seed,
    }


def recorded_scores_for(
    recorded: dict[str, list], holdout: pl.DataFrame, id_col: str
) -> np.ndarray:
    """The training-time holdout scores, aligned to ``holdout``'s rows by id (NaN where missing);
    (n,) for binary and regression, (n, k) for multiclass (a row of class probabilities per id)."""
    position = {i: n for n, i in enumerate(recorded["ids"])}
    scores = np.asarray(recorded["scores"], dtype=np.float64)
    out = np.full((holdout.height, *scores.shape[1:]), np.nan)
    for row, i in enumerate(holdout[id_col].to_list()):
        if i in position:
            out[row] = scores[position[i]]
    return out


@dataclass(frozen=True)
class Evaluation:
    X: pd.DataFrame
    y: np.ndarray
    candidate_scores: np.ndarray
    candidate_metrics: dict[str, Any]
    champion_scores: np.ndarray | None
    champion_metrics: dict[str, Any] | None
    slices: list[dict[str, Any]]
    gates: list[GateResult]
    baseline_metrics: dict[str, Any]
    evidence: dict[str, Any]
    leakage: dict[str, Any] | None
    clip: dict[str, float | int]


def evaluate_candidate(
    holdout: pl.DataFrame,
    spec: DatasetSpec,
    *,
    train: pl.DataFrame,
    candidate: Any | None,
    recorded: np.ndarray,
    integrity: dict[str, Any],
    champion: Any | None,
) -> Evaluation:
    """Judge a candidate on ``holdout``. ``candidate``: the loaded model, or None when it failed
    to load (then the recorded training-time scores stand in, and the integrity gate fails);
    ``champion``: the current champion's model, scored on the same rows, or None; ``train``: the
    training split, which fits the naive baseline and the one-feature models of the leakage gate."""
    X, y = T.to_model_frame(holdout, spec), holdout[spec.target].to_numpy()
    X_train, y_train = T.to_model_frame(train, spec), train[spec.target].to_numpy()
    raw = (
        T.predict_scores(candidate, X, spec.task) if candidate is not None else np.asarray(recorded)
    )
    scores = clip_predictions(raw, spec)
    metrics = task_metrics(spec.task, y, scores)
    champion_scores = (
        clip_predictions(T.predict_scores(champion, X, spec.task), spec)
        if champion is not None
        else None
    )
    champion_metrics = (
        task_metrics(spec.task, y, champion_scores) if champion_scores is not None else None
    )
    baseline = T.fit(spec, X_train, y_train, estimator="baseline")
    baseline_metrics = task_metrics(
        spec.task, y, clip_predictions(T.predict_scores(baseline, X, spec.task), spec)
    )
    slices = slice_metrics(
        spec.task, holdout, y, scores, spec.categorical_features, spec.gates.min_slice_rows
    )
    evidence = holdout_evidence(y, y_train, spec)
    leakage = (
        leakage_evidence(spec, X_train, y_train, X, y, candidate)
        if spec.gates.leakage.enabled
        else None
    )
    gates = evaluate_gates(
        spec,
        metrics,
        champion_metrics,
        slices,
        integrity,
        baseline=baseline_metrics,
        leakage=leakage,
        evidence=evidence,
    )
    return Evaluation(
        X,
        y,
        scores,
        metrics,
        champion_scores,
        champion_metrics,
        slices,
        gates,
        baseline_metrics,
        evidence,
        leakage,
        clip_report(raw, spec),
    )


def _label(value: Any) -> str:
    """A class label as text: ``True``/``1``/``1.0`` are all ``"1"``."""
    if isinstance(value, (bool, np.bool_, int, np.integer)) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    ):
        return str(int(value))
    return str(value)


def holdout_evidence(y: np.ndarray, y_train: np.ndarray, spec: DatasetSpec) -> dict[str, Any]:
    """The holdout's ``rows`` and, for classification, ``classes`` {label: holdout rows} over every
    class of train and holdout (a binary task always has both "0" and "1", so a holdout without
    positives says 0 positives)."""
    if spec.task == "regression":
        return {"rows": len(y), "classes": None}
    holdout = [_label(v) for v in y]
    # every declared class (codes 0..k-1), so a class absent from the holdout counts 0 rows
    labels = (
        {_label(c) for c in range(len(spec.target_classes))}
        | {_label(v) for v in np.unique(y_train)}
        | set(holdout)
    )
    counts = dict.fromkeys(sorted(labels), 0)
    for label in holdout:
        counts[label] += 1
    return {"rows": len(y), "classes": counts}


def scorer(spec: DatasetSpec) -> Callable[[Any, pd.DataFrame], np.ndarray]:
    """``model, X -> scores`` for the spec's task (what the registry re-scores with): the raw model
    output, compared with the raw scores recorded at training time."""
    return lambda model, X: T.predict_scores(model, X, spec.task)


# ---- per-feature skill: the leakage gate's evidence
# -----------------------------------------------------
ONE_FEATURE_BINS = 32  # quantile bins of a numeric feature's one-feature model
SMOOTHING = 10.0  # rows of prior weight in each bin's mean (a rare bin leans on the overall mean)
PERMUTATION_ROWS = 10_000  # holdout rows sampled for permutation importance


def _bins(
    train: np.ndarray, hold: np.ndarray, categorical: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """Bin ids of a one-feature model (train, holdout, bin count): a numeric feature by the train
    split's quantiles, a categorical one by value; missing values and unseen categories share the
    last bin."""
    if categorical:
        cats, tr = np.unique(train.astype(str), return_inverse=True)
        index = {c: i for i, c in enumerate(cats)}
        return (
            tr,
            np.array([index.get(v, len(cats)) for v in hold.astype(str)], dtype=np.int64),
            len(cats) + 1,
        )
    tr_f, ho_f = train.astype(np.float64), hold.astype(np.float64)
    finite = np.isfinite(tr_f)
    qs = np.linspace(0, 1, ONE_FEATURE_BINS + 1)[1:-1]
    edges = np.unique(np.quantile(tr_f[finite], qs)) if finite.any() else np.array([])

    def ids(v: np.ndarray) -> np.ndarray:
        out = np.searchsorted(edges, np.nan_to_num(v, nan=0.0), side="right")
        out[~np.isfinite(v)] = len(edges) + 1
        return out

    return ids(tr_f), ids(ho_f), len(edges) + 2


def _targets(y: np.ndarray, task: str, classes: list[str]) -> np.ndarray:
    """Rows x outputs: the target (regression) or a one-hot of the class labels."""
    if task == "regression":
        return y.astype(np.float64)[:, None]
    labels = np.array([_label(v) for v in y])
    return np.stack([(labels == c).astype(np.float64) for c in classes], axis=1)


def _within_bin_slopes(
    train: np.ndarray,
    tr_bins: np.ndarray,
    hold: np.ndarray,
    ho_bins: np.ndarray,
    k: int,
    Y: np.ndarray,
) -> np.ndarray:
    """holdout rows x outputs: the least-squares slope of each output on the feature inside its bin
    (shrunk towards 0 for small bins) times the holdout value's distance from the bin's mean, the
    value clipped to the bin's train range: a one-feature model that is piecewise linear, so a
    feature equal to (or a smooth function of) the target scores near perfect, not just near its
    bins' resolution."""
    ok = np.isfinite(train)
    b, x, Yb = tr_bins[ok], train[ok], Y[ok]
    n = np.bincount(b, minlength=k).astype(np.float64)
    safe = np.maximum(n, 1.0)
    mx = np.bincount(b, weights=x, minlength=k) / safe
    var = np.bincount(b, weights=x * x, minlength=k) / safe - mx**2
    my = (
        np.stack([np.bincount(b, weights=Yb[:, j], minlength=k) for j in range(Y.shape[1])], axis=1)
        / safe[:, None]
    )
    cov = (
        np.stack(
            [np.bincount(b, weights=x * Yb[:, j], minlength=k) for j in range(Y.shape[1])], axis=1
        )
        / safe[:, None]
    )
    cov -= mx[:, None] * my
    usable = (var > 1e-12) & (n >= 3)
    slope = (
        np.where(usable[:, None], cov / np.where(usable, var, 1.0)[:, None], 0.0)
        * (n / (n + SMOOTHING))[:, None]
    )
    lo, hi = np.full(k, np.inf), np.full(k, -np.inf)
    np.minimum.at(lo, b, x)
    np.maximum.at(hi, b, x)
    held = np.isfinite(hold) & np.isfinite(lo[ho_bins])
    dx = np.where(held, np.clip(np.nan_to_num(hold), lo[ho_bins], hi[ho_bins]) - mx[ho_bins], 0.0)
    return slope[ho_bins] * dx[:, None]


def one_feature_skill(
    train: np.ndarray,
    y_train: np.ndarray,
    hold: np.ndarray,
    y_hold: np.ndarray,
    task: str,
    categorical: bool,
) -> float | None:
    """Holdout skill of a model that sees one feature, fit on train: the smoothed mean target per
    bin (a category, or a quantile bin of a numeric feature, linear within the bin). r2 for
    regression, roc_auc (one vs rest, macro, for more than two classes) for classification; None
    when the holdout cannot score it (constant target, one class)."""
    classes = [] if task == "regression" else sorted({_label(v) for v in np.unique(y_train)})
    if task != "regression" and len(classes) < 2:
        return None
    tr_bins, ho_bins, k = _bins(train, hold, categorical)
    Y = _targets(y_train, task, classes)
    counts = np.bincount(tr_bins, minlength=k)[:, None]
    sums = np.stack(
        [np.bincount(tr_bins, weights=Y[:, j], minlength=k) for j in range(Y.shape[1])], axis=1
    )
    pred = ((sums + SMOOTHING * Y.mean(axis=0)) / (counts + SMOOTHING))[ho_bins]
    if not categorical:
        pred = pred + _within_bin_slopes(
            train.astype(np.float64), tr_bins, hold.astype(np.float64), ho_bins, k, Y
        )
    try:
        if task == "regression":
            return float(r2_score(y_hold, pred[:, 0])) if np.ptp(y_hold) > 0 else None
        held, proba = np.array([_label(v) for v in y_hold]), np.clip(pred, 1e-9, 1.0)
        if not set(classes) <= set(
            held.tolist()
        ):  # a class absent from the holdout: no ranking to judge
            return None
        if len(classes) == 2:
            return float(roc_auc_score(held == classes[1], proba[:, 1]))
        return float(
            roc_auc_score(
                held, proba / proba.sum(axis=1, keepdims=True), multi_class="ovr", labels=classes
            )
        )
    except ValueError:  # a holdout label train never saw
        return None


def permutation_drops(
    model: Any, X: pd.DataFrame, y: np.ndarray, spec: DatasetSpec, metric: str
) -> dict[str, Any]:
    """{feature: how much ``metric`` falls on the holdout when that feature's values are shuffled}
    (seeded by ``training.seed``; at most ``PERMUTATION_ROWS`` rows). None where undefined."""
    rng = np.random.default_rng(spec.training.seed)
    idx = (
        np.sort(rng.choice(len(X), PERMUTATION_ROWS, replace=False))
        if len(X) > PERMUTATION_ROWS
        else np.arange(len(X))
    )
    Xs, ys = X.iloc[idx].reset_index(drop=True), y[idx]

    def skill(frame: pd.DataFrame) -> float | None:
        return task_metrics(
            spec.task, ys, clip_predictions(T.predict_scores(model, frame, spec.task), spec)
        ).get(metric)

    base, out = skill(Xs), {}
    for col in spec.model_features:
        shuffled = Xs.copy()
        shuffled[col] = Xs[col].to_numpy()[rng.permutation(len(Xs))]
        after = skill(shuffled) if base is not None else None
        out[col] = None if after is None else float(base - after)
    return out


def leakage_evidence(
    spec: DatasetSpec,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X: pd.DataFrame,
    y: np.ndarray,
    model: Any | None,
) -> dict[str, Any]:
    """What the leakage gate judges: the skill ``metric`` (``gates.skill_metric``), each feature's
    ``univariate`` skill (``one_feature_skill``, named ``feature_metric``) and, with a loaded model,
    its permutation ``importance`` on the same metric."""
    metric = skill_metric(spec)
    categorical = set(spec.categorical_features)
    univariate = {
        c: one_feature_skill(
            X_train[c].to_numpy(), y_train, X[c].to_numpy(), y, spec.task, c in categorical
        )
        for c in spec.model_features
    }
    importance = (
        permutation_drops(model, X, y, spec, metric)
        if model is not None and metric and len(X)
        else {}
    )
    return {
        "metric": metric,
        "feature_metric": "r2" if spec.task == "regression" else "roc_auc",
        "univariate": univariate,
        "importance": importance,
    }
