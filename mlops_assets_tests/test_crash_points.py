"""kill -9 of a data-plane run at its step boundaries: nothing half-written, a re-run repairs it.

A range ingest (raw_events → quarantine → features) runs in a child process that stops at a
named crash point (``mlops_assets.core.faults``) and is killed there. The tables must then be as
before the run (killed before a commit) or hold exactly that commit (killed after it), and a
re-run must leave every table equal to a clean world's — no row lost, none duplicated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from dagster import instance_for_test

from mlops_assets.core.faults import PAUSE_AT_ENV, PAUSE_FILE_ENV
from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import FEATURES, QUARANTINE, RAW_EVENTS
from mlops_assets.data.lake import DeltaLake
from mlops_assets.data.simulator import simulate
from mlops_assets.location.build import build_definitions
from mlops_assets_tests.conftest import DAY0, days, run_ingest, table

N_DAYS = 6
KEYS = days(DAY0, N_DAYS)
RUN_INGEST = f"""
import sys
from dagster import DagsterInstance
from mlops_assets.location.build import build_definitions
from mlops_assets.core.platform import Platform
from mlops_assets_tests.conftest import run_ingest
with DagsterInstance.get() as instance:
    defs = build_definitions(Platform.from_env())
    run_ingest(defs, instance, start={KEYS[0]!r}, end={KEYS[-1]!r})
"""
POINTS = [
    f"lake.commit:{RAW_EVENTS}",
    f"lake.committed:{RAW_EVENTS}",
    f"lake.commit:{QUARANTINE}",
    f"lake.committed:{QUARANTINE}",
    f"lake.commit:{FEATURES}",
]


def landed(root, monkeypatch):
    """A $MLOPS_HOME at ``root`` with ``N_DAYS`` simulated days in its landing zone."""
    monkeypatch.setenv("MLOPS_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    (root / "dagster").mkdir(parents=True, exist_ok=True)
    platform = Platform.from_env()
    simulate(platform.landing.parent, DAY0, N_DAYS, seed=5)
    return platform, DeltaLake(root=str(platform.home.lake))


def snapshot(lake: DeltaLake) -> dict:
    out = {t: table(lake, t) for t in (RAW_EVENTS, FEATURES)}
    q = lake.read(QUARANTINE)
    out[QUARANTINE] = (
        q.drop("run_id", "quarantined_at").sort(sorted(q.columns[:5])) if not q.is_empty() else q
    )
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        platform, lake = landed(tmp_path_factory.mktemp("clean"), mp)
        with instance_for_test(temp_dir=str(platform.home.root / "dagster")) as instance:
            run_ingest(build_definitions(platform), instance, start=KEYS[0], end=KEYS[-1])
        return snapshot(lake)
    finally:
        mp.undo()


@pytest.mark.parametrize("point", POINTS)
def test_a_range_ingest_killed_at_a_step_boundary_is_repaired_by_a_rerun(
    point, clean, tmp_path, monkeypatch
):
    platform, lake = landed(tmp_path / "home", monkeypatch)
    (platform.home.dagster / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    marker = tmp_path / "paused"
    env = {**os.environ, PAUSE_AT_ENV: point, PAUSE_FILE_ENV: str(marker)}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_INGEST],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, f"the run never reached {point}"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    table_name = point.split(":", 1)[1]
    committed = point.startswith("lake.committed")
    # killed before its commit: the table is as before the run (here: not there at all);
    # killed after it: exactly that commit, the tables after it untouched
    assert lake.exists(table_name) == committed
    if table_name == RAW_EVENTS:
        assert not lake.exists(FEATURES)
    if committed and table_name == RAW_EVENTS:
        assert table(lake, RAW_EVENTS).equals(clean[RAW_EVENTS])  # the whole range, in one commit

    with instance_for_test(temp_dir=str(platform.home.dagster)) as instance:
        assert run_ingest(
            build_definitions(platform), instance, start=KEYS[0], end=KEYS[-1]
        ).success
    after = snapshot(lake)
    for name in (RAW_EVENTS, FEATURES):
        assert after[name].equals(clean[name]), name
    assert (
        after[QUARANTINE].height == clean[QUARANTINE].height == 0
    )  # clean files: nothing rejected, twice
    assert sorted(lake.read(FEATURES)["ds"].unique().to_list()) == KEYS
