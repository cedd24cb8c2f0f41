"""The sensors under a real `dagster-daemon`: landing files dropped on disk → the landing
sensor's tick → queued runs launched by the daemon → partitions materialised; a late
file → exactly that partition again; the same content twice → one run."""

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from mlops_assets.core.spec import BUNDLED_SPEC
from mlops_assets.data.simulator import Injection, simulate, write_late_files

ROOT = Path(__file__).resolve().parents[1]
DAY0 = dt.date(2026, 3, 2)


def _wait(predicate, timeout: float, what: str, proc):
    """Poll ``predicate`` every second until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, f"dagster-daemon exited early ({proc.returncode})"
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _finished_ticks(instance, sensor: str, after: float) -> list:
    """The daemon's evaluated ticks of ``sensor`` that started after ``after`` (epoch seconds)."""
    states = [
        s
        for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        if s.name == sensor
    ]
    return [
        tick
        for s in states
        for tick in instance.get_ticks(s.instigator_origin_id, s.selector_id, after=after)
        if tick.status != TickStatus.STARTED
    ]


@pytest.fixture
def daemon_home(tmp_path):
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "  config:\n    max_concurrent_runs: 2\n"
    )
    # the bundled spec, its landing sensor ticking every 5 s (30 s by default): the test waits on it
    spec = yaml.safe_load(BUNDLED_SPEC.read_text())
    spec["sensors"] = {"landing_interval_seconds": 5}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_"))}
    env.update(
        MLOPS_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        MLOPS_SPEC=str(tmp_path / "spec.yaml"),
        PYTHONWARNINGS="ignore",
    )
    return home, env


def test_landing_sensor_under_a_real_daemon(daemon_home):
    home, env = daemon_home
    landing = home / "landing"
    manifest = simulate(landing, DAY0, 2, seed=5, inject=[Injection("late_file", DAY0)])
    instance = DagsterInstance.from_ref(
        _ref(home / "dagster")
    )  # create the storage before the daemon does
    daemon_bin = Path(sys.executable).with_name("dagster-daemon")
    log = open(home / "daemon.log", "w")  # noqa: SIM115 (the daemon's whole life: closed below)
    proc = subprocess.Popen(
        [str(daemon_bin), "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def succeeded(n):
            runs = instance.get_runs(
                RunsFilter(job_name="daily", statuses=[DagsterRunStatus.SUCCESS])
            )
            return len(runs) >= n

        _wait(lambda: succeeded(2), 240, "two daily runs launched by the landing sensor", proc)
        days = sorted(instance.get_materialized_partitions(AssetKey("features")))
        assert days == [DAY0.isoformat(), (DAY0 + dt.timedelta(days=1)).isoformat()]
        runs = instance.get_runs(RunsFilter(job_name="daily"))
        assert all(r.tags.get("dagster/sensor_name") == "landing_sensor" for r in runs)

        write_late_files(manifest)
        _wait(lambda: succeeded(3), 180, "the late file's run", proc)
        late = instance.get_runs(RunsFilter(job_name="daily"), limit=1)[0]
        assert (
            late.tags["dagster/partition"] == DAY0.isoformat()
            and late.tags["mlops/reason"] == "late_file"
        )

        # the same content again: the daemon's next ticks launch nothing new
        f = next(p for p in (landing / "events" / DAY0.isoformat()).iterdir() if "late" in p.name)
        data = f.read_bytes()
        f.unlink()
        f.write_bytes(data)
        rewritten = time.time()
        ticks = _wait(
            lambda: _finished_ticks(instance, "landing_sensor", after=rewritten),
            120,
            "a landing_sensor tick started after the rewrite",
            proc,
        )
        assert {t.status for t in ticks} == {TickStatus.SKIPPED}, ticks
        assert len(instance.get_runs(RunsFilter(job_name="daily"))) == 3
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        if proc.returncode not in (0, -signal.SIGTERM, None):
            shutil.copy(home / "daemon.log", home / "daemon-failed.log")


def _ref(path: Path):
    from dagster._core.instance import InstanceRef

    return InstanceRef.from_dir(str(path))
