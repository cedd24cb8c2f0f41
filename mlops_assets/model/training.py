"""Model training logic: the spec's pipeline, its input frame, the time split, the profile.

Plain functions over polars/pandas/numpy and scikit-learn; no Dagster and no MLflow
here, so everything is unit-tested directly and the assets stay a few lines long.
Training, evaluation and scoring share one input contract, ``to_model_frame``.

Classification targets are class codes (``features.target_code``): 0/1 for a binary model, the
index in ``spec.target_classes`` for declared ``classes``. A model fitted for declared classes
carries them as ``declared_classes_`` (skops stores it with the pipeline), so ``predict_scores``
knows every class, including one absent from the training rows (its probability is 0).
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.data.features import predicted_labels
from mlops_assets.model.estimators import ESTIMATORS, all_trusted_types, estimator_problem
from mlops_assets.monitoring.drift.profile import build_reference_profile

MISSING_CATEGORY = "__missing__"
"""Stand-in for a null categorical value.

Nulls become an ordinary string so the model input is ``str`` only (MLflow infers a
plain ``string`` column, encoders never see mixed ``str``/``None``). A null in a column
whose training data had none is simply an unseen category: the tree encoders map it to
the unknown code and the one-hot encoder to all-zeros.
"""

# Ordinal code for unseen (and, defensively, missing) categories. It never occurs at fit
# time (nulls are MISSING_CATEGORY by then), so gradient boosting's own category mapping
# sees it as unknown at predict time and routes it like a missing value.
_UNKNOWN_CODE = -1

SKOPS_TRUSTED_TYPES: list[str] = all_trusted_types()
"""Exactly the types that ``skops.io.get_untrusted_types`` reports for the pipelines
built here (scikit-learn 1.9.1, skops 0.16); everything else in them is on skops' own
allow-list. Pass it to MLflow as ``skops_trusted_types=SKOPS_TRUSTED_TYPES``.

Where they come from: ``TreePredictor`` is gradient boosting's fitted tree;
``functools.partial`` wrapping ``check_array`` is the ``FunctionTransformer`` that
gradient boosting builds internally whenever it has categorical features (skops still
requires the wrapped function itself to be trusted, which is why both appear);
``Tree`` is the random forest's tree; ``numpy.dtype`` is the ``_fit_dtype`` the median imputer
of the linear pipelines stores. ``baseline`` needs none. The list is kept exact, not broad:
``test_ml_training`` recomputes it for every estimator kind and task and asserts
equality, so a library upgrade that changes it fails a test rather than a model load.
"""


# ---- the model's input frame -------------------------------------------------------------


def to_model_frame(features: pl.DataFrame | pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The one conversion from a features frame to the model's input frame.

    ``features`` may hold extra columns (id, timestamp, target, partition keys); they
    are dropped. Column order is ``spec.model_features``; numeric and calendar columns are
    ``float64`` (ints and bools are cast, so an MLflow signature inferred from it says
    ``double`` and enforcement never meets an ``int64``), categorical columns are ``object``
    holding ``str`` only, with nulls replaced by ``MISSING_CATEGORY``. Training, evaluation
    and scoring all call this, so the model never sees a frame built any other way (no
    train/serve skew).
    """
    if isinstance(features, pd.DataFrame):
        features = pl.from_pandas(features)
    missing = [c for c in spec.model_features if c not in features.columns]
    if missing:
        raise ValueError(f"features frame lacks model feature columns {missing}")
    numeric = spec.numeric_features + spec.calendar_features
    frame = features.select(
        *(pl.col(c).cast(pl.Float64) for c in numeric),
        *(pl.col(c).cast(pl.String).fill_null(MISSING_CATEGORY) for c in spec.categorical_features),
    ).to_pandas()
    for c in spec.categorical_features:
        frame[c] = frame[c].astype(object)
    return frame[spec.model_features]


# ---- the pipeline ------------------------------------------------------------------------


def build_pipeline(spec: DatasetSpec, estimator: str | None = None) -> Pipeline:
    """An unfitted ``Pipeline([("prep", ColumnTransformer), ("model", estimator)])``.

    ``estimator`` overrides ``spec.model.estimator`` (the degrade path builds
    ``"baseline"`` this way). ``spec.model.params`` apply only to the spec's own
    estimator, never to an override, and ``random_state`` is set to
    ``spec.training.seed`` wherever the estimator has one and the params don't set it.

    Preprocessing by family:

    * trees (``hist_gradient_boosting``, ``random_forest``) and ``baseline``: numeric
      and calendar columns pass through (both tree families handle NaN natively);
      categoricals are ordinal-encoded, unseen categories mapped to -1. Gradient
      boosting gets them as native categoricals (``categorical_features`` mask, so a
      split can group arbitrary categories; -1 is unknown to it and goes the missing
      way) capped at ``max_bins`` categories each (the rarest are grouped into one),
      because it rejects higher cardinalities. The random forest just sees the codes.
    * linear (``logistic_regression``, ``ridge``, ``linear``): numeric and calendar
      columns median-imputed and standardised; categoricals one-hot encoded, unseen
      categories ignored.
    """
    name = estimator or spec.model.estimator
    params = dict(spec.model.params) if name == spec.model.estimator else {}
    problem = estimator_problem(name, spec.task)
    if problem:
        raise ValueError(f"model.estimator: {problem}")
    linear = ESTIMATORS[name].family == "linear"
    max_categories = int(params.get("max_bins", 255)) if name == "hist_gradient_boosting" else None
    prep = _linear_preprocessor(spec) if linear else _tree_preprocessor(spec, max_categories)
    model = _make_estimator(name, spec, params)
    return Pipeline([("prep", prep), ("model", model)])


def _tree_preprocessor(spec: DatasetSpec, max_categories: int | None) -> ColumnTransformer:
    numeric = spec.numeric_features + spec.calendar_features
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("num", "passthrough", numeric))
    if spec.categorical_features:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=_UNKNOWN_CODE,
            encoded_missing_value=_UNKNOWN_CODE,
            max_categories=max_categories,
            dtype=np.float64,
        )
        parts.append(("cat", encoder, spec.categorical_features))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


def _linear_preprocessor(spec: DatasetSpec) -> ColumnTransformer:
    numeric = spec.numeric_features + spec.calendar_features
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        scaled = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        parts.append(("num", scaled, numeric))
    if spec.categorical_features:
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(("cat", onehot, spec.categorical_features))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


def _make_estimator(name: str, spec: DatasetSpec, params: dict[str, Any]) -> Any:
    module, _, cls = ESTIMATORS[name].classes[spec.task].rpartition(".")
    factory = getattr(importlib.import_module(module), cls)
    kwargs = {**ESTIMATORS[name].defaults(spec), **params}
    try:
        model = factory(**kwargs)
    except TypeError as err:
        raise ValueError(
            f"model.params: not valid for {name!r} ({factory.__name__}): {err}"
        ) from None
    if "random_state" in model.get_params() and "random_state" not in params:
        model.set_params(random_state=spec.training.seed)
    return model


# ---- fit and predict ---------------------------------------------------------------------


def fit(spec: DatasetSpec, X: pd.DataFrame, y: Any, estimator: str | None = None) -> Pipeline:
    """Build and fit the spec's pipeline on ``X`` (a ``to_model_frame`` frame) and ``y``.

    Deterministic: the same data and seed give identical predictions. Classification
    targets are class codes: 0/1 without declared ``classes`` (bools and 0.0/1.0 floats are
    accepted and cast to int; 1 is the positive class), else the index of the label in
    ``spec.target_classes`` (string labels are also accepted and mapped to their codes). A
    missing target value is an error, not something to drop silently: the training set
    must only hold matured labels.
    """
    target = _as_target(y, spec)
    if len(target) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(target)}")
    if len(target) == 0:
        raise ValueError("cannot fit on an empty training set")
    pipeline = build_pipeline(spec, estimator)
    pipeline.fit(X, target)
    if spec.named_classes:
        pipeline.declared_classes_ = list(spec.target_classes)
    return pipeline


def _as_target(y: Any, spec: DatasetSpec) -> np.ndarray:
    arr = y.to_numpy() if isinstance(y, (pl.Series, pd.Series)) else np.asarray(y)
    if spec.task == "regression":
        arr = arr.astype(np.float64)
        if np.isnan(arr).any():
            raise ValueError(f"target has {int(np.isnan(arr).sum())} missing values")
        return arr
    if arr.dtype.kind in "OfUS" and pd.isna(arr).any():
        raise ValueError(f"target has {int(pd.isna(arr).sum())} missing values")
    labels = spec.target_classes
    if arr.dtype.kind in "OUS" and spec.named_classes:  # labels, not codes
        index = {c: i for i, c in enumerate(labels)}
        unknown = sorted({str(v) for v in arr.tolist() if v not in index})
        if unknown:
            raise ValueError(
                f"target labels {unknown[:10]} are not among the spec's classes {labels}"
            )
        arr = np.array([index[v] for v in arr.tolist()], dtype=np.int64)
    found = np.unique(arr)
    if not np.isin(found, np.arange(len(labels))).all():
        if not spec.named_classes:
            raise ValueError(
                "classification without `classes` is binary with 0/1 (or boolean) labels; the"
                f" target has {len(found)} classes: {found[:10].tolist()}; declare other labels"
                " with `classes: [...]`"
            )
        raise ValueError(
            f"target values {found[:10].tolist()} are not the class codes 0..{len(labels) - 1} "
            f"of the spec's classes {labels}"
        )
    return arr.astype(np.int64)


def predict_scores(pipeline: Pipeline, X: pd.DataFrame, task: str) -> np.ndarray:
    """Positive-class probability (binary classification), the class probabilities (multiclass:
    shape ``(rows, classes)``, columns in ``spec.target_classes`` order, each row summing to 1) or
    the predicted value (regression), float64.

    A binary classifier fitted on a single class has one probability column; its score is 1.0
    for every row if that class is the positive one (1) and 0.0 otherwise. A multiclass model
    gives probability 0 to a declared class it never saw in training.
    """
    if task == "regression":
        return np.asarray(pipeline.predict(X), dtype=np.float64)
    proba = pipeline.predict_proba(X)
    classes = list(pipeline.classes_)
    declared = getattr(pipeline, "declared_classes_", None) or ()
    if len(declared) > 2:
        full = np.zeros((len(X), len(declared)), dtype=np.float64)
        full[:, [int(c) for c in classes]] = proba
        return full
    if len(classes) == 1:
        return np.full(len(X), 1.0 if classes[0] == 1 else 0.0)
    return np.asarray(proba[:, 1], dtype=np.float64)


# ---- time split --------------------------------------------------------------------------


def time_split(
    frame: pl.DataFrame, date_col: str, cutoff: dt.date, holdout_days: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split by time, never at random: ``(train, holdout)``.

    ``holdout`` holds the rows dated in the last ``holdout_days`` days before
    ``cutoff``, i.e. ``cutoff - holdout_days <= date < cutoff``; ``train`` holds the rows
    dated before that. Rows on or after ``cutoff`` are in neither (they were not known at
    the cutoff). ``date_col`` may be a Date or a Datetime column (compared by its date).
    Row order is kept; empty halves are returned as they are, for the caller to judge.
    """
    if holdout_days < 1:
        raise ValueError(f"holdout_days must be at least 1, got {holdout_days}")
    dtype = frame.schema[date_col]
    col = pl.col(date_col)
    day = col.dt.date() if isinstance(dtype, pl.Datetime) else col.cast(pl.Date)
    start = cutoff - dt.timedelta(days=holdout_days)
    train = frame.filter(day < start)
    holdout = frame.filter((day >= start) & (day < cutoff))
    return train, holdout


# ---- reference profile for drift ---------------------------------------------------------


def reference_profile(
    features: pl.DataFrame, spec: DatasetSpec, prediction: Any | None = None
) -> dict[str, Any]:
    """The training data's distribution for drift monitoring (``drift.profile``'s format).

    Numeric and calendar features are profiled as numeric (quantile bins plus a fixed,
    seeded sample for KS/Wasserstein), categoricals as exact counts; ``prediction`` (the
    model's scores on the same rows) is profiled too so prediction drift can be judged: as
    numeric scores (binary, regression) or, for a multiclass model, as the distribution of the
    predicted class (categorical, labels as text: what the score rows' ``label`` column holds).
    A multiclass profile also keeps ``class_priors``: each class's share of the training target
    (spec order), the constant baseline's probabilities.
    """
    if prediction is not None and spec.multiclass:
        pred: Any = pl.Series("prediction", predicted_labels(np.asarray(prediction), spec)).cast(
            pl.String
        )
    else:
        pred = None if prediction is None else np.asarray(prediction, dtype=np.float64)
    profile = build_reference_profile(
        features,
        spec.numeric_features + spec.calendar_features,
        spec.categorical_features,
        pred,
        seed=spec.training.seed,
    )
    if spec.multiclass and spec.target in features.columns:
        codes = features[spec.target].cast(pl.Float64).drop_nulls()
        profile["class_priors"] = [
            float((codes == i).sum()) / max(codes.len(), 1) for i in range(len(spec.target_classes))
        ]
    return profile


def target_codes(y: Any, spec: DatasetSpec) -> np.ndarray:
    """The target as the model sees it (class codes, or the float regression target); see
    ``fit``."""
    return _as_target(y, spec)
