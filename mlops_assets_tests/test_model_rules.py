"""The model plane's rules on a handful of rows: a training set assembled with what its
materialisation reports (and why it may not be written), and a candidate's tags and run params."""

from __future__ import annotations

import copy
import datetime as dt
import json

import polars as pl
import yaml

from mlops_assets.core.spec import BUNDLED_SPEC, parse_spec
from mlops_assets.core.vocabulary import LineageTag, Status, VersionTag
from mlops_assets.model.candidate import candidate_params
from mlops_assets.model.datasets import assemble_training_set, missing_partitions
from mlops_assets.model.lineage import candidate_tags, training_delta_versions

C = dt.date(2026, 4, 1)  # window 03-04..03-31; labels mature before 03-27; holdout from 03-20


def make_spec():
    data = copy.deepcopy(yaml.safe_load(BUNDLED_SPEC.read_text()))
    data["training"].update(window_days=28, holdout_days=7)
    data["labels"]["delay_days"] = 5
    return parse_spec(data, "<test>")


SPEC = make_spec()


def features(rows: list[tuple[str, str]]) -> pl.DataFrame:
    """rows: (id, day); the event is at noon of its partition's day."""
    return pl.DataFrame(
        {
            "ds": [r[1] for r in rows],
            "transaction_id": [r[0] for r in rows],
            "event_time": [dt.datetime.fromisoformat(r[1]) + dt.timedelta(hours=12) for r in rows],
            "amount": [1.0] * len(rows),
        },
        schema_overrides={"event_time": pl.Datetime("us")},
    )


def labels(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    """rows: (id, arrival day, label)."""
    return pl.DataFrame(
        {
            "ds": [r[1] for r in rows],
            "transaction_id": [r[0] for r in rows],
            "is_fraud": [r[2] for r in rows],
        }
    )


def test_missing_partitions_are_the_window_days_without_a_row():
    present = features([("a", "2026-03-02"), ("b", "2026-03-02")])
    missing = missing_partitions(present, dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    assert missing == ["2026-03-01", "2026-03-03"]


def test_an_assembled_training_set_reports_its_window_split_and_gaps():
    feats = features([("t1", "2026-03-10"), ("t2", "2026-03-22"), ("t3", "2026-03-30")])
    labs = labels([("t1", "2026-03-12", 1), ("t2", "2026-03-25", 0), ("t3", "2026-03-31", 1)])

    built = assemble_training_set(feats, labs, SPEC, C)

    assert built.frame["transaction_id"].to_list() == ["t1", "t2"]  # t3 has not matured
    assert (built.summary["train_rows"], built.summary["holdout_rows"]) == (1, 1)
    assert built.window == (dt.date(2026, 3, 4), dt.date(2026, 3, 31))
    assert len(built.missing) == 25 and "2026-03-10" not in built.missing
    assert built.problem is None


def test_a_training_set_without_holdout_rows_says_why_it_is_not_written():
    feats = features([("t1", "2026-03-10")])
    built = assemble_training_set(feats, labels([("t1", "2026-03-12", 1)]), SPEC, C)

    assert built.summary["holdout_rows"] == 0
    assert built.problem.startswith("training_set[2026-04-01] has no train or no holdout rows")
    assert "missing feature partitions: ['2026-03-04', '2026-03-05'" in built.problem


def test_a_candidate_is_tagged_with_its_own_training_set_commit_cutoff_and_status():
    commit = {"version": 7, "input_versions": json.dumps({"features": 3, "raw_labels": 2})}
    assert training_delta_versions(commit) == {"features": 3, "raw_labels": 2, "training_set": 7}

    tags = candidate_tags(
        SPEC,
        cutoff="2026-04-01",
        commit=commit,
        partition_range=("2026-03-04", "2026-03-26"),
        run_id="run-1",
        extra={"monitor.bundle": "yes"},
    )

    assert json.loads(tags[LineageTag.DELTA_VERSIONS]) == training_delta_versions(commit)
    assert (tags[VersionTag.CUTOFF], tags[VersionTag.STATUS]) == ("2026-04-01", Status.CANDIDATE)
    assert (tags[LineageTag.PARTITION_START], tags[LineageTag.PARTITION_END]) == (
        "2026-03-04",
        "2026-03-26",
    )
    assert tags[LineageTag.DAGSTER_RUN_ID] == "run-1"
    assert tags[LineageTag.SEED] == str(SPEC.training.seed)
    assert tags["monitor.bundle"] == "yes"


def test_candidate_params_name_the_estimator_cutoff_split_sizes_and_seed():
    params = candidate_params(SPEC, "2026-04-01", 90, 10)
    assert params["estimator"] == SPEC.model.estimator
    assert (params["cutoff"], params["train_rows"], params["holdout_rows"]) == (
        "2026-04-01",
        90,
        10,
    )
    assert params["seed"] == SPEC.training.seed
    assert all(params[k] == v for k, v in SPEC.model.params.items())
