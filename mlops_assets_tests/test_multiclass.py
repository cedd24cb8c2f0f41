"""A target with three string classes runs the lifecycle by spec alone: the contract types and
checks the labels, the model gives a probability per class, the metrics are the multiclass
ones, the drift profile of the prediction is the predicted-class distribution, and score rows
carry the predicted label and one probability per class."""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from dagster import instance_for_test
from threadpoolctl import threadpool_limits

from mlops_assets.control.registry import IntegrityError
from mlops_assets.core.spec import SpecError, load_spec, parse_spec
from mlops_assets.data.contract import event_contract, label_contract
from mlops_assets.data.features import compute_features
from mlops_assets.data.ingest import ingest_partition
from mlops_assets.model import training as T
from mlops_assets.model.estimators import ESTIMATORS
from mlops_assets.model.evaluation import slice_metrics, task_metrics
from mlops_assets.scoring.rows import (
    BASELINE_VERSION,
    DEGRADED,
    NORMAL,
    ServingModel,
    class_probability_columns,
    score_frame,
)
from mlops_assets.scoring.serving import serving_model, training_prior

from .conftest import check_evaluations, days, run_ingest

START = dt.date(2026, 5, 4)
CLASSES = ["low", "medium", "high"]
CHANNELS = ["email", "chat", "phone"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def spec_data(**over) -> dict:
    data = {
        "name": "ticket_priority",
        "task": "classification",
        "landing": {"path": "landing/tickets/events", "formats": ["csv", "parquet"]},
        "timestamp": "opened_at",
        "id": "ticket_id",
        "target": "priority",
        "classes": CLASSES,
        "features": {
            "numeric": {"words": {"min": 0}, "account_age_days": {"dtype": "int", "min": 0}},
            "categorical": {"channel": {"allowed": CHANNELS}},
            "calendar": ["hour"],
        },
        "partition_start": START.isoformat(),
        "training": {"window_days": 10, "holdout_days": 3, "seed": 3, "cadence_days": 7},
        "model": {
            "registered_name": "ticket_priority",
            "estimator": "hist_gradient_boosting",
            "params": {"max_iter": 60, "learning_rate": 0.1},
        },
        "gates": {
            "floors": {"roc_auc": 0.6, "accuracy": 0.45},
            "ceilings": {"log_loss": 1.1},
            "max_calibration_error": 0.15,
            "slice_floor": 0.55,
            "min_slice_rows": 100,
        },
    }
    data.update(over)
    return data


def tickets(day: dt.date, rows: int, seed: int) -> pl.DataFrame:
    """Tickets whose priority depends on their length, channel and account age (learnable, not
    exact).
    """
    rng = np.random.default_rng(seed)
    words = rng.gamma(2.0, 60.0, rows)
    age = rng.integers(0, 3000, rows)
    channel = rng.choice(CHANNELS, rows)
    hour = rng.integers(0, 24, rows)
    logits = np.column_stack(
        [
            np.zeros(rows),
            0.012 * words - 1.2 + 0.8 * (channel == "chat"),
            0.02 * words - 3.0 + 1.6 * (channel == "phone") - 0.0004 * age,
        ]
    )
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    label = [
        CLASSES[int(np.searchsorted(np.cumsum(row), u))]
        for row, u in zip(p, rng.random(rows), strict=True)
    ]
    opened = [
        dt.datetime.combine(day, dt.time(int(h), int(m)))
        for h, m in zip(hour, rng.integers(0, 60, rows), strict=True)
    ]
    return pl.DataFrame(
        {
            "ticket_id": [f"{day:%Y%m%d}-{i}" for i in range(rows)],
            "opened_at": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in opened],  # UTC with an offset
            "words": words,
            "account_age_days": age,
            "channel": channel,
            "priority": label,
        }
    )


def write_day(landing: Path, day: dt.date, frame: pl.DataFrame) -> None:
    folder = landing / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_csv(folder / f"events-{day}.csv")


# ---- the spec and the contract ---------------------------------------------------------------


def test_classes_are_validated_at_load_naming_the_field():
    assert parse_spec(spec_data()).multiclass
    binary = parse_spec(spec_data(classes=["ok", "spam"], gates={"floors": {"pr_auc": 0.1}}))
    assert not binary.multiclass and binary.target_classes == ["ok", "spam"]
    for over, field, why in [
        ({"classes": ["low"]}, "classes", "at least two"),
        ({"classes": ["a", 1]}, "classes", "all strings or all integers"),
        ({"classes": [True, False]}, "classes", "quote"),
        ({"classes": ["a", "a"]}, "classes", "distinct"),
        ({"classes": ["a b", "a_b"]}, "classes", "column suffixes"),
        ({"task": "regression", "gates": {}}, "classes", "regression"),
        ({"gates": {"floors": {"pr_auc": 0.1}}}, "gates", "not computed for multiclass"),
        (
            {"classes": ["ok", "spam"]},
            "gates",
            "not computed for binary",
        ),  # accuracy: a multiclass metric
    ]:
        with pytest.raises(SpecError, match=rf"(?s){field}:.*{why}"):
            parse_spec(spec_data(**over))


def test_the_contract_types_the_target_from_the_classes_and_quarantines_an_unknown_one(tmp_path):
    spec = parse_spec(spec_data())
    day = START
    frame = tickets(day, 6, seed=1).with_columns(
        pl.Series("priority", ["low", "high", "urgent", "medium", None, "low"])
    )
    write_day(tmp_path, day, frame)
    result = ingest_partition(tmp_path, day.isoformat(), event_contract(spec))
    assert result.accepted.schema["priority"] == pl.String
    assert result.accepted["priority"].to_list() == ["low", "high", "medium", "low"]
    bad = result.quarantine.select("row", "column", "rule", "reason").to_dicts()
    assert bad[0] == {
        "row": 3,
        "column": "priority",
        "rule": "category",
        "reason": "priority: 'urgent' is not one of the allowed values (low, medium, high)",
    }
    assert bad[1]["row"] == 5 and bad[1]["rule"] == "null"
    codes = compute_features(result.accepted, spec)["priority"].to_list()
    assert codes == [0.0, 2.0, 1.0, 0.0]  # the class code: its index in `classes`


def test_integer_classes_and_a_label_feed_contract(tmp_path):
    spec = parse_spec(
        spec_data(classes=[3, 1, 2], labels={"path": "labels", "id": "ticket_id", "delay_days": 1})
    )
    contract = label_contract(spec)
    assert contract.dtypes["priority"] == pl.Int64 and contract.allowed["priority"] == (3, 1, 2)
    folder = tmp_path / START.isoformat()
    folder.mkdir()
    pl.DataFrame({"ticket_id": ["a", "b", "c"], "priority": ["1", "7", "3"]}).write_csv(
        folder / "labels.csv"
    )
    result = ingest_partition(tmp_path, START.isoformat(), contract)
    assert result.accepted["priority"].to_list() == [1, 3]
    assert result.quarantine.row(0, named=True)["reason"].startswith(
        "priority: '7' is not one of the allowed"
    )


def test_a_string_label_without_classes_is_told_to_declare_them(tmp_path):
    data = spec_data(gates={})
    data.pop("classes")
    spec = parse_spec(data)
    write_day(tmp_path, START, tickets(START, 3, seed=2))
    reason = ingest_partition(tmp_path, START.isoformat(), event_contract(spec)).quarantine[
        "reason"
    ][0]
    assert "is not a valid Int64" in reason and "classes: [...]" in reason


# ---- the model, its metrics, its baseline -----------------------------------------------------


def features_of(spec, n_days: int, rows: int = 300) -> pl.DataFrame:
    raw = []
    for i in range(n_days):
        day = START + dt.timedelta(days=i)
        frame = tickets(day, rows, seed=100 + i)
        raw.append(
            frame.with_columns(
                pl.col("opened_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us"),
                pl.lit(day.isoformat()).alias("ds"),
            )
        )
    return compute_features(pl.concat(raw), spec)


@pytest.mark.parametrize(
    "estimator", ["hist_gradient_boosting", "random_forest", "logistic_regression", "baseline"]
)
def test_every_classifier_gives_one_probability_per_class(estimator):
    spec = parse_spec(spec_data(model={"registered_name": "t", "estimator": estimator}))
    feats = features_of(spec, 4)
    X = T.to_model_frame(feats, spec)
    model = T.fit(spec, X, feats["priority"].to_numpy())
    p = T.predict_scores(model, X, spec.task)
    assert p.shape == (feats.height, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    m = task_metrics(spec.task, feats["priority"].to_numpy(), p)
    assert set(m) >= {
        "roc_auc",
        "accuracy",
        "macro_f1",
        "log_loss",
        "brier",
        "calibration_error",
        "rows",
    }
    assert "pr_auc" not in m
    if estimator != "baseline":
        assert m["roc_auc"] > 0.65 and m["accuracy"] > 0.45


def test_multiclass_metrics_agree_with_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    p = rng.dirichlet([1, 1, 1], 2000) * 0.5 + np.eye(3)[y] * 0.5
    m = task_metrics("classification", y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(axis=1)))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p.argmax(axis=1), average="macro"))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["brier"] == pytest.approx(np.mean(np.sum((p - np.eye(3)[y]) ** 2, axis=1)) / 2)
    assert 0 <= m["calibration_error"] <= 1 and m["min_class_rows"] == int(np.bincount(y).min())
    # at two classes the multiclass brier is the binary one
    y2, p2 = rng.integers(0, 2, 500), rng.random(500)
    two = task_metrics("classification", y2, np.column_stack([1 - p2, p2]))
    assert two["brier"] == pytest.approx(task_metrics("classification", y2, p2)["brier"])
    # one class present: no ranking, the rest still defined
    one = task_metrics("classification", np.zeros(10, dtype=int), np.tile([0.6, 0.3, 0.1], (10, 1)))
    assert (
        one["roc_auc"] is None
        and "only one class" in one["undefined"]["roc_auc"]
        and one["accuracy"] == 1.0
    )
    slices = slice_metrics(
        "classification", pl.DataFrame({"c": ["a", "b"] * 1000}), y, p, ["c"], 100
    )
    assert [s["value"] for s in slices] == ["a", "b"] and slices[0]["metrics"][
        "accuracy"
    ] is not None


def test_a_class_missing_from_training_gets_probability_zero_and_survives_skops():
    import skops.io as sio

    spec = parse_spec(spec_data())
    feats = features_of(spec, 2)
    feats = feats.filter(pl.col("priority") != 2.0)  # no "high" ticket in training
    X = T.to_model_frame(feats, spec)
    model = T.fit(spec, X, feats["priority"].to_numpy())
    loaded = sio.loads(
        sio.dumps(model), trusted=list(ESTIMATORS["hist_gradient_boosting"].trusted_types)
    )
    p = T.predict_scores(loaded, X, spec.task)
    assert p.shape == (feats.height, 3) and (p[:, 2] == 0).all()
    np.testing.assert_array_equal(p, T.predict_scores(model, X, spec.task))
    assert loaded.declared_classes_ == CLASSES


def test_labels_fit_as_well_as_codes_and_bad_labels_are_named():
    spec = parse_spec(spec_data())
    feats = features_of(spec, 1, rows=60)
    X = T.to_model_frame(feats, spec)
    names = np.array([CLASSES[int(c)] for c in feats["priority"]], dtype=object)
    np.testing.assert_array_equal(
        T.predict_scores(T.fit(spec, X, names), X, spec.task),
        T.predict_scores(T.fit(spec, X, feats["priority"].to_numpy()), X, spec.task),
    )
    with pytest.raises(ValueError, match="urgent.*not among the spec's classes"):
        T.fit(spec, X, np.where(np.arange(60) == 0, "urgent", names))
    with pytest.raises(ValueError, match="class codes 0..2"):
        T.fit(spec, X, np.full(60, 5))


def test_reference_profile_and_the_class_prior_baseline():
    spec = parse_spec(spec_data())
    feats = features_of(spec, 3)
    X = T.to_model_frame(feats, spec)
    model = T.fit(spec, X, feats["priority"].to_numpy())
    profile = T.reference_profile(feats, spec, prediction=T.predict_scores(model, X, spec.task))
    json.dumps(profile)
    assert profile["prediction"]["kind"] == "categorical" and set(
        profile["prediction"]["counts"]
    ) <= set(CLASSES)
    priors = training_prior(profile)
    shares = feats["priority"].value_counts().sort("priority")["count"].to_numpy() / feats.height
    np.testing.assert_allclose(priors, shares)

    def unusable(version):
        raise IntegrityError(f"v{version} changed")

    baseline = serving_model(
        "champion",
        2,
        {},
        fallback="baseline",
        last_known_good=None,
        load=unusable,
        baseline_prior=lambda: priors,
    )
    assert (
        baseline.version == BASELINE_VERSION
        and baseline.mode == DEGRADED
        and "constant baseline [" in baseline.reason
    )
    rows = score_frame(baseline, feats.head(5), spec)
    np.testing.assert_allclose(
        rows.select(class_probability_columns(spec)).to_numpy(), np.tile(priors, (5, 1))
    )
    assert rows["label"].to_list() == [CLASSES[int(np.argmax(priors))]] * 5


def test_score_rows_of_two_named_classes_keep_the_positive_probability():
    spec = parse_spec(spec_data(classes=["ok", "spam"], gates={"floors": {"roc_auc": 0.5}}))
    feats = features_of(parse_spec(spec_data()), 1, rows=50).with_columns(
        pl.when(pl.col("priority") == 2.0).then(1.0).otherwise(0.0).alias("priority")
    )
    X = T.to_model_frame(feats, spec)
    model = T.fit(spec, X, feats["priority"].to_numpy())
    rows = score_frame(ServingModel(model, 1, "champion", NORMAL, "test"), feats, spec)
    assert rows.schema["label"] == pl.String and class_probability_columns(spec) == [
        "probability__ok",
        "probability__spam",
    ]
    np.testing.assert_allclose(rows["probability"], rows["probability__spam"])
    np.testing.assert_allclose(rows["probability"], T.predict_scores(model, X, spec.task))
    assert rows["label"].to_list() == ["spam" if p >= 0.5 else "ok" for p in rows["probability"]]


# ---- the whole lifecycle through the Dagster definitions --------------------------------------


def ticket_world(home, monkeypatch, data: dict | None = None, relabel=lambda frame: frame):
    """12 clean days of tickets and a 13th with an unknown class; the definitions built from the
    spec.
    """
    from mlops_assets.core.platform import Platform
    from mlops_assets.data.lake import DeltaLake
    from mlops_assets.location.build import build_definitions

    spec_file = home / "tickets.yaml"
    spec_file.write_text(yaml.safe_dump(data or spec_data()))
    monkeypatch.setenv("MLOPS_SPEC", str(spec_file))
    platform = Platform.from_env()
    keys = days(START, 13)
    for i, key in enumerate(keys[:12]):
        write_day(
            platform.landing,
            dt.date.fromisoformat(key),
            relabel(tickets(dt.date.fromisoformat(key), 320, seed=i)),
        )
    bad = relabel(tickets(dt.date.fromisoformat(keys[12]), 50, seed=99))
    write_day(
        platform.landing,
        dt.date.fromisoformat(keys[12]),
        bad.with_columns(
            pl.when(pl.int_range(pl.len()) == 7)
            .then(pl.lit("escalated"))
            .otherwise(pl.col("priority"))
            .alias("priority")
        ),
    )
    return (
        load_spec(spec_file),
        build_definitions(platform),
        DeltaLake(root=str(platform.home.lake)),
        keys,
    )


def ingest_world(defs, lake, instance, keys, codes=(0.0, 1.0, 2.0)) -> None:
    assert run_ingest(defs, instance, start=keys[0], end=keys[11]).success
    assert lake.read("raw_events")["priority"].dtype == pl.String
    assert set(lake.read("features")["priority"].unique()) == set(codes)
    rejected = run_ingest(defs, instance, partition_key=keys[12])
    assert not check_evaluations(rejected)["contract_ranges_and_categories"].passed
    q = lake.read("quarantine").filter(pl.col("ds") == keys[12]).row(0, named=True)
    assert (q["row"], q["column"], q["rule"]) == (8, "priority", "category") and "'escalated'" in q[
        "reason"
    ]


def test_multiclass_dataset_ingests_and_registers_a_candidate(home, monkeypatch):
    from dagster import AssetKey

    from mlops_assets.core.vocabulary import Alias, Artifact

    spec, defs, lake, keys = ticket_world(home, monkeypatch)
    registry, day = defs.resources["registry"], keys[10]
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        ingest_world(defs, lake, instance, keys)
        result = defs.resolve_job_def("training").execute_in_process(
            instance=instance,
            partition_key=keys[11],
            asset_selection=[AssetKey("training_set"), AssetKey("candidate_model")],
        )
        assert result.success
        # champion by hand: the candidate path alone (test_multiclass_dataset_runs_the_lifecycle
        # promotes through the gates)
        registry.set_alias(Alias.CHAMPION, 1)
        assert (
            defs.resolve_job_def("scoring")
            .execute_in_process(instance=instance, partition_key=day)
            .success
        )
        assert (
            defs.resolve_job_def("performance")
            .execute_in_process(instance=instance, partition_key=day)
            .success
        )
    scores = lake.read("scores", [day])
    _assert_class_scores(scores, spec)
    perf = lake.read("performance", [day]).row(0, named=True)
    assert perf["metric"] == "roc_auc" and perf["primary"] > 0.6 and perf["labelled_rows"] == 320
    assert {"accuracy", "macro_f1", "log_loss"} <= set(json.loads(perf["metrics"]))
    ts = lake.read("training_set", [keys[11]])
    assert set(ts["priority"].unique()) == {0.0, 1.0, 2.0}
    registry = defs.resources["registry"]
    holdout = registry.load_artifact_json(1, Artifact.HOLDOUT_SCORES)
    np.testing.assert_allclose(np.asarray(holdout["scores"]).sum(axis=1), 1.0)
    profile = registry.load_artifact_json(1, Artifact.REFERENCE_PROFILE)
    assert profile["prediction"]["kind"] == "categorical" and set(
        profile["prediction"]["counts"]
    ) == set(CLASSES)
    assert sum(profile["class_priors"]) == pytest.approx(1)
    model = registry.load_model(1)
    assert model.declared_classes_ == CLASSES
    train_rows = ts.filter(pl.col("split") == "train")
    m = task_metrics(
        spec.task,
        train_rows["priority"].to_numpy(),
        T.predict_scores(model, T.to_model_frame(train_rows, spec), spec.task),
    )
    assert m["roc_auc"] > 0.65 and m["accuracy"] > 0.45


def test_multiclass_dataset_runs_the_lifecycle(home, monkeypatch):
    from mlops_assets.core.vocabulary import Alias

    spec, defs, lake, keys = ticket_world(home, monkeypatch)
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        ingest_world(defs, lake, instance, keys)
        result = defs.resolve_job_def("training").execute_in_process(
            instance=instance, partition_key=keys[11], raise_on_error=False
        )
        evals = check_evaluations(result)
        assert result.success, {k: v.description for k, v in evals.items() if not v.passed}
        assert {
            "gate_floor_roc_auc",
            "gate_floor_accuracy",
            "gate_ceiling_log_loss",
            "gate_calibration",
            "gate_integrity",
        } <= set(evals)
        report = next(
            e.event_specific_data.materialization.metadata
            for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
            and e.asset_key.path == ["evaluation_report"]
        )
        assert {
            "candidate_roc_auc",
            "candidate_accuracy",
            "candidate_macro_f1",
            "candidate_log_loss",
            "candidate_calibration_error",
        } <= set(report) and "candidate_pr_auc" not in report
        assert defs.resources["registry"].get_alias(Alias.CHAMPION) == 1
        day = keys[10]
        assert (
            defs.resolve_job_def("scoring")
            .execute_in_process(instance=instance, partition_key=day)
            .success
        )
        scores = lake.read("scores", [day])
    _assert_class_scores(scores, spec)


def test_two_named_classes_run_the_lifecycle_as_a_binary_model(home, monkeypatch):
    """``classes: [routine, urgent]``: binary, the second listed positive, gated and scored end to
    end.
    """
    from mlops_assets.core.vocabulary import Alias

    data = spec_data(
        classes=["routine", "urgent"],
        gates={
            "floors": {"roc_auc": 0.6, "pr_auc": 0.2},
            "max_calibration_error": 0.15,
            "min_slice_rows": 100,
        },
    )
    urgent = (
        pl.when(pl.col("priority") == "high").then(pl.lit("urgent")).otherwise(pl.lit("routine"))
    )
    _, defs, lake, keys = ticket_world(
        home, monkeypatch, data, lambda f: f.with_columns(urgent.alias("priority"))
    )
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        ingest_world(defs, lake, instance, keys, codes=(0.0, 1.0))
        result = defs.resolve_job_def("training").execute_in_process(
            instance=instance, partition_key=keys[11], raise_on_error=False
        )
        evals = check_evaluations(result)
        assert result.success, {k: v.description for k, v in evals.items() if not v.passed}
        assert {"gate_floor_roc_auc", "gate_floor_pr_auc", "gate_integrity"} <= set(evals)
        assert defs.resources["registry"].get_alias(Alias.CHAMPION) == 1
        assert (
            defs.resolve_job_def("scoring")
            .execute_in_process(instance=instance, partition_key=keys[10])
            .success
        )
    scores = lake.read("scores", [keys[10]])
    assert scores.schema["label"] == pl.String and set(scores["label"].unique()) <= {
        "routine",
        "urgent",
    }
    np.testing.assert_allclose(scores["probability"], scores["probability__urgent"])
    np.testing.assert_allclose(scores["probability__routine"] + scores["probability__urgent"], 1.0)
    assert scores["label"].to_list() == [
        "urgent" if p >= 0.5 else "routine" for p in scores["probability"]
    ]


def _assert_class_scores(scores, spec) -> None:
    """One probability column per class summing to 1; `probability`/`label` are the top class; v1
    scored all.
    """
    columns = class_probability_columns(spec)
    assert columns == ["probability__low", "probability__medium", "probability__high"]
    probs = scores.select(columns).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(scores["probability"].to_numpy(), probs.max(axis=1))
    assert scores["label"].to_list() == [CLASSES[int(i)] for i in probs.argmax(axis=1)]
    assert scores.height == 320 and set(scores["model_version"].unique()) == {1}
