"""Dead runs are seen: a run whose worker is killed (``kill -9``) mid-run.

Two real ways a run dies, each with a real slow job in a real process:

* **executed in process** (the demo, the CLI's commands, ``execute_in_process``): no daemon
  watches it, so Dagster keeps it STARTED forever. ``mlops-assets status`` must list it as
  stuck (its worker's pid, recorded in the RUN_START event, is gone) and the scorecard must
  count it — the success rate is not 1.0 while a run died;
* **launched by a real ``dagster-daemon``** on the embedded instance that
  ``operations.ensure_dagster_home`` writes (run monitoring enabled): the code server that
  launched the run marks it FAILURE within seconds, and the scorecard counts the failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from mlops_assets.control.instance_queries import (
    STUCK_AFTER,
    run_progress,
    stuck_reason,
    worker_alive,
)
from mlops_assets.operations.cli import main
from mlops_assets.operations.runs import DAGSTER_YAML, ensure_dagster_home
from mlops_assets.operations.scorecard import pipeline_measures
from mlops_assets.operations.scorecard_sources import finished_runs, stuck_runs

ROOT = Path(__file__).resolve().parents[1]

SLOW_JOB = """
import os, time
from pathlib import Path
from dagster import Definitions, asset, define_asset_job

@asset
def slow(context):
    context.log.info("slow asset started")
    Path(os.environ["SLOW_MARKER"]).write_text(str(os.getpid()))  # the test kills us now
    time.sleep(600)

@asset
def quick():
    return 1

defs = Definitions(assets=[slow, quick], jobs=[define_asset_job("slow_job", [slow]),
                                               define_asset_job("quick_job", [quick])])
"""

EXECUTE = """
import runpy, sys
from dagster import DagsterInstance
defs = runpy.run_path(sys.argv[1])["defs"]
with DagsterInstance.get() as instance:  # $DAGSTER_HOME/dagster.yaml
    defs.resolve_job_def("slow_job").execute_in_process(instance=instance)
"""


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"process exited early ({proc.returncode}) while waiting for {what}"
            )
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _env(dagster_home: Path, marker: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    return {
        **env,
        "DAGSTER_HOME": str(dagster_home),
        "SLOW_MARKER": str(marker),
        "PYTHONWARNINGS": "ignore",
    }


def _run_start_pid(instance: DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1
    ).records
    return records[0].event_log_entry.dagster_event.pid if records else None


@pytest.fixture
def slow_job(tmp_path) -> Path:
    path = tmp_path / "slow_job.py"
    path.write_text(SLOW_JOB)
    return path


def test_embedded_instance_has_run_monitoring(platform):
    home = ensure_dagster_home(platform)
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == yaml.safe_load(DAGSTER_YAML)
    with DagsterInstance.get() as instance:
        assert (
            instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
        )
        assert 0 < instance.run_monitoring_start_timeout_seconds <= 300
    # the default an earlier version wrote is upgraded; an operator's own file is kept
    (home / "dagster.yaml").write_text(
        "# Embedded default instance: SQLite storage under this folder.\n"
        "telemetry:\n  enabled: false\n"
    )
    ensure_dagster_home(platform)
    assert "run_monitoring" in (home / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    ensure_dagster_home(platform)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_a_killed_in_process_run_is_stuck_in_status_and_counted_by_the_scorecard(
    platform, slow_job, tmp_path, capsys
):
    dagster_home = ensure_dagster_home(platform)  # the embedded instance the CLI opens
    marker = tmp_path / "slow.started"
    with DagsterInstance.get() as instance:
        quick = runpy.run_path(str(slow_job))["defs"].resolve_job_def("quick_job")
        assert quick.execute_in_process(
            instance=instance
        ).success  # one good run: the rate is not vacuous
        proc = subprocess.Popen(
            [sys.executable, "-c", EXECUTE, str(slow_job)],
            cwd=tmp_path,
            env=_env(dagster_home, marker),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait(marker.exists, 90, "the slow asset to start", proc)
            [run] = instance.get_runs(RunsFilter(job_name="slow_job"))
            assert (
                run.status == DagsterRunStatus.STARTED
                and _run_start_pid(instance, run.run_id) == proc.pid
            )
            alive = {p.run_id: p for p in run_progress(instance)}
            assert alive[run.run_id].stuck is None  # a live worker is in progress, not stuck
        finally:
            proc.kill()  # kill -9, mid-run
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        # Dagster itself still believes the run is going
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED

        # on a shared instance (no pid check) the same run is stuck once it has been silent long
        # enough
        later = dt.datetime.now(dt.UTC) + STUCK_AFTER + dt.timedelta(minutes=1)
        assert {p.run_id: p.stuck for p in run_progress(instance, same_host=False)}[
            run.run_id
        ] is None
        silent = {p.run_id: p.stuck for p in run_progress(instance, same_host=False, now=later)}[
            run.run_id
        ]
        assert silent.startswith("STARTED but silent: no event for")

    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in status["runs"]["stuck"]] == [run.run_id]
    stuck = status["runs"]["stuck"][0]
    assert (
        stuck["job"] == "slow_job"
        and stuck["worker_pid"] == proc.pid
        and "process is gone" in stuck["stuck"]
    )
    assert status["runs"]["in_progress"] == [] and status["runs"]["queued"] == []
    measures = status["scorecard"]["measures"]
    assert measures["pipeline_runs_stuck"] == 1 and measures["pipeline_runs_succeeded"] == 1
    assert measures["pipeline_runs"] == 2 and measures["pipeline_success_rate"] == 0.5
    assert {(f["run_id"], f["class"]) for f in status["scorecard"]["pipeline"]["failures"]} == {
        (run.run_id, "stuck")
    }

    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "runs: 0 queued, 0 in progress, 1 stuck" in text
    assert f"STUCK: slow_job {run.run_id} STARTED" in text and "process is gone" in text


def test_a_killed_daemon_launched_run_is_marked_failed(tmp_path, slow_job):
    dagster_home = tmp_path / "daemon_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)  # what ensure_dagster_home writes
    marker = tmp_path / "daemon_slow.started"
    env = _env(dagster_home, marker)
    bin_dir = Path(sys.executable).parent
    log, step = open(tmp_path / "daemon.log", "w"), None  # noqa: SIM115 (closed with the daemon)
    daemon = subprocess.Popen(
        [str(bin_dir / "dagster-daemon"), "run", "-f", str(slow_job)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            assert instance.run_monitoring_enabled
            launch = subprocess.run(
                [str(bin_dir / "dagster"), "job", "launch", "-f", str(slow_job), "-j", "slow_job"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert launch.returncode == 0, launch.stdout + launch.stderr
            step = int(
                _wait(
                    lambda: marker.exists() and marker.read_text(),
                    120,
                    "the daemon to launch the run",
                    daemon,
                )
            )
            [run] = instance.get_runs(RunsFilter(job_name="slow_job"))
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
            # the run worker (multiprocess executor) logged RUN_START; the step runs in its child
            worker = _run_start_pid(instance, run.run_id)
            assert worker is not None and worker != step
            killed_at = time.monotonic()
            os.kill(worker, signal.SIGKILL)

            _wait(
                lambda: instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE,
                30,
                "the killed run to be marked FAILURE",
                daemon,
            )
            assert time.monotonic() - killed_at < 30
            messages = [
                e.message
                for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
            ]
            crash = f"Run execution process for {run.run_id} was terminated by signal 9 (SIGKILL)"
            assert any(crash in (m or "") for m in messages), (
                messages
            )  # by the code server, not by a timeout
            assert [
                p.run_id for p in run_progress(instance)
            ] == []  # finished: neither in progress nor stuck

            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            since = now - dt.timedelta(days=1)
            pipeline = pipeline_measures(
                finished_runs(instance, since, now) + stuck_runs(instance, since, now)
            )
            assert (pipeline["failed"], pipeline["stuck"], pipeline["success_rate"]) == (1, 0, 0.0)
    finally:
        for pid in (step,) if step else ():  # the orphaned step process of the killed worker
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
        log.close()


def test_stuck_rule_on_plain_values():
    now, created = dt.datetime(2026, 3, 2, 12), dt.datetime(2026, 3, 2, 11)
    quiet, recent = now - STUCK_AFTER - dt.timedelta(seconds=1), now - dt.timedelta(minutes=1)
    assert (
        stuck_reason(
            "QUEUED",
            last_event_at=None,
            created_at=dt.datetime(2020, 1, 1),
            worker_alive=None,
            now=now,
        )
        is None
    )  # waits for the daemon, however long
    assert (
        stuck_reason(
            "STARTED", last_event_at=recent, created_at=created, worker_alive=True, now=now
        )
        is None
    )
    assert (
        stuck_reason(
            "STARTED", last_event_at=recent, created_at=created, worker_alive=None, now=now
        )
        is None
    )
    assert "process is gone" in stuck_reason(
        "STARTED", last_event_at=recent, created_at=created, worker_alive=False, now=now
    )
    assert "process is gone" in stuck_reason(
        "CANCELING", last_event_at=recent, created_at=created, worker_alive=False, now=now
    )
    assert stuck_reason(
        "STARTING", last_event_at=quiet, created_at=created, worker_alive=None, now=now
    ).startswith("STARTING but silent: no event for 30 min")
    assert stuck_reason(
        "NOT_STARTED", last_event_at=None, created_at=quiet, worker_alive=None, now=now
    ).startswith("never started")


def test_worker_liveness_checks_the_pid_and_its_start_time():
    me, now = os.getpid(), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert worker_alive(None, now) is None
    assert worker_alive(me, now) is True  # this process started before "now"
    assert worker_alive(me, None) is True
    assert (
        worker_alive(me, now - dt.timedelta(days=365 * 30)) is False
    )  # started after the run began: pid reused
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert worker_alive(dead.pid, now) is False
