"""Data drift of a partition against the training reference, and the rows of the drift table.

The reference profile is built at training time (``mlops_assets.monitoring.drift.profile``); the
statistics are Evidently 0.7.23's (``mlops_assets.monitoring.drift.stats``). This module, pure
numpy + polars (scipy only inside the statistics), decides which statistic scores a feature and
when that score means drift:

- ``DRIFT_METHODS`` is the one registry of drift methods (``DriftMethod``); adding a method is
  one entry (and its statistic in ``drift.stats``). ``default_method`` is Evidently's choice
  for a column; the spec can pin methods and replace thresholds (``feature_drift``).
- ``feature_drift`` scores every feature of the spec and the model's predictions, and decides
  the dataset: drifted when the share of drifted features ``>= drift_share``.
- ``drift_rows`` / ``drift_table`` turn one partition's result into rows of the ``drift``
  Delta table, and ``drift_summary`` reads a drift table back as one verdict per partition.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from mlops_assets.core.spec import SpecError
from mlops_assets.core.tables import DRIFT_TABLE_SCHEMA
from mlops_assets.core.vocabulary import DATASET_ROW, PARTITION_COLUMN, PREDICTION_ROW
from mlops_assets.monitoring.drift.profile import (
    CATEGORICAL,
    LOW_CARDINALITY,
    NUMERIC,
    build_reference_profile,
)
from mlops_assets.monitoring.drift.stats import categorical_column, numeric_column

if TYPE_CHECKING:  # pragma: no cover
    from mlops_assets.core.spec import DatasetSpec

__all__ = [
    "DRIFT_METHODS",
    "DRIFT_SUMMARY_SCHEMA",
    "DRIFT_TABLE_SCHEMA",
    "SMALL_REFERENCE_ROWS",
    "DriftMethod",
    "build_reference_profile",  # defined in drift.profile, re-exported with the methods
    "check_drift_methods",
    "default_method",
    "drift_method",
    "drift_rows",
    "drift_summary",
    "drift_table",
    "feature_drift",
    "insufficient_data",
    "method_names",
]

# Evidently: statistical tests up to this many reference rows, distances above
SMALL_REFERENCE_ROWS = 1000
OK, EXCLUDED, INSUFFICIENT_DATA = "ok", "excluded", "insufficient_data"  # drift table statuses

# ---- the method registry --------------------------------------------------------------------

_RULES: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}
_ANY = (0, math.inf)


@dataclass(frozen=True)
class Chosen:
    """Where Evidently's preset picks a method by default: the kind a column is judged as, and
    inclusive ranges of (non-null) reference rows and of cardinality (reference ∪ current)."""

    kind: str
    reference_rows: tuple[float, float] = _ANY
    cardinality: tuple[float, float] = _ANY


@dataclass(frozen=True)
class DriftMethod:
    """A drift method: which kinds of column it scores, with which statistic, by which rule.

    ``statistic`` is the key of the ``drift.stats`` result that is the score; ``rule`` is how
    the score compares to the threshold when the feature has drifted; ``threshold`` is the
    default (Evidently's); ``chosen`` says where it is the default method (None: only pinned).
    """

    name: str
    kinds: frozenset[str]
    statistic: str
    rule: str
    threshold: float = 0.1
    chosen: Chosen | None = None

    def __post_init__(self) -> None:
        if self.rule not in _RULES:
            raise ValueError(f"drift method {self.name!r}: rule must be one of {sorted(_RULES)}")
        if not self.kinds <= {NUMERIC, CATEGORICAL}:
            raise ValueError(f"drift method {self.name!r}: unknown kinds {sorted(self.kinds)}")

    def accepts(self, kind: str) -> bool:
        """Whether this method may be pinned to a ``kind`` column."""
        return kind in self.kinds

    def applies(self, kind: str, reference_rows: int, cardinality: int) -> bool:
        """Whether Evidently's DataDriftPreset picks this method by default for a ``kind``
        column with this many reference rows and distinct values (reference ∪ current).
        A numeric column with at most 5 distinct values is judged as categorical."""
        if self.chosen is None:
            return False
        judged = CATEGORICAL if kind == NUMERIC and 0 < cardinality <= LOW_CARDINALITY else kind
        (lo_rows, hi_rows), (lo_card, hi_card) = self.chosen.reference_rows, self.chosen.cardinality
        return (
            judged == self.chosen.kind
            and lo_rows <= reference_rows <= hi_rows
            and lo_card <= cardinality <= hi_card
        )

    def drifted(self, score: float | None, threshold: float) -> bool:
        """The drift decision; a missing or NaN score never drifts."""
        if score is None or math.isnan(score):
            return False
        return bool(_RULES[self.rule](score, threshold))


def _methods(*entries: DriftMethod) -> dict[str, DriftMethod]:
    return {m.name: m for m in entries}


_BOTH = frozenset({NUMERIC, CATEGORICAL})
_SMALL, _LARGE = (0, SMALL_REFERENCE_ROWS), (SMALL_REFERENCE_ROWS + 1, math.inf)
DRIFT_METHODS: dict[str, DriftMethod] = _methods(
    DriftMethod(
        "wasserstein", frozenset({NUMERIC}), "wasserstein_norm", ">=", 0.1, Chosen(NUMERIC, _LARGE)
    ),
    DriftMethod("psi", _BOTH, "psi", ">=", 0.1),
    DriftMethod("psi_quantile", frozenset({NUMERIC}), "psi_quantile", ">=", 0.1),
    DriftMethod("jensenshannon", _BOTH, "jensenshannon", ">=", 0.1, Chosen(CATEGORICAL, _LARGE)),
    DriftMethod("ks", frozenset({NUMERIC}), "ks_pvalue", "<=", 0.05, Chosen(NUMERIC, _SMALL)),
    DriftMethod(
        "chisquare",
        frozenset({CATEGORICAL}),
        "chisquare_pvalue",
        "<",
        0.05,
        Chosen(CATEGORICAL, _SMALL, (3, math.inf)),
    ),
    DriftMethod(
        "z", frozenset({CATEGORICAL}), "z_pvalue", "<", 0.05, Chosen(CATEGORICAL, _SMALL, (0, 2))
    ),
)
"""Every drift method by name."""


def method_names(kind: str) -> list[str]:
    """Sorted names of the methods that may be pinned to a ``kind`` column."""
    return sorted(name for name, m in DRIFT_METHODS.items() if m.accepts(kind))


def drift_method(name: str, kind: str) -> DriftMethod:
    """The registered method ``name`` for a ``kind`` column; ValueError naming the valid ones."""
    method = DRIFT_METHODS.get(name)
    if method is None or not method.accepts(kind):
        raise ValueError(f"unknown {kind} drift method {name!r}; choose from {method_names(kind)}")
    return method


def default_method(kind: str, reference_rows: int, cardinality: int) -> DriftMethod:
    """The method Evidently's preset would pick for this column (the one that ``applies``).

    Evidently's ``stattests.registry._get_default_stattest``: with at most
    ``SMALL_REFERENCE_ROWS`` (1000, non-null) reference rows, K-S for numeric columns,
    chi-square for categorical ones with more than 2 values and the Z-test for binary ones;
    above, normalised Wasserstein (numeric) and Jensen–Shannon (categorical). A numeric column
    with at most ``LOW_CARDINALITY`` distinct values in reference ∪ current is judged as
    categorical. Thresholds are Evidently's: distances drift when ``score >= threshold``, K-S
    when ``p <= threshold``, chi-square and Z when ``p < threshold``."""
    for method in DRIFT_METHODS.values():
        if method.applies(kind, reference_rows, cardinality):
            return method
    raise ValueError(
        f"no drift method applies to a {kind} column with {reference_rows} reference rows "
        f"and {cardinality} distinct values"
    )


def check_drift_methods(spec: DatasetSpec) -> None:
    """SpecError naming the field when a pinned drift method is unknown for its column's kind."""
    kinds = {
        **dict.fromkeys(spec.numeric_features + spec.calendar_features, NUMERIC),
        **dict.fromkeys(spec.categorical_features, CATEGORICAL),
    }
    pins = [
        ("drift.numeric_method", NUMERIC, spec.drift.numeric_method),
        ("drift.categorical_method", CATEGORICAL, spec.drift.categorical_method),
        *((f"drift.methods.{c}", kinds.get(c), m) for c, m in spec.drift.methods.items()),
    ]
    for field, kind, name in pins:
        if name is None:
            continue
        if kind is None:
            raise SpecError(
                f"invalid dataset spec: {field}: {field.rsplit('.', 1)[1]!r} is not a feature"
            )
        try:
            drift_method(name, kind)
        except ValueError as err:
            raise SpecError(f"invalid dataset spec: {field}: {err}") from None


# ---- drift of one feature -------------------------------------------------------------------

_COLUMN = {NUMERIC: numeric_column, CATEGORICAL: categorical_column}


def _feature(
    kind: str, profile: dict, values: Any, pin: str | None, threshold: float | None
) -> dict:
    """One column's statistics (``drift.stats``) and the verdict of its method."""
    out = _COLUMN[kind](profile, values)
    method = (
        drift_method(pin, kind)
        if pin
        else default_method(kind, out["reference_rows"], out["cardinality"])
    )
    threshold = method.threshold if threshold is None else threshold
    score = out.get(method.statistic)
    out.update(
        method=method.name,
        score=score,
        threshold=threshold,
        drifted=out["status"] == OK and method.drifted(score, threshold),
    )
    return out


def _column(current: pl.DataFrame, name: str) -> pl.Series:
    if name in current.columns:
        return current.get_column(name)
    if current.height == 0:
        return pl.Series(name, [], dtype=pl.Float64)
    raise ValueError(f"current data has no column {name!r} (columns: {current.columns})")


def _numeric_sorted(current: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """The numeric columns each sorted, in one polars select (columns sorted in parallel): the
    statistics need sorted values, and numpy would sort one column at a time on one core. Row
    order is lost, which no statistic depends on; nulls and NaN stay for the statistics to
    drop and count."""
    present = [n for n in names if n in current.columns]
    if current.height < 2 or not present:
        return current
    return current.with_columns(pl.col(present).cast(pl.Float64).sort())


@dataclass(frozen=True)
class _Choice:
    """The methods and thresholds asked for: per kind (None: Evidently's choice / the
    method's threshold) and per feature."""

    method: dict[str, str | None]
    threshold: dict[str, float | None]
    per_feature_method: Mapping[str, str]
    per_feature_threshold: Mapping[str, float]

    def of(self, name: str, kind: str) -> tuple[str | None, float | None]:
        return (
            self.per_feature_method.get(name, self.method[kind]),
            self.per_feature_threshold.get(name, self.threshold[kind]),
        )


def _features_drift(
    reference_profile: dict,
    current: pl.DataFrame,
    spec: DatasetSpec,
    choice: _Choice,
    excluded: Mapping[str, str],
) -> dict[str, dict]:
    columns = (
        (NUMERIC, spec.numeric_features + spec.calendar_features),
        (CATEGORICAL, spec.categorical_features),
    )
    current = _numeric_sorted(current, [n for n in columns[0][1] if n not in excluded])
    features: dict[str, dict] = {}
    for kind, names in columns:
        profiles = reference_profile.get(kind, {})
        for name in names:
            if name in excluded:
                features[name] = {
                    "type": kind,
                    "status": EXCLUDED,
                    "note": excluded[name],
                    "method": None,
                    "score": None,
                    "threshold": None,
                    "drifted": False,
                }
                continue
            if name not in profiles:
                raise ValueError(f"{kind} feature {name!r} is not in the reference profile")
            features[name] = _feature(
                kind, profiles[name], _column(current, name), *choice.of(name, kind)
            )
    return features


def _prediction_drift(
    reference_profile: dict, current: pl.DataFrame, prediction: Any | None, choice: _Choice
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
    return _feature(kind, ref_pred, prediction, choice.method[kind], choice.threshold[kind])


def _excluded(spec: DatasetSpec, excluded: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(excluded or {})
    out.update(dict.fromkeys(spec.drift.exclude, "left out by drift.exclude in the spec"))
    return out


def feature_drift(
    reference_profile: dict,
    current: pl.DataFrame | pl.LazyFrame,
    spec: DatasetSpec,
    *,
    prediction: Any | None = None,
    numeric_method: str | None = None,
    categorical_method: str | None = None,
    numeric_threshold: float | None = None,
    categorical_threshold: float | None = None,
    per_feature_method: dict[str, str] | None = None,
    per_feature_threshold: dict[str, float] | None = None,
    excluded: Mapping[str, str] | None = None,
) -> dict:
    """Drift of ``current`` against the reference profile, per feature and for the dataset.

    Numeric features are the spec's numeric + calendar features; categorical ones its
    categorical features. Methods are chosen per column as Evidently's DataDriftPreset does
    (``default_method``) unless pinned: by the arguments, else by the spec's ``drift.methods`` /
    ``numeric_method`` / ``categorical_method``. Thresholds: the arguments, else the spec's
    ``drift.numeric_threshold`` / ``categorical_threshold`` (as Evidently's ``num_threshold`` /
    ``cat_threshold``), else the method's own.

    ``excluded`` (feature → note), with ``spec.drift.exclude``, are listed with status
    ``"excluded"`` and their note, unscored. A feature whose current column is empty (after
    dropping nulls) or whose reference column was empty gets ``status`` ``"empty_current"`` /
    ``"no_reference"``, no verdict, and does not count in ``share_drifted`` (= drifted /
    evaluated). ``dataset_drifted`` is ``share_drifted >= spec.drift.share_drifted`` with at
    least one evaluated feature. Prediction drift (when the profile has a prediction and
    ``prediction`` is given, or ``current`` has a ``prediction`` column) is reported on its
    own and does not count in the share.
    """
    if isinstance(current, pl.LazyFrame):
        current = current.collect()
    d = spec.drift
    choice = _Choice(
        method={
            NUMERIC: numeric_method or d.numeric_method,
            CATEGORICAL: categorical_method or d.categorical_method,
        },
        threshold={
            NUMERIC: d.numeric_threshold if numeric_threshold is None else numeric_threshold,
            CATEGORICAL: d.categorical_threshold
            if categorical_threshold is None
            else categorical_threshold,
        },
        per_feature_method=d.methods if per_feature_method is None else per_feature_method,
        per_feature_threshold=per_feature_threshold or {},
    )
    skip = _excluded(spec, excluded)
    features = _features_drift(reference_profile, current, spec, choice, skip)
    pred_result = _prediction_drift(reference_profile, current, prediction, choice)

    evaluated = [n for n, f in features.items() if f["status"] == OK]
    drifted = [n for n in evaluated if features[n]["drifted"]]
    share = len(drifted) / len(evaluated) if evaluated else 0.0
    return {
        "features": features,
        "prediction": pred_result,
        "n_features": len(features),
        "n_evaluated": len(evaluated),
        "n_drifted": len(drifted),
        "drifted_features": drifted,
        "excluded": {n: f["note"] for n, f in features.items() if f["status"] == EXCLUDED},
        "share_drifted": share,
        "dataset_drifted": bool(evaluated) and share >= spec.drift.share_drifted,
        "rows": int(current.height),
        "status": OK,
        "note": None,
    }


def insufficient_data(spec: DatasetSpec, rows: int, note: str) -> dict:
    """The verdict on too few current rows: nothing scored, not drifted, ``note`` says why."""
    names = spec.numeric_features + spec.calendar_features + spec.categorical_features
    blank = {
        "status": INSUFFICIENT_DATA,
        "method": None,
        "score": None,
        "threshold": None,
        "drifted": False,
    }
    return {
        "features": {n: dict(blank) for n in names},
        "prediction": None,
        "n_features": len(names),
        "n_evaluated": 0,
        "n_drifted": 0,
        "drifted_features": [],
        "excluded": {},
        "share_drifted": 0.0,
        "dataset_drifted": False,
        "rows": rows,
        "status": INSUFFICIENT_DATA,
        "note": note,
    }


# ---- the drift table ------------------------------------------------------------------------

DRIFT_SUMMARY_SCHEMA = pl.Schema(
    {
        PARTITION_COLUMN: pl.String,
        "share_drifted": pl.Float64,
        "dataset_drifted": pl.Boolean,
        "drifted_features": pl.String,
        "status": pl.String,
        "rows": pl.Int64,
        "champion_version": pl.Int64,
    }
)
"""Columns of ``drift_summary``: one verdict per partition (``status`` ok | insufficient_data;
``rows`` the current rows judged; ``champion_version`` whose reference judged it)."""

_PSEUDO_PREFIX = "__"  # DATASET_ROW and PREDICTION_ROW start with it: not real features


def _row(day: str, feature: str, r: dict) -> dict:
    return {
        PARTITION_COLUMN: day,
        "feature": feature,
        "method": r.get("method"),
        "score": r.get("score"),
        "threshold": r.get("threshold"),
        "drifted": bool(r.get("drifted")),
        "status": r.get("status"),
        "note": r.get("note"),
        "rows": r.get("rows"),
    }


def drift_rows(day: str, result: dict, share_threshold: float) -> list[dict]:
    """One ``feature_drift`` result as drift-table rows for partition ``day``.

    One row per feature; then ``PREDICTION_ROW`` (method/score/threshold None and not
    drifted when there was no prediction result); then ``DATASET_ROW`` with method
    ``"share_drifted"``, the share as score, ``share_threshold`` as threshold, the result's
    status (ok | insufficient_data), note (which rows were judged) and row count.
    """
    rows = [_row(day, name, r) for name, r in result["features"].items()]
    rows.append(_row(day, PREDICTION_ROW, result.get("prediction") or {}))
    rows.append(
        _row(
            day,
            DATASET_ROW,
            {
                "method": "share_drifted",
                "score": result["share_drifted"],
                "threshold": share_threshold,
                "drifted": result["dataset_drifted"],
                "status": result.get("status", OK),
                "note": result.get("note"),
                "rows": result.get("rows"),
            },
        )
    )
    return rows


def drift_table(rows: list[dict], champion_version: int) -> pl.DataFrame:
    """Drift-table frame of ``rows``, stamped with the champion whose profile was used."""
    frame = pl.DataFrame(rows, schema=DRIFT_TABLE_SCHEMA)
    return frame.with_columns(pl.lit(champion_version, pl.Int64).alias("champion_version"))


def drift_summary(drift: pl.DataFrame) -> pl.DataFrame:
    """One row per partition of a drift table (``DRIFT_SUMMARY_SCHEMA``), the drifted real
    features sorted and comma-joined (null when none drifted). A table without the ``status``,
    ``rows`` or ``champion_version`` column reads as status ``ok`` and null rows / champion."""
    if drift.is_empty():
        return pl.DataFrame(schema=DRIFT_SUMMARY_SCHEMA)
    missing = {
        c: t
        for c, t in {"status": pl.String, "rows": pl.Int64, "champion_version": pl.Int64}.items()
        if c not in drift.columns
    }
    drift = drift.with_columns(pl.lit(None, t).alias(c) for c, t in missing.items())
    dataset = drift.filter(pl.col("feature") == DATASET_ROW).select(
        PARTITION_COLUMN,
        pl.col("score").alias("share_drifted"),
        pl.col("drifted").alias("dataset_drifted"),
        pl.col("status").fill_null(OK),
        pl.col("rows").cast(pl.Int64),
        pl.col("champion_version").cast(pl.Int64),
    )
    feats = (
        drift.filter(~pl.col("feature").str.starts_with(_PSEUDO_PREFIX) & pl.col("drifted"))
        .group_by(PARTITION_COLUMN)
        .agg(pl.col("feature").sort().str.join(",").alias("drifted_features"))
    )
    out = dataset.join(feats, on=PARTITION_COLUMN, how="left").sort(PARTITION_COLUMN)
    return out.select(DRIFT_SUMMARY_SCHEMA.names())
