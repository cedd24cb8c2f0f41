"""Alerts: one JSON record per event, to a webhook (URL from the environment) and always to
a JSON-lines file under ``$MLOPS_HOME/alerts/`` and the log. Each names the runbook to follow.

``AlertKind`` is the registry of what can be alerted on: each kind's name (what the record
says), default severity and runbook (``docs/runbooks/<name>.md``). Senders name a kind from it.

The webhook URL is a secret: it is read through ``EnvVar`` and never logged or recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.request
from enum import StrEnum
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

log = logging.getLogger("mlops_assets.control.alerts")

RUNBOOK_DIR = "docs/runbooks"
ERROR, WARNING = "error", "warning"


class AlertKind(StrEnum):
    """What an alert is about: its name, its default severity and its runbook."""

    # a landing file or partition broke the data contract (a blocking check failed)
    DATA_CONTRACT_FAILURE = "data_contract_failure", ERROR
    # a candidate failed a blocking promotion gate
    GATE_FAILURE = "gate_failure", ERROR
    # any other failed run
    PIPELINE_FAILURE = "pipeline_failure", ERROR
    # drift persisted for consecutive days: a training run was requested
    DRIFT_RETRAIN = "drift_retrain", WARNING
    # the champion's performance breached its guard: rolled back, or marked unusable
    GUARD_ROLLBACK = "guard_rollback", ERROR
    # scores came from a fallback (last_known_good or the constant baseline), not the champion
    SCORING_DEGRADED = "scoring_degraded", WARNING
    # the newest landed event is older than the spec's freshness allows
    FRESHNESS_BREACH = "freshness_breach", WARNING
    # a version's files differ from its manifest
    MODEL_INTEGRITY = "model_integrity", ERROR
    # MLflow unreachable; cache serving
    REGISTRY_UNAVAILABLE = "registry_unavailable", ERROR
    # a half-done move completed, an alias restored
    CONTROL_PLANE_REPAIR = "control_plane_repair", WARNING

    def __new__(cls, name: str, severity: str) -> AlertKind:
        kind = str.__new__(cls, name)
        kind._value_ = name
        kind.severity = severity
        return kind

    @property
    def runbook(self) -> str:
        return f"{RUNBOOK_DIR}/{self.value}.md"


RUNBOOKS = {kind.value: kind.runbook for kind in AlertKind}
ALERTS_FILE = "alerts.jsonl"


class AlertSink(ConfigurableResource):
    directory: str = Field(description="Folder of the JSON-lines alert log.")
    webhook_url: str = Field(
        default="", description="POST target for alerts; pass EnvVar('MLOPS_ALERT_WEBHOOK')."
    )
    timeout_seconds: float = 5.0
    owners: list[str] = Field(
        default_factory=list, description="The spec's owners: every alert names them."
    )

    def send(
        self,
        kind: AlertKind | str,
        *,
        reason: str,
        severity: str | None = None,
        run_id: str | None = None,
        asset: str | None = None,
        partition: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict:
        """Record (and post) one alert of ``kind``, at the kind's severity unless ``severity``
        says otherwise; the same kind and reason again is suppressed."""
        if kind not in RUNBOOKS:
            raise ValueError(f"unknown alert kind {kind!r}: one of {sorted(RUNBOOKS)}")
        kind = AlertKind(kind)
        record = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "kind": kind.value,
            "severity": severity or kind.severity,
            "reason": reason,
            "run_id": run_id,
            "asset": asset,
            "partition": partition,
            "runbook": kind.runbook,
            "owners": list(self.owners),
            "details": details or {},
        }
        path = Path(self.directory)
        path.mkdir(parents=True, exist_ok=True)
        if any(a["kind"] == kind and a["reason"] == reason for a in read_alerts(path, limit=200)):
            return {
                **record,
                "suppressed": "the same alert was already sent",
            }  # one alert per condition
        with open(path / ALERTS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        log.warning(
            "ALERT %s: %s (runbook %s; owners %s)",
            kind.value,
            reason,
            record["runbook"],
            ", ".join(self.owners) or "none named",
        )
        if self.webhook_url:
            record["delivered"] = self._post(record)
        return record

    def _post(self, record: dict) -> bool:
        request = urllib.request.Request(
            self.webhook_url,
            data=json.dumps(record, default=str).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            # the URL is the operator's own webhook (http or https), checked at configuration
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return 200 <= response.status < 300
        except OSError as err:  # never log the URL: it may carry a token
            log.error("alert webhook delivery failed: %s", type(err).__name__)
            return False


def read_alerts(directory: Path, limit: int = 20) -> list[dict]:
    path = Path(directory) / ALERTS_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[-limit:]][::-1]


def alert_resource(alerts_dir: Path, owners: list[str] | tuple[str, ...] = ()) -> AlertSink:
    """The alert sink; ``owners`` (the spec's) are named in every alert."""
    if os.environ.get("MLOPS_ALERT_WEBHOOK"):
        return AlertSink(
            directory=str(alerts_dir),
            webhook_url=EnvVar("MLOPS_ALERT_WEBHOOK"),
            owners=list(owners),
        )
    return AlertSink(directory=str(alerts_dir), owners=list(owners))
