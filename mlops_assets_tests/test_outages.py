"""MLflow outages and dead attempts, on the real stack.

- MLflow's HTTP retries are bounded by defaults that never override the operator's values.
- A registry pointed at a closed port (with ``user:password@`` in the URI) fails in seconds
  with ``RegistryUnavailable``, and neither the error, its traceback nor a Dagster run's event
  log carries the password.
- Against a real ``mlflow server`` (``test_mlflow_server.MlflowServer``), the bike_rentals spec
  is trained and scored; then the server is stopped: scoring goes on from the local verified
  cache (``model_source: cache``, alert ``registry_unavailable``), training fails in seconds.
  With the server back, a training attempt killed with SIGKILL mid-upload and a version
  registered without its gates are cleaned up by the next attempt (run FAILED, version
  ``superseded``, never promoted). A champion whose MLmodel is pointed at a planted pickle is
  refused at scoring time (degraded, alert ``model_integrity``) and the pickle never runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import AssetKey, instance_for_test

from mlops_assets.control.alerts import read_alerts
from mlops_assets.control.registry import (
    MLFLOW_HTTP_DEFAULTS,
    ModelRegistry,
    RegistryUnavailable,
)
from mlops_assets.core.vocabulary import Alias, Meta, Status, VersionTag
from mlops_assets.data.simulator import BIKE_SPEC, simulate_regression

from .conftest import World, build_world, days, materialized, step_failures, world_home
from .test_integrity import plant_pickle
from .test_mlflow_server import MlflowServer, _free_port

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3tpass"
FAST_S = 20  # an unreachable MLflow must fail a call within this (MLflow's defaults: ~4 min)


def closed_port_uri() -> str:
    return f"http://user:{SECRET}@127.0.0.1:{_free_port()}"


def all_event_text(instance, run_id: str) -> str:
    return "\n".join(
        repr(e) + str(e.dagster_event and e.dagster_event.event_specific_data)
        for e in instance.all_logs(run_id)
    )


# ---- bounded retries ------------------------------------------------------------------------


def test_http_retry_defaults_are_bounded_and_never_override_the_operator():
    probe = (
        "import json, os, mlops_assets.control.registry; from mlflow.environment_variables import"
        " MLFLOW_HTTP_REQUEST_MAX_RETRIES as R, MLFLOW_HTTP_REQUEST_TIMEOUT as T;"
        " print(json.dumps([{k: v for k, v in os.environ.items() if k.startswith('MLFLOW_HTTP')},"
        " R.get(), T.get()]))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=clean,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env, retries, timeout = json.loads(out.strip().splitlines()[-1])
    assert env == MLFLOW_HTTP_DEFAULTS and (retries, timeout) == (2, 10)
    mine = {**clean, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=mine,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env, retries, timeout = json.loads(out.strip().splitlines()[-1])
    assert (retries, timeout) == (5, 30) and env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"


# ---- an unreachable server with credentials in the URI --------------------------------------


def test_an_unreachable_registry_fails_fast_and_its_errors_carry_no_password(tmp_path):
    registry = ModelRegistry(
        tracking_uri=closed_port_uri(), model_name="m", cache_dir=str(tmp_path / "cache")
    )
    calls = {
        "aliases": registry.aliases,
        "version_tags": lambda: registry.version_tags(1),
        "load_model": lambda: registry.load_model(1),
        "fail_orphan_runs": lambda: registry.fail_orphan_runs("2026-01-01", is_live=bool, by="t"),
    }
    for name, call in calls.items():
        t0 = time.monotonic()
        with pytest.raises(RegistryUnavailable) as caught:
            call()
        elapsed = time.monotonic() - t0
        text = "".join(traceback.format_exception(caught.value))
        assert elapsed < FAST_S, (name, elapsed)
        assert SECRET not in text and SECRET not in repr(caught.value), (name, text)
        assert "MLflow unreachable" in text and "http://***@127.0.0.1" in text, text
    report = registry.verify_integrity(1, None, None, score=lambda m, X: X)
    assert not report["ok"] and SECRET not in report["detail"] and "***" in report["detail"]


def test_a_dagster_run_against_an_unreachable_registry_logs_no_password(home, monkeypatch):
    from mlops_assets.core.platform import Platform
    from mlops_assets.location.build import build_definitions

    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port_uri())
    platform = Platform.from_env()
    defs = build_definitions(platform)
    day = "2026-03-10"
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        for job, asset in (("scoring", "scores"), ("training", "candidate_model")):
            t0 = time.monotonic()
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance,
                partition_key=day,
                raise_on_error=False,
                asset_selection=[AssetKey(asset)],
            )
            assert not result.success and time.monotonic() - t0 < 2 * FAST_S
            failures = [
                e.event_specific_data.error.to_string()
                for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"
            ]
            assert failures and all("MLflow unreachable" in f for f in failures), failures
            assert SECRET not in all_event_text(instance, result.run_id)
    alerts = read_alerts(platform.home.alerts, limit=50)
    assert [a["kind"] for a in alerts] == ["registry_unavailable"]
    assert SECRET not in json.dumps(alerts)


# ---- a real server that goes away -----------------------------------------------------------

START = dt.date(2026, 4, 6)
DAYS = 30  # bike_rentals: 21-day training window, no label delay
KEYS = days(START, DAYS)
C1, C2 = KEYS[-3], KEYS[-1]
SCORED_LIVE, SCORED_CACHED = KEYS[-3], KEYS[-2]
KILLED_ATTEMPT = """
import sys, time
from mlops_assets.model.training import SKOPS_TRUSTED_TYPES, predict_scores
from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.test_registry import train

spec, uri, cutoff = load_spec(sys.argv[1]), sys.argv[2], sys.argv[3]
_, X, pipeline = train(spec, 9)
calls = []

def score(model, frame):
    calls.append(1)
    if len(calls) > 1:  # the saved model's check: the run and the LoggedModel exist by now
        print("RUNNING", flush=True)
        time.sleep(600)
    return predict_scores(model, frame, spec.task)

ModelRegistry(tracking_uri=uri, model_name=spec.model.registered_name).log_candidate(
    spec, pipeline, input_example=X, params={}, metrics={}, score=score,
    trusted_types=SKOPS_TRUSTED_TYPES,
    tags={"mlops.cutoff": cutoff, "lineage.dagster_run_id": "a-run-that-was-killed",
          "mlops.status": "candidate"})
"""


@dataclass
class OutageWorld(World):
    server: MlflowServer | None = None

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.server.url, registry_uri=self.server.url)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """bike_rentals on a real MLflow server: v1 champion (cutoff C1), one day scored live."""
    root = tmp_path_factory.mktemp("outages")
    server = MlflowServer(root / "server")
    server.root.mkdir()
    server.start()  # boots while the data is simulated and ingested
    try:
        with world_home(root, spec=BIKE_SPEC, MLFLOW_TRACKING_URI=server.url) as (
            platform,
            instance,
        ):
            w = build_world(
                platform,
                instance,
                start=START,
                n_days=DAYS,
                seed=5,
                simulator=simulate_regression,
                labels=None,
                cls=OutageWorld,
                server=server,
            )
            server.wait_healthy()
            w.step("training", w.train(C1))
            scored = w.step("scoring", w.run("scoring", SCORED_LIVE, assets=["scores"]))
            assert materialized(scored)["scores"][Meta.MODEL_SOURCE] == "registry"
            yield w
    finally:
        server.stop()


def stored_model_dir(w: OutageWorld, version: int) -> Path:
    model_id = w.registry.version_tags(version)[VersionTag.MODEL_ID]
    found = [p.parent for p in w.server.artifacts.rglob("MLmodel") if model_id in p.parts]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.slow
def test_a_champion_pointed_at_a_planted_pickle_is_refused_at_scoring_time(world, tmp_path):
    from mlops_assets.control.registry import IntegrityError
    from mlops_assets.data.lake import DeltaLake
    from mlops_assets.model.reproduce import reproduce

    w, marker = world, tmp_path / "payload_ran"
    folder = stored_model_dir(w, 1)
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    try:
        plant_pickle(folder, marker)
        result = w.run("scoring", SCORED_LIVE, assets=["scores"])
        assert result.success, step_failures(result)
        meta = materialized(result)["scores"]
        assert (meta["model_version"], meta["mode"]) == (
            -1,
            "degraded",
        )  # no last_known_good: the baseline
        assert (
            "MLmodel changed" in meta["serving_reason"]
            and "model.pkl added" in meta["serving_reason"]
        )
        integrity = [
            a
            for a in read_alerts(w.platform.home.alerts, limit=50)
            if a["kind"] == "model_integrity"
        ]
        assert integrity and "model.pkl added" in integrity[0]["reason"]
        with pytest.raises(IntegrityError, match="model.pkl added"):  # reproduce never "agrees"
            reproduce(w.platform.spec, DeltaLake(root=str(w.platform.home.lake)), w.registry, 1)
        assert not marker.exists(), "the planted pickle was deserialised"
    finally:
        shutil.rmtree(folder)
        shutil.copytree(backup, folder)
    again = w.run("scoring", SCORED_LIVE, assets=["scores"])
    assert materialized(again)["scores"]["mode"] == "normal"


@pytest.mark.slow
def test_while_mlflow_is_down_scoring_serves_the_cache_and_training_fails_fast(world):
    w = world
    w.server.stop()
    try:
        scored = w.run("scoring", SCORED_CACHED, assets=["scores"])
        assert scored.success, step_failures(scored)
        assert scored.elapsed < 3 * FAST_S, scored.elapsed
        meta = materialized(scored)["scores"]
        assert (meta["model_version"], meta["mode"], meta[Meta.MODEL_SOURCE]) == (
            1,
            "normal",
            "cache",
        )
        assert "local model cache" in meta["serving_reason"] and meta["rows"] > 0
        from mlops_assets.data.lake import DeltaLake

        rows = DeltaLake(root=str(w.platform.home.lake)).read("scores", [SCORED_CACHED])
        assert rows.height == meta["rows"] and set(rows["model_version"]) == {1}
        down = [
            a
            for a in read_alerts(w.platform.home.alerts, limit=50)
            if a["kind"] == "registry_unavailable"
        ]
        assert down and "served from the local model cache" in down[0]["reason"]

        # the cached copy is verified like a download: altered, it is refused (the baseline serves)
        from mlops_assets.control.registry.integrity import manifest_sha256

        cached = (
            w.platform.home.root
            / "model_cache"
            / manifest_sha256(json.loads(w.registry.cached_version_tags(1)[VersionTag.MANIFEST]))
        )
        (cached / "model" / "requirements.txt").write_text("evil-package\n")
        tampered = w.run("scoring", SCORED_CACHED, assets=["scores"])
        assert tampered.success, step_failures(tampered)
        meta = materialized(tampered)["scores"]
        assert (meta["model_version"], meta["mode"], meta[Meta.MODEL_SOURCE]) == (
            -1,
            "degraded",
            "cache",
        )
        assert "requirements.txt changed" in meta["serving_reason"]
        shutil.rmtree(cached)  # the next live load stores a fresh verified copy

        training = w.run("training", C2)
        assert not training.success and training.elapsed < 3 * FAST_S, training.elapsed
        print(
            f"\nMLflow down: scoring from the cache {scored.elapsed:.1f}s, training failed in"
            f" {training.elapsed:.1f}s"
        )
        assert "MLflow unreachable" in step_failures(training)
    finally:
        w.server.proc = None
        w.server.start()  # same port, same backend store
        w.server.wait_healthy()
    assert w.registry.aliases() == {Alias.CHAMPION: 1}


@pytest.mark.slow
def test_the_next_attempt_fails_a_killed_attempts_run_and_supersedes_an_ungated_version(world):
    w = world
    client = w.client()
    ungated = w.run(
        "training", C2, assets=["training_set", "candidate_model"]
    )  # died before its gates
    assert ungated.success, step_failures(ungated)
    v_ungated = materialized(ungated)["candidate_model"]["model_version"]
    attempt = subprocess.Popen(
        [sys.executable, "-c", KILLED_ATTEMPT, str(BIKE_SPEC), w.server.url, C2],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )
    try:
        assert attempt.stdout.readline().strip() == "RUNNING"
    finally:
        os.kill(attempt.pid, signal.SIGKILL)
        attempt.wait(timeout=30)
    experiment = client.get_experiment_by_name(w.registry.experiment).experiment_id
    orphan = client.search_runs([experiment], "attributes.status = 'RUNNING'")
    assert [r.data.tags.get("mlops.cutoff") for r in orphan] == [C2]

    retry = w.run("training", C2)
    assert retry.success, step_failures(retry)
    meta = materialized(retry)["candidate_model"]
    v_new = meta["model_version"]
    assert [r["run_id"] for r in meta["failed_orphan_runs"]] == [orphan[0].info.run_id]
    assert meta["superseded_versions"] == [v_ungated]
    run = client.get_run(orphan[0].info.run_id)
    assert (
        run.info.status == "FAILED"
        and "a-run-that-was-killed" in run.data.tags[VersionTag.FAILED_REASON]
    )
    assert not client.search_runs([experiment], "attributes.status = 'RUNNING'")
    from mlflow.entities import LoggedModelStatus

    left = [
        m
        for m in client.search_logged_models([experiment])
        if m.source_run_id == orphan[0].info.run_id
    ]
    assert [m.status for m in left] == [LoggedModelStatus.FAILED]  # its half-logged model too
    old, new = w.registry.version_tags(v_ungated), w.registry.version_tags(v_new)
    assert (old[VersionTag.STATUS], old[VersionTag.SUPERSEDED_BY]) == (
        Status.SUPERSEDED,
        str(v_new),
    )
    assert json.loads(new[VersionTag.SUPERSEDES]) == [v_ungated]
    assert v_ungated not in w.registry.aliases().values() and VersionTag.GATES not in old
    from mlops_assets.data.lake import DeltaLake
    from mlops_assets.model.promotion import PromotionRefused, promote_if_passed

    with pytest.raises(PromotionRefused, match="no evaluation"):  # never gated: never promoted
        promote_if_passed(
            DeltaLake(root=str(w.platform.home.lake)),
            w.registry,
            v_ungated,
            require_approval=False,
            actor="test",
            run_id=None,
        )
