"""``spec infer`` / ``spec check`` rules, directly: types, ranges, categories, nullability, PII by
value,
day-constant columns, the task, leakage suspects left out with why, and the lint."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
import yaml

from mlops_assets.core.spec import BUNDLED_SPEC, SpecLoader, load_spec, parse_spec
from mlops_assets.data.simulator import BIKE_SPEC
from mlops_assets.data.spec_infer import (
    InferOptions,
    infer_spec,
    luhn_valid,
    numeric_column,
    pii_kind,
    spec_lints,
    target_task,
)
from mlops_assets.model.leakage_scan import leakage_suspects, roc_auc

N = 2000


def sample(seed: int = 0, **extra) -> pl.DataFrame:
    """Ten days of events: two noisy legitimate features, a category, a per-day value, and
    ``extra``.
    """
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, 10 * 24 * 60, N))
    at = [dt.datetime(2026, 1, 5) + dt.timedelta(minutes=int(m)) for m in minutes]
    base = {
        "event_id": [f"e{i:05d}" for i in range(N)],
        "at": at,
        "x": rng.normal(10, 3, N),
        "count": rng.integers(0, 40, N),
        "kind": rng.choice(["a", "b", "c"], N),
        "daily_rate": [1.0 + t.day / 10 for t in at],
    }
    return pl.DataFrame(
        {**base, **{k: (v(base, rng) if callable(v) else v) for k, v in extra.items()}}
    )


def infer(frame, **opts):
    inferred = infer_spec(frame, InferOptions(name="sample", **opts), ["sample.csv"])
    text = inferred.to_yaml()
    return inferred, text, parse_spec(yaml.load(text, Loader=SpecLoader), "<inferred>")


def test_two_columns_that_sum_to_the_target_are_left_out_with_why():
    frame = sample(y=lambda b, rng: b["x"] + b["count"])
    inferred, text, spec = infer(frame, target="y", timestamp="at", id="event_id")
    assert spec.task == "regression"
    assert "x" not in spec.model_features and "count" not in spec.model_features
    assert {"kind", "daily_rate"} <= set(spec.model_features)
    notes = [line for line in text.splitlines() if line.startswith("#   ")]
    assert any(
        n.startswith("#   x: leakage suspect") and "linear function of x + count" in n
        for n in notes
    ), notes
    assert any(n.startswith("#   count: leakage suspect") for n in notes)


def test_a_column_that_alone_predicts_the_target_is_left_out_a_noisy_one_is_kept():
    def label(b, rng):
        return (b["x"] + rng.normal(0, 3, N) > 10).astype(int)

    frame = sample(label=label)
    frame = frame.with_columns(
        (pl.col("label") * 100 + pl.col("count") % 3).alias("outcome_code")
    )  # derived after
    inferred, text, spec = infer(frame, target="label")
    assert spec.task == "classification" and spec.classes is None
    assert "outcome_code" not in spec.model_features and "x" in spec.model_features
    why = dict(inferred.left_out)["outcome_code"]
    assert "alone it predicts label almost perfectly" in why
    # what was detected on the way: the timestamp and the id
    assert spec.timestamp == "at" and spec.id == "event_id"


def test_leakage_measures_on_a_handful_of_values():
    assert roc_auc(np.array([1.0, 2, 3, 4]), np.array([False, False, True, True])) == 1.0
    assert (
        roc_auc(np.array([4.0, 3, 2, 1]), np.array([False, False, True, True])) == 1.0
    )  # direction-free
    assert roc_auc(np.array([1.0, 1, 1, 1]), np.array([False, True, False, True])) == 0.5
    rng = np.random.default_rng(1)
    frame = pl.DataFrame(
        {"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500), "c": rng.normal(0, 1, 500)}
    )
    frame = frame.with_columns((2 * pl.col("a") - 3 * pl.col("b") + 1).alias("y"))
    leaks = leakage_suspects(frame, "y", ["a", "b", "c"], classes=None)
    assert [leak.columns for leak in leaks] == [("a", "b")] and leaks[0].value > 0.999


def test_pii_by_value_patterns_whatever_the_column_is_called():
    assert luhn_valid("4539578763621486") and not luhn_valid("4539578763621487")
    assert pii_kind(pl.Series(["ann@example.com", "bo.b+x@mail.co.uk"] * 5)) == "an e-mail address"
    assert (
        pii_kind(pl.Series(["+44 20 7946 0958", "(212) 555-0199", "555-123-4567"] * 4))
        == "a phone number"
    )
    assert (
        pii_kind(pl.Series(["4539 5787 6362 1486", "4111-1111-1111-1111"] * 5))
        == "a card number (Luhn-valid)"
    )
    assert (
        pii_kind(pl.Series([4539578763621486, 4111111111111111] * 5))
        == "a card number (Luhn-valid)"
    )
    assert (
        pii_kind(pl.Series(["2026-01-05", "2026-02-11"] * 5)) is None
    )  # dates are not phone numbers
    assert (
        pii_kind(pl.Series([12, 480, 3])) is None
        and pii_kind(pl.Series(["grocery", "fuel"])) is None
    )
    frame = sample(
        y=lambda b, rng: rng.normal(0, 1, N),
        contact=lambda b, rng: [f"user{i}@example.org" for i in range(N)],
        col7=lambda b, rng: [f"+1 415-555-{i:04d}" for i in range(N)],
    )
    _, _, spec = infer(frame, target="y")
    assert spec.pii == ["contact", "col7"] and not {"contact", "col7"} & set(spec.model_features)


def test_types_ranges_with_margin_nullability_and_categories():
    entry, seen = numeric_column(pl.Series([0, 10, 40]), 0.25)
    assert (
        entry == {"dtype": "int", "min": 0, "max": 50} and "0..40" in seen
    )  # never below 0 when it never is
    entry, _ = numeric_column(pl.Series([-2.0, None, 2.0]), 0.25)
    assert (
        entry["min"] <= -3.0
        and entry["max"] >= 3.0
        and entry["nullable"] is True
        and "dtype" not in entry
    )
    assert numeric_column(pl.Series([0.1, 0.9]), 0.25)[0] == {
        "min": 0,
        "max": 1,
    }  # a share stays a share
    frame = sample(
        y=lambda b, rng: rng.normal(0, 1, N),
        city=lambda b, rng: [f"city{i % 200}" for i in range(N)],
        token=lambda b, rng: [f"t{i}" for i in range(N)],
        maybe=lambda b, rng: [None if i % 7 == 0 else "p" if i % 2 else "q" for i in range(N)],
        always=lambda b, rng: ["same"] * N,
    )
    inferred, _, spec = infer(frame, target="y")
    cat = spec.features.categorical
    assert cat["kind"].allowed == ["a", "b", "c"] and not cat["kind"].nullable
    assert cat["city"].allowed is None  # 200 values: open category
    assert cat["maybe"].nullable and cat["maybe"].allowed == ["p", "q"]
    assert (
        spec.features.numeric["count"].dtype == "int"
        and spec.features.numeric["x"].dtype == "float"
    )
    left = dict(inferred.left_out)
    assert "identifier-like" in left["token"] and "constant" in left["always"]


def test_columns_constant_within_a_day_go_to_drift_exclude():
    _, text, spec = infer(sample(y=lambda b, rng: rng.normal(0, 1, N)), target="y")
    assert "daily_rate" in spec.drift.exclude and {"day_of_week", "is_weekend"} <= set(
        spec.drift.exclude
    )
    assert "hour" in spec.features.calendar and "x" not in spec.drift.exclude
    assert "# constant within every day of the sample: daily_rate" in text


def test_the_task_from_the_target():
    assert target_task(pl.Series([0, 1, 1, 0]))[:2] == ("classification", None)
    assert target_task(pl.Series([True, False]))[:2] == ("classification", None)
    assert target_task(pl.Series(["late", "on_time", "late"]))[:2] == (
        "classification",
        ["late", "on_time"],
    )
    assert target_task(pl.Series([1, 2, 3, 2]))[:2] == ("classification", [1, 2, 3])
    assert target_task(pl.Series(np.linspace(0, 50, 200)))[:2] == ("regression", None)
    frame = sample(
        grade=lambda b, rng: np.where(b["x"] > 12, "high", np.where(b["x"] > 8, "mid", "low"))
    )
    _, text, spec = infer(frame.drop("x"), target="grade")
    assert (
        spec.task == "classification" and spec.classes == ["high", "low", "mid"] and spec.multiclass
    )
    assert "multiclass: 3 distinct values" in text


def test_inferred_yaml_is_commented_and_the_refusals_name_what_to_pass():
    _, text, _ = infer(sample(y=lambda b, rng: rng.normal(0, 1, N)), target="y")
    assert text.startswith("# Inferred by `mlops-assets spec infer` from 2000 rows of sample.csv")
    assert "  # sample " in text and "# barely better than a guess" in text
    with pytest.raises(ValueError, match="no column 'nope'"):
        infer_spec(sample(), InferOptions(target="nope"))
    with pytest.raises(ValueError, match="pass --timestamp"):
        infer_spec(sample(y=lambda b, rng: np.zeros(N)).drop("at"), InferOptions(target="y"))


def test_lint_finds_likely_mistakes_and_is_quiet_on_the_bundled_specs():
    assert spec_lints(load_spec(BUNDLED_SPEC)) == [] and spec_lints(load_spec(BIKE_SPEC)) == []
    data = yaml.safe_load(BIKE_SPEC.read_text())
    data["features"]["numeric"]["trip_distance_km"] = {}
    data["features"]["categorical"]["bike_type"] = {}
    data["drift"]["exclude"] = ["month", "nope"]
    data["gates"] = {}
    lints = spec_lints(parse_spec(data))
    text = [f"{field}: {why}" for field, why in lints]
    assert any(t.startswith("features.numeric.trip_distance_km: no min or max") for t in text), text
    assert any(t.startswith("features.categorical.bike_type: no allowed list") for t in text)
    assert "drift.exclude: 'nope' is not a feature" in text
    assert any(
        t.startswith("drift.exclude: day_of_week is constant within a daily partition")
        for t in text
    )
    assert any(t.startswith("gates: no floors or ceilings") for t in text)
