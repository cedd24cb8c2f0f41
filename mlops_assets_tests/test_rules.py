"""The platform's rules, called directly on a handful of values.

Each test names a decision the wiring delegates: which gates a spec enables and how a
verdict tags the version, what the champion step does with a version, which model serves,
when drift retrains, when the guard breaches, how a range run's checks combine, what the
feature function emits, what the performance table holds. The world tests
(test_model_plane, test_monitoring) show the same rules end to end.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from mlops_assets.control.registry import IntegrityError
from mlops_assets.core.spec import load_spec
from mlops_assets.core.vocabulary import (
    GATES_FAILED,
    GATES_PASSED,
    GUARD_TRIPPED,
    Action,
    Alias,
    Status,
    VersionTag,
    fingerprints_metadata,
    recorded_delta_versions,
    recorded_fingerprint,
)
from mlops_assets.data.contract_checks import (
    ContractVerdict,
    combine_verdicts,
    freshness_alert_due,
)
from mlops_assets.data.features import compute_features, feature_columns
from mlops_assets.model import gates as G
from mlops_assets.model.promotion import PromotionRefused, PromotionVerdict, promotion_decision
from mlops_assets.monitoring.performance import day_performance, performance_table
from mlops_assets.monitoring.rules import (
    DriftEpisode,
    RetrainRequest,
    drift_episode,
    drift_retrain,
    guard_breach,
)
from mlops_assets.scoring.rows import BASELINE_VERSION, DEGRADED, NORMAL
from mlops_assets.scoring.serving import serving_model, training_prior

from .conftest import range_tags

SPEC = load_spec()  # the bundled card_transactions spec
OK_INTEGRITY = {"sha256_match": True, "loads": True, "predictions_identical": True}


def spec_with(**changes):
    data = SPEC.model_dump()
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return type(SPEC).model_validate(data)


def good_metrics(**over):
    return {
        "roc_auc": 0.9,
        "pr_auc": 0.5,
        "log_loss": 0.1,
        "brier": 0.02,
        "calibration_error": 0.01,
        "rows": 1000,
        "positives": 50,
        "undefined": {},
        **over,
    }


# what the evaluation passes beside the metrics: the naive baseline on the same rows, per-feature
# skill
BASELINE = {
    "roc_auc": 0.5,
    "pr_auc": 0.05,
    "log_loss": 0.2,
    "brier": 0.0475,
    "calibration_error": 0.0,
    "rows": 1000,
    "positives": 50,
    "undefined": {},
}
NO_LEAK = {
    "metric": "roc_auc",
    "feature_metric": "roc_auc",
    "univariate": {"amount": 0.7, "channel": 0.6},
    "importance": {"amount": 0.1, "channel": 0.05},
}
EVIDENCE = {"baseline": BASELINE, "leakage": NO_LEAK}


# ---- gates ---------------------------------------------------------------------------------------
def test_the_gate_registry_decides_which_gates_a_spec_has():
    assert G.gate_names(SPEC) == [
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
    regression = spec_with(
        task="regression",
        gates__floors={},
        gates__ceilings={"rmse": 3.0},
        gates__primary_metric="rmse",
        gates__slice_floor=None,
    )
    assert G.gate_names(regression) == [
        "ceiling:rmse",
        "no_regression",
        "beats_baseline",
        "leakage",
        "integrity",
    ]  # no calibration gate


def test_adding_a_gate_is_one_registry_entry(monkeypatch):
    def min_rows(name, x):
        return G.GateResult(
            name, x.candidate["rows"] >= 500, float(x.candidate["rows"]), 500.0, "rows"
        )

    monkeypatch.setitem(
        G.GATES, "min_rows", G.Gate("min_rows", lambda s: ["min_rows"], min_rows, "enough rows")
    )
    assert G.gate_names(SPEC)[-1] == "min_rows"
    results = G.evaluate_gates(SPEC, good_metrics(rows=100), None, [], OK_INTEGRITY)
    assert [r.name for r in results] == G.gate_names(SPEC) and not results[-1].passed


def test_gate_verdict_tags_a_rejected_version_with_its_reasons():
    results = G.evaluate_gates(SPEC, good_metrics(roc_auc=0.7), None, [], OK_INTEGRITY, **EVIDENCE)
    verdict = G.GateVerdict(results)
    assert not verdict.passed and [g.name for g in verdict.failed] == ["floor:roc_auc"]
    assert verdict.version_tags() == {
        VersionTag.STATUS: Status.REJECTED,
        VersionTag.GATES: GATES_FAILED,
        VersionTag.REJECTED_REASONS: "floor:roc_auc failed: 0.700 < 0.800",
    }
    passing = G.GateVerdict(
        G.evaluate_gates(SPEC, good_metrics(), None, [], OK_INTEGRITY, **EVIDENCE)
    )
    assert passing.passed and passing.version_tags() == {VersionTag.GATES: GATES_PASSED}


def test_a_gate_that_cannot_be_judged_fails_closed():
    undefined = good_metrics(
        roc_auc=None, undefined={"roc_auc": "only one class in y (no positives)"}
    )
    floor = G.evaluate_gates(SPEC, undefined, None, [], OK_INTEGRITY)[0]
    assert not floor.passed and "only one class" in floor.message
    integrity = G.evaluate_gates(SPEC, good_metrics(), None, [], {"sha256_match": True})[-1]
    assert not integrity.passed and "loads not checked" in integrity.message


def test_evaluation_rows_hold_one_row_per_gate():
    results = G.evaluate_gates(SPEC, good_metrics(), good_metrics(roc_auc=0.95), [], OK_INTEGRITY)
    rows = G.evaluation_rows(
        results,
        cutoff="2026-02-01",
        version=3,
        champion_version=2,
        evaluated_at=dt.datetime(2026, 2, 1, 4),
        run_id="r1",
    )
    assert rows.height == len(G.gate_names(SPEC)) and rows.schema == pl.Schema(G.EVALUATIONS_SCHEMA)
    regression = rows.filter(pl.col("gate") == "no_regression").row(0, named=True)
    assert not regression["passed"] and regression["threshold"] == pytest.approx(0.93)
    assert G.gate_check_name("floor:roc_auc") == "gate_floor_roc_auc"


# ---- the champion step ---------------------------------------------------------------------------
def verdict(passed=True, gates=True):
    return PromotionVerdict(
        7, passed, [{"gate": "integrity", "passed": passed, "message": "m"}] if gates else []
    )


def decide(v=None, status=None, **kw):
    args = {
        "require_approval": False,
        "shadow_days": 0,
        "has_champion": True,
        "shadow_days_seen": 0,
    } | kw
    return promotion_decision(v or verdict(), status, **args)


def test_promotion_decision():
    assert decide()[0] == Action.PROMOTE
    assert decide(require_approval=True)[0] == Action.AWAIT_APPROVAL
    assert decide(shadow_days=3, shadow_days_seen=2)[0] == Action.AWAIT_SHADOW
    assert decide(shadow_days=3, shadow_days_seen=3)[0] == Action.PROMOTE
    assert decide(shadow_days=3, has_champion=False)[0] == Action.PROMOTE  # nothing to shadow
    for bad, why in (
        ({"v": verdict(gates=False)}, "no evaluation"),
        ({"v": verdict(passed=False)}, "failed"),
        ({"status": Status.ROLLED_BACK}, "rolled back"),
        ({"status": Status.SUPERSEDED}, "superseded"),
    ):
        with pytest.raises(PromotionRefused, match=why):
            decide(**bad)


# ---- which model serves --------------------------------------------------------------------------
def load_all_but(*broken):
    def load(version):
        if version in broken:
            raise IntegrityError(f"v{version} tampered")
        return f"model-{version}"

    return load


def serve(
    version=5, tags=None, *, alias=Alias.CHAMPION, fallback="last_known_good", lkg=4, broken=()
):
    return serving_model(
        alias,
        version,
        tags or {},
        fallback=fallback,
        last_known_good=lkg,
        load=load_all_but(*broken),
        baseline_prior=lambda: 0.03,
    )


def test_the_champion_serves_when_usable():
    s = serve()
    assert (s.model, s.version, s.alias, s.mode) == ("model-5", 5, Alias.CHAMPION, NORMAL)
    assert serve(version=None) is None


def test_an_unusable_champion_degrades_to_last_known_good_then_the_baseline():
    tripped = serve(tags={VersionTag.GUARD: GUARD_TRIPPED, VersionTag.GUARD_REASON: "auc low"})
    assert (tripped.version, tripped.alias, tripped.mode) == (4, Alias.LAST_KNOWN_GOOD, DEGRADED)
    assert "guard tripped (auc low)" in tripped.reason
    both_bad = serve(broken=(5, 4))
    assert (both_bad.version, both_bad.mode) == (BASELINE_VERSION, DEGRADED)
    assert (
        both_bad.model.predict_scores(2).tolist() == [0.03, 0.03]
        and "also unusable" in both_bad.reason
    )
    assert serve(broken=(5,), fallback="baseline").version == BASELINE_VERSION


def test_an_unusable_challenger_serves_nothing():
    assert serve(alias=Alias.CHALLENGER, broken=(5,)) is None
    assert training_prior({"prediction": {"mean": 0.25}}) == 0.25 and training_prior({}) == 0.0


# ---- drift → retrain -----------------------------------------------------------------------------
def summary(flags, start=dt.date(2026, 3, 1)):
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range(len(flags))]
    return pl.DataFrame(
        {
            "ds": days,
            "share_drifted": [0.6 if f else 0.0 for f in flags],
            "dataset_drifted": flags,
            "drifted_features": ["amount" if f else None for f in flags],
        }
    )


def test_a_drift_episode_is_the_unbroken_drifted_run_ending_now():
    episode = drift_episode(summary([False, True, True, True]), SPEC)
    assert episode.days == ("2026-03-02", "2026-03-03", "2026-03-04") and episode.features == (
        "amount",
    )
    assert episode.run_key == "drift:2026-03-02"
    assert drift_episode(summary([True, True, False]), SPEC) is None  # the latest day is stable
    assert drift_episode(summary([True]), SPEC) is None  # fewer than consecutive_partitions days


def test_drift_retrains_once_per_episode_and_respects_the_cooldown():
    episode = DriftEpisode(("2026-03-02", "2026-03-03"), (0.6, 0.6), ("amount",))
    last = dt.date(2026, 3, 10)
    first = drift_retrain(episode, {}, SPEC, last)
    assert isinstance(first, RetrainRequest) and first.cutoff == dt.date(2026, 3, 4)
    assert "already triggered" in drift_retrain(episode, first.cursor, SPEC, last)
    later = DriftEpisode(("2026-03-06", "2026-03-07"), (0.6, 0.6), ("amount",))
    assert "cooldown" in drift_retrain(later, first.cursor, SPEC, last)
    assert drift_retrain(episode, {}, SPEC, dt.date(2026, 3, 3)).cutoff == dt.date(
        2026, 3, 3
    )  # not past the last partition
    assert drift_retrain(None, {}, SPEC, last) == "no drift episode"


# ---- the performance guard ----------------------------------------------------------------------
def perf(values, *, version=5, coverage=1.0, lkg=None):
    n = len(values)
    return pl.DataFrame(
        {
            "ds": [f"2026-03-0{i + 1}" for i in range(n)],
            "model_version": [version] * n,
            "coverage": [coverage] * n,
            "primary": values,
            "lkg_primary": [lkg] * n,
            "lkg_version": [4 if lkg is not None else None] * n,
        },
        schema_overrides={"lkg_primary": pl.Float64, "lkg_version": pl.Int64},
    )


def test_guard_breach_on_the_floor_or_behind_last_known_good():
    assert guard_breach(perf([0.9, 0.6, 0.6, 0.6]), SPEC, 5).reason.startswith(
        "performance_guard: champion v5 roc_auc 0.600"
    )
    assert guard_breach(perf([0.6, 0.6]), SPEC, 5) is None  # judged on 3 matured days, not fewer
    assert guard_breach(perf([0.6, 0.6, 0.6], coverage=0.5), SPEC, 5) is None  # too few labels
    behind = guard_breach(perf([0.8, 0.8, 0.8], lkg=0.9), SPEC, 5)
    assert behind is not None and "trails last_known_good v4" in behind.reason
    assert guard_breach(perf([0.8, 0.8, 0.8], lkg=0.82), SPEC, 5) is None  # within the margin


# ---- contract checks over a range run -----------------------------------------------------------
def test_a_range_run_fails_a_check_when_any_day_fails_and_names_the_days():
    by_day = {
        "2026-03-01": [ContractVerdict("contract_schema", True, "ok")],
        "2026-03-02": [ContractVerdict("contract_schema", False, "2026-03-02: bad header")],
    }
    combined = combine_verdicts(by_day, "contract_schema")
    assert not combined.passed and combined.metadata == {"failed_partitions": ["2026-03-02"]}
    assert combined.description.startswith("1 of 2 partitions failed: 2026-03-02: bad header")
    one = combine_verdicts({"2026-03-01": by_day["2026-03-01"]}, "contract_schema")
    assert one is by_day["2026-03-01"][0]


def test_stale_data_alerts_only_for_runs_about_the_present():
    stale = ContractVerdict("freshness", False, "old")
    today = dt.date(2026, 3, 10)
    assert freshness_alert_due(stale, ["2026-03-09"], today)
    assert not freshness_alert_due(
        stale, ["2026-02-01", "2026-02-02"], today
    )  # a backfill of old days
    fresh = ContractVerdict("freshness", True, "fresh")
    assert not freshness_alert_due(fresh, ["2026-03-10"], today)


# ---- the feature function -----------------------------------------------------------------------
def test_features_are_typed_ordered_and_carry_no_pii():
    raw = pl.DataFrame(
        {
            "ds": ["2026-03-02", "2026-03-01"],
            "transaction_id": ["b", "a"],
            "event_time": [dt.datetime(2026, 3, 2, 13), dt.datetime(2026, 3, 1, 23)],
            "amount": [10, 20],
            "distance_from_home_km": [1.0, 2.0],
            "card_age_days": [5, 6],
            "tx_count_24h": [1, 2],
            "merchant_category": ["fuel", "grocery"],
            "channel": ["pos", "online"],
            "country": ["home", "far"],
            "card_number": ["4111", "4222"],
            "email": ["x@y", "z@w"],
        }
    )
    out = compute_features(raw, SPEC)
    assert out.columns == feature_columns(SPEC) and not {"card_number", "email"} & set(out.columns)
    assert out["transaction_id"].to_list() == ["a", "b"]  # by (ds, id)
    assert out["amount"].dtype == pl.Float64 and out["hour"].to_list() == [23.0, 13.0]
    assert out["day_of_week"].to_list() == [7.0, 1.0] and out["is_weekend"].to_list() == [1.0, 0.0]
    lazy = compute_features(raw.lazy(), SPEC).collect()
    assert lazy.equals(out)  # the same function streams for scoring


# ---- matured-label performance ------------------------------------------------------------------
def test_day_performance_compares_with_last_known_good_on_the_same_rows():
    ids = [f"t{i}" for i in range(6)]
    scores = pl.DataFrame(
        {
            "transaction_id": ids,
            "probability": [0.9, 0.8, 0.2, 0.1, 0.7, 0.3],
            "model_version": [5] * 6,
            "mode": [NORMAL] * 6,
        }
    )
    truth = pl.DataFrame(
        {"transaction_id": ids[:4], "is_fraud": [1, 1, 0, 0]}
    )  # 4 of 6 labels matured
    features = pl.DataFrame({"transaction_id": ids, "x": range(6)})
    seen = []

    def lkg_predict(rows):
        seen.append(rows["transaction_id"].to_list())
        return np.array([0.1, 0.9, 0.8, 0.2])  # ranks the labelled rows at random

    rows = day_performance(
        "2026-03-01", scores, truth, features, SPEC, lkg_version=4, lkg_predict=lkg_predict
    )
    assert len(rows) == 1 and seen == [ids[:4]]
    row = rows[0]
    assert (
        row["labelled_rows"],
        row["coverage"],
        row["primary"],
        row["lkg_version"],
        row["lkg_primary"],
    ) == (4, pytest.approx(4 / 6), 1.0, 4, 0.5)
    assert performance_table(rows).height == 1
    alone = day_performance(
        "2026-03-01", scores, truth, features, SPEC, lkg_version=5, lkg_predict=lkg_predict
    )
    assert alone[0]["lkg_primary"] is None  # the champion is not compared with itself


# ---- stored values read back in one place --------------------------------------------------------
def test_recorded_values_have_one_reader():
    fp = fingerprints_metadata({"2026-03-02": "b", "2026-03-01": "a"})
    assert list(fp) == ["2026-03-01", "2026-03-02"]
    assert (
        recorded_fingerprint(fp, "2026-03-01") == "a"
        and recorded_fingerprint(fp, "2026-03-03") is None
    )
    assert recorded_fingerprint(None, "2026-03-01") is None
    assert recorded_delta_versions(
        {"lineage.delta_versions": '{"features": "3", "training_set": 7}'}
    ) == {"features": 3, "training_set": 7}
    assert recorded_delta_versions({}) == {}


# ---- landing readers -----------------------------------------------------------------------------
def test_adding_a_landing_format_is_one_reader_entry(monkeypatch, tmp_path):
    from mlops_assets.core.spec import SpecError, parse_spec
    from mlops_assets.data import readers

    data = SPEC.model_dump(mode="json")
    with pytest.raises(SpecError, match=r"landing\.formats.*unknown landing format.*jsonl"):
        parse_spec({**data, "landing": {"path": "x", "formats": ["jsonl"]}})
    assert not readers.is_safe_file_name("events.jsonl")

    monkeypatch.setitem(readers.READERS, "jsonl", lambda path: pl.read_ndjson(path))
    assert parse_spec({**data, "landing": {"path": "x", "formats": ["jsonl"]}}).landing.formats == [
        "jsonl"
    ]
    assert readers.is_safe_file_name("events.jsonl") and not readers.is_safe_file_name(
        ".hidden.jsonl"
    )
    f = tmp_path / "events.jsonl"
    f.write_text('{"a": 1}\n{"a": 2}\n')
    assert readers.read_file(f)["a"].to_list() == [1, 2]
    with pytest.raises(readers.FileRejected, match=r"unsupported file type \.txt"):
        readers.read_file(tmp_path / "notes.txt")


# ---- secrets in text -----------------------------------------------------------------------------
def test_credentials_in_uris_and_options_are_masked():
    from mlops_assets.core.redaction import redact, secret_values

    msg = (
        "API request to http://alice:s3cr3t@mlflow:5000/api/2.0 failed; retry postgresql://u:p@db/x"
    )
    assert (
        redact(msg)
        == "API request to http://***@mlflow:5000/api/2.0 failed; retry postgresql://***@db/x"
    )
    options = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "AWS_REGION": "eu-west-1",
    }
    assert secret_values(options) == ["AKIAEXAMPLE", "wJalrXUtnFEMI"]
    assert (
        redact("denied for wJalrXUtnFEMI in eu-west-1", secret_values(options))
        == "denied for *** in eu-west-1"
    )
    assert redact("http://host:5000/path") == "http://host:5000/path"  # nothing to hide


# ---- time order of models ------------------------------------------------------------------------
def test_automatic_promotion_refuses_a_cutoff_older_than_the_champions():
    with pytest.raises(
        PromotionRefused,
        match=r"cutoff 2026-03-01, older than the serving champion v4's cutoff "
        r"2026-03-15",
    ) as refused:
        decide(cutoff="2026-03-01", champion_cutoff="2026-03-15", champion=4)
    assert "waiver" in str(refused.value) and "mlops-assets promote 7" in str(refused.value)
    with pytest.raises(
        PromotionRefused, match="older than"
    ):  # parking as challenger is refused too
        decide(cutoff="2026-03-01", champion_cutoff="2026-03-15", require_approval=True)
    assert (
        decide(cutoff="2026-03-15", champion_cutoff="2026-03-15")[0] == Action.PROMOTE
    )  # a retrain of the same cutoff
    assert decide(cutoff="2026-03-22", champion_cutoff="2026-03-15")[0] == Action.PROMOTE
    assert (
        decide(cutoff="2026-03-01", champion_cutoff=None)[0] == Action.PROMOTE
    )  # no champion (or no cutoff tag)


def test_a_training_window_may_not_start_before_the_first_partition():
    from mlops_assets.model.bounds import partial_window_problem

    start, window = SPEC.partition_start, SPEC.training.window_days
    early = start + dt.timedelta(days=window - 1)
    problem = partial_window_problem(SPEC, early)
    assert problem and f"starts {start - dt.timedelta(days=1)}" in problem and str(start) in problem
    assert (
        f"on or after {start + dt.timedelta(days=window)}" in problem
        and "allow_partial_window" in problem
    )
    assert partial_window_problem(SPEC, start + dt.timedelta(days=window)) is None
    assert partial_window_problem(spec_with(training__allow_partial_window=True), early) is None


def test_a_set_of_days_is_requested_as_one_run_per_block_of_consecutive_days():
    from mlops_assets.location.common import consecutive_blocks, days_requests

    days = [
        "2026-03-05",
        "2026-03-02",
        "2026-03-03",
        "2026-03-03",
        "2026-03-09",
        "2026-02-28",
        "2026-03-01",
    ]
    assert consecutive_blocks(days) == [
        ["2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03"],
        ["2026-03-05"],
        ["2026-03-09"],
    ]  # across a month's end; duplicates once
    assert consecutive_blocks([]) == []
    requests = days_requests(days, lambda block: f"k:{block}", {"mlops/reason": "why"})
    assert [r.run_key for r in requests] == [
        "k:2026-02-28..2026-03-03",
        "k:2026-03-05",
        "k:2026-03-09",
    ]
    first, single = requests[0], requests[1]
    assert first.partition_key is None and first.tags == {
        "mlops/reason": "why",
        **range_tags("2026-02-28", "2026-03-03"),
    }
    # the project's names for the range are Dagster's own (a run with other tags runs no range)
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    assert range_tags("a", "b") == {
        ASSET_PARTITION_RANGE_START_TAG: "a",
        ASSET_PARTITION_RANGE_END_TAG: "b",
    }
    assert single.partition_key == "2026-03-05" and single.tags == {"mlops/reason": "why"}
    # what a run's alert and the demo name: the partition, or the range
    from mlops_assets.core.vocabulary import run_partitions

    assert run_partitions(first.tags) == "2026-02-28..2026-03-03" and run_partitions({}) is None
    assert run_partitions({"dagster/partition": "2026-03-05"}) == "2026-03-05"


def test_a_day_is_re_scored_once_per_champion_and_rolled_back_version_however_its_block_moves():
    from mlops_assets.monitoring.rules import rescore_due

    first = [("2026-03-01", 2), ("2026-03-02", 2), ("2026-03-03", 2), ("2026-03-04", 2)]
    due, cursor = rescore_due(first, 1, None)
    assert due == first
    # a daily run that loaded v2 before the rollback scores the next day with it: only that day is
    # due
    grown = [*first, ("2026-03-05", 2)]
    due, cursor = rescore_due(grown, 1, cursor)
    assert due == [("2026-03-05", 2)]
    # a day leaves the set (re-processed meanwhile) while the others wait: nothing new is due
    assert rescore_due([p for p in grown if p[0] != "2026-03-02"], 1, cursor)[0] == []
    # a later rollback (v3) of the same champion's days, and a new champion: due again
    assert rescore_due([("2026-03-01", 3)], 1, cursor)[0] == [("2026-03-01", 3)]
    assert rescore_due(first, 4, cursor)[0] == first
