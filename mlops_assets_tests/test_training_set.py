"""Point-in-time training sets (ml.datasets), pure and fast: no feature row dated on/after the
cutoff C and no label that arrived on/after C may enter training_set[C]; the holdout is the last
``holdout_days`` of matured event days, by time."""

from __future__ import annotations

import copy
import datetime as dt
import random

import polars as pl
import pytest
import yaml

from mlops_assets.core.spec import BUNDLED_SPEC, parse_spec
from mlops_assets.core.vocabulary import SPLIT_COLUMN as SPLIT
from mlops_assets.model.datasets import (
    LABEL_ARRIVED,
    build_training_set,
    feature_window,
    latest_labels_before,
    maturity_horizon,
    training_set_summary,
)

BASE = yaml.safe_load(BUNDLED_SPEC.read_text())
C = dt.date(2026, 4, 1)  # the cutoff of every hand-made case below


def make_spec(window: int = 28, holdout: int = 7, delay: int | None = 5):
    """The card spec with explicit training/label settings (independent of the bundled values).
    ``delay=None``: no label feed, the target travels in the events."""
    data = copy.deepcopy(BASE)
    data["training"].update(window_days=window, holdout_days=holdout)
    if delay is None:
        data.pop("labels")
    else:
        data["labels"]["delay_days"] = delay
    return parse_spec(data, "<test>")


def d(text: str | dt.date) -> dt.date:
    return text if isinstance(text, dt.date) else dt.date.fromisoformat(text)


def features(rows, target: bool = False) -> pl.DataFrame:
    """rows: (id, ds, event day[, target]); ``ds`` is the feature partition (the day file), the
    event timestamp is noon of ``event day`` (normally the same day)."""
    frame = pl.DataFrame(
        {
            "ds": [d(r[1]).isoformat() for r in rows],
            "transaction_id": [r[0] for r in rows],
            "event_time": [dt.datetime.combine(d(r[2]), dt.time(12)) for r in rows],
            "amount": [float(i) for i in range(len(rows))],
        },
        schema_overrides={"event_time": pl.Datetime("us")},
    )
    if target:
        frame = frame.with_columns(pl.Series("is_fraud", [r[3] for r in rows], dtype=pl.Float64))
    return frame


def labels(rows) -> pl.DataFrame:
    """rows: (id, arrival day, label); ``ds`` of the label feed is the ARRIVAL day."""
    return pl.DataFrame(
        {
            "ds": [d(r[1]).isoformat() for r in rows],
            "transaction_id": [r[0] for r in rows],
            "is_fraud": [r[2] for r in rows],
            "event_date": ["?"] * len(rows),
        },
        schema_overrides={"is_fraud": pl.Int8},
    )


def by_id(ts: pl.DataFrame) -> dict[str, dict]:
    return {r["transaction_id"]: r for r in ts.to_dicts()}


def test_window_and_horizon_arithmetic():
    spec = make_spec()
    assert feature_window(spec, C) == (d("2026-03-04"), d("2026-03-31"))
    assert maturity_horizon(spec, C) == d("2026-03-27")
    assert maturity_horizon(make_spec(delay=None), C) == C


def test_feature_rows_dated_on_or_after_the_cutoff_never_enter():
    # delay 0: the maturity horizon is C itself, so only the feature window keeps these rows out.
    spec = make_spec(delay=0)
    feats = features(
        [
            ("ok", "2026-03-31", "2026-03-31"),
            ("dated_c", C, "2026-03-20"),  # a day file of C whose timestamp claims an earlier day
            ("dated_after", "2026-04-02", "2026-03-21"),
            ("before_window", "2026-03-03", "2026-03-10"),  # C - window - 1
            ("first_day", "2026-03-04", "2026-03-04"),  # C - window: inside
        ]
    )
    labs = labels(
        [(i, "2026-03-31", 1) for i in feats["transaction_id"]]
    )  # every label known before C
    ts = build_training_set(feats, labs, spec, C)
    assert sorted(ts["transaction_id"]) == ["first_day", "ok"]
    assert ts["event_ds"].max() < C.isoformat() and ts["event_ds"].min() >= "2026-03-04"
    assert set(ts["ds"]) == {C.isoformat()}  # the training set's own partition is the cutoff


def test_a_label_arriving_on_or_after_the_cutoff_is_excluded_with_its_event():
    spec = make_spec()
    feats = features(
        [(i, "2026-03-10", "2026-03-10") for i in ("before", "on_cutoff", "after", "never")]
    )
    labs = labels(
        [
            ("before", "2026-03-31", 1),  # arrived the day before C: known
            ("on_cutoff", C, 1),  # arrived on C: not known at C
            ("after", "2026-04-05", 0),
        ]
    )
    ts = build_training_set(feats, labs, spec, C)
    rows = by_id(ts)
    assert set(rows) == {"before"}  # the events of unknown labels are gone too
    assert rows["before"]["is_fraud"] == 1 and rows["before"][LABEL_ARRIVED] == "2026-03-31"
    # The same data one day later: the label that arrived on the old cutoff is now known.
    later = by_id(build_training_set(feats, labs, spec, C + dt.timedelta(days=1)))
    assert set(later) == {"before", "on_cutoff"}


def test_the_latest_label_that_arrived_before_the_cutoff_is_used():
    spec = make_spec()
    feats = features(
        [("corrected", "2026-03-10", "2026-03-10"), ("flipped_late", "2026-03-11", "2026-03-11")]
    )
    labs = labels(
        [
            ("corrected", "2026-03-20", 1),  # the correction, arrived before C: wins
            ("corrected", "2026-03-15", 0),
            ("corrected", "2026-04-02", 0),  # a later correction, after C: not known yet
            ("flipped_late", "2026-03-16", 0),
            ("flipped_late", C, 1),
        ]
    )
    rows = by_id(build_training_set(feats, labs, spec, C))
    assert (rows["corrected"]["is_fraud"], rows["corrected"][LABEL_ARRIVED]) == (1, "2026-03-20")
    assert (rows["flipped_late"]["is_fraud"], rows["flipped_late"][LABEL_ARRIVED]) == (
        0,
        "2026-03-16",
    )
    known = latest_labels_before(labs, spec, C)
    assert known.height == 2 and known[LABEL_ARRIVED].max() < C.isoformat()


def test_holdout_is_the_last_matured_days_by_time():
    spec = make_spec()  # window 28, holdout 7, delay 5: horizon 03-27, holdout 03-20..03-26
    days = [d("2026-03-03") + dt.timedelta(days=i) for i in range(29)]  # 03-03 .. 03-31
    feats = features([(f"e{x.isoformat()}", x, x) for x in days])
    labs = labels(
        [
            (f"e{x.isoformat()}", min(x + dt.timedelta(days=1), d("2026-03-31")), i % 2)
            for i, x in enumerate(days)
        ]
    )  # fast labels: all arrived before C
    ts = build_training_set(feats, labs, spec, C)
    split = {r["event_ds"]: r[SPLIT] for r in ts.to_dicts()}
    # 03-03 is outside the window; 03-27..03-31 are labelled but not matured at C (delay 5)
    assert min(split) == "2026-03-04" and max(split) == "2026-03-26"
    holdout = sorted(k for k, v in split.items() if v == "holdout")
    train = sorted(k for k, v in split.items() if v == "train")
    assert holdout == [(d("2026-03-20") + dt.timedelta(days=i)).isoformat() for i in range(7)]
    assert train[-1] == "2026-03-19" and len(train) == 16
    summary = training_set_summary(ts, spec)
    assert summary["rows"] == 23 and summary["train_rows"] == 16 and summary["holdout_rows"] == 7
    assert summary["holdout_dates"] == "2026-03-20..2026-03-26"
    assert summary["train_positives"] == sum(
        i % 2 for i, x in enumerate(days) if "2026-03-04" <= x.isoformat() <= "2026-03-19"
    )


def test_without_a_label_feed_the_target_comes_from_the_events():
    spec = make_spec(delay=None, window=12, holdout=3)  # window 03-20..03-31, holdout 03-29..
    feats = features(
        [
            ("a", "2026-03-21", "2026-03-21", 0.0),
            ("b", "2026-03-29", "2026-03-29", 1.0),
            ("c", "2026-03-31", "2026-03-31", 0.0),
            ("unlabelled", "2026-03-25", "2026-03-25", None),
            ("today", C, C, 1.0),
            (
                "old",
                "2026-03-20",
                "2026-03-19",
                1.0,
            ),  # dated inside the window: in, split by its event day
            ("too_old", "2026-03-19", "2026-03-19", 1.0),
        ],
        target=True,
    )
    rows = by_id(build_training_set(feats, None, spec, C))
    assert set(rows) == {"a", "b", "c", "old"}
    assert {k: r[SPLIT] for k, r in rows.items()} == {
        "a": "train",
        "old": "train",
        "b": "holdout",
        "c": "holdout",
    }
    assert all(r[LABEL_ARRIVED] == r["event_ds"] for r in rows.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_a_brute_force_point_in_time_rule(seed):
    """Random events and a random delayed (and sometimes corrected) label feed, several cutoffs:
    the training set is exactly what was knowable at the cutoff."""
    rng = random.Random(seed)
    spec = make_spec(window=14, holdout=4, delay=3)
    day0 = d("2026-03-01")
    events, label_rows = [], []
    for n in range(1500):
        day = day0 + dt.timedelta(days=rng.randrange(35))
        eid = f"t{n:05d}"
        events.append((eid, day, day))
        if rng.random() < 0.9:
            first = day + dt.timedelta(days=rng.randrange(3, 9))
            y = rng.randrange(2)
            label_rows.append((eid, first, y))
            if rng.random() < 0.2:  # a correction strictly later
                label_rows.append((eid, first + dt.timedelta(days=rng.randrange(1, 6)), 1 - y))
    feats, labs = features(events), labels(label_rows)
    for cutoff in (day0 + dt.timedelta(days=k) for k in (14, 20, 27, 33, 38)):
        first, last = cutoff - dt.timedelta(days=14), cutoff - dt.timedelta(days=1)
        horizon, holdout_start = cutoff - dt.timedelta(days=3), cutoff - dt.timedelta(days=7)
        expected = {}
        for eid, ds, day in events:
            known = sorted((a, y) for i, a, y in label_rows if i == eid and a < cutoff)
            if first <= ds <= last and day < horizon and known:
                expected[eid] = (
                    known[-1][1],
                    known[-1][0].isoformat(),
                    "holdout" if day >= holdout_start else "train",
                )
        ts = build_training_set(feats, labs, spec, cutoff)
        got = {
            r["transaction_id"]: (r["is_fraud"], r[LABEL_ARRIVED], r[SPLIT]) for r in ts.to_dicts()
        }
        assert got == expected, cutoff
        assert len(got) > 100 and ts.height == len(got)  # one row per event, non-trivial
        assert (ts["event_ds"] < cutoff.isoformat()).all() and (
            ts[LABEL_ARRIVED] < cutoff.isoformat()
        ).all()


def test_declared_class_labels_become_class_codes_and_the_summary_shows_each_class():
    data = copy.deepcopy(BASE)
    data.update(classes=["legit", "fraud", "review"], gates={})
    spec = parse_spec(data, "<test>")
    feats = features(
        [(f"t{i}", "2026-03-10", "2026-03-10") for i in range(4)]
        + [("h0", "2026-03-25", "2026-03-25")]
    )
    labs = pl.DataFrame(
        {
            "ds": ["2026-03-16"] * 5,
            "transaction_id": ["t0", "t1", "t2", "t3", "h0"],
            "is_fraud": ["fraud", "legit", "review", "nonsense", "fraud"],
        }
    )
    ts = build_training_set(feats, labs, spec, C)
    codes = {r["transaction_id"]: r["is_fraud"] for r in ts.to_dicts()}
    assert codes == {
        "t0": 1.0,
        "t1": 0.0,
        "t2": 2.0,
        "h0": 1.0,
    }  # an unknown label is no label: no row
    summary = training_set_summary(ts, spec)
    assert (
        summary["train_share__legit"]
        == summary["train_share__fraud"]
        == summary["train_share__review"]
        == 1 / 3
    )
    assert summary["holdout_share__fraud"] == 1.0 and summary["holdout_share__review"] == 0.0
    assert "train_positives" not in summary
    # binary 0/1 labels keep their stored type, as before
    binary = build_training_set(feats, labels([("t0", "2026-03-16", 1)]), make_spec(), C)
    assert binary.schema["is_fraud"] == pl.Int8
