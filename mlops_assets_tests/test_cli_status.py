"""The operator's CLI: simulate, status (JSON keys and text) against a real instance."""

import json
import subprocess
import sys

from mlops_assets.data.simulator import Injection, simulate
from mlops_assets.operations.cli import main

from .conftest import DAY0, days, run_ingest


def test_simulate_command_is_deterministic(tmp_path, capsys):
    args = [
        "simulate",
        "--start",
        DAY0.isoformat(),
        "--days",
        "2",
        "--seed",
        "5",
        "--inject",
        f"late_file@{DAY0}",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert files and files == sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    assert all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )
    assert manifest["pending_late"]


def test_simulate_rejects_a_bad_injection():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_assets.operations.cli",
            "simulate",
            "--out",
            "x",
            "--start",
            "2026-01-01",
            "--days",
            "1",
            "--inject",
            "meteor@2026-01-01",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "meteor" in proc.stderr


def test_status_json_reports_tables_partitions_checks_quarantine(platform, defs, instance, capsys):
    simulate(platform.landing.parent, DAY0, 2, seed=1, inject=[Injection("corrupt_file", DAY0)])
    d0, d1 = days(DAY0, 2)
    assert not run_ingest(defs, instance, d0).success
    assert run_ingest(defs, instance, d1).success
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {"tables", "partitions", "checks", "quarantine", "runs"} <= set(status)
    # both runs finished (one failed on its contract): nothing queued, in progress or stuck
    assert status["runs"] == {"queued": [], "in_progress": [], "stuck": []}
    assert status["tables"]["raw_events"]["version"] >= 1 and status["tables"]["raw_events"][
        "uri"
    ].endswith("raw_events")
    # raw_events[d0] holds its accepted rows; the failed blocking check kept features[d0] from
    # existing
    assert status["partitions"] == {"raw_events": [d0, d1], "features": [d1]}
    schema = status["checks"]["raw_events:contract_schema"]
    assert schema["failed"] == [d0] and "part2.parquet" in schema["partitions"][d0]["reason"]
    assert schema["partitions"][d1]["passed"] is True
    q = status["quarantine"]
    assert (
        q["files"] == 1
        and q["rejected_files"][0]["ds"] == d0
        and "Parquet" in q["rejected_files"][0]["reason"]
    )
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert (
        "quarantine: 0 row(s) and 1 file(s) rejected" in text
        and "contract_schema failing on " + d0 in text
    )
    assert "runs: 0 queued, 0 in progress, 0 stuck" in text


def test_console_entry_point_runs_the_spec_commands(tmp_path):
    """``python -m mlops_assets.operations.cli``: spec check exits 0 on a valid spec, 2 naming the
    field otherwise.
    """
    from mlops_assets.core.spec import BUNDLED_SPEC

    ok = subprocess.run(
        [sys.executable, "-m", "mlops_assets.operations.cli", "spec", "check", str(BUNDLED_SPEC)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "is a valid classification spec 'card_transactions'" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(BUNDLED_SPEC.read_text().replace("window_days: 28", "window_days: soon"))
    proc = subprocess.run(
        [sys.executable, "-m", "mlops_assets.operations.cli", "spec", "check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "training.window_days" in proc.stderr
