"""The landing zone is read only inside its root: links, folders posing as files, fifos, header-only
files and a wrong delimiter each get a named rejection (or a note), and the day's good files land.

Real landing folders, the real sensor, real Delta tables and a real Dagster instance.
"""

import datetime as dt
import os

import polars as pl
import pytest

from mlops_assets.data.contract import event_contract
from mlops_assets.data.ingest import ingest_partition
from mlops_assets.data.landing_scan import LandingCursor, scan_landing
from mlops_assets.data.readers import entry_kind, landing_files, landing_root
from mlops_assets.data.simulator import card_events, simulate
from mlops_assets.operations.runs import tick

from .conftest import DAY0, days, materialized, run_ingest

WINDOW = {"first_day": dt.date(2026, 1, 1), "last_day": dt.date(2026, 12, 31)}
D0, D1 = days(DAY0, 2)


def materialized_files(result) -> dict[str, dict]:
    """file name -> its entry of the ``files`` metadata of the run's ``raw_events``."""
    return {f["file"]: f for f in materialized(result)["raw_events"]["files"]}


def quarantined(lake, day: str) -> dict[str, dict]:
    return {r["file"]: r for r in lake.read("quarantine", [day]).to_dicts()}


def test_a_symlinked_day_folder_is_quarantined_by_the_sensor_run_and_never_read(
    platform, defs, instance, lake, tmp_path
):
    """Before: the sensor skipped the linked folder silently and a manual ingest read the files
    outside.
    """
    simulate(platform.landing.parent, DAY0, 1, seed=1)
    outside = tmp_path / "outside"
    simulate(
        outside, DAY0 + dt.timedelta(days=1), 1, seed=2
    )  # a valid day of events, outside the root
    (platform.landing / D1).symlink_to(outside / "events" / D1, target_is_directory=True)

    changes, _, notes = scan_landing(platform.landing, LandingCursor(), **WINDOW)
    assert [(c.day, c.reason) for c in changes] == [(D0, "new_partition"), (D1, "new_partition")]
    assert any(n.startswith(f"{D1}: the day folder is a symlink") for n in notes), notes

    launched, cursor, _ = tick(instance, defs, "landing_sensor", None)
    status = {r.partition_key: r.success for r in launched}
    assert status == {D0: True, D1: False}  # the linked day fails its contract_schema check
    q = quarantined(lake, D1)
    assert list(q) == [D1] and q[D1]["rule"] == "file_name" and q[D1]["row"] is None
    assert "symbolic link" in q[D1]["reason"] and str(outside) in q[D1]["reason"]
    assert lake.read("raw_events", [D1]).is_empty() and lake.read("features", [D1]).is_empty()
    linked = next(r for r in launched if r.partition_key == D1)
    assert materialized_files(linked.result)[D1]["kind"] == "symlink"

    # the same link: no run again (cursor), nor with a lost cursor (the recorded fingerprint)
    assert tick(instance, defs, "landing_sensor", cursor)[0] == []
    assert tick(instance, defs, "landing_sensor", None)[0] == []

    # a manual ingest of the day reads nothing outside the root either
    result = run_ingest(defs, instance, D1)
    assert not result.success and lake.read("raw_events", [D1]).is_empty()


def test_links_folders_and_fifos_inside_a_day_are_quarantined_and_the_good_file_lands(
    platform, defs, instance, lake, tmp_path
):
    """Before: a directory named x.csv (and a fifo) was skipped silently, with no quarantine row."""
    simulate(platform.landing.parent, DAY0, 1, seed=3)
    folder = platform.landing / D0
    good_rows = sum(pl.read_parquet(p).height for p in folder.glob("*.parquet"))
    (folder / "x.csv").mkdir()
    os.mkfifo(folder / "pipe.csv")  # reading it would block forever: it must never be opened
    elsewhere = tmp_path / "elsewhere.csv"
    card_events(DAY0, 20, seed=4).drop("is_fraud").write_csv(elsewhere)
    (folder / "linked.csv").symlink_to(elsewhere)

    notes = scan_landing(platform.landing, LandingCursor(), **WINDOW)[2]
    for name in ("x.csv", "pipe.csv", "linked.csv"):
        assert any(n.startswith(f"{D0}/{name}: ") and "not read" in n for n in notes), (name, notes)

    result = run_ingest(defs, instance, D0)
    assert not result.success  # contract_schema failed ...
    assert lake.read("raw_events", [D0]).height == good_rows  # ... and the good file's rows landed
    q = quarantined(lake, D0)
    assert {f: (r["rule"], r["row"]) for f, r in q.items()} == {
        "x.csv": ("not_a_file", None),
        "pipe.csv": ("not_a_file", None),
        "linked.csv": ("file_name", None),
    }
    assert "is a directory, not a regular file" in q["x.csv"]["reason"]
    assert "is a fifo, not a regular file" in q["pipe.csv"]["reason"]
    assert (
        "symbolic link" in q["linked.csv"]["reason"] and str(elsewhere) in q["linked.csv"]["reason"]
    )
    files = materialized_files(result)
    assert (files["x.csv"]["kind"], files["pipe.csv"]["kind"], files["linked.csv"]["kind"]) == (
        "directory",
        "fifo",
        "symlink",
    )
    assert files["x.csv"]["status"].startswith("rejected: ")


def test_a_header_only_file_is_zero_rows_with_a_note_and_the_day_lands(
    platform, defs, instance, lake
):
    """Before: 'dtype Null not supported in not operation', no file named, and nothing of the day
    landed.
    """
    simulate(platform.landing.parent, DAY0, 1, seed=5)
    folder = platform.landing / D0
    good = pl.read_parquet(next(folder.glob("*.parquet")))
    (folder / "events-empty.csv").write_text(",".join(good.columns) + "\n")
    good.head(0).write_parquet(folder / "events-empty.parquet")

    result = run_ingest(defs, instance, D0)
    assert result.success
    assert lake.read("raw_events", [D0]).height == good.height
    files = materialized_files(result)
    for name in ("events-empty.csv", "events-empty.parquet"):
        assert files[name]["rows"] == 0 and files[name]["status"] == "accepted"
        assert "header only" in files[name]["note"], files[name]
    assert lake.read("quarantine", [D0]).is_empty() if lake.exists("quarantine") else True


def test_a_wrong_delimiter_is_named_in_the_rejection(platform, defs, instance, lake):
    """Before: the reason was 'missing required column(s) ...', which hides the cause."""
    simulate(platform.landing.parent, DAY0, 1, seed=6)
    folder = platform.landing / D0
    good_rows = sum(pl.read_parquet(p).height for p in folder.glob("*.parquet"))
    frame = card_events(DAY0, 30, seed=6).drop("is_fraud")
    frame.write_csv(folder / "events-semicolon.csv", separator=";")
    # European decimals too: with ',' as delimiter these rows look ragged; the header says why
    (folder / "events-euro.csv").write_text(
        ";".join(frame.columns)
        + "\n"
        + ";".join(
            "12,50" if c == "amount" else str(v) for c, v in frame.row(0, named=True).items()
        )
        + "\n"
    )

    result = run_ingest(defs, instance, D0)
    assert not result.success
    assert lake.read("raw_events", [D0]).height == good_rows
    q = quarantined(lake, D0)
    for name in ("events-semicolon.csv", "events-euro.csv"):
        assert q[name]["rule"] == "unreadable"
        assert q[name]["reason"].startswith("wrong delimiter:") and "';'" in q[name]["reason"], q[
            name
        ]


def test_entries_are_classified_without_following_links(tmp_path):
    root = tmp_path / "real_root"
    (root / D0).mkdir(parents=True)
    (root / D0 / "a.csv").write_text("x\n1\n")
    linked_root = (
        tmp_path / "linked_root"
    )  # the configured root may itself be a link: it is resolved once
    linked_root.symlink_to(root, target_is_directory=True)
    listed = landing_files(linked_root, D0)
    assert [(f.name, f.kind) for f in listed] == [("a.csv", "file")] and listed[0].sha256
    assert landing_root(linked_root) == root.resolve()
    # a path whose real location is not under the root
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.csv").write_text("x\n")
    assert entry_kind(root.resolve(), other / "b.csv") == (
        "outside_root",
        str((other / "b.csv").resolve()),
    )
    # a day entry that is a plain file, not a folder
    (root / D1).write_text("not a folder")
    [entry] = landing_files(root, D1)
    assert (entry.name, entry.kind) == (D1, "file")


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_a_day_entry_that_is_not_a_real_folder_is_rejected_unread(kind, platform, tmp_path):
    landing = platform.landing
    landing.mkdir(parents=True)
    if kind == "file":
        (landing / D0).write_text("transaction_id\n1\n")
    else:
        target = tmp_path / "target"
        target.mkdir()
        (landing / D0).symlink_to(target, target_is_directory=True)
    result = ingest_partition(landing, D0, event_contract(platform.spec))
    assert result.accepted.is_empty()
    [row] = result.quarantine.to_dicts()
    assert row["file"] == D0 and row["rule"] == ("not_a_file" if kind == "file" else "file_name")
    assert f"day folder {D0}" in row["reason"]
