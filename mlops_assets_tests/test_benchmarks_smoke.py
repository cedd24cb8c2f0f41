"""The benchmark suite runs end to end (``--quick``: small sizes) and writes every headline key the
performance issue asks for, each a number. Smoke only: no timing is asserted here (speed is judged
by ``python -m benchmarks`` itself, never by a test)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = (
    "scoring.asset_vs_floor",
    "scoring.floor_vs_predict",
    "scoring.peak_rss_mb_10m",
    "ingest.validate_vs_typed_read",
    "ingest.nan_flood_vs_clean",
    "run_cost.after_1000_vs_first",
    "drift.evidently_over_ours_1m",
    "drift.verdicts_equal",
    "backfill.per_partition_over_single_run",
    "load.definitions_seconds",
    # beside the keys: the model input as served and as strings, and one run through Dagster
    "scoring.encode_s_per_1m",
    "scoring.encode_strings_s_per_1m",
    "scoring.read_s_per_1m",
    "backfill.dagster_s_per_run",
    "backfill.pure_s_per_partition",
)
NAMES = ("ingest", "run_cost", "backfill", "import", "scoring", "drift")


def test_quick_benchmarks_write_every_key_as_a_number(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *NAMES, "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True
    missing = [k for k in KEYS if k not in doc["keys"]]
    assert not missing, f"keys missing: {missing}"
    for key in KEYS:
        value = doc["keys"][key]
        assert (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ), (key, value)
    assert doc["keys"]["drift.verdicts_equal"] <= 1.0 and doc["keys"]["scoring.peak_rss_mb_10m"] > 0
