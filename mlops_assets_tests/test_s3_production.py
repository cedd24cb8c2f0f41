"""Production storage for real: Delta tables and MLflow artifacts on an S3 API server.

The S3 server is moto's (``python -m moto.server``, a real HTTP server on a free loopback
port, from the test dependency ``moto[server]``); it honours conditional writes
(``If-None-Match: *`` and ``If-Match``: checked first), which is what deltalake 1.x relies on
for safe concurrent commits on S3 (``lake.py``'s docstring).

* two writer **processes** commit to one table on S3 at once, to different partitions and to
  the same one: every commit lands, nothing is lost or mixed;
* a writer holding a stale snapshot does not overwrite the commit that beat it (the
  conditional put, directly);
* the lifecycle (``slow``): ingest → training → scoring with the Dagster instance on the
  local PostgreSQL, the Delta lake on S3 and an ``mlflow server`` whose backend store is
  PostgreSQL and whose artifacts go to S3. The MLflow server is killed between training and
  scoring: scoring either still serves the champion from the local model cache, or fails —
  fast and without a credential in any message; after a restart the lifecycle completes and
  the aliases and the audit agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import polars as pl
import pytest
import yaml

from mlops_assets.core.redaction import secret_values
from mlops_assets.data.lake import DeltaLake
from mlops_assets.data.simulator import BIKE_SPEC, simulate_regression

from .conftest import build_world, days
from .test_deploy_files import CODE_SERVICE, service_env
from .test_mlflow_server import STARTUP_TIMEOUT_S, _free_port
from .test_postgres import (  # noqa: F401
    PG_HOST,
    PG_PORT,
    PG_USER,
    _load_instance,
    pg_database,
    pg_env,
    production_config,
)

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
START = dt.date(2026, 4, 6)  # bike_rentals: 21-day training window, no label delay
DAYS = 28
LAKE_BUCKET, MLFLOW_BUCKET = "mlops-lake", "mlops-mlflow"
ACCESS_KEY = f"AKIAMLOPSTEST{uuid.uuid4().hex[:8].upper()}"  # dummy: moto accepts any key
SECRET_KEY = f"mlops-test-secret-{uuid.uuid4().hex}"


# ---- the S3 server ------------------------------------------------------------------------------
class MotoServer:
    def __init__(self, root: Path):
        self.root, self.port = root, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.root / "moto.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "moto.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        pytest.fail("moto server did not answer within 60 s")

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def storage_options(self) -> dict[str, str]:
        """The code location's options in deploy/docker-compose.yaml (commit protocol included),
        pointed at this server with this test's keys."""
        deployed = json.loads(service_env(CODE_SERVICE)["MLOPS_LAKE_STORAGE_OPTIONS"])
        assert deployed.get("aws_conditional_put") == "etag", deployed
        return {
            **deployed,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        client = server.client()
        for bucket in (LAKE_BUCKET, MLFLOW_BUCKET):
            client.create_bucket(Bucket=bucket)
        yield server
    finally:
        server.stop()


def test_the_s3_server_honours_conditional_writes(s3):
    from botocore.exceptions import ClientError

    client, key = s3.client(), f"probe/{uuid.uuid4().hex}"
    etag = client.put_object(Bucket=LAKE_BUCKET, Key=key, Body=b"1", IfNoneMatch="*")["ETag"]
    for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef"'}):
        with pytest.raises(ClientError) as refused:
            client.put_object(Bucket=LAKE_BUCKET, Key=key, Body=b"2", **condition)
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412, condition
    client.put_object(Bucket=LAKE_BUCKET, Key=key, Body=b"3", IfMatch=etag)
    assert client.get_object(Bucket=LAKE_BUCKET, Key=key)["Body"].read() == b"3"


def _lake(s3, prefix: str) -> DeltaLake:
    return DeltaLake(
        root=f"s3://{LAKE_BUCKET}/{prefix}", storage_options_json=json.dumps(s3.storage_options())
    )


def _rows(ds: str, n: int, writer: str, round_: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ds": [ds] * n,
            "id": [f"{ds}-{i}" for i in range(n)],
            "writer": [writer] * n,
            "round": [round_] * n,
        }
    )


def test_a_stale_writer_never_overwrites_a_newer_commit_on_s3(s3):
    """The conditional put itself: two handles on version 0; the one that commits second gets
    version 2.
    """
    from deltalake import DeltaTable, write_deltalake

    lake = _lake(s3, f"stale-{uuid.uuid4().hex[:8]}")
    lake.write_partitions("t", _rows("2026-01-01", 2, "init", 0), ["2026-01-01"])
    stale = DeltaTable(lake.uri("t"), storage_options=lake.storage_options)
    lake.append(
        "t", _rows("2026-01-02", 3, "fresh", 1)
    )  # version 1, behind the stale handle's back
    write_deltalake(stale, _rows("2026-01-03", 4, "stale", 1).to_arrow(), mode="append")
    assert lake.version("t") == 2
    assert lake.partition_counts("t") == {"2026-01-01": 2, "2026-01-02": 3, "2026-01-03": 4}


WRITER = r"""
import json, os, sys, time
from pathlib import Path
import polars as pl
from mlops_assets.data.lake import DeltaLake

barrier, parties, name = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
own, shared, rounds = sys.argv[4], sys.argv[5], int(sys.argv[6])
lake = DeltaLake(root=os.environ["LAKE_ROOT"], storage_options_json=os.environ["LAKE_OPTIONS"])

def rows(ds, n, r):
    ids = [f"{ds}-{i}" for i in range(n)]
    return pl.DataFrame({"ds": [ds] * n, "id": ids, "writer": [name] * n, "round": [r] * n})

lake.version("t")  # warm up (imports, credentials, the object-store client) before the barrier
(barrier / f"{name}.ready").touch()
deadline = time.monotonic() + 60
while len(list(barrier.glob("*.ready"))) < parties:
    assert time.monotonic() < deadline, "barrier: the other writer never became ready"
    time.sleep(0.01)
versions = []
for r in range(rounds):
    for ds, n, kind in ((own, 5 + r, "own"), (shared, 3, "shared")):
        run_id = f"{name}:{kind}:{r}"
        versions.append(lake.write_partitions("t", rows(ds, n, r), [ds], run_id=run_id))
print(json.dumps(versions), flush=True)
# deltalake 1.6.6 may abort at interpreter exit after S3 I/O ("terminate called without an
# active exception")
os._exit(0)
"""


def test_two_writer_processes_on_one_s3_table_lose_nothing(s3, tmp_path):
    """Both start together after a barrier; whether their commits interleave is up to the scheduler,
    so the race itself is shown deterministically by the stale-writer test above."""
    lake, rounds = _lake(s3, f"concurrent-{uuid.uuid4().hex[:8]}"), 4
    shared = "2026-01-01"
    lake.write_partitions("t", _rows(shared, 1, "init", -1), [shared], run_id="init")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {
        **os.environ,
        "LAKE_ROOT": lake.root,
        "LAKE_OPTIONS": lake.storage_options_json,
        "PYTHONWARNINGS": "ignore",
    }
    writers = {"a": "2026-02-01", "b": "2026-02-02"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", WRITER, str(barrier), "2", name, own, shared, str(rounds)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, own in writers.items()
    }
    versions = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"writer {name} exited {proc.returncode}:\n{err[-3000:]}"
        versions[name] = json.loads(out.strip().splitlines()[-1])

    # every commit of both writers landed, each at its own version: 1 + 2 writers x 2 commits x
    # rounds
    written = sorted(v for vs in versions.values() for v in vs)
    assert written == list(range(1, 1 + 2 * 2 * rounds)) and lake.version("t") == 2 * 2 * rounds
    by_version = {h["version"]: h.get("dagster_run_id") for h in lake.history("t")}
    for (
        name,
        vs,
    ) in versions.items():  # each write reported the version it wrote, not a later writer's
        assert all(by_version[v].startswith(f"{name}:") for v in vs), (name, vs, by_version)
    commits = {h.get("dagster_run_id") for h in lake.history("t")}
    assert {
        f"{n}:{kind}:{r}" for n in writers for kind in ("own", "shared") for r in range(rounds)
    } <= commits
    # different partitions: each writer's last round; the same partition: exactly one writer's last
    # round, unmixed
    for name, own in writers.items():
        mine = lake.read("t", [own])
        assert (
            mine.height == 5 + rounds - 1
            and set(mine["writer"]) == {name}
            and set(mine["round"]) == {rounds - 1}
        )
    last = lake.read("t", [shared])
    assert (
        last.height == 3 and last["writer"].n_unique() == 1 and set(last["round"]) == {rounds - 1}
    )
    assert last["id"].n_unique() == 3  # replaced, never appended twice
    assert lake.history("t", 1)[0]["dagster_run_id"] == f"{last['writer'][0]}:shared:{rounds - 1}"


# ---- the lifecycle ------------------------------------------------------------------------------
class MlflowOnS3:
    """``mlflow server``: backend store on PostgreSQL, artifacts proxied to S3 (moto)."""

    def __init__(self, root: Path, backend_uri: str, s3: MotoServer):
        self.root, self.backend_uri, self.s3 = root, backend_uri, s3
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_", "AWS_"))
        }
        env.update(
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            MLFLOW_S3_ENDPOINT_URL=self.s3.url,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
        )
        self.starts += 1
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
            self.backend_uri,
            "--artifacts-destination",
            f"s3://{MLFLOW_BUCKET}/artifacts",
        ]
        with (self.root / f"server-{self.starts}.log").open("wb") as log:
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
            log = self.root / f"server-{self.starts}.log"
            assert self.proc.poll() is None, (
                f"mlflow server exited {self.proc.returncode}:\n{log.read_text()[-4000:]}"
            )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        pytest.fail(f"mlflow server not healthy after {STARTUP_TIMEOUT_S}s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, TypeError, AttributeError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers left behind


@pytest.fixture
def mlflow_db():
    import psycopg2

    name = f"mlops_mlflow_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _failure_texts(instance, run_id: str) -> list[str]:
    from dagster import DagsterEventType

    """Each STEP_FAILURE / RUN_FAILURE: its message and its error with the whole cause chain."""
    out = []
    for entry in instance.all_logs(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    ):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        error = getattr(data, "error", None)
        out.append((entry.message or "") + ("\n" + error.to_string() if error is not None else ""))
    return out


@pytest.mark.slow
@pytest.mark.postgres
def test_lifecycle_on_postgres_s3_and_an_mlflow_server_that_dies_once(
    home,
    monkeypatch,
    s3,
    pg_env,  # noqa: F811 (the fixture imported from test_postgres)
    mlflow_db,
    tmp_path,
    capsys,
    record_property,
):
    from dagster import AssetKey, DagsterRunStatus
    from mlflow import MlflowClient

    from mlops_assets.core.platform import Platform
    from mlops_assets.core.vocabulary import SCORES, Action, Alias
    from mlops_assets.operations.cli import main

    server = MlflowOnS3(tmp_path, mlflow_db, s3)
    server.start()  # boots while the data is simulated and ingested
    try:
        lake_root, options = (
            f"s3://{LAKE_BUCKET}/lifecycle-{uuid.uuid4().hex[:8]}",
            s3.storage_options(),
        )
        monkeypatch.setenv("MLOPS_SPEC", str(BIKE_SPEC))
        monkeypatch.setenv("MLOPS_LAKE_URI", lake_root)
        monkeypatch.setenv("MLOPS_LAKE_STORAGE_OPTIONS", json.dumps(options))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        for var in (
            "MLFLOW_REGISTRY_URI",
            "MLOPS_MLFLOW_ARTIFACT_ROOT",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ):
            monkeypatch.delenv(
                var, raising=False
            )  # the code location never holds the artifact store's keys
        dagster_home = home / "dagster"
        (dagster_home / "dagster.yaml").write_text(
            yaml.safe_dump(production_config(), sort_keys=False)
        )

        platform = Platform.from_env()
        keys = days(START, DAYS)
        cutoff = keys[-1]
        secrets = [SECRET_KEY, ACCESS_KEY, *secret_values(options)]

        with _load_instance(dagster_home) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            world = build_world(
                platform,
                instance,
                start=START,
                n_days=DAYS,
                seed=5,
                simulator=simulate_regression,
                labels=None,
            )
            defs, lake = world.defs, world.lake
            assert (
                lake.root == lake_root
                and lake.partition_counts("features")
                and lake.uri("features").startswith("s3://")
            )
            server.wait_healthy()
            training = world.step("training", world.train(cutoff))
            client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
            name = platform.spec.model.registered_name
            assert client.get_registered_model(name).aliases == {Alias.CHAMPION: "1"}
            stored = [
                o["Key"]
                for o in s3.client().list_objects_v2(Bucket=MLFLOW_BUCKET).get("Contents", [])
            ]
            assert any(k.endswith("model.skops") for k in stored), (
                stored
            )  # the artifacts went to S3

            scoring = defs.resolve_job_def("scoring")
            before, during = keys[-2], keys[-1]
            served = scoring.execute_in_process(
                instance=instance, partition_key=before, raise_on_error=False
            )
            assert served.success, _failure_texts(
                instance, served.run_id
            )  # the champion served once

            # ---- the MLflow server dies between training and scoring -----------------------------
            server.kill()
            started = time.monotonic()
            outage = scoring.execute_in_process(
                instance=instance, partition_key=during, raise_on_error=False
            )
            outage_s = time.monotonic() - started
            record_property("mlflow_outage_scoring_seconds", round(outage_s, 1))
            assert outage_s < 30, (
                f"scoring took {outage_s:.0f}s with MLflow down: neither served nor failed fast"
            )
            texts = _failure_texts(instance, outage.run_id)
            for text in (
                texts
            ):  # clear: says MLflow; clean: no credential of the lake or the artifact store
                assert "mlflow" in text.lower(), text[:1000]
                for secret in secrets:
                    assert secret not in text, (
                        f"a credential leaked into a failure message: {text[:300]}"
                    )
            scored = [
                e
                for e in outage.all_events
                if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key == AssetKey(SCORES)
            ]
            if scored:  # the local model cache served the champion while MLflow was down
                rows = lake.read(SCORES, [during])
                assert rows.height > 0 and set(rows["model_version"].to_list()) == {1}
            else:
                assert not outage.success and texts, "scoring neither served nor failed"

            # ---- restarted, the lifecycle completes
            # --------------------------------------------------
            server.start()
            server.wait_healthy()
            again = scoring.execute_in_process(
                instance=instance, partition_key=during, raise_on_error=False
            )
            assert again.success, _failure_texts(instance, again.run_id)
            rows = lake.read(SCORES, [before, during])
            assert rows.height == lake.read("features", [before, during]).height > 0
            assert set(rows["model_version"].to_list()) == {1} and set(rows["alias"].to_list()) == {
                Alias.CHAMPION
            }
            assert client.get_registered_model(name).aliases == {Alias.CHAMPION: "1"}
            audit = lake.read("audit")
            moves = audit.filter(pl.col("alias") == Alias.CHAMPION)
            assert (
                moves.height == 1
                and moves["action"][0] in Action.PROMOTIONS
                and moves["to_version"][0] == 1
            )
            runs = {r.run_id: r.status for r in instance.get_runs()}
            assert {runs[r.run_id] for r in (training, served, again)} == {DagsterRunStatus.SUCCESS}
            assert DagsterRunStatus.STARTED not in runs.values()

        # the operator's view, through the CLI, on the same PostgreSQL instance / S3 lake / server
        capsys.readouterr()
        assert main(["status", "--json"]) == 0
        out = capsys.readouterr().out
        status = json.loads(out)
        assert status["champion"]["version"] == 1 and status["runs"]["stuck"] == []
        assert status["tables"]["scores"]["uri"].startswith(f"{lake_root}/")
        assert not any(secret in out for secret in secrets)
    finally:
        server.kill()
