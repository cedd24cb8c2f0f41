"""Leakage tripwires through the real Dagster definitions, run by spec alone.

A dataset of our own: shop visits per hour (a count target), where two of the features,
``walk_ins`` and ``bookings``, sum to the target: they are only known once the hour is over, the
classic leak. Honest features (temperature, staff on duty, the site, the hour) move the count a
little. The candidate scores a holdout r2 of ~1.0; the ``leakage`` gate rejects it naming those two
columns. With ``gates.leakage.allow: [walk_ins, bookings]`` (declared known at prediction time) the
same data is not rejected by leakage. The same world shows the partial-window rule: a cutoff whose
training window starts before ``partition_start`` fails in ``training_set``.
"""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import polars as pl
import pytest
import yaml

from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import load_spec

from .conftest import World, check_evaluations, days, materialized, step_failures, world_home

START = dt.date(2026, 5, 4)
N_DAYS = 18
CUTOFF = (
    START + dt.timedelta(days=16)
).isoformat()  # window START+2 .. START+15, holdout the last 4 days
ROWS_PER_DAY = 300

SPEC = {
    "name": "shop_visits",
    "task": "regression",
    "landing": {"path": "landing/shop_visits/events", "formats": ["parquet"]},
    "timestamp": "hour_start",
    "id": "visit_hour_id",
    "target": "visits",
    "target_min": 0,
    "features": {
        "numeric": {
            "walk_ins": {"min": 0},
            "bookings": {"min": 0},
            "temperature_c": {"min": -40, "max": 50},
            "staff_on_duty": {"dtype": "int", "min": 0},
        },
        "categorical": {"site": {"allowed": ["north", "south", "east"]}},
        "calendar": ["hour"],
    },
    "partition_start": START.isoformat(),
    "training": {"window_days": 14, "holdout_days": 4, "seed": 5, "cadence_days": 7},
    "model": {"registered_name": "shop_visits", "estimator": "linear"},
    "gates": {"primary_metric": "r2", "floors": {"r2": 0.3}, "max_regression": 0.05},
    "volume": {"trailing_partitions": 7, "tolerance": 0.8},
}


def write_landing(root, start: dt.date, n_days: int, seed: int = 0) -> None:
    """One Parquet file per day under ``root/<D>/``."""
    for i in range(n_days):
        day = start + dt.timedelta(days=i)
        rng = np.random.default_rng([seed, i])
        n = ROWS_PER_DAY
        hour = rng.integers(8, 20, n)
        site = rng.choice(["north", "south", "east"], n)
        temperature = np.round(rng.normal(16, 6, n), 1)
        staff = rng.integers(1, 8, n)
        rate = (
            2
            + 0.3 * np.clip(temperature, 0, None)
            + np.where(site == "north", 3, 0)
            + 0.5 * (hour >= 17)
        )
        walk_ins, bookings = rng.poisson(rate), rng.poisson(rate * 0.7)
        frame = pl.DataFrame(
            {
                "visit_hour_id": [f"h{day:%Y%m%d}-{j:04d}" for j in range(n)],
                "hour_start": [
                    dt.datetime.combine(day, dt.time(int(h), int(m)))
                    for h, m in zip(hour, rng.integers(0, 60, n), strict=True)
                ],
                "walk_ins": walk_ins.astype(float),
                "bookings": bookings.astype(float),
                "temperature_c": temperature,
                "staff_on_duty": staff,
                "site": site,
                "visits": (walk_ins + bookings).astype(float),
            }
        ).sort("hour_start")
        path = root / day.isoformat() / f"visits-{day}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The dataset ingested once; the leaky spec's training run, then the allow spec's, recorded."""
    from mlops_assets.location.build import build_definitions

    root = tmp_path_factory.mktemp("leakage")
    specs = {"leaky": SPEC, "allowed": copy.deepcopy(SPEC)}
    specs["allowed"]["gates"]["leakage"] = {"allow": ["walk_ins", "bookings"]}
    paths = {}
    for name, data in specs.items():
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(data, sort_keys=False))
    with world_home(root, spec=paths["leaky"], one_thread=True) as (platform, instance):
        w = World(platform, instance, build_definitions(platform))
        write_landing(platform.landing, START, N_DAYS)
        keys = days(START, N_DAYS)
        w.ingest(keys[0], keys[-1])
        w.results["leaky"] = w.train(CUTOFF)
        w.records["leaky_tags"] = dict(w.registry.version_tags(1))
        w.records["leaky_champion"] = w.registry.get_alias("champion")
        early = (START + dt.timedelta(days=5)).isoformat()
        w.results["early"] = w.train(early, assets=["training_set"])
        allowed = build_definitions(Platform(load_spec(paths["allowed"]), platform.home))
        w.results["allowed"] = w.train(CUTOFF, defs=allowed)
        yield w


def test_two_features_that_sum_to_the_target_are_rejected_by_leakage(world):
    result = world.results["leaky"]
    checks = check_evaluations(result)
    leak = checks["gate_leakage"]
    assert not result.success and not leak.passed
    assert "possible target leakage" in leak.description
    assert "walk_ins" in leak.description and "bookings" in leak.description
    named = leak.description.split("suspect columns:")[1].split(". ")[0]
    assert not any(c in named for c in ("temperature_c", "staff_on_duty", "site", "hour ("))
    assert (
        "gates.leakage.allow: [bookings, walk_ins]" in leak.description
        and "waiver" in leak.description
    )
    assert leak.metadata["value"].value >= 0.99 and leak.metadata["threshold"].value == 0.99
    # every other gate is happy: only the tripwire stands between this model and production
    assert {n for n, c in checks.items() if not c.passed} == {"gate_leakage"}
    tags = world.records["leaky_tags"]
    assert (
        tags["mlops.status"] == "rejected"
        and "possible target leakage" in tags["mlops.rejected_reasons"]
    )
    assert world.records["leaky_champion"] is None  # nothing was promoted


def test_declaring_the_columns_acceptable_clears_the_leakage_gate(world):
    result = world.results["allowed"]
    checks = check_evaluations(result)
    leak = checks["gate_leakage"]
    assert leak.passed, leak.description
    assert "allowed by gates.leakage.allow" in leak.description
    assert result.success, {n: c.description for n, c in checks.items() if not c.passed}
    report = materialized(result)["evaluation_report"]
    assert report["candidate_r2"] > 0.99 and report["candidate_clip_rate"] == 0.0
    skill = report["feature_skill"]
    assert skill["metric"] == "r2" and set(skill["univariate"]) == set(
        world.platform.spec.model_features
    )
    assert report["holdout_evidence"]["rows"] == report["holdout_rows"] >= 1000


def test_a_cutoff_whose_window_starts_before_the_first_partition_fails_in_training_set(world):
    result = world.results["early"]
    assert not result.success
    message = step_failures(result)
    assert (
        "starts 2026-04-25, before the first partition (partition_start 2026-05-04)" in message
    ), message
    assert "training.allow_partial_window: true" in message and "on or after 2026-05-18" in message
