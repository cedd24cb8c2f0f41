"""Driving the real Dagster instance from the CLI, the demo and tests.

`tick` evaluates a sensor against the instance and launches what it requests the way
the daemon would (a run_key launches at most once per sensor), executing the runs in
process so the demo needs no daemon. Production uses dagster-daemon instead.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterInstance, PartitionKeyRange, RunsFilter, build_sensor_context

from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import (
    CANDIDATE_MODEL,
    CHAMPION,
    EVALUATION_REPORT,
    Action,
    Meta,
    RunTag,
    run_partitions,
)
from mlops_assets.location.build import build_definitions

DAGSTER_YAML = (  # the text is compared with what a home holds: keep it byte for byte
    "# Embedded default instance: SQLite storage under this folder.\n"
    "# Run monitoring (the daemon, i.e. `dagster dev` / `dagster-daemon run`): a run stuck"
    " STARTING fails\n"
    "# after start_timeout_seconds, a run stuck CANCELING is marked canceled after"
    " cancel_timeout_seconds.\n"
    "# A run whose worker process dies is marked failed by the code server that launched it"
    " (the default\n"
    "# run launcher has no worker health check); runs executed in process have neither, and\n"
    "# `mlops-assets status` reports them as stuck (instance_queries.stuck_reason).\n"
    """run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
telemetry:
  enabled: false
"""
)

PREVIOUS_DAGSTER_YAMLS = (
    """# Embedded default instance: SQLite storage under this folder.
telemetry:
  enabled: false
""",
)
"""Generated ``dagster.yaml`` contents that ``ensure_dagster_home`` replaces with ``DAGSTER_YAML``:
nobody edited them, so nothing is lost (a file with any other content is kept)."""


def ensure_dagster_home(platform: Platform) -> Path:
    """``platform.home.dagster`` (``$DAGSTER_HOME``, else ``$MLOPS_HOME/dagster``: the instance the
    daemon and ``make ui`` share), holding the embedded ``dagster.yaml`` unless one is there."""
    home = platform.home.dagster
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists() or cfg.read_text() in PREVIOUS_DAGSTER_YAMLS:
        cfg.write_text(DAGSTER_YAML)
    return home


def open_instance(platform: Platform) -> DagsterInstance:
    """The instance in ``ensure_dagster_home(platform)``, opened from that folder: the process
    environment stays as it was (``DagsterInstance.get()`` would need ``$DAGSTER_HOME`` set)."""
    return DagsterInstance.from_config(str(ensure_dagster_home(platform)))


def open_platform(platform: Platform | None = None):
    """(platform, instance, defs) for ``platform``, else the environment's $MLOPS_HOME and
    $MLOPS_SPEC."""
    platform = platform or Platform.from_env()
    return platform, open_instance(platform), build_definitions(platform)


@dataclass
class Launched:
    run_id: str
    partition_key: str | None  # a one-partition run's key; None for a single-run range
    success: bool
    tags: dict
    result: object
    partition_keys: list[str] = field(default_factory=list)  # every partition the run covered

    @property
    def partitions(self) -> str:
        """The run's partition, or its range as ``first..last``."""
        return self.partition_key or run_partitions(self.tags) or ""


def launched_before(instance: DagsterInstance, sensor_name: str, run_key: str) -> bool:
    runs = instance.get_runs(
        RunsFilter(tags={RunTag.SENSOR_NAME: sensor_name, RunTag.RUN_KEY: run_key}), limit=1
    )
    return bool(runs)


QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Run config that keeps Dagster's console logger quiet (events still go to the instance)."""


def tick(
    instance: DagsterInstance, defs, sensor_name: str, cursor: str | None, *, quiet: bool = False
):
    """Evaluate one sensor tick; launch its new run requests in process. Returns (launched,
    cursor, skip)."""
    sensor = defs.resolve_sensor_def(sensor_name)
    ctx = build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        sensor_name=sensor_name,
        resources=defs.resources,
    )
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
        launched.append(
            Launched(
                result.run_id,
                rr.partition_key,
                result.success,
                tags,
                result,
                _covered(job, rr.partition_key, tags),
            )
        )
    skip = data.skip_message
    return launched, data.cursor if data.cursor is not None else cursor, skip


def _covered(job, partition_key: str | None, tags: dict) -> list[str]:
    if partition_key is not None:
        return [partition_key]
    if RunTag.RANGE_START not in tags or job.partitions_def is None:
        return []
    return job.partitions_def.get_partition_keys_in_range(
        PartitionKeyRange(tags[RunTag.RANGE_START], tags[RunTag.RANGE_END])
    )


# ---- operator runs: one job, one partition or one range, on the instance under $MLOPS_HOME ----
INSTANCE_VAR = "DAGSTER_HOME"


def instance_warning(platform: Platform, environ: dict | None = None) -> str | None:
    """Why the runs would NOT land on the instance ``make ui`` shows (``$MLOPS_HOME/dagster``),
    or None.

    ``$DAGSTER_HOME`` elsewhere is fine for a configured production instance (a ``dagster.yaml``
    with a ``storage:`` section, e.g. ``deploy/dagster.yaml``); an embedded SQLite instance
    elsewhere is the classic "I ran it but the UI shows nothing": warned about, naming both
    folders."""
    env = os.environ if environ is None else environ
    expected = (platform.home.root / "dagster").resolve()
    given = env.get(INSTANCE_VAR)
    if not given or Path(given).expanduser().resolve() == expected:
        return None
    cfg = Path(given).expanduser() / "dagster.yaml"
    if cfg.is_file() and any(line.startswith("storage:") for line in cfg.read_text().splitlines()):
        return None
    return (
        f"${INSTANCE_VAR}={given} is not $MLOPS_HOME/dagster ({expected}): runs go to that"
        f" instance, and `make ui` / `dagster dev` with MLOPS_HOME={platform.home.root} will not"
        f" show them; unset {INSTANCE_VAR} or export {INSTANCE_VAR}={expected}"
    )


@dataclass
class LaunchedRunOutcome:
    """What one run launched by ``launch_run`` did, read from its events: materialisations
    (metadata as plain values) per asset, check evaluations, step failures and the warnings its
    assets logged."""

    job: str
    run_id: str
    success: bool
    partitions: str
    materializations: dict[str, list[dict]]
    checks: list[dict]
    failures: list[str]
    warnings: list[str] = field(default_factory=list)
    logs: list[tuple[str, int, str]] = field(
        default_factory=list
    )  # (step, level, message) the assets logged

    def metadata(self, asset: str) -> dict:
        """The last materialisation's metadata of ``asset`` in this run ({} when not
        materialised)."""
        found = self.materializations.get(asset)
        return found[-1] if found else {}

    def failed_checks(self, *, blocking_only: bool = True) -> list[dict]:
        return [
            c
            for c in self.checks
            if not c["passed"] and (c["severity"] == "ERROR" or not blocking_only)
        ]


def _plain(metadata: dict) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _failure_text(data) -> str:
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return user.description
    error = getattr(data, "error", None)
    return (error.message.strip().splitlines() or [""])[0] if error is not None else "step failed"


def _progress_line(entry) -> str | None:
    """One readable line for a run event worth showing while it runs, or None."""
    if not entry.is_dagster_event:
        return f"    {entry.user_message}"[:300] if entry.level >= 20 else None
    event, kind = entry.dagster_event, entry.dagster_event.event_type_value
    if kind == "STEP_START":
        return f"  … {event.step_key}"
    if kind == "ASSET_MATERIALIZATION":
        md = _plain(event.event_specific_data.materialization.metadata)
        shown = ", ".join(
            f"{k}={md[k]}"
            for k in ("rows", "quarantined_rows", Meta.MODEL_VERSION, Meta.ACTION, Meta.MODE)
            if k in md
        )
        return f"  ✓ {event.asset_key.to_user_string()}" + (f" ({shown})" if shown else "")
    if kind == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
        data = event.event_specific_data
        mark = "✗" if data.severity.value == "ERROR" else "!"
        return f"  {mark} {data.check_name}: {(data.description or '')[:240]}"
    if kind == "STEP_FAILURE":
        return f"  ✗ {event.step_key} failed: {_failure_text(event.event_specific_data)[:240]}"
    return None


def outcome_of(result, job: str, partitions: str) -> LaunchedRunOutcome:
    mats: dict[str, list[dict]] = {}
    checks, failures = [], []
    for e in result.all_events:
        if e.event_type_value == "ASSET_MATERIALIZATION":
            mats.setdefault(e.asset_key.to_user_string(), []).append(
                _plain(e.event_specific_data.materialization.metadata)
            )
        elif e.event_type_value == "ASSET_CHECK_EVALUATION":
            d = e.event_specific_data
            checks.append(
                {
                    "asset": d.asset_key.to_user_string(),
                    "check": d.check_name,
                    "passed": bool(d.passed),
                    "severity": d.severity.value,
                    "description": d.description or "",
                }
            )
        elif e.event_type_value == "STEP_FAILURE":
            failures.append(f"{e.step_key}: {_failure_text(e.event_specific_data)}")
    return LaunchedRunOutcome(
        job, result.run_id, result.success, partitions, mats, checks, failures
    )


def launch_run(
    instance: DagsterInstance,
    defs,
    job_name: str,
    *,
    partition: str | None = None,
    first: str | None = None,
    last: str | None = None,
    tags: dict | None = None,
    progress=None,
) -> LaunchedRunOutcome:
    """Run ``job_name`` for one partition or the range ``first..last`` (one run, Dagster's range
    tags) on ``instance``, in process; ``progress(line)`` sees a line per step, asset (once per
    run), failed check and asset warning as they happen. The assets' log messages are kept in
    ``LaunchedRunOutcome.logs``."""
    run_id = str(uuid.uuid4())
    run_tags = dict(tags or {})
    if first is not None:
        run_tags.update({RunTag.RANGE_START: first, RunTag.RANGE_END: last or first})
    logs: list[tuple[str, int, str]] = []
    shown: set[str] = set()

    def listen(entry) -> None:
        if not entry.is_dagster_event:
            logs.append((entry.step_key or "", entry.level, entry.user_message))
        elif entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION":
            asset = entry.dagster_event.asset_key.to_user_string()
            if asset in shown:
                return  # a range run reports one materialisation per partition
            shown.add(asset)
        line = _progress_line(entry)
        if line and progress:
            progress(line)

    instance.add_event_listener(run_id, listen)
    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition,
        tags=run_tags,
        run_id=run_id,
        raise_on_error=False,
        run_config=QUIET,
    )
    outcome = outcome_of(result, job_name, partition or f"{first}..{last or first}")
    outcome.logs = logs
    outcome.warnings = [m for _, level, m in logs if level >= 30]
    return outcome


def partition_days(platform: Platform, first: dt.date, last: dt.date) -> list[str]:
    """The daily partitions ``first..last``; ValueError (a refusal) naming what exists when they
    do not."""
    start, end = (
        platform.spec.partition_start,
        dt.date.fromisoformat(platform.daily.get_last_partition_key()),
    )
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    if first < start or last > end:
        raise ValueError(
            f"{first}..{last} is outside the partitions {start}..{end} "
            f"(partition_start in the spec {platform.spec.name})"
        )
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


# ---- reading a training run's decision -----------------------------------------------------
PROMOTED, CHALLENGER, REJECTED, PIPELINE_ERROR = "promoted", "challenger", "rejected", "error"
DECISION_EXIT = {PROMOTED: 0, CHALLENGER: 0, REJECTED: 3, PIPELINE_ERROR: 1}
"""``mlops-assets train`` exit codes: 0 promoted or parked as challenger, 3 rejected by the gates,
1 a pipeline error (the run failed before the gates decided)."""


def training_decision(outcome: LaunchedRunOutcome, cutoff: str) -> dict:
    """``{"version", "cutoff", "decision", "metrics", "reasons", "run_id"}`` of a training run,
    from its materialisations: ``evaluation_report``'s ``candidate_*`` metrics and ``gates``,
    ``champion``'s ``action`` and ``reason``."""
    candidate, report, champion = (
        outcome.metadata(a) for a in (CANDIDATE_MODEL, EVALUATION_REPORT, CHAMPION)
    )
    version = candidate.get(Meta.MODEL_VERSION, report.get("candidate_version"))
    metrics = {
        k.removeprefix("candidate_"): v
        for k, v in sorted(report.items())
        if k.startswith("candidate_") and k != "candidate_version" and isinstance(v, int | float)
    }
    failed_gates = [
        f"{g['name']}: {g['message']}" for g in report.get("gates") or [] if not g.get("passed")
    ]
    failed_gates = failed_gates or [
        f"{c['check']}: {c['description']}"
        for c in outcome.failed_checks()
        if c["asset"] == EVALUATION_REPORT
    ]
    action = champion.get(Meta.ACTION)
    if action in (*Action.PROMOTIONS, Action.NOOP):
        decision, reasons = PROMOTED, [str(champion.get("reason", action))]
    elif action in (Action.AWAIT_APPROVAL, Action.AWAIT_SHADOW):
        decision, reasons = CHALLENGER, [str(champion.get("reason", action))]
    elif failed_gates:
        decision, reasons = REJECTED, failed_gates
    else:
        decision, reasons = (
            PIPELINE_ERROR,
            outcome.failures or [f"run {outcome.run_id} failed before the gates"],
        )
    return {
        "version": version,
        "cutoff": cutoff,
        "decision": decision,
        "metrics": metrics,
        "reasons": reasons,
        "run_id": outcome.run_id,
    }
