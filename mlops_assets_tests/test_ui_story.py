"""Issue 13, what the UI shows: owners and tags from the spec on every asset and check, alerts that
name
the owners, MLflow links (pure builders, and against a real MLflow server: the run, the version
and a
report logged as a run artifact all answer), plot-ready metadata under stable names, the scorecard's
schedule and `status` reading its latest materialisation, the demo's spec (partitions from the
simulation's first day, shadow days) and `spec infer` proposing the first day seen."""

from __future__ import annotations

import datetime as dt
import json
import math
import urllib.request
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import AssetKey, DefaultScheduleStatus

from mlops_assets.control.alerts import AlertSink, read_alerts
from mlops_assets.control.registry.links import (
    DEFAULT_UI_URL,
    artifact_url,
    log_report,
    mlflow_ui_base,
    run_url,
    version_links,
    version_url,
    without_credentials,
)
from mlops_assets.core.paths import Home
from mlops_assets.core.spec import BUNDLED_SPEC, SpecError, load_spec, parse_spec
from mlops_assets.core.vocabulary import DATASET_ROW, PREDICTION_ROW, SCORECARD, Schedule
from mlops_assets.data.spec_infer import InferOptions, infer_spec
from mlops_assets.location.common import OWNERS
from mlops_assets.model.assets import side_by_side
from mlops_assets.monitoring.assets import drift_metadata, performance_metadata
from mlops_assets.monitoring.drift.judgement import drift_strength, top_drifted
from mlops_assets.operations.demo import SHADOW_DAYS, demo_spec, write_demo_spec

from .test_mlflow_server import MlflowServer


# ---- owners and tags
# -------------------------------------------------------------------------------
def test_bundled_spec_names_owners_and_tags():
    spec = load_spec(BUNDLED_SPEC)
    assert spec.owners == ["team:fraud-ml", "fraud-ml-oncall@example.com"]
    assert spec.tags == {"domain": "payments", "tier": "critical"}


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("owners", ["fraud team"], "owners: "),
        ("owners", ["team:"], "owners: "),
        ("tags", {"bad key!": "x"}, "tags: "),
        ("tags", {"tier": "not ok"}, "tags: "),
    ],
)
def test_bad_owners_and_tags_are_refused_naming_the_field(field, value, expected):
    data = yaml.safe_load(BUNDLED_SPEC.read_text()) | {field: value}
    with pytest.raises(SpecError, match=expected):
        parse_spec(data, "x.yaml")


def test_every_asset_and_check_carries_the_specs_owners(defs):
    graph = defs.resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    assert len(keys) >= 10
    for key in keys:
        node = graph.get(key)
        assert node.owners == ["team:fraud-ml", "fraud-ml-oncall@example.com"], key
        assert node.tags["domain"] == "payments" and node.tags["tier"] == "critical", key
        assert any(t.startswith("dagster/kind/") for t in node.tags), f"{key}: kinds lost"
    checks = list(graph.asset_check_keys)
    assert any(c.name.startswith("gate_") for c in checks) and any(
        c.name.startswith("contract_") for c in checks
    )
    unowned = set()
    for check in checks:
        spec = next(s for a in defs.assets for s in getattr(a, "check_specs", []) if s.key == check)
        if OWNERS not in spec.metadata:
            unowned.add(check.name)
            continue
        assert spec.metadata[OWNERS].value == [
            "team:fraud-ml",
            "fraud-ml-oncall@example.com",
        ], check
        if check.name.startswith(("gate_", "contract_")):
            assert spec.blocking, check  # rebuilt specs keep what they were
    # every check is built with `defs.common.owned_checks`
    assert not unowned, f"checks without owners: {sorted(unowned)}"


def test_alerts_name_the_owners(tmp_path, caplog, defs):
    sink = AlertSink(directory=str(tmp_path), owners=["team:fraud-ml", "a@example.com"])
    record = sink.send("drift_retrain", reason="share 0.6 on 2 days")
    assert record["owners"] == ["team:fraud-ml", "a@example.com"]
    assert read_alerts(tmp_path)[0]["owners"] == ["team:fraud-ml", "a@example.com"]
    assert "owners team:fraud-ml, a@example.com" in caplog.text
    assert defs.resources["alerts"].owners == [
        "team:fraud-ml",
        "fraud-ml-oncall@example.com",
    ]  # from the spec


# ---- links
# ----------------------------------------------------------------------------------------
def test_ui_base_comes_from_the_environment_without_credentials():
    assert mlflow_ui_base({}) == DEFAULT_UI_URL == "http://127.0.0.1:5000"
    assert mlflow_ui_base({"MLFLOW_TRACKING_URI": "sqlite:///x.db"}) == DEFAULT_UI_URL
    assert (
        mlflow_ui_base({"MLFLOW_TRACKING_URI": "https://bob:s3cret@mlflow.example.com/"})
        == "https://mlflow.example.com"
    )
    assert (
        mlflow_ui_base(
            {
                "MLOPS_MLFLOW_UI_URL": "https://u:p@ui.example.com:8443/mlflow/?token=t#x",
                "MLFLOW_TRACKING_URI": "http://other",
            }
        )
        == "https://ui.example.com:8443/mlflow"
    )
    assert without_credentials("http://[::1]:5000/") == "http://[::1]:5000"


def test_routes_are_the_mlflow_3_ui_routes():
    base = "http://127.0.0.1:5000"
    assert run_url(base, "1", "abc") == "http://127.0.0.1:5000/#/experiments/1/runs/abc"
    assert (
        version_url(base, "card fraud", 3)
        == "http://127.0.0.1:5000/#/models/card%20fraud/versions/3"
    )
    assert (
        artifact_url(base, "1", "abc", "reports/drift/2026-03-05_vs_v1.html")
        == "http://127.0.0.1:5000/#/experiments/1/runs/abc/artifactPath/reports/drift/2026-03-05_vs_v1.html"
    )
    # the routes exist in the installed UI's router
    import mlflow

    bundle = "".join(
        p.read_text(errors="ignore")
        for p in (Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js").glob(
            "main*.js"
        )
    )
    for route in (
        "/experiments/:experimentId/runs/:runUuid",
        "/experiments/:experimentId/runs/:runUuid/artifactPath/*",
        "/models/:modelName/versions/:version",
    ):
        assert f'"{route}"' in bundle, route


def _register_version(registry) -> tuple[str, str]:
    """A registered version whose source run exists (no model bytes: links only need the
    records)."""
    client = registry.client()
    experiment = registry.experiment_id()
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(registry.registered_model)
    client.create_model_version(
        registry.registered_model, f"{run.info.artifact_uri}/model", run.info.run_id
    )
    return experiment, run.info.run_id


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, resp.read()


@pytest.mark.slow
def test_links_and_reports_answer_on_a_real_mlflow_server(tmp_path, monkeypatch):
    from mlops_assets.control.registry import ModelRegistry

    server = MlflowServer(tmp_path / "server")
    server.root.mkdir()
    server.start()
    try:
        server.wait_healthy()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
        registry = ModelRegistry(
            tracking_uri=server.url, model_name="ui_links", cache_dir=str(tmp_path / "cache")
        )
        experiment, run_id = _register_version(registry)
        links = version_links(registry, 1)
        assert links == {
            "mlflow_run": f"{server.url}/#/experiments/{experiment}/runs/{run_id}",
            "mlflow_model_version": f"{server.url}/#/models/ui_links/versions/1",
        }
        assert version_links(registry, None) == {} and version_links(registry, -1) == {}
        report = tmp_path / "2026-03-05_vs_v1.html"
        report.write_text("<html><body>drift report</body></html>")
        url = log_report(registry, 1, report, "drift")
        run_page = f"{server.url}/#/experiments/{experiment}/runs/{run_id}"
        assert url == f"{run_page}/artifactPath/reports/drift/{report.name}"
        # what the links name answers: the UI page, the run, the version and the report's bytes
        assert _get(url.split("#")[0])[0] == 200
        status, body = _get(f"{server.url}/ajax-api/2.0/mlflow/runs/get?run_id={run_id}")
        assert status == 200 and json.loads(body)["run"]["info"]["experiment_id"] == experiment
        status, body = _get(
            f"{server.url}/ajax-api/2.0/mlflow/model-versions/get?name=ui_links&version=1"
        )
        assert status == 200 and json.loads(body)["model_version"]["run_id"] == run_id
        status, body = _get(
            f"{server.url}/get-artifact?path=reports/drift/{report.name}&run_uuid={run_id}"
        )
        assert status == 200 and b"drift report" in body
        # a server that went away: no run link, no failure (the version page needs no lookup)
        server.stop()
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
        assert list(version_links(registry, 1)) == ["mlflow_model_version"]
        assert log_report(registry, 1, report, "drift") is None
    finally:
        server.stop()


# ---- metadata for plots
# ---------------------------------------------------------------------------
def _drift_rows(day: str, scores: dict[str, float | None], share: float) -> list[dict]:
    rows = [
        {
            "ds": day,
            "feature": f,
            "method": "wasserstein" if f != "channel" else "jensenshannon",
            "score": s,
            "threshold": 0.1,
            "drifted": s is not None and s >= 0.1,
            "status": "ok",
        }
        for f, s in scores.items()
    ]
    rows.append(
        {
            "ds": day,
            "feature": PREDICTION_ROW,
            "method": "wasserstein",
            "score": 0.9,
            "threshold": 0.1,
            "drifted": True,
            "status": "ok",
        }
    )
    return rows + [
        {
            "ds": day,
            "feature": DATASET_ROW,
            "method": "share_drifted",
            "score": share,
            "threshold": 0.3,
            "drifted": share >= 0.3,
            "status": "ok",
        }
    ]


class _Window:
    days, note = ("2026-03-05",), "2026-03-05 alone"


def test_drift_metadata_has_the_same_plot_keys_every_day():
    strong = _drift_rows(
        "2026-03-05", {"amount": 0.5, "channel": 0.2, "country": 0.05, "tx": None}, 0.5
    )
    calm = _drift_rows(
        "2026-03-06", {"amount": 0.01, "channel": None, "country": None, "tx": None}, 0.0
    )
    keys = []
    for rows, day, share in ((strong, "2026-03-05", 0.5), (calm, "2026-03-06", 0.0)):
        result = {
            "share_drifted": share,
            "dataset_drifted": share >= 0.3,
            "status": "ok",
            "rows": 100,
            "drifted_features": [],
            "excluded": {},
        }
        meta = drift_metadata(rows, {day: (_Window(), result)}, {}, {}, 1, 7)
        keys.append(set(meta))
        if day == "2026-03-05":
            assert meta["drift_top1_feature"] == "amount" and meta["drift_top1_score"] == 0.5
            assert (
                meta["drift_top2_feature"] == "channel" and meta["drift_top3_feature"] == "country"
            )
            assert (
                meta["drift_top1_strength"] == pytest.approx(5.0)
                and meta["drifted_feature_count"] == 2
            )
            assert meta["share_drifted"] == 0.5 and math.isnan(meta["drift_tx"])
        else:
            assert meta["drift_top1_feature"] == "amount" and meta["drift_top2_feature"] == ""
            assert math.isnan(meta["drift_top2_score"]) and meta["drifted_feature_count"] == 0
    assert keys[0] == keys[1]  # stable names: the UI's plots line up across partitions


def test_drift_strength_follows_the_methods_rule():
    assert drift_strength(
        {"method": "wasserstein", "score": 0.3, "threshold": 0.1}
    ) == pytest.approx(3.0)
    assert drift_strength({"method": "ks", "score": 0.01, "threshold": 0.05}) == pytest.approx(
        5.0
    )  # p-value
    assert math.isnan(drift_strength({"method": "ks", "score": None, "threshold": 0.05}))
    rows = [
        {
            "ds": "d",
            "feature": "a",
            "method": "ks",
            "score": 0.001,
            "threshold": 0.05,
            "drifted": True,
        },
        {
            "ds": "d",
            "feature": "b",
            "method": "wasserstein",
            "score": 0.2,
            "threshold": 0.1,
            "drifted": True,
        },
    ]
    assert top_drifted(rows, "d", k=2)["drift_top1_feature"] == "a"  # p 0.001 is the stronger drift


def test_performance_and_evaluation_metadata_keep_their_names():
    from mlops_assets.monitoring.performance import performance_table

    frame = performance_table(
        [
            {
                "ds": "2026-03-05",
                "model_version": 2,
                "mode": "normal",
                "labelled_rows": 500,
                "coverage": 0.9,
                "primary": 0.81,
                "metric": "roc_auc",
                "metrics": "{}",
                "lkg_version": None,
                "lkg_primary": None,
            }
        ]
    )
    meta = performance_metadata(frame, "2026-03-05", 4)
    assert meta["roc_auc"] == meta["realised_primary"] == 0.81
    assert math.isnan(meta["lkg_roc_auc"]) and math.isnan(meta["realised_minus_lkg"])
    first = side_by_side({"roc_auc": 0.9, "brier": 0.03}, {})
    later = side_by_side({"roc_auc": 0.9, "brier": 0.03}, {"roc_auc": 0.85, "brier": 0.04})
    assert (
        set(first)
        == set(later)
        == {f"{w}_{m}" for w in ("candidate", "champion", "delta") for m in ("roc_auc", "brier")}
    )
    assert math.isnan(first["champion_roc_auc"]) and later["delta_roc_auc"] == pytest.approx(0.05)


# ---- scorecard
# ------------------------------------------------------------------------------------
def test_scorecard_schedule_runs_by_default_and_status_reads_the_latest_point(
    defs, platform, instance
):
    from mlops_assets.operations.status import scorecard_status

    schedule = next(s for s in defs.schedules if s.name == Schedule.SCORECARD)
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    lake, registry = defs.resources["lake"], defs.resources["registry"]
    computed = scorecard_status(instance, lake, registry, platform.spec)
    assert computed["source"] == "computed" and "pipeline_success_rate" in computed["measures"]
    for _ in range(2):  # what the schedule requests: the scorecard job
        result = defs.resolve_job_def(schedule.job_name).execute_in_process(instance=instance)
        assert result.success
    latest = scorecard_status(instance, lake, registry, platform.spec)
    assert latest["source"] == "materialization" and latest["run_id"] == result.run_id
    assert set(latest["measures"]) == set(computed["measures"])
    events = instance.fetch_materializations(AssetKey(SCORECARD), limit=10).records
    assert len(events) == 2  # two points of every measure: a series in the UI's plots


# ---- the demo's spec, spec infer
# --------------------------------------------------------------------
def test_demo_spec_starts_partitions_at_the_first_simulated_day(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_SPEC", str(BUNDLED_SPEC))  # the source write_demo_spec reads
    start = dt.date(2026, 10, 3)
    data = demo_spec(yaml.safe_load(BUNDLED_SPEC.read_text()), start)
    assert data["partition_start"] == start and data["gates"]["shadow_days"] == SHADOW_DAYS > 0
    assert (
        data["gates"]["floors"] == load_spec(BUNDLED_SPEC).gates.floors
    )  # the rest is the bundled spec
    path = write_demo_spec(Home(tmp_path), start)
    spec = load_spec(path)
    assert load_spec().partition_start != start  # $MLOPS_SPEC still names the bundled spec
    assert (
        path.parent == tmp_path
        and spec.partition_start == start
        and spec.gates.shadow_days == SHADOW_DAYS
    )
    assert spec.owners == load_spec(BUNDLED_SPEC).owners
    from mlops_assets.core.platform import Platform

    assert Platform(spec, Home(tmp_path)).daily.get_first_partition_key() == "2026-10-03"


def test_spec_infer_proposes_the_first_day_seen_and_asks_for_owners():
    stamps = [dt.datetime(2026, 5, 4, 8) + dt.timedelta(hours=7 * i) for i in range(200)]
    frame = pl.DataFrame(
        {
            "ts": stamps,
            "id": [f"r{i}" for i in range(200)],
            "x": [float(i % 17) for i in range(200)],
            "y": [i % 2 for i in range(200)],
        }
    )
    out = infer_spec(frame, InferOptions(name="sample", target="y"))
    assert out.spec["partition_start"] == dt.date(2026, 5, 4)
    text = out.to_yaml()
    assert "partition_start: 2026-05-04" in text and "owners: [team:" in text
