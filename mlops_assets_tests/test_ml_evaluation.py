"""Tests for mlops_assets.model.evaluation: metrics against scikit-learn, ECE, slices, gates."""

from __future__ import annotations

import copy
import datetime as dt
import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yaml
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from threadpoolctl import threadpool_limits

from mlops_assets.core import metrics_catalog as C
from mlops_assets.core.spec import BUNDLED_SPEC, DatasetSpec, Gates, load_spec, parse_spec
from mlops_assets.model import evaluation as E
from mlops_assets.model import gates as G
from mlops_assets.model import training as T

BASE = yaml.safe_load(BUNDLED_SPEC.read_text())
INTEGRITY_OK = {"sha256_match": True, "loads": True, "predictions_identical": True}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small fits are faster single-threaded, and OpenMP threads oversubscribe the CPUs
    when tests run in parallel (pytest-xdist) or beside other work."""
    with threadpool_limits(limits=1):
        yield


def make_spec(task: str = "classification", **gates) -> DatasetSpec:
    data = copy.deepcopy(BASE)
    data["task"] = task
    if task == "regression":
        data["gates"] = {
            "floors": {"r2": 0.5},
            "ceilings": {"rmse": 2.0},
            "primary_metric": "rmse",
            "max_regression": 0.1,
            "slice_floor": 3.0,  # an rmse ceiling per slice
            "min_slice_rows": 50,
        }
    data["gates"].update(gates)
    return parse_spec(data, "<test>")


def calibrated(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are exactly the probability of their label: perfectly calibrated."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 4.0, n)  # skewed towards 0 like a rare-positive problem
    return (rng.random(n) < p).astype(int), p


def by_name(results):
    return {r.name: r for r in results}


def gate(spec, name, candidate, champion=None, slices=(), integrity=INTEGRITY_OK):
    """The one named gate from ``evaluate_gates``."""
    return by_name(G.evaluate_gates(spec, candidate, champion, list(slices), integrity))[name]


def cls_metrics(**over):
    m = {
        "roc_auc": 0.90,
        "pr_auc": 0.40,
        "log_loss": 0.2,
        "brier": 0.03,
        "calibration_error": 0.01,
        "positives": 100,
        "rows": 2000,
        "undefined": {},
    }
    m.update(over)
    return m


def reg_metrics(**over):
    m = {"rmse": 1.0, "mae": 1.0, "r2": 0.9, "rows": 1000, "undefined": {}}
    m.update(over)
    return m


def a_slice(value, metric, rows=1000, column="channel"):
    return {
        "column": column,
        "value": value,
        "rows": rows,
        "enough_rows": rows >= 300,
        "metrics": cls_metrics(roc_auc=metric),
    }


# ---- metrics -----------------------------------------------------------------------------


def test_classification_metrics_agree_with_sklearn():
    y, p = calibrated(5000)
    m = E.classification_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert (m["rows"], m["positives"]) == (5000, int(y.sum()))
    assert m["undefined"] == {}
    # bools and pandas/polars series are accepted too
    as_series = E.classification_metrics(pd.Series(y.astype(bool)), pl.Series(p))
    assert as_series["roc_auc"] == m["roc_auc"]


def test_classification_single_class_does_not_crash():
    p = np.linspace(0.01, 0.5, 50)
    none = E.classification_metrics(np.zeros(50, dtype=int), p)
    assert none["roc_auc"] is None and none["pr_auc"] is None
    assert "one class" in none["undefined"]["roc_auc"]
    assert "no positives" in none["undefined"]["pr_auc"]
    assert none["log_loss"] == pytest.approx(log_loss(np.zeros(50), p, labels=[0, 1]))
    assert none["brier"] == pytest.approx(np.mean(p**2))
    every = E.classification_metrics(np.ones(50, dtype=int), p)
    assert every["roc_auc"] is None and every["pr_auc"] == pytest.approx(1.0)
    empty = E.classification_metrics([], [])
    assert empty["rows"] == 0 and all(empty[k] is None for k in C.CLASSIFICATION_METRICS)


def test_classification_rejects_bad_inputs():
    with pytest.raises(ValueError, match="0/1"):
        E.classification_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="probabilities"):
        E.classification_metrics([0, 1], [0.1, 1.2])
    with pytest.raises(ValueError, match="non-finite"):
        E.classification_metrics([0, 1], [0.1, np.nan])


def test_regression_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, 2000)
    yhat = y + rng.normal(0, 1, 2000)
    m = E.regression_metrics(y, yhat)
    assert m["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, yhat)))
    assert m["mae"] == pytest.approx(mean_absolute_error(y, yhat))
    assert m["r2"] == pytest.approx(r2_score(y, yhat))
    assert m["rows"] == 2000
    const = E.regression_metrics(np.ones(10), np.ones(10) * 2)
    assert const["r2"] is None and const["undefined"]["r2"] == "y is constant"
    assert const["rmse"] == pytest.approx(1.0)


def test_task_metrics_dispatch_and_directions():
    y, p = calibrated(500)
    assert E.task_metrics("classification", y, p) == E.classification_metrics(y, p)
    assert E.task_metrics("regression", y, p) == E.regression_metrics(y, p)
    with pytest.raises(ValueError, match="task"):
        E.task_metrics("ranking", y, p)
    assert set(C.HIGHER_IS_BETTER) == set(C.CLASSIFICATION_METRICS) | set(
        C.MULTICLASS_METRICS
    ) | set(C.REGRESSION_METRICS)
    assert C.HIGHER_IS_BETTER["roc_auc"] and C.HIGHER_IS_BETTER["r2"]
    assert not C.HIGHER_IS_BETTER["rmse"] and not C.HIGHER_IS_BETTER["brier"]


def test_loggable_metrics_drop_undefined():
    m = E.classification_metrics(np.zeros(10, dtype=int), np.full(10, 0.1))
    logged = E.loggable_metrics(m, prefix="holdout_")
    assert "holdout_roc_auc" not in logged and "holdout_undefined" not in logged
    assert logged["holdout_rows"] == 10.0 and all(isinstance(v, float) for v in logged.values())


# ---- calibration error -------------------------------------------------------------------


def test_ece_is_near_zero_when_calibrated_and_large_when_not():
    y, p = calibrated()
    assert E.classification_metrics(y, p)["calibration_error"] < 0.01
    overconfident = np.clip(p * 3, 0, 1)
    assert E.expected_calibration_error(y, overconfident) > 0.1
    assert E.expected_calibration_error(y, p**3) > 0.05


def test_ece_uses_equal_frequency_bins():
    # 4 rows, 2 bins by sorted score: {0.1, 0.2} vs y {0, 0}; {0.8, 0.9} vs y {1, 0}.
    y = np.array([0, 1, 0, 0])
    p = np.array([0.1, 0.8, 0.2, 0.9])
    expected = 0.5 * abs(0 - 0.15) + 0.5 * abs(0.5 - 0.85)
    assert E.expected_calibration_error(y, p, bins=2) == pytest.approx(expected)


# ---- slices ------------------------------------------------------------------------------


def test_slice_metrics_per_value():
    y, p = calibrated(3000, seed=1)
    rng = np.random.default_rng(2)
    channel = rng.choice(["pos", "online", "atm"], 3000, p=[0.6, 0.35, 0.05])
    country = [None] * 10 + ["home"] * 2990
    frame = pl.DataFrame({"channel": channel, "country": country})
    slices = E.slice_metrics("classification", frame, y, p, ["channel", "country"], min_rows=300)
    assert [(s["column"], s["value"]) for s in slices] == [
        ("channel", "atm"),
        ("channel", "online"),
        ("channel", "pos"),
        ("country", T.MISSING_CATEGORY),
        ("country", "home"),
    ]
    by = {(s["column"], s["value"]): s for s in slices}
    online = (frame["channel"] == "online").to_numpy()
    assert by[("channel", "online")]["rows"] == online.sum()
    expected = roc_auc_score(y[online], p[online])
    assert by[("channel", "online")]["metrics"]["roc_auc"] == pytest.approx(expected)
    assert by[("channel", "atm")]["enough_rows"] is False
    assert by[("channel", "pos")]["enough_rows"] is True
    assert by[("country", T.MISSING_CATEGORY)]["rows"] == 10
    for col in ("channel", "country"):
        assert sum(s["rows"] for s in slices if s["column"] == col) == 3000
    # pandas input gives the same result
    columns = ["channel", "country"]
    pandas_slices = E.slice_metrics("classification", frame.to_pandas(), y, p, columns, 300)
    assert pandas_slices == slices


# ---- gates -------------------------------------------------------------------------------


def test_gate_names_match_results():
    for spec in (load_spec(), make_spec("regression")):
        metrics = E.task_metrics(spec.task, [0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])
        results = G.evaluate_gates(spec, metrics, None, [], INTEGRITY_OK)
        assert [r.name for r in results] == G.gate_names(spec)
    assert G.gate_names(load_spec()) == [
        "floor:roc_auc",
        "floor:pr_auc",
        "ceiling:brier",
        "no_regression",
        "beats_baseline",
        "slice_floor",
        "calibration",
        "leakage",
        "integrity",
    ]
    assert "calibration" not in G.gate_names(make_spec("regression", max_calibration_error=0.1))


def test_all_gates_pass_for_a_good_candidate():
    slices = [a_slice("pos", 0.85), a_slice("online", 0.80)]
    champion = cls_metrics(roc_auc=0.91)
    baseline = cls_metrics(roc_auc=0.5, pr_auc=0.05)
    leakage = {"metric": "roc_auc", "univariate": {"amount": 0.7}, "importance": {"amount": 0.2}}
    results = G.evaluate_gates(
        load_spec(),
        cls_metrics(),
        champion,
        slices,
        INTEGRITY_OK,
        baseline=baseline,
        leakage=leakage,
    )
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]
    assert by_name(results)["floor:roc_auc"].message == "floor:roc_auc passed: 0.900 >= 0.800"


def test_floor_and_ceiling_fail_with_value_and_threshold():
    candidate = cls_metrics(roc_auc=0.712, brier=0.08)
    results = by_name(G.evaluate_gates(load_spec(), candidate, None, [], INTEGRITY_OK))
    floor = results["floor:roc_auc"]
    assert not floor.passed and (floor.value, floor.threshold) == (0.712, 0.80)
    assert floor.message == "floor:roc_auc failed: 0.712 < 0.800"
    ceiling = results["ceiling:brier"]
    assert not ceiling.passed and ceiling.message == "ceiling:brier failed: 0.080 > 0.050"
    assert results["floor:pr_auc"].passed


def test_undefined_metric_fails_closed():
    cand = cls_metrics(roc_auc=None, undefined={"roc_auc": "only one class in y (no positives)"})
    floor = gate(load_spec(), "floor:roc_auc", cand)
    assert not floor.passed and "no positives" in floor.message
    # a floor on a metric the task never computes (the spec refuses it at load; the gate still fails
    # closed)
    spec = load_spec().model_copy(update={"gates": Gates(floors={"rmse": 1.0})})
    floor = gate(spec, "floor:rmse", cls_metrics())
    assert not floor.passed and "not computed" in floor.message


def test_no_regression_gate():
    spec = load_spec()  # primary roc_auc, max_regression 0.02

    def no_regression(cand, champ):
        return gate(spec, "no_regression", cls_metrics(roc_auc=cand), champ)

    assert no_regression(0.85, None).passed
    assert "no champion" in no_regression(0.85, None).message
    assert no_regression(0.85, cls_metrics(roc_auc=0.86)).passed  # within max_regression
    failed = no_regression(0.82, cls_metrics(roc_auc=0.86))
    assert not failed.passed and failed.threshold == pytest.approx(0.84)
    assert failed.message.startswith("no_regression failed: roc_auc 0.820 < 0.840")
    # An undefined champion metric cannot block the candidate.
    assert no_regression(0.82, cls_metrics(roc_auc=None)).passed


def test_no_regression_is_direction_aware_for_errors():
    spec = make_spec("regression")  # primary rmse, max_regression 0.1

    def no_regression(cand, champ):
        return gate(spec, "no_regression", reg_metrics(rmse=cand), reg_metrics(rmse=champ))

    assert no_regression(1.0, 1.5).passed  # lower rmse is an improvement
    assert no_regression(1.05, 1.0).passed  # worse, but within 0.1
    failed = no_regression(1.2, 1.0)
    assert not failed.passed and failed.threshold == pytest.approx(1.1)
    assert "1.200 > 1.100" in failed.message


def test_slice_floor_gate_names_worst_slice():
    spec = make_spec(slice_floor=0.70)

    def slice_floor(slices):
        return gate(spec, "slice_floor", cls_metrics(), slices=slices)

    ok = slice_floor([a_slice("pos", 0.85), a_slice("online", 0.75), a_slice("atm", 0.40, rows=50)])
    assert ok.passed and ok.value == 0.75  # the small atm slice is not judged
    gambling = a_slice("gambling", 0.62, column="merchant_category")
    bad = slice_floor([a_slice("pos", 0.85), gambling, a_slice("online", 0.68)])
    assert not bad.passed and bad.value == 0.62
    assert "merchant_category=gambling" in bad.message and "0.620 < 0.700" in bad.message
    assert "2 of 3 slices below" in bad.message
    undefined = a_slice("pharmacy", None)
    skipped = slice_floor([a_slice("pos", 0.85), undefined])
    assert skipped.passed and "1 slice(s) skipped" in skipped.message
    assert slice_floor([a_slice("atm", 0.1, rows=10)]).passed  # nothing big enough to judge


def test_slice_floor_is_a_ceiling_for_error_metrics():
    spec = make_spec("regression")  # rmse, slice_floor 3.0

    def sl(value, rmse):
        return {
            "column": "channel",
            "value": value,
            "rows": 100,
            "enough_rows": True,
            "metrics": reg_metrics(rmse=rmse),
        }

    assert gate(spec, "slice_floor", reg_metrics(), slices=[sl("pos", 2.0)]).passed
    bad = gate(spec, "slice_floor", reg_metrics(), slices=[sl("pos", 2.0), sl("atm", 4.0)])
    assert not bad.passed and "channel=atm" in bad.message and "4.000 > 3.000" in bad.message


def test_calibration_gate():
    spec = load_spec()  # max_calibration_error 0.05
    ok = gate(spec, "calibration", cls_metrics(calibration_error=0.02))
    bad = gate(spec, "calibration", cls_metrics(calibration_error=0.09))
    assert ok.passed and not bad.passed and bad.message == "calibration failed: 0.090 > 0.050"


def test_integrity_gate():
    spec = load_spec()

    def integrity(checks):
        return gate(spec, "integrity", cls_metrics(), integrity=checks)

    assert integrity(INTEGRITY_OK).passed
    bad = integrity({"sha256_match": False, "loads": True})
    assert not bad.passed and bad.value == 1.0 and bad.threshold == 3.0
    assert "sha256_match=False" in bad.message
    assert "predictions_identical not checked" in bad.message


def test_primary_metric_must_suit_the_task():
    with pytest.raises(ValueError, match=r"gates\.primary_metric.*rmse"):
        C.primary_metric(make_spec(primary_metric="rmse"))
    assert C.primary_metric(make_spec(primary_metric=None)) == "roc_auc"


def test_gates_on_a_real_fit():
    """End to end on the pure functions: fit, time holdout, metrics, slices, gates."""
    spec = load_spec()
    rng = np.random.default_rng(0)
    n = 4000
    channel = rng.choice(["pos", "online", "atm"], n)
    amount = rng.lognormal(3.5, 1.0, n)
    logit = -5.0 + 4.0 * (amount > 80) + 2.0 * (channel == "online")
    frame = pl.DataFrame(
        {
            "ds": [dt.date(2026, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 28, n)],
            "amount": amount,
            "distance_from_home_km": rng.exponential(20, n),
            "card_age_days": rng.integers(0, 3000, n),
            "tx_count_24h": rng.poisson(3, n),
            "hour": rng.integers(0, 24, n),
            "day_of_week": rng.integers(0, 7, n),
            "is_weekend": rng.random(n) < 0.3,
            "merchant_category": rng.choice(["grocery", "fuel", "travel"], n),
            "channel": channel,
            "country": rng.choice(["home", "far"], n),
            "is_fraud": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )
    train, holdout = T.time_split(frame, "ds", dt.date(2026, 1, 29), spec.training.holdout_days)
    X_train, y_train = T.to_model_frame(train, spec), train["is_fraud"].to_numpy()
    X_hold, y_hold = T.to_model_frame(holdout, spec), holdout["is_fraud"].to_numpy()
    model = T.fit(spec, X_train, y_train)
    p = T.predict_scores(model, X_hold, spec.task)
    metrics = E.task_metrics(spec.task, y_hold, p)
    slices = E.slice_metrics(
        spec.task, X_hold, y_hold, p, spec.categorical_features, spec.gates.min_slice_rows
    )
    baseline = T.fit(spec, X_train, y_train, estimator="baseline")
    champion = E.task_metrics(spec.task, y_hold, T.predict_scores(baseline, X_hold, spec.task))

    results = by_name(G.evaluate_gates(spec, metrics, champion, slices, INTEGRITY_OK))
    assert results["floor:roc_auc"].passed and results["no_regression"].passed, metrics
    # Reversed roles: the baseline as candidate regresses against the fitted model and fails.
    reverse = by_name(G.evaluate_gates(spec, champion, metrics, slices, INTEGRITY_OK))
    assert not reverse["no_regression"].passed and not reverse["floor:roc_auc"].passed


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("kind", ["numeric", "categorical", "calendar"])
def test_a_spec_with_one_kind_of_feature_fits_and_evaluates(kind, task):
    """Only numeric, only categorical or only calendar features: fit → evaluate_candidate (metrics,
    slices — none without a categorical column — and gates) on the real functions."""
    from mlops_assets.model.candidate import evaluate_candidate

    features = {
        "numeric": {"numeric": {"amount": {"min": 0}}},
        "categorical": {"categorical": {"channel": {}}},
        "calendar": {"calendar": ["hour"]},
    }[kind]
    data = {
        "name": "one_kind",
        "task": task,
        "landing": {"path": "landing"},
        "timestamp": "at",
        "id": "id",
        "target": "y",
        "features": features,
        "partition_start": "2026-01-01",
        "training": {"window_days": 10, "holdout_days": 3},
        "model": {
            "registered_name": "m",
            "estimator": "hist_gradient_boosting",
            "params": {"max_iter": 20},
        },
        "gates": {"primary_metric": "rmse", "slice_floor": 5.0, "min_slice_rows": 20}
        if task == "regression"
        else {"slice_floor": 0.5, "min_slice_rows": 20},
    }
    spec = parse_spec(data, "<test>")
    rng = np.random.default_rng(1)
    n = 2000
    at = [dt.datetime(2026, 1, 1) + dt.timedelta(hours=int(h)) for h in rng.integers(0, 24 * 10, n)]
    frame = pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "at": at,
            "amount": rng.gamma(2, 10, n),
            "channel": rng.choice(["pos", "online", "atm"], n),
            "hour": [float(t.hour) for t in at],
        }
    )
    signal = {
        "numeric": frame["amount"] / 20,
        "categorical": (frame["channel"] == "online").cast(float) * 2,
        "calendar": (frame["hour"] < 8).cast(float) * 2,
    }[kind].to_numpy()
    noisy = signal + rng.normal(0, 0.5, n)
    frame = frame.with_columns(
        pl.Series(
            "y", (noisy > np.median(noisy)).astype(float) if task == "classification" else noisy
        )
    )
    train, holdout = T.time_split(frame, "at", dt.date(2026, 1, 11), 3)
    model = T.fit(spec, T.to_model_frame(train, spec), train["y"].to_numpy())
    result = evaluate_candidate(
        holdout,
        spec,
        train=train,
        candidate=model,
        recorded=np.array([]),
        integrity=INTEGRITY_OK,
        champion=None,
    )
    primary = C.primary_metric(spec)
    assert result.candidate_metrics[primary] is not None and len(result.y) == holdout.height
    assert bool(result.slices) == (kind == "categorical")
    assert {g.name for g in result.gates} >= {"no_regression", "integrity"}
    slice_gate = by_name(result.gates)["slice_floor"]
    assert slice_gate.passed and (kind == "categorical" or "no slice" in slice_gate.message)


# ---- comparison table --------------------------------------------------------------------


def test_comparison_markdown():
    cand = cls_metrics(roc_auc=0.91, brier=0.02, pr_auc=None, undefined={"pr_auc": "no positives"})
    champ = cls_metrics(roc_auc=0.88, brier=0.03)
    md = E.comparison_markdown(cand, champ)
    lines = md.strip().splitlines()
    assert lines[0] == "| metric | candidate | champion | delta | verdict |"
    assert "| roc_auc | 0.9100 | 0.8800 | +0.0300 | better |" in lines
    assert "| brier | 0.0200 | 0.0300 | -0.0100 | better |" in lines
    assert "| pr_auc | n/a | 0.4000 |  |  |" in lines
    assert "| rows | 2000 | 2000 | +0 |  |" in lines
    assert not any("undefined" in line for line in lines)
    worse = E.comparison_markdown(cls_metrics(log_loss=0.3), cls_metrics())
    assert "| log_loss | 0.3000 | 0.2000 | +0.1000 | worse |" in worse
    alone = E.comparison_markdown(cand, None)
    assert "| roc_auc | 0.9100 | - |  |  |" in alone
