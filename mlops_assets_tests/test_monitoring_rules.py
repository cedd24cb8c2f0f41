"""The monitoring and scoring rules the wiring acts on, called directly on a handful of rows: the
kill switch, what the sensors request (label arrivals, days a rolled-back version scored, the
multivariate feed, the guard on estimates), drift judged over partition windows, the shadow
comparison, the estimation bundle cache and the per-day performance rows.

The lake comes in as plain callables over small frames, as the rules take it.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.spec import BUNDLED_SPEC, SPECS_DIR, load_spec, parse_spec
from mlops_assets.core.tables import MULTIVARIATE_DRIFT_SCHEMA
from mlops_assets.core.vocabulary import FEATURES, SCORES, Artifact
from mlops_assets.monitoring.drift.judgement import (
    day_predictions,
    drift_strength,
    judge_drift,
    lookback_days,
    top_drifted,
)
from mlops_assets.monitoring.drift.profile import build_reference_profile
from mlops_assets.monitoring.estimation.bundle import Bundles
from mlops_assets.monitoring.estimation.rules import (
    EstimateBreach,
    estimate_breach,
    estimates_beside_realised,
)
from mlops_assets.monitoring.performance import performance_rows
from mlops_assets.monitoring.rules import (
    kill_switch,
    label_arrivals,
    labelled_score_days,
    multivariate_news,
    rolled_back_pairs,
)
from mlops_assets.scoring.rows import shadow_agreement

SPEC = load_spec(BUNDLED_SPEC)  # binary classification, id transaction_id
D1, D2, D3, D4 = "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"


def _spec(base=SPEC, **sections) -> object:
    data = base.model_dump(mode="json")
    for section, values in sections.items():
        data[section] = {**data[section], **values} if isinstance(values, dict) else values
    return parse_spec(data, "<monitoring rules>")


def _table(frames: dict[str, pl.DataFrame]):
    """``read(table, days)`` over in-memory tables, recording each call."""
    calls = []

    def read(table: str, days: list[str]) -> pl.DataFrame:
        calls.append((table, list(days)))
        frame = frames.get(table, pl.DataFrame())
        return frame.filter(pl.col("ds").is_in(days)) if "ds" in frame.columns else frame

    return read, calls


# ---- the kill switch -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1", "true", " YES ", "on"])
def test_the_kill_switch_value_switches_scoring_off(value):
    assert "environment ($MLOPS_KILL_SWITCH)" in kill_switch(SPEC, value)


@pytest.mark.parametrize("value", [None, "", "0", "off", "no"])
def test_without_a_switch_scoring_runs_unless_the_spec_says_stop(value):
    assert kill_switch(SPEC, value) is None
    assert "kill_switch: true" in kill_switch(_spec(kill_switch=True), value)


# ---- what the sensors request ----------------------------------------------------------------
def test_label_arrivals_are_the_partitions_of_the_commits_after_the_cursor():
    history = [
        {"version": 3, "partitions": "2026-01-12"},
        {"version": 2, "partitions": "2026-01-11,2026-01-10"},
        {"version": 1, "partitions": "2026-01-09"},
        {"version": 0, "partitions": None},
    ]

    def never():
        raise AssertionError("the log holds every commit: no full listing")

    assert label_arrivals(history, 1, never) == ["2026-01-10", "2026-01-11", "2026-01-12"]
    assert label_arrivals(history, 3, never) == []


def test_label_arrivals_fall_back_to_every_day_once_the_log_dropped_commits():
    history = [{"version": 7, "partitions": "2026-01-12"}, {"version": 6, "partitions": "x"}]
    every = {"2026-01-10": 3, "": 1, "2026-01-09": 2}
    assert label_arrivals(history, 1, lambda: every) == ["2026-01-09", "2026-01-10"]
    assert label_arrivals(history, 5, lambda: every) == ["2026-01-12", "x"]  # v6 follows v5


def test_labelled_score_days_are_the_scored_days_of_the_arrived_ids():
    scores = pl.LazyFrame({"ds": [D1, D1, D2, D3], "transaction_id": ["a", "b", "c", "d"]})
    labels = pl.LazyFrame(
        {"ds": ["2026-03-09", "2026-03-09", "2026-03-10"], "transaction_id": ["d", "a", "c"]}
    )
    assert labelled_score_days(scores, labels, ["2026-03-09"], SPEC) == [D1, D3]
    assert labelled_score_days(scores, labels, [], SPEC) == []


def test_rolled_back_pairs_name_each_day_of_a_rolled_back_version_never_asking_for_the_baseline():
    scored = pl.DataFrame(
        {"ds": [D2, D1, D1, D3, D3], "model_version": [2, 2, 3, -1, 4]},
        schema={"ds": pl.String, "model_version": pl.Int64},
    )
    asked = []

    def rolled_back(version: int) -> bool:
        asked.append(version)
        return version in (2, 4)

    assert rolled_back_pairs(scored, rolled_back) == [(D1, 2), (D2, 2), (D3, 4)]
    assert -1 not in asked


def _summary(days, drifted, champion=1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ds": days,
            "share_drifted": [0.6 if d else 0.0 for d in drifted],
            "dataset_drifted": drifted,
            "drifted_features": ["x" if d else None for d in drifted],
            "champion_version": [champion] * len(days),
        },
        schema_overrides={"drifted_features": pl.String},
    )


def _mv(days, drifted, champion=1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ds": days,
            "champion_version": [champion] * len(days),
            "rows": [100] * len(days),
            "reconstruction_error": [2.0 if d else 0.5 for d in drifted],
            "threshold": [1.0] * len(days),
            "drifted": drifted,
            "note": [None] * len(days),
        },
        schema=MULTIVARIATE_DRIFT_SCHEMA,
    )


def test_multivariate_news_alerts_only_on_what_per_column_drift_misses():
    alert = _spec(drift={"multivariate": "alert", "consecutive_partitions": 2})
    quiet = _summary([D1, D2, D3], [False, False, False])
    mv = _mv([D1, D2, D3], [False, True, True])
    summary, episode = multivariate_news(quiet, mv, alert, 1)
    assert summary is quiet and episode.days == (D2, D3) and episode.champion == 1
    seen = _summary([D1, D2, D3], [False, False, True])  # per-column drift saw the latest day
    assert multivariate_news(seen, mv, alert, 1)[1] is None
    assert multivariate_news(quiet, _mv([D3], [True]), alert, 1)[1] is None  # one day: no episode


def test_multivariate_news_folds_the_verdicts_in_for_retrain_and_does_nothing_when_off():
    quiet = _summary([D1, D2], [False, False])
    mv = _mv([D1, D2, D3], [False, True, True])
    folded, episode = multivariate_news(quiet, mv, _spec(drift={"multivariate": "retrain"}), 1)
    assert episode is None
    assert folded.sort("ds")["dataset_drifted"].to_list() == [False, True, True]
    off = _spec(drift={"multivariate": "off"})
    assert multivariate_news(quiet, mv, off, 1) == (quiet, None)
    alert = _spec(drift={"multivariate": "alert"})
    assert multivariate_news(quiet, mv.clear(), alert, 1) == (quiet, None)


# ---- the guard on estimates ------------------------------------------------------------------
def _estimates(values, version=1) -> pl.DataFrame:
    days = [D1, D2, D3][: len(values)]
    return pl.DataFrame(
        {
            "ds": days,
            "model_version": [version] * len(days),
            "metric": ["roc_auc"] * len(days),
            "estimate": values,
        }
    )


def _reconciliation(errors, version=1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ds": [D1, D2, D3][: len(errors)],
            "model_version": [version] * len(errors),
            "metric": ["roc_auc"] * len(errors),
            "abs_error": errors,
            "coverage": [1.0] * len(errors),
        }
    )


def test_the_estimate_guard_acts_once_on_a_trusted_breach_and_reads_only_what_it_needs():
    spec = _spec(guard={"floor": 0.7, "use_estimate": "rollback"})
    low, trusted = _estimates([0.6, 0.5]), _reconciliation([0.01, 0.02, 0.01])
    breach = estimate_breach(lambda: low, lambda: trusted, spec, 1, [])
    assert isinstance(breach, EstimateBreach) and breach.key == "estimate:v1"
    assert breach.run.values == (0.6, 0.5) and breach.trust.trusted
    assert "already handled" in estimate_breach(lambda: low, lambda: trusted, spec, 1, [breach.key])
    untrusted = _reconciliation([0.3, 0.3, 0.3])
    assert "the estimator is not trustworthy" in estimate_breach(
        lambda: low, lambda: untrusted, spec, 1, []
    )

    def unread():
        raise AssertionError("read although the guard cannot act")

    fine = _estimates([0.8, 0.9])
    assert "within its guard" in estimate_breach(lambda: fine, unread, spec, 1, [])
    off = _spec(guard={"floor": 0.7, "use_estimate": "off"})
    assert "within its guard" in estimate_breach(unread, unread, off, 1, [])


def test_estimates_beside_realised_pairs_each_estimate_with_the_same_metric_of_the_same_day():
    performance = pl.DataFrame(
        {
            "ds": [D1, D2],
            "model_version": [1, 1],
            "metrics": ['{"roc_auc": 0.8, "f1": true}', '{"roc_auc": 0.7}'],
            "labelled_rows": [10, 5],
            "coverage": [1.0, 0.5],
        }
    )
    estimates = pl.DataFrame(
        {
            "ds": [D1, D1, D2, D3],
            "model_version": [1, 1, 2, 1],
            "metric": ["roc_auc", "f1", "roc_auc", "roc_auc"],
            "estimate": [0.75, 0.5, 0.9, 0.6],
        }
    )
    recon = estimates_beside_realised(performance, estimates)
    assert recon.select("ds", "metric", "realised").rows() == [
        (D1, "f1", None),  # a boolean is no metric value
        (D1, "roc_auc", 0.8),
    ]
    assert recon["abs_error"].to_list()[1] == pytest.approx(0.05)


# ---- drift judged over windows ---------------------------------------------------------------
DRIFT_SPEC = _spec(
    features={"numeric": {"x": {}}, "categorical": {"colour": {}, "weekday": {}}, "calendar": []},
    drift={
        "exclude": [],
        "min_rows": 4,
        "max_lookback_partitions": 3,
        "share_drifted": 0.5,
        "numeric_threshold": None,
        "categorical_threshold": None,
    },
    gates={"slice_floor": None},
)


def _features() -> pl.DataFrame:
    x = {D1: [-0.5, 0.1, 0.3], D2: [-0.2, 0.6, 0.0], D3: [10.0, 11.0, 12.0, 13.0, 14.0]}
    rows = [
        (d, f"{d}-{i}", v, "abc"[i % 3], d[-2:]) for d, vs in x.items() for i, v in enumerate(vs)
    ]
    return pl.DataFrame(
        rows, schema=["ds", "transaction_id", "x", "colour", "weekday"], orient="row"
    )


def _profile() -> dict:
    rng = np.random.default_rng(0)
    reference = pl.DataFrame(
        {
            "x": rng.normal(0, 1, 300),
            "colour": rng.choice(list("abc"), 300),
            "weekday": rng.choice(["01", "02", "03"], 300),
        }
    )
    return build_reference_profile(
        reference, ["x"], ["colour", "weekday"], prediction=rng.random(300)
    )


def test_judge_drift_judges_each_day_with_rows_on_its_window():
    features = _features()
    scores = pl.DataFrame(
        {"ds": [D3] * 5, "transaction_id": [f"{D3}-{i}" for i in range(5)], "probability": 0.9}
    )
    read, calls = _table({FEATURES: features, SCORES: scores})
    scanned = []

    def scan(days):
        scanned.append(days)
        return features.lazy().filter(pl.col("ds").is_in(days))

    judged, excluded = judge_drift(scan, read, DRIFT_SPEC, _profile(), [D2, D3, D4], None)
    assert scanned == [["2026-02-28", D1, D2, D3, D4]]
    assert sorted(judged) == [D2, D3]  # D4 has no rows
    assert judged[D2][0].days == (D1, D2) and judged[D2][0].rows == 6
    assert judged[D3][0].days == (D3,) and judged[D3][0].rows == 5
    assert list(excluded) == ["weekday"]  # a property of the partition, not drift
    assert "x" in judged[D3][1]["drifted_features"]
    assert "x" not in judged[D2][1]["drifted_features"]
    assert judged[D3][1]["prediction"] is not None and judged[D2][1]["prediction"] is None
    assert calls == [(FEATURES, [D1, D2, D3]), (SCORES, [D1, D2, D3])]


def test_judge_drift_reads_nothing_for_a_day_whose_window_stays_short():
    features = _features()
    read, calls = _table({FEATURES: features, SCORES: pl.DataFrame()})
    judged, _ = judge_drift(
        lambda days: features.lazy().filter(pl.col("ds").is_in(days)),
        read,
        DRIFT_SPEC,
        _profile(),
        [D2],
        D2,  # the champion's cutoff: D1 is its training data
    )
    window, result = judged[D2]
    assert not window.sufficient and window.days == (D2,)
    assert result["status"] == "insufficient_data" and result["drifted_features"] == []
    assert calls == [(FEATURES, []), (SCORES, [])]


def test_lookback_days_span_the_keys_and_the_lookback_before_them():
    assert lookback_days([D3, D2], 2) == [D1, D2, D3]
    assert lookback_days([D1], 1) == [D1]


def test_day_predictions_follow_the_feature_rows():
    features = pl.DataFrame({"transaction_id": ["a", "b", "c"]})
    scores = pl.DataFrame({"transaction_id": ["c", "a"], "probability": [0.3, 0.7]})
    assert day_predictions(features, scores, SPEC).to_list() == [0.7, None, 0.3]
    assert day_predictions(features, scores.clear(), SPEC) is None


def test_the_strongest_drifts_rank_by_distance_past_the_threshold():
    rows = [
        {"ds": D1, "feature": "a", "method": "ks", "score": 0.001, "threshold": 0.05, "drifted": 1},
        {"ds": D1, "feature": "b", "method": "wasserstein", "score": 0.2, "threshold": 0.1},
        {"ds": D1, "feature": "c", "method": "ks", "score": None, "threshold": 0.05},
        {"ds": D2, "feature": "d", "method": "ks", "score": 0.0001, "threshold": 0.05},
    ]
    rows[1]["drifted"] = rows[2]["drifted"] = rows[3]["drifted"] = False
    assert drift_strength(rows[0]) == pytest.approx(50) and drift_strength(rows[1]) == 2
    top = top_drifted(rows, D1, k=3)
    assert [top[f"drift_top{i}_feature"] for i in (1, 2, 3)] == ["a", "b", ""]
    assert math.isnan(top["drift_top3_score"]) and top["drifted_feature_count"] == 1


# ---- scoring: the shadow comparison ----------------------------------------------------------
def test_shadow_agreement_compares_scores_and_predicted_labels_on_shared_ids():
    shadow = pl.DataFrame({"transaction_id": ["a", "b", "c"], "probability": [0.2, 0.6, 0.9]})
    champion = pl.DataFrame(
        {"transaction_id": ["a", "b", "c", "d"], "probability": [0.3, 0.4, 0.9, 0.1]}
    )
    meta = shadow_agreement(shadow, champion, SPEC)
    assert meta["mean_abs_score_delta"] == pytest.approx(0.1)
    assert meta["max_abs_score_delta"] == pytest.approx(0.2)
    assert meta["label_agreement"] == pytest.approx(2 / 3)


def test_shadow_agreement_of_a_regression_has_no_label_agreement():
    bikes = load_spec(SPECS_DIR / "bike_rentals.yaml")
    shadow = pl.DataFrame({bikes.id: ["a", "b"], "prediction": [10.0, 20.0]})
    champion = pl.DataFrame({bikes.id: ["a", "b"], "prediction": [12.0, 20.0]})
    assert shadow_agreement(shadow, champion, bikes) == {
        "mean_abs_score_delta": 1.0,
        "max_abs_score_delta": 2.0,
    }
    assert shadow_agreement(shadow.clear(), champion, bikes)["max_abs_score_delta"] == 0.0


# ---- the estimation bundle cache, the performance rows ---------------------------------------
def test_bundles_load_each_version_once_and_note_a_version_without_one():
    loads = []

    def load(version):
        loads.append(version)
        return {"estimator": {"kind": "cbpe"}} if version == 2 else None

    bundles = Bundles(load)
    assert bundles.get(2)["estimator"]["kind"] == "cbpe" and bundles.get(2) is bundles.get(2)
    assert bundles.get(1) is None and bundles.get(1) is None
    assert loads == [2, 1]
    assert len(bundles.notes) == 1 and Artifact.MONITOR_MODELS in bundles.notes[0]


def test_performance_rows_judge_each_scored_day_on_the_known_labels():
    scores = pl.DataFrame(
        {
            "ds": [D1] * 4,
            "transaction_id": ["a", "b", "c", "d"],
            "model_version": [1] * 4,
            "mode": ["normal"] * 4,
            "probability": [0.9, 0.2, 0.8, 0.3],
            "label": [1, 0, 1, 0],
        }
    )
    features = pl.DataFrame(
        {"ds": [D1] * 4, "transaction_id": ["a", "b", "c", "d"], "is_fraud": [1, 0, 0, 0]}
    )
    read, calls = _table({SCORES: scores, FEATURES: features})
    rows = performance_rows(read, [D1, D2], None, SPEC)
    assert [r["ds"] for r in rows] == [D1] and rows[0]["labelled_rows"] == 4
    assert (FEATURES, [D2]) not in calls  # an unscored day reads no features
    truth = pl.DataFrame({"transaction_id": ["a", "b"], "is_fraud": [1, 0]})
    assert performance_rows(read, [D1], truth, SPEC)[0]["labelled_rows"] == 2
