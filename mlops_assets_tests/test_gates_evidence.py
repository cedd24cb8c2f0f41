"""Gates that judge with evidence: skill over the naive baseline, enough holdout rows per class,
target
leakage (an implausibly perfect candidate, a feature that alone predicts the target), and regression
predictions clipped to the target's bounds. Hand-made metrics for the gates; real scikit-learn fits
for ``ml.candidate``'s evidence (the baseline, the one-feature models, permutation importance)."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import polars as pl
import pytest
import yaml
from threadpoolctl import threadpool_limits

from mlops_assets.core.spec import BUNDLED_SPEC, SpecError, parse_spec
from mlops_assets.core.vocabulary import HOLDOUT, SPLIT_COLUMN, TRAIN
from mlops_assets.model import gates as G
from mlops_assets.model.bounds import clip_predictions, clip_report
from mlops_assets.model.candidate import (
    evaluate_candidate,
    holdout_evidence,
    one_feature_skill,
    train_candidate,
)

CARD = yaml.safe_load(BUNDLED_SPEC.read_text())
INTEGRITY_OK = {"sha256_match": True, "loads": True, "predictions_identical": True}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def card_spec(**gates):
    data = copy.deepcopy(CARD)
    data["gates"].update(gates)
    return parse_spec(data, "<test>")


def count_spec(estimator="linear", **top):
    """A regression spec on a count target (``visits``) with the features of ``count_frame``."""
    data = {
        "name": "visits",
        "task": "regression",
        "landing": {"path": "landing/visits"},
        "timestamp": "at",
        "id": "visit_id",
        "target": "visits",
        "partition_start": "2026-01-01",
        "features": {
            "numeric": {"walk_ins": {}, "bookings": {}, "temperature": {}, "staff": {}},
            "categorical": {"site": {}},
        },
        "training": {"window_days": 20, "holdout_days": 5, "seed": 3},
        "model": {"registered_name": "visits", "estimator": estimator},
        "gates": {"primary_metric": "r2"},
        **top,
    }
    return parse_spec(data, "<test>")


def count_frame(n=3000, seed=0, leak=True):
    """``visits`` = walk_ins + bookings (leak=True: both are features); temperature and site move it
    a
    little, staff is noise. Days 0..19: train 0..14, holdout 15..19."""
    rng = np.random.default_rng(seed)
    site = rng.choice(["north", "south", "east"], n)
    temperature = rng.normal(15, 6, n)
    base = 3 + 0.4 * np.clip(temperature, 0, None) + np.where(site == "north", 4, 0)
    walk_ins, bookings = rng.poisson(base), rng.poisson(base * 0.8)
    visits = walk_ins + bookings if leak else rng.poisson(base * 1.8)
    day = np.sort(rng.integers(0, 20, n))
    start = dt.datetime(2026, 3, 1)
    return pl.DataFrame(
        {
            "visit_id": [f"v{i:05d}" for i in range(n)],
            "at": [start + dt.timedelta(days=int(d), hours=9) for d in day],
            "event_ds": [(start + dt.timedelta(days=int(d))).date().isoformat() for d in day],
            "walk_ins": walk_ins.astype(float),
            "bookings": bookings.astype(float),
            "temperature": temperature,
            "staff": rng.normal(5, 1, n),
            "site": site,
            "visits": visits.astype(float),
            SPLIT_COLUMN: np.where(day >= 15, HOLDOUT, TRAIN),
        }
    )


def judge(spec, ts):
    trained = train_candidate(ts, spec)
    return evaluate_candidate(
        trained.holdout,
        spec,
        train=trained.train,
        candidate=trained.pipeline,
        recorded=trained.holdout_scores,
        integrity=INTEGRITY_OK,
        champion=None,
    )


def by_name(results):
    return {r.name: r for r in results}


def cls(**over):
    return {
        "roc_auc": 0.90,
        "pr_auc": 0.40,
        "log_loss": 0.2,
        "brier": 0.03,
        "calibration_error": 0.01,
        "positives": 100,
        "rows": 2000,
        "undefined": {},
        **over,
    }


BASELINE = cls(roc_auc=0.5, pr_auc=0.05, log_loss=0.2, brier=0.0475, calibration_error=0.0)
CLEAN = {
    "metric": "roc_auc",
    "feature_metric": "roc_auc",
    "univariate": {"amount": 0.7, "channel": 0.6},
    "importance": {"amount": 0.15, "channel": 0.05},
}


def gates(spec, candidate, *, baseline=BASELINE, leakage=CLEAN, evidence=None, champion=None):
    return by_name(
        G.evaluate_gates(
            spec,
            candidate,
            champion,
            [],
            INTEGRITY_OK,
            baseline=baseline,
            leakage=leakage,
            evidence=evidence,
        )
    )


# ---- beats_baseline ------------------------------------------------------------------------------


def test_beats_baseline_is_a_skill_score_over_the_naive_baseline():
    spec = card_spec()  # roc_auc primary, default margin 0.05
    ok = gates(spec, cls(roc_auc=0.90))["beats_baseline"]
    assert (
        ok.passed and ok.value == pytest.approx(0.8) and ok.threshold == 0.05
    )  # (0.9 - 0.5) / (1 - 0.5)
    weak = gates(spec, cls(roc_auc=0.52))["beats_baseline"]
    assert not weak.passed and weak.value == pytest.approx(0.04)
    assert "skill 0.040 < margin 0.050" in weak.message and "naive baseline's 0.500" in weak.message
    # an error metric: 1 - rmse / rmse_baseline, whatever the target's scale
    reg = count_spec(gates={"primary_metric": "rmse", "beats_baseline_margin": 0.2})
    base = {"rmse": 10.0, "mae": 8.0, "r2": 0.0, "rows": 500, "undefined": {}}
    assert gates(reg, {**base, "rmse": 7.0}, baseline=base, leakage={"univariate": {}})[
        "beats_baseline"
    ].passed
    failed = gates(reg, {**base, "rmse": 9.0}, baseline=base, leakage={"univariate": {}})[
        "beats_baseline"
    ]
    assert not failed.passed and failed.value == pytest.approx(0.1)
    # fail closed: no baseline, or one whose metric is undefined on the holdout
    assert (
        "baseline roc_auc not computed"
        in gates(spec, cls(), baseline=None)["beats_baseline"].message
    )
    undefined = cls(roc_auc=None, undefined={"roc_auc": "only one class in y"})
    assert not gates(spec, cls(), baseline=undefined)["beats_baseline"].passed
    assert "beats_baseline" not in G.gate_names(card_spec(beats_baseline_margin=None))


# ---- insufficient evidence ---------------------------------------------------------------------


def test_too_few_holdout_rows_or_positives_fail_every_metric_gate_without_a_number():
    spec = card_spec()  # min_holdout_rows 200, min_positives 20
    few = gates(spec, cls(rows=150, positives=4))
    metric_gates = [n for n in G.gate_names(spec) if n != "integrity"]
    for name in metric_gates:
        assert not few[name].passed and few[name].value is None, name
        assert "insufficient evidence (150 rows, 4 positives)" in few[name].message, few[
            name
        ].message
    assert few["integrity"].passed  # not a metric gate
    # enough rows but too few positives: still insufficient, and the message says which
    rare = gates(spec, cls(rows=5000, positives=12))["floor:roc_auc"]
    assert not rare.passed and "insufficient evidence (5000 rows, 12 positives)" in rare.message
    assert "gates.min_positives 20" in rare.message
    # negatives count too, and the evidence from the evaluation wins over the metric counts
    almost_all = gates(spec, cls(), evidence={"rows": 1000, "classes": {"0": 5, "1": 995}})[
        "floor:roc_auc"
    ]
    assert "insufficient evidence (1000 rows, 995 positives, 5 negatives)" in almost_all.message
    multi = gates(spec, cls(), evidence={"rows": 900, "classes": {"0": 500, "1": 390, "2": 10}})[
        "no_regression"
    ]
    assert "insufficient evidence (900 rows, 10 of class '2')" in multi.message
    # the thresholds come from the spec
    relaxed = gates(card_spec(min_holdout_rows=100, min_positives=3), cls(rows=150, positives=4))
    assert relaxed["floor:roc_auc"].passed
    # regression: rows only
    reg = count_spec()
    small = gates(
        reg,
        {"rmse": 1.0, "mae": 1.0, "r2": 0.9, "rows": 50, "undefined": {}},
        baseline={"rmse": 3.0, "mae": 2.0, "r2": 0.0, "rows": 50},
        leakage={"univariate": {}},
    )
    assert "insufficient evidence (50 rows)" in small["no_regression"].message


def test_holdout_evidence_counts_every_class_even_an_absent_one():
    assert holdout_evidence(np.zeros(300), np.array([0, 1, 1]), card_spec()) == {
        "rows": 300,
        "classes": {"0": 300, "1": 0},
    }
    assert holdout_evidence(np.array([True, False, True]), np.array([0.0, 1.0]), card_spec())[
        "classes"
    ] == {"0": 1, "1": 2}
    assert holdout_evidence(np.array([0, 2, 2]), np.array([0, 1, 2]), card_spec())["classes"] == {
        "0": 1,
        "1": 0,
        "2": 2,
    }
    assert holdout_evidence(np.arange(5.0), np.arange(5.0), count_spec()) == {
        "rows": 5,
        "classes": None,
    }


# ---- leakage, on hand-made evidence ------------------------------------------------------------


def test_an_implausibly_perfect_candidate_fails_leakage_naming_the_columns_that_carry_it():
    spec = card_spec()  # max_skill 0.99
    carried = {
        "metric": "roc_auc",
        "univariate": {"amount": 0.7, "refund_flag": 0.8, "channel": 0.55},
        "importance": {"amount": 0.02, "refund_flag": 0.45, "channel": 0.001},
    }
    leak = gates(spec, cls(roc_auc=0.997), leakage=carried)["leakage"]
    assert not leak.passed and leak.value == pytest.approx(0.997) and leak.threshold == 0.99
    assert (
        "possible target leakage" in leak.message
        and "roc_auc 0.997 >= max_skill 0.990" in leak.message
    )
    assert "refund_flag" in leak.message and "channel" not in leak.message
    assert "gates.leakage.allow: [refund_flag]" in leak.message and "--waiver-owner" in leak.message
    # declared acceptable: the same evidence passes, and says why
    allowed = gates(
        card_spec(leakage={"allow": ["amount"]}),
        cls(roc_auc=0.997),
        leakage={**carried, "importance": {"amount": 0.45, "channel": 0.01}},
    )["leakage"]
    assert allowed.passed and "allowed by gates.leakage.allow: ['amount']" in allowed.message
    # perfect, but nothing to blame (no importance): still fails
    assert not gates(spec, cls(roc_auc=0.995), leakage={"metric": "roc_auc", "univariate": {}})[
        "leakage"
    ].passed
    # an honest candidate passes
    honest = gates(spec, cls(roc_auc=0.93))["leakage"]
    assert honest.passed and honest.message.startswith("leakage passed: roc_auc 0.930")


def test_a_feature_that_alone_predicts_the_target_fails_leakage():
    spec = card_spec()  # max_feature_skill 0.95
    alone = {
        "metric": "roc_auc",
        "feature_metric": "roc_auc",
        "univariate": {"chargeback_amount": 0.97, "amount": 0.7},
        "importance": {},
    }
    leak = gates(spec, cls(roc_auc=0.95), leakage=alone)["leakage"]
    assert not leak.passed and "chargeback_amount (alone roc_auc 0.970)" in leak.message
    assert "amount (" not in leak.message.replace("chargeback_amount (", "")
    assert gates(card_spec(leakage={"max_feature_skill": 0.98}), cls(roc_auc=0.95), leakage=alone)[
        "leakage"
    ].passed
    assert not gates(spec, cls(), leakage=None)["leakage"].passed  # fail closed: never computed
    assert "leakage" not in G.gate_names(card_spec(leakage={"enabled": False}))


def test_leakage_reads_a_skill_metric_whatever_the_primary_metric():
    assert G.skill_metric(card_spec()) == "roc_auc"
    assert (
        G.skill_metric(card_spec(primary_metric="log_loss")) == "roc_auc"
    )  # unbounded: the task's skill
    assert G.skill_metric(count_spec()) == "r2"
    assert G.skill_metric(count_spec(gates={"primary_metric": "rmse"})) == "r2"


def test_leakage_and_bound_fields_are_checked_at_load():
    with pytest.raises(
        SpecError, match=r"gates\.leakage\.allow: \['wallk_ins'\] are not model features"
    ):
        count_spec(gates={"leakage": {"allow": ["wallk_ins"]}})
    with pytest.raises(SpecError, match=r"target_min: 5 is greater than target_max \(1\)"):
        count_spec(target_min=5, target_max=1)
    data = copy.deepcopy(CARD)
    data["target_min"] = 0
    with pytest.raises(SpecError, match="target_min: bounds a regression target"):
        parse_spec(data, "<test>")
    with pytest.raises(SpecError, match="max_skill"):
        card_spec(leakage={"max_skill": 1.5})


# ---- leakage and baseline, computed by the evaluation on real fits ------------------------------


def test_the_evaluation_names_two_features_that_sum_to_the_target():
    spec = count_spec()
    result = judge(spec, count_frame())
    leak = by_name(result.gates)["leakage"]
    assert result.candidate_metrics["r2"] > 0.999
    assert not leak.passed and "possible target leakage" in leak.message
    assert "walk_ins" in leak.message and "bookings" in leak.message
    assert all(
        c not in leak.message.split("suspect columns:")[1].split(".")[0]
        for c in ("temperature", "staff")
    )
    assert "gates.leakage.allow: [bookings, walk_ins]" in leak.message
    importance = result.leakage["importance"]
    assert (
        min(importance["walk_ins"], importance["bookings"])
        > 0.3
        > max(importance["staff"], importance["site"])
    )
    assert all(
        s < 0.95 for s in result.leakage["univariate"].values()
    )  # neither column alone gives it away
    # the baseline is the training mean on the same rows: r2 about 0
    assert (
        abs(result.baseline_metrics["r2"]) < 0.05 and by_name(result.gates)["beats_baseline"].passed
    )
    assert result.evidence == {"rows": len(result.y), "classes": None}


def test_allowing_the_columns_clears_leakage_and_an_honest_dataset_passes_it():
    allowed = count_spec(
        gates={"primary_metric": "r2", "leakage": {"allow": ["walk_ins", "bookings"]}}
    )
    assert by_name(judge(allowed, count_frame()).gates)["leakage"].passed
    honest = judge(count_spec(estimator="hist_gradient_boosting"), count_frame(leak=False))
    gate = by_name(honest.gates)["leakage"]
    assert gate.passed and honest.candidate_metrics["r2"] < 0.99, gate.message


def test_one_feature_skill_sees_a_leak_a_rank_or_linear_view_would_miss():
    rng = np.random.default_rng(1)
    code = rng.choice(["a", "b", "c", "d"], 4000)
    y = np.isin(code, ["b", "d"]).astype(int)  # the category is the label, in no order
    skill = one_feature_skill(
        code[:3000], y[:3000], code[3000:], y[3000:], "classification", categorical=True
    )
    assert skill == pytest.approx(1.0)
    x = rng.normal(0, 1, 4000)
    target = x**2  # not monotone: a rank correlation is ~0, the one-feature model is near perfect
    assert (
        one_feature_skill(x[:3000], target[:3000], x[3000:], target[3000:], "regression", False)
        > 0.95
    )
    noise = one_feature_skill(
        x[:3000], rng.normal(size=3000), x[3000:], rng.normal(size=1000), "regression", False
    )
    assert noise < 0.05
    assert (
        one_feature_skill(x[:3000], y[:3000], x[3000:], np.zeros(1000), "classification", False)
        is None
    )


# ---- target bounds ------------------------------------------------------------------------------


def test_clip_predictions_to_the_targets_bounds():
    spec = count_spec(target_min=0)
    raw = np.array([-2.0, 0.5, 3.0, -0.1])
    assert clip_predictions(raw, spec).tolist() == [0.0, 0.5, 3.0, 0.0]
    assert clip_report(raw, spec) == {"clipped_below": 2, "clipped_above": 0, "clip_rate": 0.5}
    both = count_spec(target_min=0, target_max=2)
    assert clip_predictions(raw, both).tolist() == [0.0, 0.5, 2.0, 0.0]
    assert clip_report(raw, both)["clipped_above"] == 1
    assert clip_predictions(raw, count_spec()).tolist() == raw.tolist()  # unbounded: unchanged
    probabilities = np.array([0.1, 0.9])
    assert clip_predictions(probabilities, card_spec()).tolist() == [
        0.1,
        0.9,
    ]  # classification: untouched


def test_the_evaluation_clips_a_count_target_and_reports_the_clip_rate():
    """A linear model on a count target with many zeros predicts negative counts; with
    ``target_min: 0`` the metrics are computed on clipped predictions and the rate is reported."""
    frame = count_frame(leak=False)
    rng = np.random.default_rng(4)
    frame = frame.with_columns(
        visits=pl.Series(np.maximum(0, rng.normal(-1, 3, frame.height)).round()),
        staff=pl.Series(rng.normal(0, 3, frame.height)),
    )
    frame = frame.with_columns(visits=pl.col("visits") + (pl.col("staff") > 2).cast(pl.Float64) * 4)
    unbounded, bounded = judge(count_spec(), frame), judge(count_spec(target_min=0), frame)
    assert (unbounded.candidate_scores < 0).sum() > 50 and unbounded.clip["clip_rate"] == 0.0
    assert (bounded.candidate_scores >= 0).all()
    assert bounded.clip["clipped_below"] == int((unbounded.candidate_scores < 0).sum()) > 50
    assert bounded.clip["clip_rate"] == pytest.approx(
        bounded.clip["clipped_below"] / len(bounded.y)
    )
    assert bounded.candidate_metrics["rmse"] < unbounded.candidate_metrics["rmse"]
