"""DLE on the real stack: the bundled bike_rentals spec (regression, target in the events, so
performance follows
the scores in the same run and reconciles at once). The candidate's DLE regressors are logged
with it, loaded
only with the one skops type they need (``TreePredictor``), and estimate mae/rmse close to the
realised ones (median relative error < 8 %, each < 25 %)."""

import datetime as dt
import json

import polars as pl
from dagster import instance_for_test

from mlops_assets.data.simulator import BIKE_SPEC, simulate_regression

from .conftest import build_world, days

START = dt.date(2026, 4, 6)


def test_dle_estimates_mae_and_rmse_and_reconciles_them(home, monkeypatch):
    from mlops_assets.core.platform import Platform
    from mlops_assets.core.vocabulary import VersionTag
    from mlops_assets.monitoring.estimation.methods import (
        METHOD_TRUSTED_TYPES,
    )

    monkeypatch.setenv("MLOPS_SPEC", str(BIKE_SPEC))
    keys = days(START, 31)
    scored = keys[27:]
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        world = build_world(
            Platform.from_env(),
            instance,
            start=START,
            n_days=len(keys),
            seed=5,
            simulator=simulate_regression,
            labels=None,
            cutoffs=[keys[27]],
            scored=scored,
        )
        lake = world.lake
        assert json.loads(world.registry.version_tags(1)[VersionTag.MONITOR_TRUSTED_TYPES]) == list(
            METHOD_TRUSTED_TYPES
        )
        est = lake.read("estimated_performance").sort("ds", "metric")
        assert set(est["metric"]) == {"mae", "rmse"} and set(est["estimator"]) == {"dle"}
        assert (
            sorted(set(est["ds"])) == scored and not est["primary"].any()
        )  # the primary metric is r2
        recon = lake.read("estimation_reconciliation")
        assert recon.height == 2 * len(scored)
        relative = recon.with_columns((pl.col("abs_error") / pl.col("realised")).alias("rel"))
        # measured (seed 5): relative errors 0.1 %..17 %, median ~3.6 % (DLE learnt on 5 holdout
        # days; weather varies)
        assert relative["rel"].median() < 0.08 and relative["rel"].max() < 0.25, relative
        perf = lake.read("performance")
        assert perf["estimated_primary"].is_null().all()  # no estimate of r2: nothing beside it
