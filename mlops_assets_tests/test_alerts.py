"""Alerts: the JSON-lines sink, a real webhook over loopback, de-duplication, and the run
failure sensor's classification of a real failed run."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from mlops_assets.control.alerts import RUNBOOKS, AlertKind, AlertSink, read_alerts

from .conftest import DAY0, run_ingest


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook?token=s3cret", received
    server.shutdown()


def test_alert_goes_to_the_file_and_the_webhook_once(tmp_path, webhook, caplog):
    url, received = webhook
    sink = AlertSink(directory=str(tmp_path), webhook_url=url)
    record = sink.send(
        "drift_retrain", reason="share 0.6 on 2 days", partition="2026-03-05", run_id="r1"
    )
    assert record["delivered"] is True and received[0]["kind"] == "drift_retrain"
    assert received[0]["runbook"] == RUNBOOKS["drift_retrain"] and received[0]["run_id"] == "r1"
    again = sink.send("drift_retrain", reason="share 0.6 on 2 days")
    assert again.get("suppressed") and len(received) == 1
    assert [a["reason"] for a in read_alerts(tmp_path)] == ["share 0.6 on 2 days"]
    assert "s3cret" not in caplog.text  # the webhook URL (a secret) is never logged


def test_failed_webhook_still_records_the_alert(tmp_path):
    sink = AlertSink(
        directory=str(tmp_path), webhook_url="http://127.0.0.1:9/unreachable", timeout_seconds=0.5
    )
    record = sink.send("pipeline_failure", reason="boom")
    assert record["delivered"] is False and read_alerts(tmp_path)[0]["kind"] == "pipeline_failure"
    with pytest.raises(ValueError, match="unknown alert kind"):
        sink.send("meteor", reason="x")


def test_every_alert_kind_has_its_own_runbook_and_a_default_severity(tmp_path):
    """Degraded scoring is a kind of its own (not the guard's rollback), at warning by default."""
    root = Path(__file__).resolve().parents[1]
    for kind in AlertKind:
        runbook = root / kind.runbook
        assert runbook.is_file(), kind
        assert f"**Alert kind:** `{kind.value}`" in runbook.read_text(), kind
        assert kind.severity in ("error", "warning") and RUNBOOKS[kind.value] == kind.runbook
    assert len({k.runbook for k in AlertKind}) == len(AlertKind)
    sink = AlertSink(directory=str(tmp_path))
    degraded = sink.send(
        AlertKind.SCORING_DEGRADED, reason="scoring degraded: champion v3 unusable"
    )
    assert (degraded["kind"], degraded["severity"]) == ("scoring_degraded", "warning")
    assert degraded["runbook"] == "docs/runbooks/scoring_degraded.md"
    guard = sink.send("guard_rollback", reason="auc 0.61 < floor 0.7")  # a name is accepted too
    assert (guard["kind"], guard["severity"]) == ("guard_rollback", "error")
    quiet = sink.send(AlertKind.GUARD_ROLLBACK, reason="alert only", severity="warning")
    assert quiet["severity"] == "warning"
    assert [a["kind"] for a in read_alerts(tmp_path)] == [
        "guard_rollback",
        "guard_rollback",
        "scoring_degraded",
    ]
    assert json.loads((tmp_path / "alerts.jsonl").read_text().splitlines()[0])["kind"] == (
        "scoring_degraded"
    )


def test_run_failure_sensor_classifies_a_contract_failure(platform, defs, instance):
    from dagster import DagsterEventType, EventRecordsFilter, build_run_status_sensor_context

    from mlops_assets.data.simulator import Injection, simulate

    simulate(platform.landing.parent, DAY0, 1, seed=1, inject=[Injection("corrupt_file", DAY0)])
    result = run_ingest(defs, instance, DAY0.isoformat())
    assert not result.success
    failure = instance.get_event_records(EventRecordsFilter(DagsterEventType.RUN_FAILURE), limit=1)[
        0
    ]
    sensor = next(s for s in defs.sensors if s.name == "alert_on_run_failure")
    ctx = build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        resources=defs.resources,
    ).for_run_failure()
    sensor._run_status_sensor_fn(ctx, alerts=defs.resources["alerts"])  # the sensor's own function
    alerts = read_alerts(platform.home.alerts)
    assert alerts[0]["kind"] == "data_contract_failure" and alerts[0]["run_id"] == result.run_id
    assert alerts[0]["partition"] == DAY0.isoformat() and alerts[0]["runbook"].endswith(
        "data_contract_failure.md"
    )
