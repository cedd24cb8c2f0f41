"""Estimated performance, multivariate drift and reconciliation on the real stack.

One module-scoped world (as ``test_monitoring``): 40 simulated card days with
``correlation_drift`` from
day 34 (amount and distance shuffled within each day: every marginal unchanged), a champion
trained at
cutoff day 30 (its estimator and PCA reference logged, hashed and verified with it), days 30..39
scored
by the real scoring job (which runs ``estimated_performance`` and ``multivariate_drift``), labels of
days up to the delay ingested, then ``model_performance`` reconciling the estimates.
"""

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from mlops_assets.core.platform import Platform
from mlops_assets.data.simulator import Injection

from .conftest import built_world, check_evaluations, materialized, run_range

START = dt.date(2026, 3, 2)
DAYS = 40
CUTOFF = START + dt.timedelta(days=30)
SHIFT_DAY = START + dt.timedelta(days=34)
SCORED = [(START + dt.timedelta(days=i)).isoformat() for i in range(30, DAYS)]
BEFORE, AFTER = SCORED[:4], SCORED[4:]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with built_world(
        tmp_path_factory.mktemp("estimation"),
        start=START,
        n_days=DAYS,
        inject=[Injection("correlation_drift", SHIFT_DAY)],
        cutoffs=[CUTOFF.isoformat()],
        scored=SCORED,
    ) as w:
        yield w


# ---- stored with the model version, verified
# ---------------------------------------------------------
def test_the_monitoring_bundle_is_in_the_manifest_and_loads_only_verified(world):
    from mlops_assets.control.registry.integrity import IntegrityError, load_artifact_skops
    from mlops_assets.core.vocabulary import Artifact, VersionTag
    from mlops_assets.monitoring.estimation.methods import (
        METHOD_TRUSTED_TYPES,
    )

    registry = world.registry
    tags = registry.version_tags(1)
    manifest = json.loads(tags[VersionTag.MANIFEST])
    assert Artifact.MONITOR_MODELS in manifest["run"]
    assert (
        json.loads(tags[VersionTag.MONITOR_TRUSTED_TYPES]) == []
    )  # CBPE: plain arrays, nothing to trust
    bundle = load_artifact_skops(registry, 1, Artifact.MONITOR_MODELS, METHOD_TRUSTED_TYPES)
    assert (
        bundle["estimator"]["kind"] == "cbpe"
        and bundle["multivariate_reference"]["n_components"] >= 1
    )

    # a widened allow-list recorded on the version is refused before anything is read
    registry.set_version_tags(1, {VersionTag.MONITOR_TRUSTED_TYPES: json.dumps(["builtins.eval"])})
    with pytest.raises(IntegrityError, match="outside the known list"):
        load_artifact_skops(registry, 1, Artifact.MONITOR_MODELS, METHOD_TRUSTED_TYPES)
    registry.set_version_tags(
        1, {VersionTag.MONITOR_TRUSTED_TYPES: tags[VersionTag.MONITOR_TRUSTED_TYPES]}
    )

    # changed bytes are refused
    client = registry.client()
    run_dir = Path(client.get_run(registry.run_id(1)).info.artifact_uri.removeprefix("file://"))
    path = run_dir / Artifact.MONITOR_MODELS
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(IntegrityError, match="changed since registration"):
            load_artifact_skops(registry, 1, Artifact.MONITOR_MODELS, METHOD_TRUSTED_TYPES)
    finally:
        path.write_bytes(original)


# ---- estimates before the labels, reconciled after -----------------------------------------------
def test_every_scored_day_has_an_estimate_before_its_labels(world):
    lake = world.lake
    est = lake.read("estimated_performance")
    roc = est.filter(pl.col("metric") == "roc_auc").sort("ds")
    assert roc["ds"].to_list() == SCORED and set(roc["model_version"]) == {1}
    assert roc["primary"].all() and roc["estimate"].is_between(0.5, 1.0).all()
    assert {"pr_auc", "brier", "accuracy", "precision", "recall", "f1"} <= set(est["metric"])
    assert not lake.exists(
        "performance"
    )  # nothing matured was judged yet: the estimates came first
    meta = materialized(world.results["scoring"])["estimated_performance"]
    assert 0.5 < meta["estimated_roc_auc"] < 1.0 and meta["model_version"] == 1


def test_matured_days_reconcile_estimate_and_realised(world):
    defs, instance, lake = world.defs, world.instance, world.lake
    assert run_range(defs, instance, "performance", SCORED[0], SCORED[-1]).success
    perf = lake.read("performance").sort("ds")
    assert {"estimated_primary", "estimate_abs_error"} <= set(perf.columns)
    matured = perf.filter(pl.col("coverage") >= 0.8)
    assert matured.height >= 3
    assert (matured["estimated_primary"] - matured["primary"]).abs().max() == pytest.approx(
        matured["estimate_abs_error"].max()
    )
    recon = lake.read("estimation_reconciliation")
    roc = recon.filter((pl.col("metric") == "roc_auc") & (pl.col("coverage") >= 0.8))
    assert roc.height == matured.height
    assert float(roc["abs_error"].median()) <= 0.05  # the bar for roc_auc
    brier = recon.filter(pl.col("metric") == "brier")
    assert brier.height and brier["abs_error"].max() < 0.02


def test_status_lists_estimates_with_realised_values_once_matured(world):
    from mlops_assets.operations.status import collect_status, render_text

    status = collect_status(world.platform, world.instance, world.defs)
    rows = status["estimated_performance"]
    assert rows and set(rows[0]) == {
        "ds",
        "model_version",
        "metric",
        "estimate",
        "realised",
        "abs_error",
    }
    matured = [r for r in rows if r["realised"] is not None]
    pending = [r for r in rows if r["realised"] is None]
    assert matured and pending and all(r["abs_error"] is None for r in pending)
    mv = status["multivariate_drift"]
    assert [r["ds"] for r in mv] == SCORED and set(mv[0]) == {
        "ds",
        "reconstruction_error",
        "threshold",
        "drifted",
    }
    text = render_text(status)
    assert "estimated roc_auc" in text and "multivariate drift" in text
    assert status["scorecard"]["measures"]["estimator_abs_error_median"] is not None


# ---- multivariate drift sees what per-column tests cannot
# --------------------------------------------
def test_correlation_drift_is_missed_by_univariate_drift_and_caught_by_multivariate(world):
    from mlops_assets.monitoring.drift.methods import drift_summary

    lake = world.lake
    uni = drift_summary(lake.read("drift")).sort("ds")
    assert uni["ds"].to_list() == SCORED
    assert not uni["dataset_drifted"].any(), uni.select("ds", "share_drifted", "drifted_features")
    mv = lake.read("multivariate_drift").sort("ds")
    verdict = dict(zip(mv["ds"], mv["drifted"], strict=True))
    assert not any(verdict[d] for d in BEFORE), mv
    assert all(verdict[d] for d in AFTER), mv
    errors = dict(zip(mv["ds"], mv["reconstruction_error"], strict=True))
    assert min(errors[d] for d in AFTER) > max(errors[d] for d in BEFORE)


def test_multivariate_drift_feeds_the_drift_sensor_as_the_spec_says(world):
    from mlops_assets.control.alerts import read_alerts
    from mlops_assets.location.build import build_definitions
    from mlops_assets.operations.runs import tick

    platform, instance = world.platform, world.instance
    launched, _, skip = tick(instance, world.defs, "drift_sensor", None)  # default: alert only
    assert launched == [] and "no drift episode" in skip
    alerts = [a for a in read_alerts(platform.home.alerts) if "multivariate drift" in a["reason"]]
    assert len(alerts) == 1 and f"from {AFTER[0]}" in alerts[0]["reason"]

    spec = platform.spec.model_copy(
        update={"drift": platform.spec.drift.model_copy(update={"multivariate": "retrain"})}
    )
    retrain_defs = build_definitions(Platform(spec, platform.home))
    sensor = retrain_defs.resolve_sensor_def("drift_sensor")
    from dagster import build_sensor_context

    ctx = build_sensor_context(
        instance=instance,
        definitions=retrain_defs,
        sensor_name="drift_sensor",
        resources=retrain_defs.resources,
    )
    data = sensor.evaluate_tick(ctx)
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    assert (
        request.run_key == f"drift:v1:{AFTER[0]}"
        and "__multivariate__" in request.tags["mlops/drift_features"]
    )


# ---- the checks and the guard
# ------------------------------------------------------------------------
def _estimates(versions_days_values) -> pl.DataFrame:
    from mlops_assets.monitoring.estimation.rules import estimate_table

    return estimate_table(
        [
            {
                "ds": d,
                "model_version": v,
                "metric": "roc_auc",
                "estimate": x,
                "rows": 3000,
                "estimator": "cbpe",
                "primary": True,
            }
            for v, d, x in versions_days_values
        ]
    )


def _reconciliation(days, error) -> pl.DataFrame:
    from mlops_assets.monitoring.estimation.rules import RECONCILIATION_SCHEMA

    return pl.DataFrame(
        [
            {
                "ds": d,
                "model_version": 1,
                "metric": "roc_auc",
                "estimate": 0.6,
                "realised": 0.6 + error,
                "abs_error": error,
                "labelled_rows": 3000,
                "coverage": 1.0,
            }
            for d in days
        ],
        schema=RECONCILIATION_SCHEMA,
    )


def test_guard_ignores_an_untrustworthy_estimator_and_acts_on_a_trusted_one(world):
    from mlops_assets.control.alerts import read_alerts
    from mlops_assets.location.build import build_definitions
    from mlops_assets.model.promotion import read_audit
    from mlops_assets.operations.runs import tick

    platform, instance, lake, registry = (
        world.platform,
        world.instance,
        world.lake,
        world.registry,
    )
    saved_est, saved_recon = (
        lake.read("estimated_performance"),
        lake.read("estimation_reconciliation"),
    )
    low = AFTER[-2:]
    lake.write_partitions(
        "estimated_performance", _estimates([(1, d, 0.55) for d in low]), low
    )  # floor 0.65
    try:
        lake.write_partitions("estimation_reconciliation", _reconciliation(BEFORE, 0.20), BEFORE)
        _, cursor, skip = tick(instance, world.defs, "performance_guard_sensor", None)
        assert "ignored: the estimator is not trustworthy" in skip and "0.200" in skip
        assert registry.get_alias("champion") == 1
        assert not [
            a for a in read_alerts(platform.home.alerts) if a["asset"] == "estimated_performance"
        ]

        lake.write_partitions("estimation_reconciliation", _reconciliation(BEFORE, 0.01), BEFORE)
        _, cursor, skip = tick(
            instance, world.defs, "performance_guard_sensor", cursor
        )  # default: alert
        assert (
            "guard acted on the estimate: alert only" in skip
            and registry.get_alias("champion") == 1
        )
        sent = [
            a for a in read_alerts(platform.home.alerts) if a["asset"] == "estimated_performance"
        ]
        assert len(sent) == 1 and "0.550, 0.550" in sent[0]["reason"]
        assert (
            "already handled" in tick(instance, world.defs, "performance_guard_sensor", cursor)[2]
        )

        spec = platform.spec.model_copy(
            update={"guard": platform.spec.guard.model_copy(update={"use_estimate": "off"})}
        )
        off = build_definitions(Platform(spec, platform.home))
        assert "within its guard" in tick(instance, off, "performance_guard_sensor", None)[2]
        assert read_audit(lake).filter(pl.col("action") == "rollback").is_empty()
    finally:
        lake.write_partitions("estimated_performance", saved_est, SCORED)
        lake.write_partitions(
            "estimation_reconciliation", saved_recon, sorted(set(saved_recon["ds"]))
        )


def test_the_checks_fail_below_the_floor_for_k_days_and_on_a_large_reconciliation_error(world):
    from mlops_assets.location.build import build_definitions

    platform, instance, lake = world.platform, world.instance, world.lake
    saved_recon = lake.read("estimation_reconciliation")
    spec = platform.spec.model_copy(
        update={"guard": platform.spec.guard.model_copy(update={"floor": 0.99})}
    )
    strict = build_definitions(Platform(spec, platform.home))
    job = strict.resolve_job_def("scoring")
    try:
        one = job.execute_in_process(
            instance=instance, partition_key=SCORED[-1], asset_selection=None, raise_on_error=False
        )
        checks = check_evaluations(one)
        assert one.success  # a failed check is a finding, not a broken run
        floor = checks["estimate_above_guard_floor"]
        assert not floor.passed and f"{SCORED[-2]}..{SCORED[-1]}" in floor.description
        assert checks["estimator_reconciliation"].passed
        lake.write_partitions("estimation_reconciliation", _reconciliation(BEFORE, 0.20), BEFORE)
        two = job.execute_in_process(
            instance=instance, partition_key=SCORED[-1], raise_on_error=False
        )
        checks = check_evaluations(two)
        assert (
            not checks["estimator_reconciliation"].passed
            and "above the tolerance" in checks["estimator_reconciliation"].description
        )
    finally:
        lake.write_partitions(
            "estimation_reconciliation", saved_recon, sorted(set(saved_recon["ds"]))
        )


def test_a_version_without_the_artifact_is_skipped_with_a_note(world):
    from mlops_assets.core.vocabulary import Artifact, VersionTag

    defs, instance, lake, registry = (
        world.defs,
        world.instance,
        world.lake,
        world.registry,
    )
    tags = registry.version_tags(1)
    manifest = json.loads(tags[VersionTag.MANIFEST])
    older = {
        **manifest,
        "run": {k: v for k, v in manifest["run"].items() if k != Artifact.MONITOR_MODELS},
    }
    before = lake.read("estimated_performance", [SCORED[0]])
    registry.set_version_tags(1, {VersionTag.MANIFEST: json.dumps(older, sort_keys=True)})
    try:
        result = defs.resolve_job_def("scoring").execute_in_process(
            instance=instance, partition_key=SCORED[0], raise_on_error=False
        )
        assert result.success
        logs = " ".join(e.user_message or "" for e in instance.all_logs(result.run_id))
        assert "registered without monitoring_models.skops" in logs
        assert "estimated_performance" not in materialized(result)
        assert not {"estimate_above_guard_floor", "estimator_reconciliation"} & set(
            check_evaluations(result)
        )
        assert "multivariate_drift" not in materialized(result)
        assert lake.read("estimated_performance", [SCORED[0]]).height == before.height  # untouched
    finally:
        registry.set_version_tags(1, {VersionTag.MANIFEST: tags[VersionTag.MANIFEST]})


# ---- cost
# --------------------------------------------------------------------------------------------
