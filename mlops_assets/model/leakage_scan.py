"""Leakage suspects: features that carry the target (used by ``spec_infer``; pure numpy + polars).

A column is a suspect when it alone predicts the target almost perfectly — its own value as a score
and its binned (or categorical) target means, judged by R² (regression) or ROC AUC one-vs-rest (the
worst class) — at the leakage gate's own tripwire (``gates.leakage.max_feature_skill``'s default in
the schema).
A few numeric columns are suspects together when the target is a linear function of them: the
least-squares fit of every pair (and triple, for up to 15 columns) reaches R² ``LINEAR_SKILL`` (or,
for a binary class, ROC AUC ``LINEAR_CLASS_SKILL``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import polars as pl

from mlops_assets.core.spec import Gates

SAMPLE_ROWS = 20_000  # rows the single-column measures look at (a seeded sample of larger frames)
COMBINATION_ROWS = 5_000
LINEAR_SKILL = (
    0.999  # R² (regression) of a few columns' least-squares fit: the target is computed from them
)
LINEAR_CLASS_SKILL = 0.995  # ROC AUC of that fit for a binary classification target


def _leakage_default(name: str, fallback: float) -> float:
    """The default of ``gates.leakage.<name>`` in the schema (the leakage gate's own tripwire), so a
    column the inference keeps is one the gate would keep too."""
    leakage = Gates.model_fields.get("leakage")
    model = getattr(leakage, "annotation", None)
    value = getattr(model, "model_fields", {}).get(name)
    default = getattr(value, "default", None)
    return float(default) if isinstance(default, int | float) else fallback


SINGLE_SKILL = _leakage_default("max_feature_skill", 0.99)


# ---- leakage
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leak:
    columns: tuple[str, ...]
    measure: str  # "roc_auc" | "r2"
    value: float
    why: str


def average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Mann–Whitney ROC AUC of ``score`` for the boolean ``positive``, direction-free (max(auc, 1 -
    auc)).
    """
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return 0.5
    auc = (average_ranks(score)[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    return max(auc, 1 - auc)


def r2(pred: np.ndarray, y: np.ndarray) -> float:
    ss = float(((y - y.mean()) ** 2).sum())
    return 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 0.0


def _codes(values: pl.Series, bins: int = 20) -> np.ndarray:
    """Group codes of a column: its categories, or (numeric, many values) quantile bins."""
    if values.dtype.is_numeric() and values.n_unique() > bins:
        x = values.cast(pl.Float64).to_numpy()
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
        return np.searchsorted(edges, x, side="right")
    return np.unique(values.cast(pl.String).to_numpy().astype(str), return_inverse=True)[1]


def _group_means(codes: np.ndarray, y: np.ndarray) -> np.ndarray:
    sums, counts = np.bincount(codes, weights=y), np.bincount(codes)
    return (sums / np.maximum(counts, 1))[codes]


def _single_skill(
    values: pl.Series, targets: list[np.ndarray], regression: bool
) -> tuple[str, float]:
    """How well one column alone predicts the target: the best of its own value as a score (numeric)
    and its binned/categorical target means, as R² (regression) or one-vs-rest ROC AUC (the worst
    class)."""
    keep = values.is_not_null().to_numpy()
    if values.dtype.is_float():
        keep &= ~np.isnan(values.fill_null(0.0).to_numpy())
    values = values.filter(pl.Series(keep))
    if values.len() < 30:
        return ("r2" if regression else "roc_auc"), 0.0
    codes, x = (
        _codes(values),
        values.cast(pl.Float64).to_numpy() if values.dtype.is_numeric() else None,
    )
    if regression:
        y = targets[0][keep]
        best = r2(_group_means(codes, y), y)
        if x is not None and x.std() > 0:
            best = max(best, float(np.corrcoef(x, y)[0, 1] ** 2))
        return "r2", best
    skills = []
    for positive in targets:
        p = positive[keep]
        skill = roc_auc(_group_means(codes, p.astype(float)), p)
        skills.append(max(skill, roc_auc(x, p)) if x is not None else skill)
    return "roc_auc", min(skills)


def _fit_skill(X: np.ndarray, y: np.ndarray, regression: bool) -> float:
    A = np.column_stack([np.ones(len(X)), X])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    pred = A @ coef
    return r2(pred, y) if regression else roc_auc(pred, y.astype(bool))


def _combinations(
    frame: pl.DataFrame, numeric: list[str], y: np.ndarray, regression: bool, max_size: int
) -> list[Leak]:
    """Pairs (and triples, for up to 15 columns) of numeric columns the target is a linear function
    of.
    """
    threshold, measure = (LINEAR_SKILL, "r2") if regression else (LINEAR_CLASS_SKILL, "roc_auc")
    found: list[Leak] = []
    for size in range(2, max_size + 1):
        if size == 3 and len(numeric) > 15:
            break
        for combo in itertools.combinations(numeric, size):
            if any(set(combo) >= set(leak.columns) for leak in found):
                continue
            sub = frame.select(combo).cast(pl.Float64)
            mask = np.all(np.isfinite(sub.fill_null(np.nan).to_numpy()), axis=1)
            if mask.sum() < 30:
                continue
            skill = _fit_skill(sub.fill_null(0.0).to_numpy()[mask], y[mask], regression)
            if skill >= threshold:
                found.append(
                    Leak(
                        combo,
                        measure,
                        skill,
                        f"the target is a linear function of {' + '.join(combo)} (least-squares fit"
                        f" {measure} {skill:.4f}): it may be computed from them",
                    )
                )
    return found


def _target_arrays(target: pl.Series, classes: list | None) -> list[np.ndarray]:
    if classes is None:
        return [target.cast(pl.Float64).to_numpy()]
    labels = target.cast(pl.String).to_numpy()
    shown = [str(c) for c in classes]
    return [labels == c for c in (shown[1:] if len(shown) == 2 else shown)]


def leakage_suspects(
    frame: pl.DataFrame,
    target: str,
    features: list[str],
    *,
    classes: list | None,
    seed: int = 0,
    max_combination: int = 3,
) -> list[Leak]:
    """Features that carry the target: alone (skill ≥ ``SINGLE_SKILL``), or a few numeric ones
    together as a linear function of it. ``classes`` None: a regression target; else its labels."""
    rows = frame.filter(pl.col(target).is_not_null())
    if rows.height > SAMPLE_ROWS:
        rows = rows.sample(SAMPLE_ROWS, seed=seed)
    regression, targets = classes is None, _target_arrays(rows[target], classes)
    found = []
    for col in features:
        measure, skill = _single_skill(rows[col], targets, regression)
        if skill >= SINGLE_SKILL:
            found.append(
                Leak(
                    (col,),
                    measure,
                    skill,
                    f"alone it predicts {target} almost perfectly ({measure} {skill:.3f} on"
                    f" {rows.height} sample rows; the leakage gate's tripwire is {SINGLE_SKILL:g}):"
                    " is it known before the outcome?",
                )
            )
    flagged = {c for leak in found for c in leak.columns}
    numeric = [c for c in features if c not in flagged and rows[c].dtype.is_numeric()]
    small = rows.head(COMBINATION_ROWS)
    y = _target_arrays(small[target], classes)[0]
    if not regression and len(classes or []) > 2:
        return found  # a linear function of a multiclass label is not meaningful
    return found + _combinations(small, numeric, y.astype(float), regression, max_combination)
