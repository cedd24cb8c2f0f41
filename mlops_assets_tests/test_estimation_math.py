"""CBPE and DLE (pure ``ml.estimation``) and the rules over estimates (``ml.estimate_rules``).

Each estimator is checked against the realised metric on data whose labels are drawn from a known
probability (so the truth is known), under no shift and under a covariate shift the estimator should
follow, and on hand-made inputs whose expected confusion matrix can be computed by hand.
"""

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    mean_absolute_error,
    roc_auc_score,
    root_mean_squared_error,
)

from mlops_assets.core.spec import load_spec
from mlops_assets.data.simulator import CARD_SPEC
from mlops_assets.monitoring.estimation import methods as E
from mlops_assets.monitoring.estimation.rules import (
    RECONCILIATION_SCHEMA,
    estimate_table,
    estimates_beside_realised,
    floor_run,
    method_trust,
    with_estimates,
)
from mlops_assets.monitoring.performance import confusion_metrics


def _binary(rng, n, shift=0.0):
    x = rng.normal(shift, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-3 + 1.5 * x)))).astype(int)
    return y, 1 / (1 + np.exp(-(-2.2 + 1.1 * x)))  # a model that ranks right but is miscalibrated


@pytest.mark.parametrize("shift", [0.0, 0.7, -0.7])
def test_cbpe_binary_follows_the_realised_metrics_under_covariate_shift(shift):
    rng = np.random.default_rng(3)
    est = E.fit_cbpe(*_binary(rng, 30_000))
    y, s = _binary(rng, 20_000, shift)
    got = E.estimate(est, s)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=0.015)
    assert got["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=0.03)
    assert got["brier"] == pytest.approx(brier_score_loss(y, s), abs=0.004)
    realised = confusion_metrics(y, s)
    for m in ("accuracy", "recall"):
        assert got[m] == pytest.approx(realised[m], abs=0.02), m


def test_expected_confusion_matrix_by_hand():
    p = np.array([0.9, 0.2, 0.6, 0.1])  # calibrated probabilities of the positive class
    s = np.array([0.8, 0.7, 0.3, 0.1])  # the model's scores: predicted 1, 1, 0, 0
    got = E.binary_estimates(p, s)
    tp, fp, fn, tn = 0.9 + 0.2, 0.1 + 0.8, 0.6 + 0.1, 0.4 + 0.9
    assert got["accuracy"] == pytest.approx((tp + tn) / 4)
    assert got["precision"] == pytest.approx(tp / (tp + fp))
    assert got["recall"] == pytest.approx(tp / (tp + fn))
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # with certain labels the estimate is the realised value
    y = np.array([1, 0, 1, 0])
    assert E.expected_roc_auc(y.astype(float), s) == pytest.approx(roc_auc_score(y, s))
    assert E.expected_pr_auc(y.astype(float), s) == pytest.approx(average_precision_score(y, s))
    assert E.expected_roc_auc(np.zeros(4), s) is None  # no positive expected: undefined, not 0.5


def test_cbpe_multiclass_estimates_accuracy_macro_f1_and_auc():
    rng = np.random.default_rng(4)

    def world(n, shift=0.0):
        x = rng.normal(shift, 1, (n, 2))
        logits = np.stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]], axis=1) * 1.5
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = np.array([rng.choice(3, p=row) for row in p])
        s = np.exp(logits * 0.7) / np.exp(logits * 0.7).sum(
            axis=1, keepdims=True
        )  # under-confident model
        return y, s

    est = E.fit_cbpe(*world(15_000))
    assert est["classes"] == 3 and len(est["calibrators"]) == 3
    for shift in (0.0, 0.6):
        y, s = world(8_000, shift)
        got = E.estimate(est, s)
        predicted = np.argmax(s, axis=1)
        assert got["accuracy"] == pytest.approx(accuracy_score(y, predicted), abs=0.02)
        assert got["macro_f1"] == pytest.approx(f1_score(y, predicted, average="macro"), abs=0.02)
        assert got["roc_auc"] == pytest.approx(roc_auc_score(y, s, multi_class="ovr"), abs=0.02)
        assert got["brier"] == pytest.approx(
            np.mean(np.sum((s - np.eye(3)[y]) ** 2, axis=1)) / 2, abs=0.01
        )


def test_dle_estimates_mae_and_rmse_where_the_noise_grows():
    rng = np.random.default_rng(5)

    def world(n, shift=0.0):
        X = pd.DataFrame(
            {"x": rng.normal(shift, 1, n), "kind": rng.choice(["a", "b"], n).astype(object)}
        )
        noise_sd = (
            1.0 + np.abs(X["x"].to_numpy()) + (X["kind"] == "b").to_numpy() * 1.0
        )  # heteroscedastic
        pred = 2 * X["x"].to_numpy()
        return X, pred + rng.normal(0, noise_sd), pred

    X, y, pred = world(20_000)
    est = E.fit_method("regression", y, pred, X, ["x"], ["kind"], seed=0)
    assert est["kind"] == E.DLE
    for shift in (0.0, 1.5):
        Xc, yc, pc = world(5_000, shift)
        got = E.estimate(est, pc, Xc)
        assert got["mae"] == pytest.approx(mean_absolute_error(yc, pc), rel=0.05)
        assert got["rmse"] == pytest.approx(root_mean_squared_error(yc, pc), rel=0.05)
    calm, wild = world(5_000, 0.0), world(5_000, 1.5)
    assert (
        E.estimate(est, wild[2], wild[0])["mae"] > E.estimate(est, calm[2], calm[0])["mae"] + 0.5
    )  # noise grows
    assert E.estimate(est, pc[:0], Xc[:0]) == {}


# ---- the rules
# ---------------------------------------------------------------------------------------
SPEC = load_spec(
    CARD_SPEC
)  # roc_auc primary, guard.floor 0.65, estimation defaults (k=2, tolerance 0.05)


def _est(rows):
    return estimate_table(
        [
            {
                "ds": d,
                "model_version": v,
                "metric": "roc_auc",
                "estimate": x,
                "rows": 100,
                "estimator": "cbpe",
                "primary": True,
            }
            for v, d, x in rows
        ]
    )


def test_floor_needs_k_consecutive_estimated_days_ending_at_the_latest():
    assert floor_run(_est([(1, "2026-01-01", 0.6), (1, "2026-01-02", 0.6)]), SPEC, 1).days == (
        "2026-01-01",
        "2026-01-02",
    )
    assert (
        floor_run(_est([(1, "2026-01-01", 0.6), (1, "2026-01-03", 0.6)]), SPEC, 1) is None
    )  # a gap
    assert (
        floor_run(_est([(1, "2026-01-01", 0.6), (1, "2026-01-02", 0.7)]), SPEC, 1) is None
    )  # recovered
    assert (
        floor_run(_est([(2, "2026-01-01", 0.6), (2, "2026-01-02", 0.6)]), SPEC, 1) is None
    )  # another version
    no_floor = SPEC.model_copy(update={"guard": SPEC.guard.model_copy(update={"floor": None})})
    assert floor_run(_est([(1, "2026-01-01", 0.1), (1, "2026-01-02", 0.1)]), no_floor, 1) is None


def _perf(days, primary, metrics):
    return pl.DataFrame(
        {
            "ds": days,
            "model_version": [1] * len(days),
            "mode": ["normal"] * len(days),
            "labelled_rows": [100] * len(days),
            "coverage": [1.0] * len(days),
            "primary": primary,
            "metric": ["roc_auc"] * len(days),
            "metrics": [json.dumps(m) for m in metrics],
            "lkg_version": [None] * len(days),
            "lkg_primary": [None] * len(days),
        }
    )


def test_reconciliation_puts_the_estimate_beside_the_realised_metric():
    perf = _perf(["2026-01-01", "2026-01-02"], [0.80, 0.70], [{"roc_auc": 0.80}, {"roc_auc": 0.70}])
    est = _est([(1, "2026-01-01", 0.82), (1, "2026-01-02", 0.60), (1, "2026-01-03", 0.5)])
    recon = estimates_beside_realised(perf, est)
    assert recon["ds"].to_list() == ["2026-01-01", "2026-01-02"]  # the unmatured day waits
    assert recon["abs_error"].to_list() == pytest.approx([0.02, 0.10])
    out = with_estimates(perf, recon)
    assert out["estimated_primary"].to_list() == pytest.approx([0.82, 0.60])
    assert out.columns[: len(perf.columns)] == perf.columns


def test_the_estimator_is_trusted_only_on_recent_evidence_within_tolerance():
    def recon(errors, days=None):
        days = days or [f"2026-01-0{i + 1}" for i in range(len(errors))]
        return pl.DataFrame(
            [
                {
                    "ds": d,
                    "model_version": 1,
                    "metric": "roc_auc",
                    "estimate": 0.8,
                    "realised": 0.8,
                    "abs_error": e,
                    "labelled_rows": 100,
                    "coverage": 1.0,
                }
                for d, e in zip(days, errors, strict=True)
            ],
            schema=RECONCILIATION_SCHEMA,
        )

    assert not method_trust(pl.DataFrame(schema=RECONCILIATION_SCHEMA), SPEC, 1).trusted  # unproven
    assert method_trust(recon([0.01, 0.02, 0.03]), SPEC, 1).trusted
    bad = method_trust(recon([0.01, 0.2, 0.3]), SPEC, 1)
    assert (
        not bad.trusted
        and bad.median_error == pytest.approx(0.2)
        and "above the tolerance" in bad.reason
    )
    # only the latest trust_days (3) count: an old bad spell has recovered
    assert method_trust(recon([0.4, 0.4, 0.01, 0.02, 0.01]), SPEC, 1).trusted
    assert not method_trust(
        recon([0.01, 0.01, 0.01]), SPEC, 2
    ).trusted  # another version: no evidence
