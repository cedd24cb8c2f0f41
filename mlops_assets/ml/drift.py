"""Data drift of a partition against the training reference, and the rows of the drift table.

The reference profile is built at training time (``mlops_assets.ml.drift_profile``); the
statistics are Evidently 0.7.23's (``mlops_assets.ml.drift_stats``). This module decides
which statistic scores a feature and when that score means drift:

- ``DRIFT_METHODS`` is the one registry of drift methods. Each ``DriftMethod`` names the
  kinds of column it applies to, the statistic that is its score and its rule (Evidently's):
  distances drift when ``score >= threshold``, KS when ``p <= threshold``, chi-square when
  ``p < threshold``. ``psi_quantile`` is ours (classic PSI on the profile's quantile bins).
  Adding a method is one registry entry (and its statistic in ``drift_stats``).
- ``feature_drift`` scores every feature of the spec and the model's predictions, and
  decides the dataset: drifted when the share of drifted features ``>= drift_share``.
- ``drift_rows`` / ``drift_table`` turn one partition's result into rows of the ``drift``
  Delta table (one per feature, then the prediction and dataset pseudo-features), and
  ``drift_summary`` reads a drift table back as one verdict per partition.

Pure numpy + polars, so it is cheap to import at code-location load; scipy is imported
only inside the statistics that need it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mlops_assets.ml.drift_profile import (
    CATEGORICAL,
    NUMERIC,
    as_category_series,
    build_reference_profile,
    category_counts,
    finite_float,
    float_or_none,
)
from mlops_assets.ml.drift_stats import (
    CATEGORICAL_STATS,
    NUMERIC_STATS,
    categorical_stats,
    numeric_stats,
)
from mlops_assets.vocabulary import DATASET_ROW, PARTITION_COLUMN, PREDICTION_ROW

if TYPE_CHECKING:  # pragma: no cover
    from mlops_assets.spec import DatasetSpec

__all__ = [
    "DRIFT_METHODS",
    "DRIFT_SUMMARY_SCHEMA",
    "DRIFT_TABLE_SCHEMA",
    "DriftMethod",
    "build_reference_profile",  # defined in drift_profile; training imports it from here
    "drift_method",
    "drift_rows",
    "drift_summary",
    "drift_table",
    "feature_drift",
    "method_names",
]

# ---- the method registry --------------------------------------------------------------------

_RULES: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class DriftMethod:
    """A drift method: which kinds of column it scores, with which statistic, by which rule.

    ``statistic`` is the key of the ``drift_stats`` result that is the score; ``rule`` is how
    the score compares to the threshold when the feature has drifted.
    """

    name: str
    kinds: frozenset[str]
    statistic: str
    rule: str

    def __post_init__(self) -> None:
        if self.rule not in _RULES:
            raise ValueError(f"drift method {self.name!r}: rule must be one of {sorted(_RULES)}")
        if not self.kinds <= {NUMERIC, CATEGORICAL}:
            raise ValueError(f"drift method {self.name!r}: unknown kinds {sorted(self.kinds)}")

    def applies(self, kind: str, reference_rows: int, cardinality: int) -> bool:
        """Whether this method may score a ``kind`` column with this reference.

        Only the kind matters today; the reference size and the column's cardinality
        (distinct values or categories) are there to choose methods by them later.
        """
        return kind in self.kinds

    def drifted(self, score: float | None, threshold: float) -> bool:
        """The drift decision; a missing or NaN score never drifts."""
        if score is None or math.isnan(score):
            return False
        return bool(_RULES[self.rule](score, threshold))


def _methods(*entries: DriftMethod) -> dict[str, DriftMethod]:
    return {m.name: m for m in entries}


_BOTH = frozenset({NUMERIC, CATEGORICAL})
DRIFT_METHODS: dict[str, DriftMethod] = _methods(
    DriftMethod("wasserstein", frozenset({NUMERIC}), "wasserstein_norm", ">="),
    DriftMethod("psi", _BOTH, "psi", ">="),
    DriftMethod("psi_quantile", frozenset({NUMERIC}), "psi_quantile", ">="),
    DriftMethod("jensenshannon", _BOTH, "jensenshannon", ">="),
    DriftMethod("ks", frozenset({NUMERIC}), "ks_pvalue", "<="),
    DriftMethod("chisquare", frozenset({CATEGORICAL}), "chisquare_pvalue", "<"),
)
"""Every drift method by name."""


def method_names(kind: str, reference_rows: int = 0, cardinality: int = 0) -> list[str]:
    """Sorted names of the methods that apply to a ``kind`` column with this reference."""
    return sorted(
        name for name, m in DRIFT_METHODS.items() if m.applies(kind, reference_rows, cardinality)
    )


def drift_method(
    name: str, kind: str, reference_rows: int = 0, cardinality: int = 0
) -> DriftMethod:
    """The registered method ``name`` for a ``kind`` column; ValueError naming the valid ones."""
    method = DRIFT_METHODS.get(name)
    if method is None or not method.applies(kind, reference_rows, cardinality):
        valid = method_names(kind, reference_rows, cardinality)
        raise ValueError(f"unknown {kind} drift method {name!r}; choose from {valid}")
    return method


# ---- drift of one feature -------------------------------------------------------------------


def _missing_profile(what: str) -> ValueError:
    return ValueError(
        f"reference profile has no {what}: build it with "
        "mlops_assets.ml.drift_profile.build_reference_profile"
    )


def _decide(out: dict, method: DriftMethod, status: str, threshold: float) -> dict:
    score = out[method.statistic]
    out.update(
        status=status,
        method=method.name,
        score=score,
        threshold=threshold,
        drifted=method.drifted(score, threshold),
    )
    return out


def _numeric_feature(profile: dict, values: Any, method_name: str, threshold: float) -> dict:
    method = drift_method(
        method_name, NUMERIC, profile.get("count", 0), profile.get("distinct", 0)
    )
    if "sample" not in profile:
        raise _missing_profile("'sample'")
    cur, nulls = finite_float(values)
    out: dict[str, Any] = {
        "type": NUMERIC,
        "rows": int(cur.size),
        "nulls": nulls,
        "reference_rows": profile["count"],
        "reference_sample_rows": len(profile["sample"]),
        "mean": float_or_none(cur.mean()) if cur.size else None,
        "std": float_or_none(cur.std()) if cur.size else None,
        "reference_mean": profile["mean"],
        "reference_std": profile["std"],
    }
    stats: dict[str, Any] = dict.fromkeys(NUMERIC_STATS)
    if not profile["sample"]:
        status = "no_reference"
    elif cur.size == 0:
        status = "empty_current"
    else:
        status = "ok"
        stats = numeric_stats(
            np.asarray(profile["sample"], dtype=np.float64),
            cur,
            np.asarray(profile["bin_edges"], dtype=np.float64),
            np.asarray(profile["bin_proportions"], dtype=np.float64),
            reference_std=profile["std"],
        )
    out.update(stats)
    return _decide(out, method, status, threshold)


def _categorical_feature(profile: dict, values: Any, method_name: str, threshold: float) -> dict:
    method = drift_method(
        method_name, CATEGORICAL, profile.get("count", 0), len(profile.get("counts", {}))
    )
    if "counts" not in profile:
        raise _missing_profile("category 'counts'")
    s = as_category_series(values)
    nulls = int(s.null_count())
    cur_counts = category_counts(s)
    n = sum(cur_counts.values())
    out: dict[str, Any] = {
        "type": CATEGORICAL,
        "rows": n,
        "nulls": nulls,
        "reference_rows": profile["count"],
    }
    stats: dict[str, Any] = {
        **dict.fromkeys(CATEGORICAL_STATS),
        "unseen_categories": [],
        "missing_categories": [],
    }
    if profile["count"] == 0:
        status = "no_reference"
    elif n == 0:
        status = "empty_current"
    else:
        status = "ok"
        stats = categorical_stats(profile["counts"], cur_counts)
    out.update(stats)
    out["shares"] = {k: c / n for k, c in sorted(cur_counts.items())} if n else {}
    return _decide(out, method, status, threshold)


_FEATURE_DRIFT = {NUMERIC: _numeric_feature, CATEGORICAL: _categorical_feature}


# ---- drift of a partition -------------------------------------------------------------------


def _column(current: pl.DataFrame, name: str) -> pl.Series:
    if name in current.columns:
        return current.get_column(name)
    if current.height == 0:
        return pl.Series(name, [], dtype=pl.Float64)
    raise ValueError(f"current data has no column {name!r} (columns: {current.columns})")


def _features_drift(
    reference_profile: dict,
    current: pl.DataFrame,
    spec: DatasetSpec,
    method: dict[str, str],
    threshold: dict[str, float],
    per_feature_method: dict[str, str],
    per_feature_threshold: dict[str, float],
) -> dict[str, dict]:
    """Per-feature drift; ``method``/``threshold`` are the defaults per kind."""
    columns = (
        (NUMERIC, spec.numeric_features + spec.calendar_features),
        (CATEGORICAL, spec.categorical_features),
    )
    features: dict[str, dict] = {}
    for kind, names in columns:
        profiles = reference_profile.get(kind, {})
        for name in names:
            if name not in profiles:
                raise ValueError(f"{kind} feature {name!r} is not in the reference profile")
            features[name] = _FEATURE_DRIFT[kind](
                profiles[name],
                _column(current, name),
                per_feature_method.get(name, method[kind]),
                per_feature_threshold.get(name, threshold[kind]),
            )
    return features


def _prediction_drift(
    reference_profile: dict,
    current: pl.DataFrame,
    prediction: Any | None,
    method: dict[str, str],
    threshold: dict[str, float],
) -> dict | None:
    """Drift of the predictions (given, or the ``prediction`` column), None without them."""
    ref_pred = reference_profile.get("prediction")
    if ref_pred is None:
        return None
    if prediction is None and "prediction" in current.columns:
        prediction = current.get_column("prediction")
    if prediction is None:
        return None
    kind = NUMERIC if ref_pred["kind"] == NUMERIC else CATEGORICAL
    return _FEATURE_DRIFT[kind](ref_pred, prediction, method[kind], threshold[kind])


def feature_drift(
    reference_profile: dict,
    current: pl.DataFrame | pl.LazyFrame,
    spec: DatasetSpec,
    *,
    prediction: Any | None = None,
    numeric_method: str = "wasserstein",
    categorical_method: str = "jensenshannon",
    numeric_threshold: float | None = None,
    categorical_threshold: float | None = None,
    per_feature_method: dict[str, str] | None = None,
    per_feature_threshold: dict[str, float] | None = None,
) -> dict:
    """Drift of ``current`` against the reference profile, per feature and for the dataset.

    Numeric features are the spec's numeric + calendar features; categorical ones its
    categorical features. Defaults follow Evidently's choice for > 1000 reference rows:
    normalised Wasserstein for numeric, Jensen–Shannon for categorical, with thresholds
    ``spec.drift.numeric_threshold`` / ``categorical_threshold`` (overridable; for the
    p-value methods ``ks`` and ``chisquare`` the threshold is a significance level).
    Method names are those of ``DRIFT_METHODS`` that apply to the feature's kind.

    A feature whose current column is empty (after dropping nulls) or whose reference
    column was empty gets ``status`` ``"empty_current"`` / ``"no_reference"``, no scores,
    ``drifted=False``, and does not count in ``share_drifted`` (= drifted / evaluated).
    ``dataset_drifted`` is ``share_drifted >= spec.drift.share_drifted`` with at least one
    evaluated feature. Prediction drift (when the profile has a prediction and
    ``prediction`` is given, or ``current`` has a ``prediction`` column) is reported on its
    own and does not count in the share.
    """
    if isinstance(current, pl.LazyFrame):
        current = current.collect()
    method = {NUMERIC: numeric_method, CATEGORICAL: categorical_method}
    threshold = {
        NUMERIC: spec.drift.numeric_threshold if numeric_threshold is None else numeric_threshold,
        CATEGORICAL: (
            spec.drift.categorical_threshold
            if categorical_threshold is None
            else categorical_threshold
        ),
    }
    features = _features_drift(
        reference_profile, current, spec, method, threshold,
        per_feature_method or {}, per_feature_threshold or {},
    )
    pred_result = _prediction_drift(reference_profile, current, prediction, method, threshold)

    evaluated = [n for n, f in features.items() if f["status"] == "ok"]
    drifted = [n for n in evaluated if features[n]["drifted"]]
    share = len(drifted) / len(evaluated) if evaluated else 0.0
    return {
        "features": features,
        "prediction": pred_result,
        "n_features": len(features),
        "n_evaluated": len(evaluated),
        "n_drifted": len(drifted),
        "drifted_features": drifted,
        "share_drifted": share,
        "dataset_drifted": bool(evaluated) and share >= spec.drift.share_drifted,
        "rows": int(current.height),
    }


# ---- the drift table ------------------------------------------------------------------------

DRIFT_TABLE_SCHEMA = pl.Schema({
    PARTITION_COLUMN: pl.String,
    "feature": pl.String,
    "method": pl.String,
    "score": pl.Float64,
    "threshold": pl.Float64,
    "drifted": pl.Boolean,
})
"""Columns of ``drift_rows``' rows (the table adds ``champion_version``)."""

DRIFT_SUMMARY_SCHEMA = pl.Schema({
    PARTITION_COLUMN: pl.String,
    "share_drifted": pl.Float64,
    "dataset_drifted": pl.Boolean,
    "drifted_features": pl.String,
})
"""Columns of ``drift_summary``: one verdict per partition."""

_PSEUDO_PREFIX = "__"  # DATASET_ROW and PREDICTION_ROW start with it: not real features


def _row(day: str, feature: str, r: dict) -> dict:
    return {
        PARTITION_COLUMN: day,
        "feature": feature,
        "method": r.get("method"),
        "score": r.get("score"),
        "threshold": r.get("threshold"),
        "drifted": bool(r.get("drifted")),
    }


def drift_rows(day: str, result: dict, share_threshold: float) -> list[dict]:
    """One ``feature_drift`` result as drift-table rows for partition ``day``.

    One row per feature; then ``PREDICTION_ROW`` (method/score/threshold None and not
    drifted when there was no prediction result); then ``DATASET_ROW`` with method
    ``"share_drifted"``, the share as score and ``share_threshold`` as threshold.
    """
    rows = [_row(day, name, r) for name, r in result["features"].items()]
    rows.append(_row(day, PREDICTION_ROW, result.get("prediction") or {}))
    rows.append(_row(day, DATASET_ROW, {
        "method": "share_drifted",
        "score": result["share_drifted"],
        "threshold": share_threshold,
        "drifted": result["dataset_drifted"],
    }))
    return rows


def drift_table(rows: list[dict], champion_version: int) -> pl.DataFrame:
    """Drift-table frame of ``rows``, stamped with the champion whose profile was used."""
    frame = pl.DataFrame(rows, schema=DRIFT_TABLE_SCHEMA)
    return frame.with_columns(pl.lit(champion_version, pl.Int64).alias("champion_version"))


def drift_summary(drift: pl.DataFrame) -> pl.DataFrame:
    """One row per partition of a drift table: ds, share_drifted, dataset_drifted, and the
    drifted real features, sorted and comma-joined (null when none drifted)."""
    if drift.is_empty():
        return pl.DataFrame(schema=DRIFT_SUMMARY_SCHEMA)
    dataset = drift.filter(pl.col("feature") == DATASET_ROW).select(
        PARTITION_COLUMN,
        pl.col("score").alias("share_drifted"),
        pl.col("drifted").alias("dataset_drifted"),
    )
    feats = (
        drift.filter(~pl.col("feature").str.starts_with(_PSEUDO_PREFIX) & pl.col("drifted"))
        .group_by(PARTITION_COLUMN)
        .agg(pl.col("feature").sort().str.join(",").alias("drifted_features"))
    )
    return dataset.join(feats, on=PARTITION_COLUMN, how="left").sort(PARTITION_COLUMN)
