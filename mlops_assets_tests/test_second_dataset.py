"""No code change for another dataset: the bundled bike_rentals spec (regression, target in
the events, no label feed, other columns, schema_evolution: merge) runs the whole lifecycle."""

import datetime as dt

import polars as pl
from dagster import instance_for_test

from mlops_assets.data.simulator import BIKE_SPEC, Injection, simulate_regression

from .conftest import build_world, check_evaluations, days, materialized

START = dt.date(2026, 4, 6)


def test_regression_dataset_runs_the_lifecycle(home, monkeypatch):
    from mlops_assets.core.platform import Platform
    from mlops_assets.core.vocabulary import Alias

    monkeypatch.setenv("MLOPS_SPEC", str(BIKE_SPEC))
    platform = Platform.from_env()
    spec = platform.spec
    assert spec.task == "regression" and spec.labels is None
    n = 28
    keys = days(START, n)
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        world = build_world(
            platform,
            instance,
            start=START,
            n_days=n,
            seed=5,
            inject=[Injection("schema_change", START + dt.timedelta(days=20))],
            simulator=simulate_regression,
            labels=None,
        )
        defs, lake = world.defs, world.lake
        assert "ingest_labels" not in {j.name for j in defs.resolve_all_job_defs()}
        feats = lake.read("features")
        assert set(feats.columns) >= {*spec.model_features, spec.target, spec.id}
        assert "member_phone" not in feats.columns and "app_version" not in feats.columns
        assert "app_version" in lake.read("raw_events").columns  # merged, as the spec declares
        assert feats["battery_pct"].null_count() > 0  # nullable numeric survives

        cutoff = keys[-1]
        result = world.train(cutoff)
        evals = check_evaluations(result)
        assert result.success, {k: v.description for k, v in evals.items() if not v.passed}
        assert {"gate_floor_r2", "gate_ceiling_mae", "gate_ceiling_rmse", "gate_integrity"} <= set(
            evals
        )
        report = materialized(result)["evaluation_report"]
        assert report["candidate_r2"] > 0.75 and report["candidate_mae"] < 5.0
        registry = defs.resources["registry"]
        assert (
            registry.registered_model == "bike_duration" and registry.get_alias(Alias.CHAMPION) == 1
        )
        ts = lake.read("training_set", [cutoff])
        assert ts.filter(pl.col("event_ds") >= cutoff).is_empty()
        assert set(ts["split"].unique()) == {"train", "holdout"}
