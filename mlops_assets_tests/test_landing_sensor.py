"""The landing sensor: new, late and changed files → runs for exactly those partitions, once."""

import datetime as dt
import os
import shutil

import polars as pl

from mlops_assets.data.landing_scan import LandingCursor, scan_landing
from mlops_assets.data.simulator import Injection, simulate, write_late_files
from mlops_assets.operations.runs import tick

from .conftest import DAY0, days

WINDOW = {"first_day": dt.date(2026, 1, 1), "last_day": dt.date(2026, 12, 31)}


def test_scan_requests_new_late_changed_and_nothing_twice(tmp_path):
    landing = tmp_path / "landing"
    manifest = simulate(landing, DAY0, 3, seed=1, inject=[Injection("late_file", DAY0)])
    events = landing / "events"
    changes, cursor, _ = scan_landing(events, LandingCursor(), **WINDOW)
    assert [(c.day, c.reason) for c in changes] == [(d, "new_partition") for d in days(DAY0, 3)]
    cursor = LandingCursor.parse(cursor.dumps())  # survives serialisation
    assert scan_landing(events, cursor, **WINDOW)[0] == []

    for f in (events / DAY0.isoformat()).iterdir():  # touched, not changed
        os.utime(f)
    changes, cursor, _ = scan_landing(events, cursor, **WINDOW)
    assert changes == []

    write_late_files(manifest)
    changes, cursor, _ = scan_landing(events, cursor, **WINDOW)
    assert [(c.day, c.reason) for c in changes] == [(DAY0.isoformat(), "late_file")]
    late_key = changes[0].run_key

    target = next((events / days(DAY0, 3)[1]).iterdir())
    target.write_bytes(target.read_bytes().replace(b"grocery", b"fuel", 1))
    changes, cursor, _ = scan_landing(events, cursor, **WINDOW)
    assert [(c.day, c.reason) for c in changes] == [(days(DAY0, 3)[1], "changed_file")]
    assert changes[0].run_key != late_key


def test_scan_ignores_foreign_folders_and_dates_outside_the_partitions(tmp_path):
    events = tmp_path / "events"
    for name in ("not-a-date", "2025-12-31", "2027-01-01", "2026-02-30"):
        (events / name).mkdir(parents=True)
        (events / name / "x.csv").write_text("a\n1\n")
    changes, _, ignored = scan_landing(events, LandingCursor(), **WINDOW)
    assert changes == [] and len(ignored) == 4


def test_late_file_reprocesses_that_partition_and_its_downstream_once(
    platform, defs, instance, lake
):
    manifest = simulate(
        platform.landing.parent, DAY0, 3, seed=2, inject=[Injection("late_file", DAY0)]
    )
    launched, cursor, _ = tick(instance, defs, "landing_sensor", None)
    assert sorted(r.partition_key for r in launched) == days(DAY0, 3) and all(
        r.success for r in launched
    )
    before = {d: lake.read("features", [d]).height for d in days(DAY0, 3)}
    versions = lake.version("features")

    written = write_late_files(manifest)
    launched, cursor, _ = tick(instance, defs, "landing_sensor", cursor)
    assert [(r.partition_key, r.tags["mlops/reason"]) for r in launched] == [
        (DAY0.isoformat(), "late_file")
    ]
    assert launched[0].success
    after = {d: lake.read("features", [d]).height for d in days(DAY0, 3)}
    late_rows = sum(f.rows for f in written)
    assert (
        after[DAY0.isoformat()] == before[DAY0.isoformat()] + late_rows
    )  # downstream followed the old partition
    assert {d: after[d] for d in days(DAY0, 3)[1:]} == {d: before[d] for d in days(DAY0, 3)[1:]}
    assert lake.version("features") == versions + 1

    # the same file delivered again: no run (cursor); with a lost cursor: no run (materialised
    # fingerprint/run_key)
    late = next(p for p in (platform.landing / DAY0.isoformat()).iterdir() if "late" in p.name)
    copy = late.read_bytes()
    late.unlink()
    late.write_bytes(copy)
    assert tick(instance, defs, "landing_sensor", cursor)[0] == []
    assert tick(instance, defs, "landing_sensor", None)[0] == []
    runs = instance.get_runs()
    assert len(runs) == 4


def test_removed_bad_file_unblocks_the_partition(platform, defs, instance, lake):
    simulate(platform.landing.parent, DAY0, 2, seed=3, inject=[Injection("corrupt_file", DAY0)])
    launched, cursor, _ = tick(instance, defs, "landing_sensor", None)
    status = {r.partition_key: r.success for r in launched}
    assert status == {DAY0.isoformat(): False, days(DAY0, 2)[1]: True}
    assert lake.read(
        "features", [DAY0.isoformat()]
    ).is_empty()  # blocked: no features from a failed contract
    corrupt = [
        p
        for p in (platform.landing / DAY0.isoformat()).iterdir()
        if p.suffix == ".parquet" and "part2" in p.name
    ]
    assert corrupt
    quarantine_dir = platform.home.root / "removed"
    quarantine_dir.mkdir()
    shutil.move(corrupt[0], quarantine_dir / corrupt[0].name)
    launched, cursor, _ = tick(instance, defs, "landing_sensor", cursor)
    assert [(r.partition_key, r.tags["mlops/reason"], r.success) for r in launched] == [
        (DAY0.isoformat(), "removed_file", True)
    ]
    assert lake.read("features", [DAY0.isoformat()]).height > 1000
    # the rejection stays on record in the append-only quarantine log, but is no longer current
    log = lake.read("quarantine", [DAY0.isoformat()])
    assert log.filter(pl.col("rule") == "unreadable")["file"].to_list() == [corrupt[0].name]
    from mlops_assets.operations.status import collect_status

    q = collect_status(platform, instance, defs)["quarantine"]
    assert q["files"] == 0 and q["history"]["files"] == 1
    assert q["history"]["rejected_files"][0]["file"] == corrupt[0].name


def test_a_lost_cursor_does_not_rerun_days_a_range_backfill_ingested(platform, defs, instance):
    """A range run records {day: fingerprint}; the sensor must read it per day."""
    from .conftest import run_ingest

    simulate(platform.landing.parent, DAY0, 3, seed=4)
    keys = days(DAY0, 3)
    assert run_ingest(defs, instance, start=keys[0], end=keys[-1]).success
    assert tick(instance, defs, "landing_sensor", None)[0] == []


def test_restoring_a_day_to_earlier_content_re_runs_it(platform, defs, instance, lake):
    """A processed, replaced by a bad B (quarantined), restored to A: the day runs again and
    lands."""
    simulate(platform.landing.parent, DAY0, 1, seed=3)
    day = DAY0.isoformat()
    launched, cursor, _ = tick(instance, defs, "landing_sensor", None)
    assert [(r.partition_key, r.success) for r in launched] == [(day, True)]
    good = {p.name: p.read_bytes() for p in (platform.landing / day).iterdir()}
    rows = lake.read("features", [day]).height

    name = sorted(good)[0]
    (platform.landing / day / name).write_bytes(b"not,a,valid\n1,2\n")  # B: broken
    launched, cursor, _ = tick(instance, defs, "landing_sensor", cursor)
    assert [(r.partition_key, r.tags["mlops/reason"], r.success) for r in launched] == [
        (day, "changed_file", False)
    ]

    (platform.landing / day / name).write_bytes(good[name])  # A again, byte for byte
    launched, cursor, _ = tick(instance, defs, "landing_sensor", cursor)
    assert [(r.partition_key, r.tags["mlops/reason"], r.success) for r in launched] == [
        (day, "changed_file", True)
    ]
    assert len({r.tags["dagster/run_key"] for r in launched}) == 1
    assert lake.read("features", [day]).height == rows
    assert tick(instance, defs, "landing_sensor", cursor)[0] == []  # and nothing more
