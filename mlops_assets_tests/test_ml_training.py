"""Tests for mlops_assets.model.training: real scikit-learn fits on small synthetic data."""

from __future__ import annotations

import copy
import datetime as dt
import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
import skops.io as sio
import yaml
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score
from threadpoolctl import threadpool_limits

from mlops_assets.core.spec import BUNDLED_SPEC, DatasetSpec, load_spec, parse_spec
from mlops_assets.model import training as T
from mlops_assets.model.estimators import ESTIMATORS

BASE = yaml.safe_load(BUNDLED_SPEC.read_text())
START = dt.date(2026, 1, 1)
MERCHANTS = BASE["features"]["categorical"]["merchant_category"]["allowed"]

# Small params per estimator so every fit here takes well under a second.
FAST_PARAMS = {
    "hist_gradient_boosting": {"max_iter": 30, "learning_rate": 0.2},
    "random_forest": {"n_estimators": 10, "max_depth": 8},
    "logistic_regression": {},
    "ridge": {},
    "linear": {},
    "baseline": {},
}
KINDS = {
    "classification": [
        "hist_gradient_boosting",
        "random_forest",
        "logistic_regression",
        "linear",
        "baseline",
    ],
    "regression": ["hist_gradient_boosting", "random_forest", "ridge", "linear", "baseline"],
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small fits are faster single-threaded, and OpenMP threads oversubscribe the CPUs
    when tests run in parallel (pytest-xdist) or beside other work."""
    with threadpool_limits(limits=1):
        yield


def make_spec(
    task: str = "classification", estimator: str | None = None, params: dict | None = None
) -> DatasetSpec:
    """The bundled spec with another task/estimator; ``params`` default to FAST_PARAMS."""
    data = copy.deepcopy(BASE)
    data["task"] = task
    if task == "regression":  # gates on metrics a regression model has
        data["gates"] = {"floors": {"r2": 0.5}, "ceilings": {"rmse": 2.0}, "primary_metric": "rmse"}
    if estimator is not None:
        data["model"]["estimator"] = estimator
        data["model"]["params"] = FAST_PARAMS.get(estimator, {}) if params is None else params
    elif params is not None:
        data["model"]["params"] = params
    return parse_spec(data, "<test>")


def make_features(n: int = 3000, seed: int = 0, days: int = 28) -> pl.DataFrame:
    """A features frame shaped like the bundled spec's, with a learnable signal.

    Integer columns stay Int64 and is_weekend a Boolean, as a real features table has
    them, so the tests exercise the casts in ``to_model_frame``. Also carries the id,
    timestamp, date, target (``is_fraud``), a regression target and a PII column.
    """
    rng = np.random.default_rng(seed)
    merchant = rng.choice(MERCHANTS, n)
    channel = rng.choice(["pos", "online", "atm"], n)
    country = rng.choice(["home", "neighbour", "far"], n, p=[0.8, 0.15, 0.05])
    amount = rng.lognormal(3.5, 1.0, n)
    distance = rng.exponential(20.0, n)
    card_age = rng.integers(0, 3000, n)
    tx24 = rng.poisson(3, n)
    day = rng.integers(0, days, n)
    hour = rng.integers(0, 24, n)
    dates = [START + dt.timedelta(days=int(d)) for d in day]
    dow = np.array([d.weekday() for d in dates])
    logit = (
        -6.0
        + 0.6 * np.log1p(amount)
        + 2.5 * (country == "far")
        + 2.0 * (merchant == "gambling")
        + 1.5 * (channel == "online")
        + 0.3 * tx24
        - 0.001 * card_age
        + 1.5 * (hour < 5)
    )
    fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
    noise = rng.normal(0, 0.5, n)
    spend = 2.0 * np.log1p(amount) + 0.3 * tx24 + 1.5 * (merchant == "travel") + noise
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "event_time": [
                dt.datetime.combine(d, dt.time(int(h))) for d, h in zip(dates, hour, strict=True)
            ],
            "ds": dates,
            "amount": amount,
            "distance_from_home_km": distance,
            "card_age_days": card_age,
            "tx_count_24h": tx24,
            "hour": hour,
            "day_of_week": dow,
            "is_weekend": dow >= 5,
            "merchant_category": merchant,
            "channel": channel,
            "country": country,
            "email": [f"u{i}@example.com" for i in range(n)],
            "is_fraud": fraud.astype(np.int64),
            "spend": spend,
        }
    )


def target(frame: pl.DataFrame, task: str) -> np.ndarray:
    return frame["is_fraud"].to_numpy() if task == "classification" else frame["spend"].to_numpy()


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    return make_features()


# ---- to_model_frame ----------------------------------------------------------------------


def test_model_frame_has_fixed_columns_and_dtypes(features):
    spec = load_spec()
    X = T.to_model_frame(features, spec)
    assert list(X.columns) == spec.model_features
    for c in spec.numeric_features + spec.calendar_features:
        assert X[c].dtype == np.float64, c  # ints and bools cast: no int64 for MLflow to reject
    for c in spec.categorical_features:
        assert X[c].dtype == object
        assert all(isinstance(v, str) for v in X[c])
    assert "email" not in X.columns and "is_fraud" not in X.columns
    assert X["is_weekend"].isin([0.0, 1.0]).all()


def test_model_frame_nulls_and_pandas_input():
    spec = load_spec()
    frame = make_features(20).with_columns(
        pl.when(pl.col("hour") < 12).then(None).otherwise(pl.col("channel")).alias("channel"),
        pl.when(pl.col("hour") < 6).then(None).otherwise(pl.col("amount")).alias("amount"),
    )
    X = T.to_model_frame(frame, spec)
    assert (X.loc[(frame["hour"] < 12).to_numpy(), "channel"] == T.MISSING_CATEGORY).all()
    assert X["amount"].isna().sum() == int((frame["hour"] < 6).sum())
    pd.testing.assert_frame_equal(T.to_model_frame(frame.to_pandas(), spec), X)


def test_model_frame_missing_column_is_named(features):
    with pytest.raises(ValueError, match="channel"):
        T.to_model_frame(features.drop("channel"), load_spec())


# ---- build_pipeline ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "task,estimator,expected",
    [
        ("classification", "hist_gradient_boosting", HistGradientBoostingClassifier),
        ("regression", "hist_gradient_boosting", HistGradientBoostingRegressor),
        ("classification", "random_forest", RandomForestClassifier),
        ("regression", "random_forest", RandomForestRegressor),
        ("classification", "logistic_regression", LogisticRegression),
        ("regression", "ridge", Ridge),
        ("classification", "linear", LogisticRegression),
        ("regression", "linear", Ridge),
        ("classification", "baseline", DummyClassifier),
        ("regression", "baseline", DummyRegressor),
    ],
)
def test_estimator_choice_per_task(task, estimator, expected):
    model = T.build_pipeline(make_spec(task, estimator))[-1]
    assert type(model) is expected
    if "random_state" in model.get_params():
        assert model.get_params()["random_state"] == 7  # training.seed of the bundled spec


def test_baseline_strategies():
    assert T.build_pipeline(make_spec("classification", "baseline"))[-1].strategy == "prior"
    assert T.build_pipeline(make_spec("regression", "baseline"))[-1].strategy == "mean"


def test_spec_params_and_seed_applied():
    spec = load_spec()
    model = T.build_pipeline(spec)[-1]
    assert (model.max_iter, model.learning_rate, model.max_leaf_nodes) == (150, 0.08, 31)
    assert model.random_state == spec.training.seed
    assert model.categorical_features == [False] * 7 + [True] * 3
    # An override (the degrade path) does not inherit the spec estimator's params.
    assert isinstance(T.build_pipeline(spec, estimator="baseline")[-1], DummyClassifier)
    # An explicit random_state in params wins over the seed.
    assert T.build_pipeline(make_spec(params={"random_state": 3}))[-1].random_state == 3


def test_unknown_estimator_names_the_field():
    with pytest.raises(ValueError, match=r"model\.estimator.*xgboost"):
        T.build_pipeline(make_spec(estimator="xgboost"))


def test_linear_estimator_for_the_wrong_task_names_the_field():
    with pytest.raises(ValueError, match=r"model\.estimator.*'ridge'.*classification"):
        T.build_pipeline(make_spec("classification", "ridge"))
    with pytest.raises(ValueError, match=r"model\.estimator.*'logistic_regression'"):
        T.build_pipeline(make_spec("regression", "logistic_regression"))


def test_bad_params_name_the_field():
    with pytest.raises(ValueError, match=r"model\.params.*n_trees"):
        T.build_pipeline(make_spec(estimator="random_forest", params={"n_trees": 3}))


# ---- fit / predict -----------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "random_forest"])
def test_fit_is_deterministic(features, estimator):
    spec = make_spec("classification", estimator)
    X, y = T.to_model_frame(features, spec), target(features, "classification")
    a = T.predict_scores(T.fit(spec, X, y), X, spec.task)
    b = T.predict_scores(T.fit(spec, X, y), X, spec.task)
    np.testing.assert_array_equal(a, b)


def test_classifier_learns_and_scores_are_probabilities(features):
    spec = load_spec()
    cutoff = START + dt.timedelta(days=28)
    train, holdout = T.time_split(features, "ds", cutoff, spec.training.holdout_days)
    model = T.fit(spec, T.to_model_frame(train, spec), target(train, spec.task))
    p = T.predict_scores(model, T.to_model_frame(holdout, spec), spec.task)
    assert p.dtype == np.float64 and p.shape == (holdout.height,)
    assert ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(target(holdout, spec.task), p) > 0.7


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "ridge"])
def test_regressor_learns(features, estimator):
    spec = make_spec("regression", estimator)
    X, y = T.to_model_frame(features, spec), target(features, "regression")
    yhat = T.predict_scores(T.fit(spec, X[:2000], y[:2000]), X[2000:], spec.task)
    assert r2_score(y[2000:], yhat) > 0.6


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "random_forest", "linear"])
def test_unseen_and_missing_inputs_score(features, estimator):
    """Scoring survives categories never seen in training, nulls and NaN numerics."""
    spec = make_spec("classification", estimator)
    model = T.fit(spec, T.to_model_frame(features, spec), target(features, spec.task))
    odd = features.head(50).with_columns(
        pl.lit("brand_new_channel").alias("channel"),
        pl.lit(None, dtype=pl.String).alias("country"),
        pl.lit(None, dtype=pl.Float64).alias("amount"),
    )
    p = T.predict_scores(model, T.to_model_frame(odd, spec), spec.task)
    assert np.isfinite(p).all() and p.shape == (50,)


def test_high_cardinality_categorical_fits_gradient_boosting(features):
    """More categories than HGB's max_bins (255) are grouped, not an error."""
    spec = make_spec("classification", "hist_gradient_boosting")
    code = (pl.int_range(pl.len()) % 400).cast(pl.String)
    wide = features.with_columns((pl.lit("m") + code).alias("merchant_category"))
    model = T.fit(spec, T.to_model_frame(wide, spec), target(wide, spec.task))
    assert T.predict_scores(model, T.to_model_frame(wide.head(5), spec), spec.task).shape == (5,)


def test_single_class_training_gives_constant_scores(features):
    spec = make_spec("classification", "baseline")
    X = T.to_model_frame(features.head(100), spec)
    p = T.predict_scores(T.fit(spec, X, np.zeros(100, dtype=int)), X, spec.task)
    np.testing.assert_array_equal(p, np.zeros(100))


def test_fit_rejects_bad_targets(features):
    spec = make_spec("classification", "baseline")
    X = T.to_model_frame(features.head(4), spec)
    with pytest.raises(ValueError, match="missing"):
        T.fit(spec, X, np.array([0.0, 1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="binary"):
        T.fit(spec, X, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="0/1"):
        T.fit(spec, X, np.array([0.0, 0.5, 1.0, 0.0]))  # never silently truncated to 0
    T.fit(spec, X, np.array([0.0, 1.0, 1.0, 0.0]))  # float labels, as the features table has
    with pytest.raises(ValueError, match="rows"):
        T.fit(spec, X, np.array([0, 1]))


# ---- skops -------------------------------------------------------------------------------


def test_skops_trusted_types_are_exact_and_round_trip(features):
    """For every estimator kind and task: dumps/loads with SKOPS_TRUSTED_TYPES round-trips
    with identical predictions, and the union of untrusted types is exactly the list."""
    X = None
    seen: set[str] = set()
    for task, kinds in KINDS.items():
        for estimator in kinds:
            spec = make_spec(task, estimator)
            X = T.to_model_frame(features, spec)
            model = T.fit(spec, X, target(features, task))
            blob = sio.dumps(model)
            untrusted = set(sio.get_untrusted_types(data=blob))
            assert untrusted <= set(ESTIMATORS[estimator].trusted_types), (
                task,
                estimator,
                untrusted,
            )
            seen |= untrusted
            loaded = sio.loads(blob, trusted=list(ESTIMATORS[estimator].trusted_types))
            np.testing.assert_array_equal(
                T.predict_scores(loaded, X, task),
                T.predict_scores(model, X, task),
                err_msg=f"{task}/{estimator}",
            )
    assert seen == set(T.SKOPS_TRUSTED_TYPES)


def test_skops_refuses_without_trusted_types(features):
    spec = make_spec("classification", "hist_gradient_boosting")
    model = T.fit(spec, T.to_model_frame(features, spec), target(features, spec.task))
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        sio.loads(sio.dumps(model), trusted=None)


# ---- time_split --------------------------------------------------------------------------


@pytest.mark.parametrize("date_col", ["ds", "event_time"])
def test_time_split_respects_cutoff_and_holdout_window(features, date_col):
    cutoff, holdout_days = START + dt.timedelta(days=20), 7
    train, holdout = T.time_split(features, date_col, cutoff, holdout_days)
    start = cutoff - dt.timedelta(days=holdout_days)
    # Nothing on or after the cutoff, in either half.
    assert train["ds"].max() < start
    assert holdout["ds"].max() < cutoff
    # The holdout is exactly the last N days before the cutoff, every one of them.
    last_days = {start + dt.timedelta(days=i) for i in range(holdout_days)}
    assert set(holdout["ds"].to_list()) == last_days
    # Together they are every row before the cutoff, each once.
    before = features.filter(pl.col("ds") < cutoff)
    assert train.height + holdout.height == before.height
    train_ids, holdout_ids = set(train["transaction_id"]), set(holdout["transaction_id"])
    assert train_ids | holdout_ids == set(before["transaction_id"])
    assert not train_ids & holdout_ids


def test_time_split_rows_in_the_last_second_before_cutoff():
    cutoff = dt.date(2026, 1, 10)
    last_second = dt.datetime(2026, 1, 9, 23, 59, 59)
    midnight = dt.datetime(2026, 1, 10, 0, 0)
    earlier = dt.datetime(2026, 1, 8, 23, 59)
    frame = pl.DataFrame({"t": [last_second, midnight, earlier]})
    train, holdout = T.time_split(frame, "t", cutoff, 1)
    assert holdout["t"].to_list() == [last_second]  # midnight of the cutoff is in neither
    assert train["t"].to_list() == [earlier]


# ---- reference_profile -------------------------------------------------------------------


def test_reference_profile_covers_every_feature_and_is_json(features):
    spec = load_spec()
    pipe = T.fit(spec, T.to_model_frame(features, spec), features[spec.target])
    pred = T.predict_scores(pipe, T.to_model_frame(features, spec), spec.task)
    profile = T.reference_profile(features, spec, prediction=pred)
    assert set(profile["numeric"]) == set(spec.numeric_features + spec.calendar_features)
    assert set(profile["categorical"]) == set(spec.categorical_features)
    for col in profile["numeric"].values():
        assert abs(sum(col["bin_proportions"]) - 1) < 1e-9
    assert profile["rows"] == features.height and profile["prediction"] is not None
    assert json.loads(json.dumps(profile)) == profile


def test_adding_an_estimator_is_one_registry_entry(monkeypatch, features):
    from mlops_assets.model.estimators import Estimator, estimator_problem

    assert "unknown estimator 'extra_trees'" in estimator_problem("extra_trees", "classification")
    monkeypatch.setitem(
        ESTIMATORS,
        "extra_trees",
        Estimator(
            "extra_trees",
            {"classification": "sklearn.ensemble.ExtraTreesClassifier"},
            "tree",
            ("sklearn.tree._tree.Tree",),
            lambda spec: {"n_estimators": 20},
        ),
    )
    spec = make_spec("classification", "extra_trees")
    model = T.fit(spec, T.to_model_frame(features, spec), target(features, spec.task))
    assert type(model[-1]).__name__ == "ExtraTreesClassifier" and model[-1].n_estimators == 20
    assert model[-1].random_state == spec.training.seed
    blob = sio.dumps(model)
    assert set(sio.get_untrusted_types(data=blob)) <= set(ESTIMATORS["extra_trees"].trusted_types)
    assert "is for classification but the task is regression" in estimator_problem(
        "extra_trees", "regression"
    )


def test_multiclass_pipelines_round_trip_with_exactly_their_trusted_types(features):
    """Declared classes add only the list ``declared_classes_`` to the pipeline: no new skops
    type."""
    codes = np.digitize(features["amount"].to_numpy(), [20.0, 60.0]).astype(float)  # 3 classes
    for estimator in KINDS["classification"]:
        data = copy.deepcopy(BASE)
        data.update(classes=["small", "mid", "large"], gates={})
        data["model"].update(estimator=estimator, params=FAST_PARAMS[estimator])
        spec = parse_spec(data, "<test>")
        X = T.to_model_frame(features, spec)
        model = T.fit(spec, X, codes)
        blob = sio.dumps(model)
        assert set(sio.get_untrusted_types(data=blob)) <= set(
            ESTIMATORS[estimator].trusted_types
        ), estimator
        loaded = sio.loads(blob, trusted=list(ESTIMATORS[estimator].trusted_types))
        p = T.predict_scores(loaded, X, spec.task)
        assert p.shape == (features.height, 3) and loaded.declared_classes_ == [
            "small",
            "mid",
            "large",
        ]
        np.testing.assert_array_equal(p, T.predict_scores(model, X, spec.task))
