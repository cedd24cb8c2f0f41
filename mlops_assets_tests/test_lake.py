"""The Delta resource: exact partition replacement, commit metadata, retries, time travel."""

import json
import socket
import threading
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from mlops_assets.data.lake import COMMIT_APP_ID, DeltaLake, partition_predicate


def _rows(ds: str, n: int, value: float) -> pl.DataFrame:
    return pl.DataFrame({"ds": [ds] * n, "id": [f"{ds}-{i}" for i in range(n)], "v": [value] * n})


@pytest.fixture
def lake(tmp_path):
    return DeltaLake(root=str(tmp_path / "lake"))


def test_overwrite_replaces_exactly_the_partition(lake):
    lake.write_partitions(
        "t",
        pl.concat([_rows("2026-01-01", 3, 1.0), _rows("2026-01-02", 4, 2.0)]),
        ["2026-01-01", "2026-01-02"],
        run_id="run-a",
    )
    before = lake.read("t", ["2026-01-02"]).sort("id")
    v = lake.write_partitions("t", _rows("2026-01-01", 2, 9.0), ["2026-01-01"], run_id="run-b")
    again = lake.write_partitions("t", _rows("2026-01-01", 2, 9.0), ["2026-01-01"], run_id="run-c")
    assert again == v + 1
    assert (
        lake.read("t", ["2026-01-01"])
        .sort("id")
        .equals(_rows("2026-01-01", 2, 9.0).select(before.columns))
    )
    assert lake.read("t", ["2026-01-02"]).sort("id").equals(before)  # neighbour untouched
    # the previous version is intact (time travel)
    assert lake.read("t", ["2026-01-01"], version=0)["v"].to_list() == [1.0] * 3


def test_commit_metadata_names_run_and_partitions(lake):
    lake.write_partitions("t", _rows("2026-01-03", 1, 1.0), ["2026-01-03"], run_id="run-xyz")
    last = lake.history("t", 1)[0]
    assert last["dagster_run_id"] == "run-xyz" and last["partitions"] == "2026-01-03"
    assert DeltaTable(lake.uri("t")).transaction_version(COMMIT_APP_ID) == 0


def test_rows_outside_the_write_are_refused(lake):
    with pytest.raises(ValueError, match="outside the write"):
        lake.write_partitions("t", _rows("2026-01-05", 1, 1.0), ["2026-01-04"])
    assert not lake.exists("t")


def test_empty_frame_empties_the_partition(lake):
    lake.write_partitions(
        "t",
        pl.concat([_rows("2026-01-01", 2, 1.0), _rows("2026-01-02", 2, 1.0)]),
        ["2026-01-01", "2026-01-02"],
    )
    lake.write_partitions("t", _rows("2026-01-01", 0, 1.0), ["2026-01-01"])
    assert lake.partition_counts("t") == {"2026-01-02": 2}


def test_concurrent_commits_to_the_same_partition_are_retried_and_lose_nothing(lake):
    lake.write_partitions("t", _rows("2026-01-01", 1, 0.0), ["2026-01-01"])
    errors = []

    def writer(i: int):
        try:
            day = f"2026-02-{i + 1:02d}"  # distinct partitions …
            lake.write_partitions("t", _rows(day, 5, float(i)), [day])
            lake.write_partitions(
                "t", _rows("2026-01-01", 3, float(i)), ["2026-01-01"]
            )  # … and one shared
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = lake.partition_counts("t")
    assert all(counts[f"2026-02-{i + 1:02d}"] == 5 for i in range(6))
    assert counts["2026-01-01"] == 3  # exactly one writer's rows, never a mix or a duplicate
    assert lake.read("t", ["2026-01-01"])["v"].n_unique() == 1


def test_predicate_refuses_injection():
    assert partition_predicate(["2026-01-02", "2026-01-01"]) == "ds IN ('2026-01-01', '2026-01-02')"
    with pytest.raises(ValueError):
        partition_predicate(["2026-01-01' OR '1'='1"])


def test_read_missing_table_is_empty(lake):
    assert lake.read("nope").is_empty() and lake.version("nope") is None


def test_maintenance_compacts_vacuums_and_keeps_protected_versions(lake):
    for i in range(4):  # four versions of the same partition
        lake.write_partitions("t", _rows("2026-01-01", 5, float(i)), ["2026-01-01"])
    report = lake.maintain("t", retention_hours=0, keep_versions=[1])
    assert report["vacuumed_files"] >= 1 and report["kept_versions"] == [1]
    assert (
        lake.read("t", version=1)["v"].to_list() == [1.0] * 5
    )  # protected: time travel still works
    assert lake.read("t")["v"].to_list() == [3.0] * 5  # the latest is intact
    with pytest.raises(Exception):  # noqa: B017 - an unprotected old version lost its files
        lake.read("t", version=0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_object_store_errors_never_quote_a_credential():
    """object_store quotes the endpoint URL (``user:password@`` included) in its errors; the lake
    masks
    it and every secret storage option, keeps the exception type, and drops the unredacted chain."""
    options = {
        "AWS_ENDPOINT_URL": f"http://proxyuser:proxy-pass-4711@127.0.0.1:{_closed_port()}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY01",
        "AWS_SECRET_ACCESS_KEY": "secret-value-0815",
        "max_retries": "1",
    }  # refused: fail in ~0.1 s
    lake = DeltaLake(root="s3://bucket/prefix", storage_options_json=json.dumps(options))
    for call in (
        lambda: lake.exists("t"),
        lambda: lake.read("t"),
        lambda: lake.write_partitions("t", _rows("2026-01-01", 1, 1.0), ["2026-01-01"]),
    ):
        with pytest.raises(OSError) as failure:  # the type callers may catch, unchanged
            call()
        text = str(failure.value)
        assert (
            "proxy-pass-4711" not in text
            and "proxyuser" not in text
            and "http://***@127.0.0.1:" in text
        ), text
        assert "Connection refused" in text and "\x1b[" not in text
        assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_a_malformed_storage_options_value_is_refused_without_quoting_it():
    lake = DeltaLake(
        root="s3://bucket/prefix", storage_options_json='{"AWS_SECRET_ACCESS_KEY": "s3cr3t-xyz",}'
    )
    with pytest.raises(ValueError, match="not valid JSON") as failure:
        lake.exists("t")
    assert "s3cr3t" not in str(failure.value)
    with pytest.raises(ValueError, match="must be a JSON object"):
        DeltaLake(root="s3://bucket/prefix", storage_options_json='["s3cr3t-xyz"]').exists("t")


def _age_log(lake, table: str, days: float) -> None:
    """Make every entry of ``table``'s log look ``days`` old (its commits happened then)."""
    import os
    import time

    log = Path(lake.uri(table)) / "_delta_log"
    for entry in log.iterdir():
        os.utime(entry, (time.time() - days * 86400,) * 2)


def _log_entries(lake, table: str) -> list[str]:
    return sorted(
        p.name for p in (Path(lake.uri(table)) / "_delta_log").iterdir() if p.name[0].isdigit()
    )


def test_maintenance_checkpoints_so_loading_replays_a_short_log(lake):
    for i in range(5):
        lake.write_partitions("t", _rows("2026-01-01", 2, float(i)), ["2026-01-01"])
    report = lake.maintain("t", retention_hours=0, keep_versions=[2])
    log = Path(lake.uri("t")) / "_delta_log"
    last = json.loads((log / "_last_checkpoint").read_text())
    assert last["version"] == report["checkpoint_version"] == lake.version("t")
    assert report["log_entries_dropped"] == 0, "commits within the log retention are kept"
    assert (
        lake.read("t", version=2)["v"].to_list() == [2.0] * 2
    )  # kept: its files survive a 0-hour vacuum
    assert lake.read("t")["v"].to_list() == [4.0] * 2


def test_an_aged_log_is_dropped_but_every_kept_version_still_time_travels(lake):
    for i in range(45):  # 45 commits, two automatic checkpoints
        lake.write_partitions(
            "t", _rows(f"2026-01-{i % 28 + 1:02d}", 2, float(i)), [f"2026-01-{i % 28 + 1:02d}"]
        )
    _age_log(lake, "t", 40)  # committed 40 days ago: past the 30-day log retention
    report = lake.maintain(
        "t", retention_hours=10_000, keep_versions=[7, 30], log_retention_hours=30 * 24
    )
    assert report["lost"] == [] and report["log_entries_dropped"] >= 44
    entries = _log_entries(lake, "t")
    assert len(entries) <= 5, entries  # the checkpoints of 7, 30 and 44, and commit 44
    assert lake.read("t", ["2026-01-08"], version=7)["v"].to_list() == [7.0] * 2
    assert lake.read("t", ["2026-01-03"], version=30)["v"].to_list() == [30.0] * 2
    assert lake.read("t", ["2026-01-17"])["v"].to_list() == [44.0] * 2
    # a version nobody kept, older than the retention: gone
    with pytest.raises(DeltaError):
        lake.read("t", version=8)
    # 25 later commits (another automatic checkpoint) and a month later, a second maintenance: still
    # kept
    for i in range(45, 70):
        lake.write_partitions("t", _rows("2026-02-01", 1, float(i)), ["2026-02-01"])
    _age_log(lake, "t", 70)
    again = lake.maintain(
        "t", retention_hours=10_000, keep_versions=[7, 30], log_retention_hours=30 * 24
    )
    assert again["lost"] == [] and len(_log_entries(lake, "t")) <= 5
    assert lake.read("t", ["2026-01-08"], version=7)["v"].to_list() == [7.0] * 2
    assert lake.read("t", ["2026-02-01"])["v"].to_list() == [69.0]


def test_a_kept_version_the_log_no_longer_holds_is_reported_lost(lake):
    for i in range(25):
        lake.write_partitions("t", _rows("2026-01-01", 1, float(i)), ["2026-01-01"])
    _age_log(lake, "t", 40)
    lake.maintain("t", retention_hours=10_000)  # nobody kept version 3 then
    assert lake.maintain("t", retention_hours=10_000, keep_versions=[3])["lost"] == [3]


def test_maintenance_brings_an_older_table_to_the_table_settings(lake):
    from deltalake import write_deltalake

    from mlops_assets.data.lake import TABLE_CONFIGURATION

    write_deltalake(
        lake.uri("t"), _rows("2026-01-01", 2, 1.0).to_arrow(), partition_by=["ds"]
    )  # no settings
    report = lake.maintain("t", retention_hours=168)
    assert report["properties_set"] == sorted(TABLE_CONFIGURATION)
    assert DeltaTable(lake.uri("t")).metadata().configuration == TABLE_CONFIGURATION
    assert lake.maintain("t", retention_hours=168)["properties_set"] == []


def test_tables_are_created_with_a_short_checkpoint_interval(lake):
    from mlops_assets.data.lake import TABLE_CONFIGURATION

    lake.write_partitions("t", _rows("2026-01-01", 1, 1.0), ["2026-01-01"])
    assert DeltaTable(lake.uri("t")).metadata().configuration == TABLE_CONFIGURATION


def test_partition_counts_come_from_the_log_and_match_a_scan(lake):
    lake.write_partitions(
        "t",
        pl.concat(
            [_rows("2026-01-01", 3, 1.0), _rows("2026-01-02", 4, 2.0), _rows("2026-01-03", 1, 2.0)]
        ),
        ["2026-01-01", "2026-01-02", "2026-01-03"],
    )
    lake.write_partitions("t", _rows("2026-01-02", 6, 3.0), ["2026-01-02"])
    lake.write_partitions("t", _rows("2026-01-03", 0, 3.0), ["2026-01-03"])  # emptied
    scanned = dict(lake.scan("t").group_by("ds").len().collect().iter_rows())
    assert lake.partition_counts("t") == scanned == {"2026-01-01": 3, "2026-01-02": 6}
    assert lake.newest("t", "v") == 3.0, "the largest value of the newest partition with rows"
    assert lake.newest("missing", "v") is None and lake.partition_counts("missing") == {}


def test_the_load_after_a_write_sees_every_commit_since(lake, tmp_path):
    """The landing asset writes, then reads the log (volume, freshness) through the write's handle:
    that handle must see a commit another writer made in between, and be used once only."""
    lake.write_partitions("t", _rows("2026-01-01", 3, 1.0), ["2026-01-01"])
    lake.write_partitions(
        "t", _rows("2026-01-02", 2, 1.0), ["2026-01-02"]
    )  # written through a handle
    other = DeltaLake(root=lake.root)  # another process's writer
    other.write_partitions("t", _rows("2026-01-03", 4, 2.0), ["2026-01-03"])
    counts, newest = lake.counts_and_newest("t", "v")
    assert counts == {"2026-01-01": 3, "2026-01-02": 2, "2026-01-03": 4} and newest == 2.0
    assert lake.version("t") == other.version("t") == 2
    other.write_partitions("t", _rows("2026-01-03", 1, 3.0), ["2026-01-03"])
    assert lake.partition_counts("t")["2026-01-03"] == 1


def test_label_arrivals_the_log_no_longer_holds_still_reach_the_performance_sensor(lake):
    """The performance sensor finds new label arrivals in the log's commits after its cursor; once
    maintenance
    has dropped commits after the cursor, every arrival day counts (recomputed rather than
    missed)."""
    from mlops_assets.core.spec import load_spec
    from mlops_assets.monitoring.sensors import labelled_days

    spec = load_spec()
    ids = {d: [f"{d}-{i}" for i in range(3)] for d in ("2026-01-05", "2026-01-06", "2026-01-07")}
    lake.write_partitions(
        "scores",
        pl.DataFrame(
            {"ds": [d for d in ids for _ in ids[d]], spec.id: [i for d in ids for i in ids[d]]}
        ),
        list(ids),
    )
    for n, arrival in enumerate(
        ("2026-01-10", "2026-01-11", "2026-01-12")
    ):  # one label day per commit
        day = sorted(ids)[n]
        lake.write_partitions(
            "raw_labels", pl.DataFrame({"ds": [arrival] * 3, spec.labels.id: ids[day]}), [arrival]
        )
    assert labelled_days(lake, spec, 1) == (
        ["2026-01-12"],
        ["2026-01-07"],
    )  # the commit after version 1
    for _ in range(25):  # more commits, then a month passes and maintenance drops the aged log
        lake.write_partitions(
            "raw_labels",
            pl.DataFrame({"ds": ["2026-01-12"] * 3, spec.labels.id: ids["2026-01-07"]}),
            ["2026-01-12"],
        )
    _age_log(lake, "raw_labels", 40)
    assert lake.maintain("raw_labels", retention_hours=10_000)["log_entries_dropped"] > 0
    assert labelled_days(lake, spec, 1) == (["2026-01-10", "2026-01-11", "2026-01-12"], sorted(ids))


def test_a_kept_version_that_fails_to_load_for_another_reason_stops_maintenance_before_any_vacuum(
    lake,
):
    """Only a version the log no longer holds is 'lost' (and left to the vacuum); a corrupt
    checkpoint of a
    kept version is an error: its data files must not be vacuumed as if nobody kept it."""
    for i in range(5):
        lake.write_partitions("t", _rows("2026-01-01", 2, float(i)), ["2026-01-01"])
    assert lake.maintain("t", retention_hours=10_000, keep_versions=[2])["lost"] == []
    (Path(lake.uri("t")) / "_delta_log" / f"{2:020d}.checkpoint.parquet").write_bytes(b"garbage")
    files = sorted((Path(lake.uri("t")) / "ds=2026-01-01").iterdir())
    # deltalake's error, not a quiet "lost"
    with pytest.raises(Exception, match="footer"):
        lake.maintain("t", retention_hours=0, keep_versions=[2])
    assert sorted((Path(lake.uri("t")) / "ds=2026-01-01").iterdir()) == files, (
        "nothing was vacuumed"
    )
