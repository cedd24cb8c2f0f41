"""Reads of the Dagster instance that more than one part of the platform needs.

Read-only, public Dagster API only (no ``dagster._*`` import): the latest asset-check
outcomes per partition, the failed checks of one partition, the latest materialisation of
each partition (its run, its metadata), the runs carrying a tag, and the runs waiting or in
progress with the judgement whether each is *stuck* (its worker died; see ``run_progress``).

Check histories are read with ``event_log_storage.get_asset_check_execution_history``
*without* its ``partition_filter`` (whose type is private) and filtered on
``record.partition`` here. A record without an evaluation — the check was planned but its
run failed before evaluating it — is never an outcome: the latest *evaluated* record wins.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunRecord,
    RunsFilter,
)

from mlops_assets.core.clock import utc_now

UNPARTITIONED = "(all)"
"""The partition under which ``latest_check_outcomes`` reports an unpartitioned result."""

_PAGE = 500  # records per history page when scanning back for one partition


@dataclass(frozen=True)
class CheckOutcome:
    """One evaluated asset-check result."""

    passed: bool
    severity: str  # "ERROR" | "WARN"
    run_id: str
    description: str | None = None


def _outcome(rec: Any) -> CheckOutcome | None:
    """The evaluation of an execution record; None when it was planned but never evaluated."""
    event = rec.event.dagster_event if rec.event is not None else None
    evaluation = event.event_specific_data if event is not None else None
    if evaluation is None or not hasattr(evaluation, "passed"):
        return None
    return CheckOutcome(
        bool(evaluation.passed), evaluation.severity.value, rec.run_id, evaluation.description
    )


def _history(instance: DagsterInstance, check_key: AssetCheckKey, page: int) -> Iterator[Any]:
    """Every execution record of ``check_key``, newest first, ``page`` records per query."""
    cursor = None
    while True:
        records = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=page, cursor=cursor
        )
        yield from records
        if len(records) < page:
            return
        cursor = records[-1].id


def latest_check_outcomes(
    instance: DagsterInstance, check_key: AssetCheckKey, limit: int = 5000
) -> dict[str, CheckOutcome]:
    """partition (``UNPARTITIONED`` for an unpartitioned result) → its latest evaluated
    outcome, over the newest ``limit`` execution records of ``check_key``."""
    latest: dict[str, CheckOutcome] = {}
    for rec in instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=limit
    ):  # newest first
        part = rec.partition or UNPARTITIONED
        if part in latest:
            continue
        outcome = _outcome(rec)
        if outcome is not None:
            latest[part] = outcome
    return latest


def latest_check_outcome(
    instance: DagsterInstance, check_key: AssetCheckKey, partition: str
) -> CheckOutcome | None:
    """The latest evaluated outcome of ``check_key`` on ``partition`` (None: never evaluated)."""
    for rec in _history(instance, check_key, _PAGE):
        if rec.partition == partition:
            outcome = _outcome(rec)
            if outcome is not None:
                return outcome
    return None


def failed_checks(
    instance: DagsterInstance, asset: str, check_names: Iterable[str], partition: str
) -> list[str]:
    """The checks of ``asset`` (in ``check_names`` order) whose latest evaluated result on
    ``partition`` failed. A check never evaluated on that partition has not failed."""
    failed = []
    for name in check_names:
        outcome = latest_check_outcome(instance, AssetCheckKey(AssetKey(asset), name), partition)
        if outcome is not None and not outcome.passed:
            failed.append(name)
    return failed


def latest_run_by_partition(instance: DagsterInstance, asset: str) -> dict[str, str]:
    """partition → run id of its latest materialisation."""
    latest: dict[str, str] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset)), limit=5000, cursor=cursor
        )
        for rec in page.records:  # newest first
            if rec.partition_key and rec.partition_key not in latest:
                latest[rec.partition_key] = rec.run_id
        if not page.has_more:
            return latest
        cursor = page.cursor


def latest_materialization_metadata(
    instance: DagsterInstance, asset: str, partition: str
) -> dict[str, Any]:
    """The metadata of the latest materialisation of ``asset[partition]``, as plain values
    (each ``MetadataValue`` unwrapped to its ``.value``: a JSON entry is a dict, text a str);
    ``{}`` when that partition was never materialised."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:
        return {}
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def runs_with_tag(
    instance: DagsterInstance,
    key: str,
    value: str,
    limit: int | None = None,
    *,
    created_before: Any = None,
) -> list[RunRecord]:
    """Run records tagged ``key=value``, newest first (at most ``limit``; optionally only
    those created before the datetime ``created_before``)."""
    return list(
        instance.get_run_records(
            RunsFilter(tags={key: value}, created_before=created_before), limit=limit
        )
    )


# ---- runs waiting, in progress, stuck -----------------------------------------------------------
WAITING = (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED)
RUNNING = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)
STUCK_AFTER = dt.timedelta(minutes=30)
"""A run in progress with no event for this long is stuck (no worker of ours is that silent)."""


@dataclass(frozen=True)
class RunProgress:
    """A run waiting (QUEUED, NOT_STARTED) or in progress (STARTING, STARTED, CANCELING).

    ``worker_pid`` is the process that emitted the run's RUN_START event (the run worker);
    ``stuck`` says why the run will never finish by itself (None: not stuck)."""

    run_id: str
    job_name: str
    status: str
    created_at: dt.datetime  # naive UTC
    last_event_at: dt.datetime | None  # naive UTC
    worker_pid: int | None
    stuck: str | None = None

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "job": self.job_name,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "worker_pid": self.worker_pid,
            "stuck": self.stuck,
        }


def _naive_utc(value: dt.datetime | float | None) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def stuck_reason(
    status: str,
    *,
    last_event_at: dt.datetime | None,
    created_at: dt.datetime,
    worker_alive: bool | None,
    now: dt.datetime,
    stuck_after: dt.timedelta = STUCK_AFTER,
) -> str | None:
    """Why a run in ``status`` will never finish by itself, or None.

    A queued run is never stuck (it waits for the daemon). A run in progress is stuck when its
    worker process is known to be gone (``worker_alive is False``: same host, pid not running),
    or — whatever the host — when nothing was logged for ``stuck_after`` (a NOT_STARTED run:
    since it was created)."""
    if status == DagsterRunStatus.QUEUED.value:
        return None
    if worker_alive is False and status != DagsterRunStatus.NOT_STARTED.value:
        return "its run worker process is gone (killed or crashed) and the run never finished"
    quiet_since = last_event_at or created_at
    if now - quiet_since > stuck_after:
        minutes = int((now - quiet_since).total_seconds() // 60)
        what = (
            "never started"
            if status == DagsterRunStatus.NOT_STARTED.value
            else f"{status} but silent"
        )
        return (
            f"{what}: no event for {minutes} min (> {int(stuck_after.total_seconds() // 60)} min)"
        )
    return None


def workers_on_this_host(instance: DagsterInstance) -> bool:
    """True when every run of ``instance`` ran on this machine, so their pids can be checked here:
    the embedded instance (SQLite files in a local folder). PostgreSQL may serve many hosts."""
    return type(instance.run_storage).__name__ == "SqliteRunStorage"


def _process_started_at(pid: int) -> float | None:
    """Start time (epoch seconds) of a live, non-zombie process; None when there is none (Linux
    /proc; elsewhere ``os.kill(pid, 0)`` and an unknown start time, 0.0)."""
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    if fields[0] in ("Z", "X"):  # a zombie is a dead worker its parent has not reaped yet
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def worker_alive(pid: int | None, started_at: dt.datetime | None) -> bool | None:
    """Whether run worker ``pid`` (which logged RUN_START at ``started_at``) still runs on this
    host; None when unknown. A pid held by a process started after the run started was reused:
    the worker is gone."""
    if pid is None:
        return None
    began = _process_started_at(pid)
    if began is None:
        return False
    if began and started_at is not None:
        return began <= started_at.replace(tzinfo=dt.UTC).timestamp() + 2.0
    return True


def _run_start(instance: DagsterInstance, run_id: str) -> tuple[int | None, dt.datetime | None]:
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1
    ).records
    entry = records[0].event_log_entry if records else None
    if entry is None or entry.dagster_event is None:
        return None, None
    return entry.dagster_event.pid, _naive_utc(entry.timestamp)


def _last_event_at(instance: DagsterInstance, run_id: str) -> dt.datetime | None:
    records = instance.get_records_for_run(run_id, limit=1, ascending=False).records
    return _naive_utc(records[0].event_log_entry.timestamp) if records else None


def run_progress(
    instance: DagsterInstance,
    *,
    now: dt.datetime | None = None,
    stuck_after: dt.timedelta = STUCK_AFTER,
    same_host: bool | None = None,
    created_after: dt.datetime | None = None,
    limit: int = 200,
) -> list[RunProgress]:
    """Every run waiting or in progress (newest first, at most ``limit``), each judged by
    ``stuck_reason`` as of ``now`` (default: the current time). Worker pids are checked only when
    ``same_host`` (default: ``workers_on_this_host(instance)``)."""
    now = _naive_utc(now) or utc_now()
    same_host = workers_on_this_host(instance) if same_host is None else same_host
    records = instance.get_run_records(
        RunsFilter(statuses=[*WAITING, *RUNNING], created_after=created_after), limit=limit
    )
    out = []
    for rec in records:
        run = rec.dagster_run
        pid, started = _run_start(instance, run.run_id) if run.status in RUNNING else (None, None)
        alive = worker_alive(pid, started) if same_host else None
        last, created = _last_event_at(instance, run.run_id), _naive_utc(rec.create_timestamp)
        out.append(
            RunProgress(
                run.run_id,
                run.job_name,
                run.status.value,
                created,
                last,
                pid,
                stuck_reason(
                    run.status.value,
                    last_event_at=last,
                    created_at=created,
                    worker_alive=alive,
                    now=now,
                    stuck_after=stuck_after,
                ),
            )
        )
    return out
