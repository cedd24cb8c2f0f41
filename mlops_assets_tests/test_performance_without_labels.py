"""Performance follows the scores when the target travels in the events (no label feed): the
bundled bike_rentals spec (regression). Before, `model_performance` ran only from the label
sensor, which skips without a label feed — the performance table stayed empty and the guard
could never act. Now the `daily` and `scoring` jobs carry `model_performance` after `scores`."""

import datetime as dt

from dagster import build_sensor_context, instance_for_test

from mlops_assets.data.simulator import BIKE_SPEC, Injection, simulate_regression

from .conftest import build_world, days

START = dt.date(2026, 4, 6)
N = 34
CUTOFF = START + dt.timedelta(days=24)  # training window 21 days: days 3..23 (holdout 19..23)
CONCEPT = START + dt.timedelta(days=27)  # the model goes stale from here


def _jobs_assets(defs, job):
    return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}


def test_performance_follows_scores_and_the_guard_acts_on_it(home, monkeypatch):
    from mlops_assets.core.platform import Platform
    from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
    from mlops_assets.core.vocabulary import GUARD_TRIPPED, VersionTag
    from mlops_assets.location.build import build_definitions

    monkeypatch.setenv("MLOPS_SPEC", str(BIKE_SPEC))
    bundled = Platform.from_env()
    assert bundled.spec.labels is None and bundled.spec.task == "regression"
    # the guard floor at the spec's own promotion floor (gates.floors.r2 0.75): a champion whose
    # matured r2 falls below what it had to reach to be promoted is not fit to serve
    spec = bundled.spec.model_copy(
        update={
            "guard": bundled.spec.guard.model_copy(
                update={"floor": bundled.spec.gates.floors["r2"]}
            )
        }
    )
    platform = Platform(spec, bundled.home)
    # with a label feed the labels decide when performance runs (performance_sensor), not the scores
    card = build_definitions(Platform(load_spec(BUNDLED_SPEC), bundled.home))
    assert "model_performance" not in _jobs_assets(card, "daily") | _jobs_assets(card, "scoring")

    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        world = build_world(
            platform,
            instance,
            start=START,
            n_days=N,
            seed=5,
            inject=[Injection("concept_drift", CONCEPT)],
            simulator=simulate_regression,
            labels=None,
            cutoffs=[CUTOFF.isoformat()],
        )
        defs, lake, keys = world.defs, world.lake, days(START, N)
        assert {"scores", "model_performance"} <= _jobs_assets(defs, "daily")
        assert {"scores", "model_performance"} <= _jobs_assets(defs, "scoring")
        registry = world.registry
        assert registry.get_alias("champion") == 1
        scored = keys[keys.index(CUTOFF.isoformat()) :]
        before = scored[:3]  # before the concept drift: the day's target is in its events
        assert world.run("daily", before[0]).success
        assert lake.read("performance")["ds"].to_list() == [before[0]]
        # no performance job, no labels
        assert world.run_range("scoring", scored[0], scored[-1]).success
        perf = lake.read("performance").sort("ds")
        assert perf["ds"].to_list() == scored and set(perf["model_version"]) == {1}
        assert (perf["coverage"] == 1.0).all() and (perf["labelled_rows"] > 100).all()
        r2 = dict(perf.select("ds", "primary").iter_rows())
        assert min(r2[d] for d in before) > 0.85 and max(r2[d] for d in scored[-3:]) < 0.7

        sensor = defs.resolve_sensor_def("performance_guard_sensor")
        tick = sensor.evaluate_tick(
            build_sensor_context(
                instance=instance, cursor=None, definitions=defs, resources=defs.resources
            )
        )
        # no last_known_good to roll back to: the guard trips and scoring degrades to the fallback
        assert "guard acted" in tick.skip_message, tick.skip_message
        assert registry.version_tags(1)[VersionTag.GUARD] == GUARD_TRIPPED
        assert "below the guard floor 0.750" in registry.version_tags(1)[VersionTag.GUARD_REASON]
        assert world.run("scoring", scored[-1]).success
        assert set(lake.read("scores", [scored[-1]])["mode"]) == {"degraded"}
