"""Scoring and monitoring on the real stack: scores stamped with their model, rollback →
re-scoring, drift detection and the drift sensor, the performance guard, degrade modes.

One module-scoped world: 40 simulated days (covariate drift from day 34), ingested with
range backfills, a champion trained at cutoff day 30, the days 30..39 scored.
"""

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from mlops_assets.core.platform import Platform
from mlops_assets.data.simulator import Injection

from .conftest import built_world, materialized

START = dt.date(2026, 3, 2)
DAYS = 40
CUTOFF = START + dt.timedelta(days=30)
DRIFT_DAY = START + dt.timedelta(days=34)
SCORED = [(START + dt.timedelta(days=i)).isoformat() for i in range(30, DAYS)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with built_world(
        tmp_path_factory.mktemp("monitoring"),
        start=START,
        n_days=DAYS,
        inject=[Injection("covariate_drift", DRIFT_DAY)],
        cutoffs=[CUTOFF.isoformat()],
        scored=SCORED,
    ) as w:
        yield w


def test_every_score_row_names_the_model_that_made_it(world):
    scores = world.lake.read("scores")
    assert sorted(scores["ds"].unique().to_list()) == SCORED
    assert set(scores["model_version"].unique()) == {1} and set(scores["mode"].unique()) == {
        "normal"
    }
    assert (
        scores["alias"].unique().to_list() == ["champion"] and scores["scored_at"].null_count() == 0
    )
    feats = world.lake.read("features", SCORED)
    assert scores.height == feats.height  # one score per feature row
    assert scores["probability"].is_between(0, 1).all()


def test_injected_covariate_drift_is_detected_and_stable_days_are_not(world):
    from mlops_assets.monitoring.drift.methods import drift_summary

    summary = {r["ds"]: r for r in drift_summary(world.lake.read("drift")).to_dicts()}
    stable = [d for d in SCORED if d < DRIFT_DAY.isoformat()]
    drifted = [d for d in SCORED if d >= DRIFT_DAY.isoformat()]
    assert all(not summary[d]["dataset_drifted"] for d in stable), {d: summary[d] for d in stable}
    assert all(summary[d]["dataset_drifted"] for d in drifted)
    assert "amount" in summary[drifted[0]]["drifted_features"]
    # every day had >= drift.min_rows rows: judged alone, against champion v1, with Evidently's
    # methods
    assert all(summary[d]["status"] == "ok" and summary[d]["rows"] >= 1000 for d in SCORED)
    assert {summary[d]["champion_version"] for d in SCORED} == {1}
    table = world.lake.read("drift", [drifted[0]])
    methods = dict(table.select("feature", "method").iter_rows())
    assert methods["amount"] == "wasserstein" and methods["channel"] == "jensenshannon"
    assert set(table.filter(pl.col("status") == "excluded")["feature"]) == {
        "day_of_week",
        "is_weekend",
    }
    # one Evidently HTML report for humans: at the start of the episode, not for every drifted day
    reports = list((world.platform.home.reports / "drift").glob("*.html"))
    assert [r.name for r in reports] == [f"{drifted[0]}_vs_v1.html"]


def test_columns_constant_within_a_partition_are_left_out_from_the_data(world):
    """Without drift.exclude in the spec, day_of_week and is_weekend (one value per daily partition)
    are found from the features and left out with a note; the stable day stays stable."""
    from dagster import materialize

    from mlops_assets.location.build import build_definitions

    platform = world.platform
    spec = platform.spec.model_copy(
        update={"drift": platform.spec.drift.model_copy(update={"exclude": []})}
    )
    defs = build_definitions(Platform(spec, platform.home))
    day = SCORED[1]
    result = materialize(
        [defs.get_assets_def("drift_report")],
        partition_key=day,
        instance=world.instance,
        resources=defs.resources,
    )
    assert result.success
    meta = result.asset_materializations_for_node("drift_report")[0].metadata
    assert set(meta["excluded_features"].value) == {"day_of_week", "is_weekend"}
    assert meta["dataset_drifted"].value is False and meta["drift_status"].value == "ok"
    rows = world.lake.read("drift", [day]).filter(pl.col("status") == "excluded")
    assert set(rows["feature"]) == {"day_of_week", "is_weekend"}
    assert all(n.startswith("constant within each of") for n in rows["note"])


def test_drift_sensor_requests_one_retrain_per_episode(world):
    from mlops_assets.operations.runs import tick

    sensor = world.defs.resolve_sensor_def("drift_sensor")
    from dagster import build_sensor_context

    ctx = build_sensor_context(
        instance=world.instance,
        cursor=None,
        definitions=world.defs,
        resources=world.defs.resources,
    )
    data = sensor.evaluate_tick(ctx)
    assert len(data.run_requests) == 1
    rr = data.run_requests[0]
    assert (
        rr.run_key == f"drift:v1:{DRIFT_DAY.isoformat()}"
    )  # the episode of champion v1's reference
    assert (
        rr.partition_key == (dt.date.fromisoformat(SCORED[-1]) + dt.timedelta(days=1)).isoformat()
        or rr.partition_key == world.platform.daily.get_last_partition_key()
    )
    assert (
        rr.tags["mlops/trigger"] == "drift_sensor" and "amount" in rr.tags["mlops/drift_features"]
    )
    # the same episode on the next tick: nothing (cursor), and an alert was written once
    again = sensor.evaluate_tick(
        build_sensor_context(
            instance=world.instance,
            cursor=data.cursor,
            definitions=world.defs,
            resources=world.defs.resources,
        )
    )
    assert not again.run_requests and "already triggered" in again.skip_message
    alerts = [
        json.loads(line)
        for line in (world.platform.home.alerts / "alerts.jsonl").read_text().splitlines()
    ]
    assert [a["kind"] for a in alerts].count("drift_retrain") == 1
    assert alerts[0]["runbook"] == "docs/runbooks/drift_retrain.md"
    del tick


def test_failed_contract_produces_no_scores(world):
    from mlops_assets.data.simulator import write_bad_file

    day = SCORED[2]
    lake = world.lake
    before = lake.read("scores", [day])
    bad = write_bad_file(
        world.platform.landing / day, "nan_flood", dt.date.fromisoformat(day), seed=3
    )
    try:
        assert not world.run("daily", day).success
        # scores[day] untouched (the blocked run never reached it) …
        assert lake.read("scores", [day]).equals(before)
        # … and a scoring run on its own refuses the partition whose contract failed
        scoring = world.run("scoring", day)
        assert "scores" not in materialized(scoring) and lake.read("scores", [day]).equals(before)
    finally:
        bad.unlink()
        assert world.run("daily", day).success


def test_kill_switch_skips_scoring_with_a_reason(world, monkeypatch):
    day = SCORED[3]
    before = world.lake.read("scores", [day])
    monkeypatch.setenv("MLOPS_KILL_SWITCH", "1")
    result = world.run("scoring", day)
    assert result.success
    logs = [e.message for e in world.instance.all_logs(result.run_id) if e.message]
    assert any("kill switch set in the environment" in m for m in logs)
    assert materialized(result) == {}
    assert world.lake.read("scores", [day]).equals(before)


def _tamper(registry, version: int) -> tuple[Path, bytes]:
    root = Path(registry.resolved_artifact_root)
    target = next(
        p
        for p in root.rglob("model.skops")
        if registry.version_tags(version)["registry.model_id"] in str(p)
    )
    original = target.read_bytes()
    target.write_bytes(original[:-16] + b"\0" * 16)
    return target, original


def test_integrity_failure_degrades_to_the_fallback(world):
    from mlops_assets.scoring.rows import BASELINE_VERSION

    registry, lake = world.registry, world.lake
    day = SCORED[4]
    target, original = _tamper(registry, 1)
    try:
        assert world.run("scoring", day).success
        rows = lake.read("scores", [day])
        # no last_known_good exists yet: the constant baseline serves, every row says so
        assert set(rows["mode"]) == {"degraded"} and set(rows["model_version"]) == {
            BASELINE_VERSION
        }
        assert rows["probability"].n_unique() == 1
    finally:
        target.write_bytes(original)
    assert world.run("scoring", day).success
    assert set(lake.read("scores", [day])["mode"]) == {"normal"}


def test_guard_rolls_back_once_and_rescoring_removes_every_row_of_the_bad_version(world):
    """A second champion scores some days; its matured performance is written as far below
    last_known_good; the guard rolls back exactly once; re-scoring leaves no row of it."""
    from mlops_assets.model.promotion import read_audit
    from mlops_assets.operations.runs import tick

    defs, instance, lake, registry = (
        world.defs,
        world.instance,
        world.lake,
        world.registry,
    )
    cutoff2 = (CUTOFF + dt.timedelta(days=2)).isoformat()
    assert world.train(cutoff2).success
    assert registry.get_alias("champion") == 2 and registry.get_alias("last_known_good") == 1
    bad_days = SCORED[-4:]
    assert world.run_range("scoring", bad_days[0], bad_days[-1]).success
    assert set(lake.read("scores", bad_days)["model_version"]) == {2}
    # matured performance of v2 on those days: far behind v1 on the same rows
    perf = pl.DataFrame(
        {
            "ds": bad_days,
            "model_version": [2] * 4,
            "mode": ["normal"] * 4,
            "labelled_rows": [3000] * 4,
            "coverage": [1.0] * 4,
            "primary": [0.70] * 4,
            "metric": ["roc_auc"] * 4,
            "metrics": ["{}"] * 4,
            "lkg_version": [1] * 4,
            "lkg_primary": [0.86] * 4,
        }
    )
    lake.write_partitions("performance", perf, bad_days)

    launched, cursor, _ = tick(instance, defs, "performance_guard_sensor", None)
    assert registry.get_alias("champion") == 1
    assert registry.version_tags(2)["mlops.status"] == "rolled_back"
    row = read_audit(lake, limit=1).row(0, named=True)
    assert row["action"] == "rollback" and row["actor"] == "performance_guard_sensor"
    assert "trails last_known_good v1" in row["reason"] and "0.700" in row["reason"]
    # exactly once per breach
    launched, cursor, _ = tick(instance, defs, "performance_guard_sensor", cursor)
    assert read_audit(lake).filter(pl.col("action") == "rollback").height == 1

    rescored, _, _ = tick(instance, defs, "rescore_sensor", None)
    # four consecutive days: ONE single-run range, not four runs
    assert [(r.partitions, r.partition_keys, r.success) for r in rescored] == [
        (f"{bad_days[0]}..{bad_days[-1]}", bad_days, True)
    ]
    scores = lake.read("scores")
    assert 2 not in set(scores["model_version"]) and set(
        scores.filter(pl.col("ds").is_in(bad_days))["model_version"]
    ) == {1}
    assert tick(instance, defs, "rescore_sensor", None)[0] == []  # nothing left to re-score


def test_status_reports_monitoring_sections(world):
    from mlops_assets.operations.status import collect_status

    status = collect_status(world.platform, world.instance, world.defs)
    assert {"scores", "drift", "performance", "retrains", "alerts"} <= set(status)
    assert status["scores"]["partitions"] == len(SCORED)
    assert status["drift"] and status["drift"][-1]["dataset_drifted"] is True


def test_performance_sensor_catches_up_consecutive_labelled_days_in_one_run(world):
    """The first tick sees every label commit: the scored days any label belongs to are judged by
    ONE
    single-run range (a catch-up of N days is one process), and the next tick has nothing to do."""
    from mlops_assets.operations.runs import tick

    defs, instance, lake = world.defs, world.instance, world.lake
    spec = world.platform.spec
    labelled = lake.read("raw_labels").select(pl.col(spec.labels.id).alias(spec.id))
    expected = sorted(
        lake.read("scores").join(labelled, on=spec.id, how="semi")["ds"].unique().to_list()
    )
    assert len(expected) >= 2 and expected == SCORED[: len(expected)], (
        expected
    )  # consecutive, from the first
    launched, cursor, _ = tick(instance, defs, "performance_sensor", None)
    assert [(r.partition_keys, r.success) for r in launched] == [(expected, True)]
    assert launched[0].partition_key is None and launched[0].tags["dagster/run_key"].startswith(
        f"perf:{expected[0]}..{expected[-1]}:labels@v"
    )
    perf = lake.read("performance", expected)
    assert sorted(perf["ds"].unique().to_list()) == expected and set(perf["model_version"]) == {1}
    again, _, skip = tick(instance, defs, "performance_sensor", cursor)
    assert again == [] and "no new labels" in skip


def test_performance_compares_with_last_known_good_on_the_same_rows(world):
    """model_performance re-scores last_known_good on exactly the labelled rows of the day:
    two sound models of the same data must score alike (a misaligned join gives ~0.5)."""
    registry, lake = world.registry, world.lake
    registry.set_alias("last_known_good", 2)
    day = SCORED[0]  # scored by v1, labels matured, before the drift
    result = world.defs.resolve_job_def("performance").execute_in_process(
        instance=world.instance, partition_key=day, raise_on_error=False
    )
    assert result.success
    row = lake.read("performance", [day]).row(0, named=True)
    assert row["model_version"] == 1 and row["lkg_version"] == 2 and row["coverage"] > 0.9
    assert row["primary"] > 0.75 and row["lkg_primary"] > 0.75
    assert abs(row["primary"] - row["lkg_primary"]) < 0.08


def test_table_maintenance_keeps_what_reproduce_needs(world):
    """Vacuum with zero retention: every table is compacted and cleaned, yet the champion's
    recorded training_set version still time-travels and `reproduce` agrees exactly."""
    from mlops_assets.core.vocabulary import Alias
    from mlops_assets.model.reproduce import reproduce

    registry, lake = world.registry, world.lake
    platform = world.platform
    spec = platform.spec.model_copy(
        update={"maintenance": platform.spec.maintenance.model_copy(update={"retention_hours": 0})}
    )
    from mlops_assets.location.build import build_definitions

    defs = build_definitions(Platform(spec, platform.home))
    result = defs.resolve_job_def("maintenance").execute_in_process(
        instance=world.instance, raise_on_error=False
    )
    assert result.success
    meta = next(
        e.event_specific_data.materialization.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    )
    assert meta["vacuumed_files"].value > 0
    champion = registry.get_alias(Alias.CHAMPION)
    assert "training_set" in meta["protected_versions"].value
    outcome = reproduce(platform.spec, lake, registry, champion)
    assert outcome.agrees, outcome.detail
