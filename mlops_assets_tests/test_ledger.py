"""The alias ledger under a hostile world: races, kill -9 at every step, tampering, drift by hand.

Real MLflow (sqlite store under a temp $MLOPS_HOME), real Delta tables, the real CLI in
subprocesses. Model versions are registered directly with MLflow (no artifacts needed to
move aliases); their gate evidence is written to the real ``evaluations`` table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from deltalake import write_deltalake
from mlflow import MlflowClient

from mlops_assets.control.ledger import (
    GENESIS,
    STEPS,
    Move,
    MoveConflict,
    alias_state,
    apply_move,
    champion_at,
    move_lock,
    pending_moves,
    read_ledger,
    reconcile,
    row_hash,
    verify_chain,
)
from mlops_assets.core.faults import PAUSE_AT_ENV, PAUSE_FILE_ENV
from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import AUDIT, EVALUATIONS, Action, Alias, Status, VersionTag
from mlops_assets.location.resources import LOCK_DSN_ENV, build_resources
from mlops_assets.model.gates import GateResult, evaluation_rows
from mlops_assets.model.promotion import promote_if_passed, read_audit, rollback

CLI = [sys.executable, "-m", "mlops_assets.operations.cli"]


@pytest.fixture
def control(platform):
    """(lake, registry) with versions 1..4 registered and each passing every gate."""
    res = build_resources(platform)
    lake, registry = res["lake"], res["registry"]
    client = MlflowClient(
        tracking_uri=registry.resolved_tracking_uri, registry_uri=registry.resolved_tracking_uri
    )
    client.create_registered_model(registry.registered_model)
    for v in range(1, 5):
        client.create_model_version(registry.registered_model, source=f"file:///nowhere/{v}")
        registry.set_version_tags(
            v, {VersionTag.STATUS: Status.CANDIDATE, VersionTag.CUTOFF: f"2026-03-0{v}"}
        )
        gates = [GateResult("integrity", True, 3.0, 3.0, "integrity passed")]
        lake.append(
            EVALUATIONS,
            evaluation_rows(
                gates,
                cutoff=f"2026-03-0{v}",
                version=v,
                champion_version=None,
                evaluated_at=dt.datetime(2026, 3, v),
                run_id=f"r{v}",
            ),
        )
    return lake, registry


def promote(lake, registry, version):
    return promote_if_passed(
        lake, registry, version, require_approval=False, actor="test", run_id=None
    )


def agree(lake, registry) -> None:
    """The invariant: nothing pending, aliases as the ledger says, the champion's tag says
    champion."""
    ledger = read_ledger(lake)
    assert pending_moves(ledger) == []
    assert dict(registry.aliases()) == alias_state(ledger)
    champion = registry.get_alias(Alias.CHAMPION)
    if champion is not None:
        assert registry.version_tags(champion)[VersionTag.STATUS] == Status.CHAMPION
    assert verify_chain(lake).ok


def cli_env(home) -> dict:
    return {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}


def test_known_good_history_survives_two_rollbacks(control):
    lake, registry = control
    for v in (1, 2, 3):
        promote(lake, registry, v)
    assert registry.aliases() == {Alias.CHAMPION: 3, Alias.LAST_KNOWN_GOOD: 2}
    first = rollback(lake, registry, reason="v3 is bad", actor="op")
    assert (first["champion"], first["last_known_good"]) == (2, 1)
    second = rollback(lake, registry, reason="v2 is bad too", actor="op")
    assert (second["champion"], second["last_known_good"]) == (1, None)
    assert registry.version_tags(3)[VersionTag.STATUS] == Status.ROLLED_BACK
    agree(lake, registry)
    audit = read_audit(lake)
    assert audit["action"].to_list() == [
        Action.ROLLBACK,
        Action.ROLLBACK,
        Action.PROMOTE,
        Action.PROMOTE,
        Action.PROMOTE,
    ]
    assert set(audit["state"]) == {"done"}


def test_a_move_decided_on_a_stale_view_is_refused_naming_what_changed(control):
    lake, registry = control
    promote(lake, registry, 1)
    stale = Move(
        Action.PROMOTE,
        "slow operator",
        "late",
        Alias.CHAMPION,
        None,
        2,
        aliases={Alias.CHAMPION: 2},
        expected={Alias.CHAMPION: None},
    )
    with pytest.raises(MoveConflict, match=r"champion was vNone and is now v1.*last move: promote"):
        apply_move(lake, registry, stale)
    assert registry.get_alias(Alias.CHAMPION) == 1 and read_audit(lake).height == 1


@pytest.mark.parametrize("lock", ["file", "postgres"])
def test_two_identical_rollbacks_at_once_write_exactly_one_audit_row(
    control, home, lock, monkeypatch
):
    """With the file lock beside a local lake, and with the PostgreSQL advisory lock production
    uses.
    """
    if lock == "postgres":
        monkeypatch.setenv(
            LOCK_DSN_ENV, "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
        )
    lake, registry = control
    for v in (1, 2, 3):
        promote(lake, registry, v)
    for attempt in range(3):  # repeated: the outcome does not depend on who gets there first
        target = 1 if attempt % 2 == 0 else 3
        if registry.get_alias(Alias.CHAMPION) == target:
            continue
        before = read_audit(lake).height
        cmd = [*CLI, "rollback", "--to", str(target), "--reason", f"race {attempt}"]
        procs = [
            subprocess.Popen(
                cmd, env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        codes = sorted(code for code, _ in outcomes)
        assert codes == [0, 2], outcomes
        refusal = next(err for code, err in outcomes if code == 2)
        assert "refused" in refusal and (
            "already champion" in refusal or "changed under it" in refusal
        )
        assert read_audit(lake).height == before + 1
        assert registry.get_alias(Alias.CHAMPION) == target
    agree(lake, registry)


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_every_step_boundary_is_repaired_by_reconcile(control, home, tmp_path, step):
    lake, registry = control
    for v in (1, 2):
        promote(lake, registry, v)
    marker = tmp_path / "paused"
    env = {**cli_env(home), PAUSE_AT_ENV: step, PAUSE_FILE_ENV: str(marker)}
    proc = subprocess.Popen(
        [*CLI, "rollback", "--reason", "killed mid-move"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the move never reached its pause point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    pending = pending_moves(read_ledger(lake))
    assert len(pending) == (
        0 if step == "locked" else 1
    )  # before the intent nothing happened at all
    out = subprocess.run(
        [*CLI, "reconcile"], env=cli_env(home), capture_output=True, text=True, check=True
    )
    repaired = json.loads(out.stdout)
    assert len(repaired["completed_moves"]) == len(pending)
    agree(lake, registry)
    expected = (
        2 if step == "locked" else 1
    )  # the rollback is either not started or completed, never half
    assert registry.get_alias(Alias.CHAMPION) == expected


def test_an_alias_moved_by_hand_is_restored_from_the_ledger(control):
    lake, registry = control
    promote(lake, registry, 1)
    promote(lake, registry, 2)
    registry.set_alias(Alias.CHAMPION, 4)  # someone clicks in the MLflow UI
    repaired = reconcile(lake, registry)
    assert repaired["restored_aliases"] == {Alias.CHAMPION: 2}
    assert registry.get_alias(Alias.CHAMPION) == 2
    assert read_audit(lake, limit=1)["action"].to_list() == [Action.RECONCILE]
    agree(lake, registry)
    assert reconcile(lake, registry) == {
        "completed_moves": [],
        "restored_aliases": {},
    }  # healthy: nothing to do


def test_tampering_with_the_audit_is_detected_and_a_corrupt_file_is_reported(control, home):
    lake, registry = control
    for v in (1, 2, 3):
        promote(lake, registry, v)
    assert verify_chain(lake).ok and verify_chain(lake).rows == 6
    ok = subprocess.run(
        [*CLI, "audit", "verify"], env=cli_env(home), capture_output=True, text=True
    )
    assert ok.returncode == 0 and "audit verified (6 rows)" in ok.stdout

    rows = lake.read(AUDIT)
    forged = rows.filter(
        pl.col("seq") != 2
    ).with_columns(  # a row removed, another actor written in
        pl.when(pl.col("seq") == 0)
        .then(pl.lit("someone-else"))
        .otherwise(pl.col("actor"))
        .alias("actor")
    )
    write_deltalake(lake.uri(AUDIT), forged.to_arrow(), mode="overwrite")
    report = verify_chain(lake)
    assert not report.ok and report.broken_at == 0 and "edited" in report.reason
    bad = subprocess.run(
        [*CLI, "audit", "verify"], env=cli_env(home), capture_output=True, text=True
    )
    assert bad.returncode == 1 and "broken at row 0" in bad.stdout

    for f in (home / "lake" / AUDIT).glob("*.parquet"):
        f.write_bytes(b"not parquet")
    corrupt = verify_chain(lake)
    assert not corrupt.ok and "cannot be read" in corrupt.reason


def test_a_re_chained_rewrite_is_still_caught_by_the_delta_history(control):
    """Recomputing every hash after an edit does not help: the table was rewritten, not appended
    to."""

    lake, registry = control
    promote(lake, registry, 1)
    rows = read_ledger(lake).to_dicts()
    prev = GENESIS
    for row in rows:
        row["actor"] = "forger"
        row["prev_hash"], row["hash"] = prev, row_hash(row, prev)
        prev = row["hash"]
    write_deltalake(
        lake.uri(AUDIT),
        pl.DataFrame(rows, schema=read_ledger(lake).schema).to_arrow(),
        mode="overwrite",
    )
    report = verify_chain(lake)
    assert not report.ok and "not an append" in report.reason


def test_history_answers_who_was_champion_at_a_time(control, home):
    lake, registry = control
    promote(lake, registry, 1)
    between = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    time.sleep(0.01)
    promote(lake, registry, 2)
    ledger = read_ledger(lake)
    assert champion_at(ledger, between).version == 1
    assert champion_at(ledger, dt.datetime(2000, 1, 1)) is None
    out = subprocess.run(
        [*CLI, "history", "--json"], env=cli_env(home), capture_output=True, text=True, check=True
    )
    terms = json.loads(out.stdout)
    assert [t["version"] for t in terms] == [1, 2] and terms[0]["until"] == terms[1]["since"]
    assert terms[1]["by"] == "test" and terms[1]["why"] == "passed every blocking gate"
    at = subprocess.run(
        [*CLI, "history", "--at", between.isoformat() + "+00:00"],
        env=cli_env(home),
        capture_output=True,
        text=True,
        check=True,
    )
    assert at.stdout.startswith("v1 champion since")


def test_platform_resources_use_the_same_ledger_lock(platform):
    """The lock lives beside the local lake, so the CLI, the assets and the sensors share it."""
    lake = build_resources(Platform.from_env())["lake"]
    with move_lock(lake):
        assert (platform.home.lake / "_alias_moves.lock").exists()


def test_status_verifies_the_audit_repairs_a_dead_move_and_survives_a_corrupt_file(
    platform, instance, home
):
    from mlops_assets.location.build import build_definitions
    from mlops_assets.operations.status import collect_status, render_text

    defs = build_definitions(platform)
    lake, registry = defs.resources["lake"], defs.resources["registry"]
    client = MlflowClient(
        tracking_uri=registry.resolved_tracking_uri, registry_uri=registry.resolved_tracking_uri
    )
    client.create_registered_model(registry.registered_model)
    client.create_model_version(registry.registered_model, source="file:///nowhere/1")
    lake.append(
        EVALUATIONS,
        evaluation_rows(
            [GateResult("integrity", True, 3.0, 3.0, "ok")],
            cutoff="2026-03-01",
            version=1,
            champion_version=None,
            evaluated_at=dt.datetime(2026, 3, 1),
            run_id="r1",
        ),
    )
    move = Move(
        Action.PROMOTE,
        "test",
        "dies after its intent",
        Alias.CHAMPION,
        None,
        1,
        aliases={Alias.CHAMPION: 1},
        tags={1: {VersionTag.STATUS: Status.CHAMPION}},
        expected={Alias.CHAMPION: None},
    )
    ledger = read_ledger(lake)
    from mlops_assets.control.ledger import (
        INTENT,
        _append,
    )  # a crash right after the intent: written, never applied

    _append(
        lake,
        [
            {
                "move_id": "m1",
                "phase": INTENT,
                "plan": move.plan_json(),
                "action": move.action,
                "actor": move.actor,
                "alias": move.alias,
                "to_version": 1,
                "reason": move.reason,
            }
        ],
        ledger,
    )
    status = collect_status(platform, instance, defs)
    assert status["audit_ledger"]["verified"] and status["audit_ledger"]["reconciled"][
        "completed_moves"
    ] == ["m1"]
    assert status["champion"]["version"] == 1 and registry.get_alias(Alias.CHAMPION) == 1
    assert "audit verified (2 rows)" in render_text(status)

    for f in (home / "lake" / AUDIT).glob("*.parquet"):
        f.write_bytes(b"garbage")
    broken = collect_status(platform, instance, defs)  # reported, never a crash
    assert (
        not broken["audit_ledger"]["verified"]
        and "cannot be read" in broken["audit_ledger"]["summary"]
    )
    assert "audit broken" in render_text(broken)


def test_the_reconcile_sensor_completes_a_dead_move(control, platform, instance):
    from dagster import build_sensor_context

    from mlops_assets.control.ledger import INTENT, _append
    from mlops_assets.location.build import build_definitions

    lake, registry = control
    promote(lake, registry, 1)
    move = Move(
        Action.ROLLBACK,
        "op",
        "died",
        Alias.CHAMPION,
        1,
        2,
        aliases={Alias.CHAMPION: 2},
        tags={2: {VersionTag.STATUS: Status.CHAMPION}},
        expected={Alias.CHAMPION: 1},
    )
    _append(
        lake,
        [
            {
                "move_id": "dead",
                "phase": INTENT,
                "plan": move.plan_json(),
                "action": move.action,
                "actor": "op",
                "alias": Alias.CHAMPION,
                "from_version": 1,
                "to_version": 2,
                "reason": "died",
            }
        ],
        read_ledger(lake),
    )
    defs = build_definitions(platform)
    sensor = defs.resolve_sensor_def("reconcile_sensor")
    ctx = build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
    first = sensor.evaluate_tick(ctx)
    assert "reconciled" in first.skip_message and "dead" in first.skip_message
    assert registry.get_alias(Alias.CHAMPION) == 2
    agree(lake, registry)
    assert sensor.evaluate_tick(ctx).skip_message == "aliases, tags and audit agree"
