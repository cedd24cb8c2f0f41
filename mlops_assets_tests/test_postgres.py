"""The production instance (deploy/dagster.yaml) against a real PostgreSQL server.

One fresh database per test session (``mlops_assets_test_<random>``, dropped at the end);
every test gets its own $MLOPS_HOME whose $DAGSTER_HOME holds the production dagster.yaml.
Runs are real: in process, and several ``python -c`` workers at once sharing the instance
and the Delta lake.

SQLAlchemy 2.1 (requirements.lock) maps a plain ``postgresql://`` URL to the psycopg 3 driver,
which is not installed, so deploy/dagster.yaml sets ``scheme: postgresql+psycopg2``; the first
test loads the file unchanged to keep it that way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    build_schedule_context,
)

from mlops_assets.control.instance_queries import STUCK_AFTER, run_progress, workers_on_this_host
from mlops_assets.data.contract_checks import BLOCKING_CHECKS
from mlops_assets.data.simulator import simulate

from .conftest import DAY0, check_evaluations, days, run_ingest, table

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", "5432", "postgres"
DRIVER_SCHEME = "postgresql+psycopg2"  # the driver requirements.lock installs (psycopg2-binary)
BATCH_TAG = "mlops_test/batch"
DATA_TABLES = ("raw_events", "features")


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_database():
    """A fresh, empty database on the local server for this session; dropped afterwards."""
    exe = shutil.which("pg_isready")
    if exe is None:
        _unavailable(
            "PostgreSQL tests need pg_isready on PATH (PostgreSQL client tools not installed)"
        )
    probe = subprocess.run(
        [exe, "-h", PG_HOST, "-p", PG_PORT], capture_output=True, text=True, timeout=20
    )
    if probe.returncode != 0:
        _unavailable(
            f"no PostgreSQL server on {PG_HOST}:{PG_PORT}: pg_isready exited {probe.returncode} "
            f"({(probe.stdout + probe.stderr).strip()})"
        )
    import psycopg2

    name = f"mlops_assets_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _unavailable(reason: str):
    """Skip locally; fail under CI, whose workflow starts PostgreSQL (a silent skip would hide
    it)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@pytest.fixture
def pg_env(pg_database, monkeypatch):
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads (trust auth: an empty password)."""
    env = {
        "DAGSTER_PG_HOST": PG_HOST,
        "DAGSTER_PG_PORT": PG_PORT,
        "DAGSTER_PG_DB": pg_database,
        "DAGSTER_PG_USER": PG_USER,
        "DAGSTER_PG_PASSWORD": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def production_config() -> dict:
    """deploy/dagster.yaml with only the SQLAlchemy driver named (see the module docstring)."""
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    config["storage"]["postgres"]["postgres_db"].setdefault("scheme", DRIVER_SCHEME)
    return config


@pytest.fixture
def pg_instance(home, pg_env):
    """The production instance in $DAGSTER_HOME (= $MLOPS_HOME/dagster, set by `home`)."""
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    assert dagster_home == home / "dagster"
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(production_config(), sort_keys=False))
    with _load_instance(dagster_home) as instance:
        yield instance


def _load_instance(dagster_home: Path) -> DagsterInstance:
    from dagster._core.instance import InstanceRef

    return DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))


def _pg_query(dbname: str, sql: str, params=()) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


# ---- 0. the deployed file, unchanged ------------------------------------------------------------
def test_deploy_yaml_unchanged_opens_postgres_storage(tmp_path, pg_env):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    shutil.copy(DEPLOY_YAML, tmp_path / "dagster.yaml")
    with _load_instance(tmp_path) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert instance.get_runs(limit=1) is not None


# ---- 1. the production instance: configuration and one real run ---------------------------------
def test_production_instance_on_postgres_stores_a_real_run(
    platform, defs, lake, pg_database, pg_instance
):
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    from mlops_assets.control.instance_queries import failed_checks

    instance, deployed = pg_instance, yaml.safe_load(DEPLOY_YAML.read_text())
    # storage: all three on PostgreSQL, in this session's database, with an empty password accepted
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert (
        instance.run_storage.postgres_url
        == f"{DRIVER_SCHEME}://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}"
    )
    # run queue, monitoring, retries, retention as deployed
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    queue, coordinator = (
        instance.get_concurrency_config().run_queue_config,
        deployed["run_coordinator"]["config"],
    )
    assert queue.max_concurrent_runs == coordinator["max_concurrent_runs"] >= 4
    assert queue.tag_concurrency_limits == coordinator["tag_concurrency_limits"] != []
    monitoring, retries = deployed["run_monitoring"], deployed["run_retries"]
    assert instance.run_monitoring_enabled and monitoring["enabled"] is True
    assert instance.run_monitoring_start_timeout_seconds == monitoring["start_timeout_seconds"]
    assert (
        instance.run_monitoring_max_resume_run_attempts
        == monitoring["max_resume_run_attempts"]
        == 0
    )
    assert (
        instance.run_retries_enabled
        and instance.run_retries_max_retries == retries["max_retries"] >= 1
    )
    assert instance.get_settings("retention") == deployed["retention"]
    assert not instance.telemetry_enabled

    # a real run: two simulated days, ingest one partition in process on this instance
    simulate(platform.landing.parent, DAY0, 2, seed=11)
    day = days(DAY0, 2)[1]
    result = run_ingest(defs, instance, day)
    assert result.success
    evaluations = check_evaluations(result)
    partitioned = (*BLOCKING_CHECKS, "volume_anomaly")
    assert set(evaluations) == {*partitioned, "freshness"}
    assert all(
        evaluations[name].passed and evaluations[name].partition == day for name in partitioned
    )
    rows = lake.read("raw_events", [day]).height
    assert rows > 1000 and lake.read("features", [day]).height == rows

    # read back through a second, independent instance: everything came from PostgreSQL
    with _load_instance(Path(os.environ["DAGSTER_HOME"])) as fresh:
        record = fresh.get_run_record_by_id(result.run_id)
        assert record.dagster_run.status == DagsterRunStatus.SUCCESS
        assert record.dagster_run.tags["dagster/partition"] == day
        for name in DATA_TABLES:
            assert fresh.get_materialized_partitions(AssetKey(name)) == {day}
            mat = fresh.get_latest_materialization_event(AssetKey(name))
            assert mat.run_id == result.run_id and mat.asset_materialization.partition == day
        assert (
            fresh.get_latest_materialization_event(AssetKey("raw_events"))
            .asset_materialization.metadata["rows"]
            .value
            == rows
        )
        for name in partitioned:
            history = fresh.event_log_storage.get_asset_check_execution_history(
                AssetCheckKey(AssetKey("raw_events"), name),
                limit=5,
                partition_filter=PartitionKeyFilter(key=day),
            )
            assert [(h.run_id, h.partition, h.status) for h in history] == [
                (result.run_id, day, AssetCheckExecutionRecordStatus.SUCCEEDED)
            ], name
            assert history[0].event.dagster_event.event_specific_data.passed
        assert failed_checks(fresh, "raw_events", BLOCKING_CHECKS, day) == []

    # … and straight from the tables, bypassing Dagster
    events = dict(
        _pg_query(
            pg_database,
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s "
            "GROUP BY dagster_event_type",
            (result.run_id,),
        )
    )
    assert events[DagsterEventType.ASSET_MATERIALIZATION.value] == 2
    assert events[DagsterEventType.ASSET_CHECK_EVALUATION.value] == len(evaluations)
    assert (
        events[DagsterEventType.RUN_SUCCESS.value] == 1
    )  # stored under its legacy name, PIPELINE_SUCCESS
    assert sorted(
        _pg_query(
            pg_database,
            "SELECT asset_key, partition FROM event_logs WHERE run_id = %s AND "
            "dagster_event_type = 'ASSET_MATERIALIZATION'",
            (result.run_id,),
        )
    ) == [('["features"]', day), ('["raw_events"]', day)]
    checks = _pg_query(
        pg_database,
        "SELECT check_name, partition, execution_status FROM asset_check_executions "
        "WHERE run_id = %s",
        (result.run_id,),
    )
    evaluated = {
        (e.check_name, e.partition, "SUCCEEDED" if e.passed else "FAILED")
        for e in evaluations.values()
    }
    assert evaluated <= set(checks)
    # Dagster also plans the unpartitioned freshness check under the run's partition and evaluates
    # it
    # without one (same on SQLite): that extra row stays PLANNED. Anything else would be a lost
    # result.
    assert {status for row in set(checks) - evaluated for status in row[2:]} <= {"PLANNED"}
    assert _pg_query(
        pg_database, "SELECT status FROM runs WHERE run_id = %s", (result.run_id,)
    ) == [("SUCCESS",)]


# ---- 2. several runs at once --------------------------------------------------------------------
WORKER = r"""
import json, os, sys, time
from pathlib import Path
from dagster import DagsterInstance
from mlops_assets.location.build import build_definitions

barrier, parties, partition = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
batch, batch_tag = sys.argv[4], sys.argv[5]
job = build_definitions().resolve_job_def("ingest")
with DagsterInstance.get() as instance:  # $DAGSTER_HOME/dagster.yaml
    (barrier / f"{os.getpid()}.ready").touch()  # start executing together, after the slow imports
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("*.ready"))) < parties:
        if time.monotonic() > deadline:
            sys.exit("barrier: the other workers never became ready")
        time.sleep(0.01)
    result = job.execute_in_process(
        instance=instance, partition_key=partition, tags={batch_tag: batch}, raise_on_error=False
    )
    print(json.dumps({"run_id": result.run_id, "success": result.success,
                      "run_storage": type(instance.run_storage).__name__}))
sys.exit(0 if result.success else 1)
"""


def run_workers(partitions: list[str], workdir: Path, timeout: float = 150) -> list[dict]:
    """One `python -c` process per partition (duplicates allowed), all executing at once."""
    batch = uuid.uuid4().hex
    barrier = workdir / f"barrier-{batch}"
    barrier.mkdir(parents=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # MLOPS_HOME, DAGSTER_HOME, DAGSTER_PG_*
    procs = []
    for i, key in enumerate(partitions):
        out, err = (open(workdir / f"worker-{batch}-{i}.{s}", "w+") for s in ("out", "err"))  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(barrier),
                str(len(partitions)),
                key,
                batch,
                BATCH_TAG,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
        procs.append((key, proc, out, err))
    deadline, reports = time.monotonic() + timeout, []
    try:
        for key, proc, out, err in procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker for {key} still running after {timeout:.0f}s")
            out.seek(0), err.seek(0)
            stdout, stderr = out.read(), err.read()
            assert proc.returncode == 0, (
                f"worker for {key} exited {proc.returncode}:\n{stdout}\n{stderr[-4000:]}"
            )
            report = json.loads(stdout.strip().splitlines()[-1])
            assert report["success"] and report["run_storage"] == "PostgresRunStorage", report
            reports.append({**report, "partition": key, "batch": batch})
    finally:
        for _, proc, out, err in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close(), err.close()
    return reports


def _expected_rows(manifest) -> dict[str, int]:
    rows = Counter()
    for f in manifest.files:
        if f.kind == "events":
            rows[f.date] += f.rows
    return dict(rows)


def test_four_partitions_ingested_at_once_on_postgres(tmp_path, platform, lake, pg_instance):
    keys = days(DAY0, 4)
    expected = _expected_rows(simulate(platform.landing.parent, DAY0, 4, seed=12))
    assert sorted(expected) == keys and min(expected.values()) > 1000

    reports = run_workers(
        keys, tmp_path / "workers"
    )  # the tables do not exist yet: first writes race too

    assert lake.partition_counts("raw_events") == expected
    assert lake.partition_counts("features") == expected
    raw = lake.read("raw_events")
    assert raw[platform.spec.id].n_unique() == raw.height  # no row written twice
    assert lake.read("quarantine", keys).is_empty()
    # one commit per run, each naming its run and partition: no write was lost or merged
    commits = {(h.get("partitions"), h.get("dagster_run_id")) for h in lake.history("raw_events")}
    assert {(r["partition"], r["run_id"]) for r in reports} <= commits

    runs = pg_instance.get_runs(RunsFilter(tags={BATCH_TAG: reports[0]["batch"]}))
    assert len(runs) == 4 and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
    assert sorted(r.tags["dagster/partition"] for r in runs) == keys
    assert {r.run_id for r in runs} == {r["run_id"] for r in reports}
    for name in DATA_TABLES:
        assert pg_instance.get_materialized_partitions(AssetKey(name)) == set(keys)


def test_two_writers_rematerialising_one_partition_equal_a_clean_run(
    tmp_path, platform, defs, lake, pg_instance
):
    d0, d1 = keys = days(DAY0, 2)
    expected = _expected_rows(simulate(platform.landing.parent, DAY0, 2, seed=13))
    for key in keys:  # the clean reference: one run per partition
        assert run_ingest(defs, pg_instance, key).success
    clean = {name: table(lake, name) for name in DATA_TABLES}
    versions = {name: lake.version(name) for name in DATA_TABLES}

    reports = run_workers([d0, d0], tmp_path / "workers")

    for name in DATA_TABLES:
        assert table(lake, name).equals(clean[name]), name  # d0 not doubled, d1 untouched
        assert lake.partition_counts(name) == expected
        # both writers committed (a lost commit race is retried, never swallowed): two new
        # replacements of d0
        new = [h for h in lake.history(name) if h["version"] > versions[name]]
        assert sorted(h.get("dagster_run_id") for h in new) == sorted(
            r["run_id"] for r in reports
        ), name
        assert {h.get("partitions") for h in new} == {d0}
    runs = pg_instance.get_runs(RunsFilter(tags={BATCH_TAG: reports[0]["batch"]}))
    assert len(runs) == 2 and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
    assert pg_instance.get_latest_materialization_event(AssetKey("features")).run_id in {
        r.run_id for r in runs
    }


# ---- the training limit in deploy/dagster.yaml --------------------------------------------------
def test_queue_admits_one_training_run_at_a_time(defs, pg_instance):
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    limits = pg_instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    job, schedule = defs.resolve_job_def("training"), defs.resolve_schedule_def("training_schedule")
    tick = dt.datetime.combine(DAY0 + dt.timedelta(days=28), dt.time(4), tzinfo=dt.UTC)
    request = schedule.evaluate_tick(
        build_schedule_context(
            scheduled_execution_time=tick, repository_def=defs.get_repository_def()
        )
    ).run_requests[0]

    def training_run(status=None):  # tagged as the scheduler tags the runs it submits
        return pg_instance.create_run_for_job(
            job_def=job, status=status, tags={**job.run_tags, **request.tags}
        )

    running, waiting = training_run(DagsterRunStatus.STARTED), training_run()
    assert running.job_name == waiting.job_name == "training"
    # the test the queued-run daemon applies to each queued run, given the runs in progress
    assert TagConcurrencyLimitsCounter(limits, [running]).is_blocked(waiting)


# ---- dead runs on the production instance -------------------------------------------------------
def test_a_silent_run_on_postgres_is_stuck_by_age_not_by_pid(defs, pg_instance):
    """PostgreSQL may serve many hosts, so a worker's pid means nothing here: only silence
    counts."""
    assert not workers_on_this_host(pg_instance)
    job = defs.resolve_job_def("ingest")
    run = pg_instance.create_run_for_job(
        job_def=job, status=DagsterRunStatus.STARTED, tags={BATCH_TAG: "silent"}
    )
    now = dt.datetime.now(dt.UTC)
    [fresh] = [p for p in run_progress(pg_instance, now=now) if p.run_id == run.run_id]
    assert fresh.status == "STARTED" and fresh.stuck is None and fresh.worker_pid is None
    [silent] = [
        p
        for p in run_progress(pg_instance, now=now + STUCK_AFTER + dt.timedelta(minutes=1))
        if p.run_id == run.run_id
    ]
    assert silent.stuck.startswith("STARTED but silent: no event for")
