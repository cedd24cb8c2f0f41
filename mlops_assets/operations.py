"""Driving the real Dagster instance from the CLI, the demo and tests.

`tick` evaluates a sensor against the instance and launches what it requests the way
the daemon would (a run_key launches at most once per sensor), executing the runs in
process so the demo needs no daemon. Production uses dagster-daemon instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, RunsFilter, build_sensor_context

from mlops_assets.defs.build import build_definitions
from mlops_assets.platform import Platform
from mlops_assets.vocabulary import RunTag

DAGSTER_YAML = """# Embedded default instance: SQLite storage under this folder.
# Run monitoring (the daemon, i.e. `dagster dev` / `dagster-daemon run`): a run stuck STARTING fails
# after start_timeout_seconds, a run stuck CANCELING is marked canceled after cancel_timeout_seconds.
# A run whose worker process dies is marked failed by the code server that launched it (the default
# run launcher has no worker health check); runs executed in process have neither, and
# `mlops-assets status` reports them as stuck (instance_queries.stuck_reason).
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
telemetry:
  enabled: false
"""

PREVIOUS_DAGSTER_YAMLS = ("""# Embedded default instance: SQLite storage under this folder.
telemetry:
  enabled: false
""",)
"""Embedded defaults written by earlier versions: replaced by ``DAGSTER_YAML`` (an edited file is kept)."""


def ensure_dagster_home(platform: Platform) -> Path:
    home = platform.home.dagster
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    cfg = home / "dagster.yaml"
    if not cfg.exists() or cfg.read_text() in PREVIOUS_DAGSTER_YAMLS:
        cfg.write_text(DAGSTER_YAML)
    return home


def open_platform(platform: Platform | None = None):
    """(platform, instance, defs) for the environment's $MLOPS_HOME and $MLOPS_SPEC."""
    platform = platform or Platform.from_env()
    ensure_dagster_home(platform)
    return platform, DagsterInstance.get(), build_definitions(platform)


@dataclass
class Launched:
    run_id: str
    partition_key: str | None
    success: bool
    tags: dict
    result: object


def launched_before(instance: DagsterInstance, sensor_name: str, run_key: str) -> bool:
    runs = instance.get_runs(RunsFilter(tags={RunTag.SENSOR_NAME: sensor_name, RunTag.RUN_KEY: run_key}), limit=1)
    return bool(runs)


QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Run config that keeps Dagster's console logger quiet (events still go to the instance)."""


def tick(instance: DagsterInstance, defs, sensor_name: str, cursor: str | None, *, quiet: bool = False):
    """Evaluate one sensor tick; launch its new run requests in process. Returns (launched, cursor, skip)."""
    sensor = defs.resolve_sensor_def(sensor_name)
    ctx = build_sensor_context(instance=instance, cursor=cursor, definitions=defs, sensor_name=sensor_name,
                               resources=defs.resources)
    data = sensor.evaluate_tick(ctx)
    launched = []
    for rr in data.run_requests or []:
        if rr.run_key and launched_before(instance, sensor_name, rr.run_key):
            continue
        job = defs.resolve_job_def(rr.job_name or sensor.job_name)
        tags = {**rr.tags, RunTag.SENSOR_NAME: sensor_name}
        if rr.run_key:
            tags[RunTag.RUN_KEY] = rr.run_key
        result = job.execute_in_process(
            instance=instance,
            partition_key=rr.partition_key,
            tags=tags,
            asset_selection=rr.asset_selection,
            raise_on_error=False,
            run_config=QUIET if quiet else None,
        )
        launched.append(Launched(result.run_id, rr.partition_key, result.success, tags, result))
    skip = data.skip_message
    return launched, data.cursor if data.cursor is not None else cursor, skip
