"""The same code against a real MLflow tracking server over HTTP instead of the embedded store.

An ``mlflow server`` subprocess (sqlite backend, proxied artifact serving to a local folder)
runs in its own process group; ``MLFLOW_TRACKING_URI`` points at it, so ``registry_resource``
builds the ``EnvVar`` resource. The bundled bike_rentals spec (regression, no label feed) is
simulated, ingested with one range backfill and trained for one cutoff. The model version,
its lineage tags and its champion alias must live on the server, and the model's bytes must
have been uploaded through it (``mlflow-artifacts:``) into its artifact destination, not
written anywhere under ``$MLOPS_HOME/mlflow``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from dagster import instance_for_test

from mlops_assets.data.simulator import BIKE_SPEC, simulate_regression

from .conftest import build_world, check_evaluations, days, step_failures

pytestmark = pytest.mark.slow

START = dt.date(2026, 4, 6)
DAYS = 28  # bike_rentals: 21-day training window, no label delay
STARTUP_TIMEOUT_S = 120  # generous: a loaded 2-CPU box needs ~25 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = root / "artifacts"
        self.log = root / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_"))}
        # MLflow 3.x servers also start a job runner (7 huey consumer processes, for GenAI
        # scorers): not needed for tracking/registry, and on a small machine it starves the test
        # of CPU and holds SIGTERM shutdown for ~15 s.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        cmd = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.artifacts),
        ]
        with self.log.open("wb") as log:
            # start_new_session: its own process group (uvicorn spawns workers), killed as one
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    "mlflow server exited with"
                    f" {self.proc.returncode}:\n{self.log.read_text()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        pytest.fail(
            f"mlflow server not healthy after {STARTUP_TIMEOUT_S}s:\n{self.log.read_text()[-4000:]}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # session leader: its pid is the process group id
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        with contextlib.suppress(ProcessLookupError):  # workers left by a parent that died first
            os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path / "mlflow_server")
    server.root.mkdir()
    server.start()  # boots (~10 s) while the test simulates and ingests
    try:
        yield server
    finally:
        server.stop()


def test_lifecycle_against_an_mlflow_tracking_server(home, monkeypatch, mlflow_server, capsys):
    from mlflow import MlflowClient

    from mlops_assets.control.registry import MODEL_FILE, ModelRegistry
    from mlops_assets.core.platform import Platform
    from mlops_assets.core.vocabulary import Alias, Artifact, LineageTag, VersionTag
    from mlops_assets.model.lineage import (
        REQUIRED_LINEAGE_KEYS,
        file_sha256,
        lineage_completeness,
    )
    from mlops_assets.model.training import to_model_frame
    from mlops_assets.operations.cli import main

    url = mlflow_server.url
    cwd_before = set(os.listdir())
    monkeypatch.setenv("MLOPS_SPEC", str(BIKE_SPEC))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # monkeypatch restores the previous value
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLOPS_MLFLOW_ARTIFACT_ROOT", raising=False)

    platform = Platform.from_env()
    spec = platform.spec
    keys = days(START, DAYS)
    cutoff = keys[-1]

    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        world = build_world(
            platform,
            instance,
            start=START,
            n_days=DAYS,
            seed=5,
            simulator=simulate_regression,
            labels=None,
        )
        registry, lake = world.registry, world.lake
        assert isinstance(registry, ModelRegistry) and registry.resolved_tracking_uri == url
        mlflow_server.wait_healthy()
        result = world.train(cutoff)
        evals = check_evaluations(result)
        assert result.success, (
            step_failures(result),
            {k: v.description for k, v in evals.items() if not v.passed},
        )
        assert evals["gate_integrity"].passed

    # ---- the registry lives on the server --------------------------------------------------
    server = MlflowClient(tracking_uri=url, registry_uri=url)
    name = spec.model.registered_name
    model = server.get_registered_model(name)
    assert model.aliases == {Alias.CHAMPION: "1"}
    mv = server.get_model_version(name, "1")
    assert server.get_model_version_by_alias(name, Alias.CHAMPION).version == "1"
    assert set(REQUIRED_LINEAGE_KEYS) <= set(mv.tags), set(REQUIRED_LINEAGE_KEYS) - set(mv.tags)
    # the values that do not depend on running from a git checkout are all known
    for key in (
        "spec_sha256",
        "lock_sha256",
        "delta_versions",
        "partition_start",
        "partition_end",
        "dagster_run_id",
        "seed",
        "model_sha256",
    ):
        assert mv.tags[f"lineage.{key}"] not in ("", "unknown", "{}", "null", "None"), key
    assert (
        mv.tags["lineage.dagster_run_id"] == result.run_id
        and mv.tags["lineage.partition_end"] < cutoff
    )
    model_id = mv.tags[VersionTag.MODEL_ID]
    # a server resolves "models:/<model_id>" itself; MLflow 3.17.2's REST ModelVersion carries no
    # model_id field (mv.model_id is None over HTTP), hence the registry.model_id tag
    assert (
        mv.source == f"models:/{model_id}"
        and server.get_logged_model(model_id).source_run_id == mv.run_id
    )
    assert [v["model_id"] for v in registry.list_versions()] == [model_id]
    run = server.get_run(mv.run_id)
    assert (
        run.info.status == "FINISHED"
        and run.data.tags[LineageTag.MODEL_SHA] == mv.tags[LineageTag.MODEL_SHA]
    )
    # proxied artifact storage: the client only ever saw mlflow-artifacts: URIs
    experiment = server.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert server.get_logged_model(model_id).artifact_location.startswith("mlflow-artifacts:")
    assert server.get_model_version_download_uri(name, "1").startswith("mlflow-artifacts:")

    # ---- the bytes went through the server into its artifact destination -------------------
    stored = [p for p in mlflow_server.artifacts.rglob(MODEL_FILE) if model_id in p.parts]
    assert len(stored) == 1, sorted(mlflow_server.artifacts.rglob("*"))
    assert file_sha256(stored[0]) == mv.tags[LineageTag.MODEL_SHA]
    assert list(mlflow_server.artifacts.rglob(Artifact.HOLDOUT_SCORES))
    local_mlflow = platform.home.mlflow_db.parent  # $MLOPS_HOME/mlflow
    assert not local_mlflow.exists() or not [p for p in local_mlflow.rglob("*") if p.is_file()]
    # no fluent-API fallback store appeared in the working directory either
    assert not ({"mlruns", "mlflow.db", "mlartifacts"} & (set(os.listdir()) - cwd_before))

    # ---- integrity through the HTTP download path ------------------------------------------
    holdout = lake.read("training_set", [cutoff]).filter(pl.col("split") == "holdout").sort(spec.id)
    recorded = registry.load_artifact_json(1, Artifact.HOLDOUT_SCORES)
    by_id = dict(zip(recorded["ids"], recorded["scores"], strict=True))
    from mlops_assets.model.training import predict_scores

    integrity = registry.verify_integrity(
        1,
        to_model_frame(holdout, spec),
        [by_id[i] for i in holdout[spec.id]],
        score=lambda m, X: predict_scores(m, X, spec.task),
    )
    assert integrity["ok"], integrity
    assert integrity["sha256_stored"] == mv.tags[LineageTag.MODEL_SHA]
    # the manifest names exactly the files the server stored, hashed as stored
    manifest = json.loads(mv.tags[VersionTag.MANIFEST])
    assert manifest["model"] == {p.name: file_sha256(p) for p in stored[0].parent.iterdir()}
    assert set(manifest["run"]) == {
        Artifact.HOLDOUT_SCORES,
        Artifact.REFERENCE_PROFILE,
        Artifact.MONITOR_MODELS,
    }
    assert all(
        file_sha256(next(mlflow_server.artifacts.rglob(f"{mv.run_id}/artifacts/{name}"))) == sha
        for name, sha in manifest["run"].items()
    )

    # ---- the operator's view ---------------------------------------------------------------
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["champion"]["version"] == 1 and status["champion"]["cutoff"] == cutoff
    assert status["lineage"]["lineage.model_sha256"] == mv.tags[LineageTag.MODEL_SHA]
    assert status["lineage"]["completeness"] == lineage_completeness(mv.tags) > 0.8
    assert [m["aliases"] for m in status["models"]] == [[Alias.CHAMPION]]
