"""The Delta resource: exact partition replacement, commit metadata, retries, time travel."""

import json
import socket
import threading
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from mlops_assets.lake import COMMIT_APP_ID, DeltaLake, partition_predicate


def _rows(ds: str, n: int, value: float) -> pl.DataFrame:
    return pl.DataFrame({"ds": [ds] * n, "id": [f"{ds}-{i}" for i in range(n)], "v": [value] * n})


@pytest.fixture
def lake(tmp_path):
    return DeltaLake(root=str(tmp_path / "lake"))


def test_overwrite_replaces_exactly_the_partition(lake):
    lake.write_partitions("t", pl.concat([_rows("2026-01-01", 3, 1.0), _rows("2026-01-02", 4, 2.0)]),
                          ["2026-01-01", "2026-01-02"], run_id="run-a")
    before = lake.read("t", ["2026-01-02"]).sort("id")
    v = lake.write_partitions("t", _rows("2026-01-01", 2, 9.0), ["2026-01-01"], run_id="run-b")
    again = lake.write_partitions("t", _rows("2026-01-01", 2, 9.0), ["2026-01-01"], run_id="run-c")
    assert again == v + 1
    assert lake.read("t", ["2026-01-01"]).sort("id").equals(_rows("2026-01-01", 2, 9.0).select(before.columns))
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
    lake.write_partitions("t", pl.concat([_rows("2026-01-01", 2, 1.0), _rows("2026-01-02", 2, 1.0)]),
                          ["2026-01-01", "2026-01-02"])
    lake.write_partitions("t", _rows("2026-01-01", 0, 1.0), ["2026-01-01"])
    assert lake.partition_counts("t") == {"2026-01-02": 2}


def test_concurrent_commits_to_the_same_partition_are_retried_and_lose_nothing(lake):
    lake.write_partitions("t", _rows("2026-01-01", 1, 0.0), ["2026-01-01"])
    errors = []

    def writer(i: int):
        try:
            day = f"2026-02-{i + 1:02d}"  # distinct partitions …
            lake.write_partitions("t", _rows(day, 5, float(i)), [day])
            lake.write_partitions("t", _rows("2026-01-01", 3, float(i)), ["2026-01-01"])  # … and one shared
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
    assert lake.read("t", version=1)["v"].to_list() == [1.0] * 5  # protected: time travel still works
    assert lake.read("t")["v"].to_list() == [3.0] * 5  # the latest is intact
    with pytest.raises(Exception):  # noqa: B017 - an unprotected old version lost its files
        lake.read("t", version=0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_object_store_errors_never_quote_a_credential():
    """object_store quotes the endpoint URL (``user:password@`` included) in its errors; the lake masks
    it and every secret storage option, keeps the exception type, and drops the unredacted chain."""
    options = {"AWS_ENDPOINT_URL": f"http://proxyuser:proxy-pass-4711@127.0.0.1:{_closed_port()}",
               "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY01",
               "AWS_SECRET_ACCESS_KEY": "secret-value-0815", "max_retries": "1"}  # refused: fail in ~0.1 s
    lake = DeltaLake(root="s3://bucket/prefix", storage_options_json=json.dumps(options))
    for call in (lambda: lake.exists("t"), lambda: lake.read("t"),
                 lambda: lake.write_partitions("t", _rows("2026-01-01", 1, 1.0), ["2026-01-01"])):
        with pytest.raises(OSError) as failure:  # the type callers may catch, unchanged
            call()
        text = str(failure.value)
        assert "proxy-pass-4711" not in text and "proxyuser" not in text and "http://***@127.0.0.1:" in text, text
        assert "Connection refused" in text and "\x1b[" not in text
        assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_a_malformed_storage_options_value_is_refused_without_quoting_it():
    lake = DeltaLake(root="s3://bucket/prefix", storage_options_json='{"AWS_SECRET_ACCESS_KEY": "s3cr3t-xyz",}')
    with pytest.raises(ValueError, match="not valid JSON") as failure:
        lake.exists("t")
    assert "s3cr3t" not in str(failure.value)
    with pytest.raises(ValueError, match="must be a JSON object"):
        DeltaLake(root="s3://bucket/prefix", storage_options_json='["s3cr3t-xyz"]').exists("t")


def test_maintenance_checkpoints_so_loading_replays_a_short_log(lake, tmp_path):
    for i in range(5):
        lake.write_partitions("t", _rows("2026-01-01", 2, float(i)), ["2026-01-01"])
    report = lake.maintain("t", retention_hours=0, keep_versions=[2])
    log = Path(lake.uri("t")) / "_delta_log"
    last = json.loads((log / "_last_checkpoint").read_text())
    assert last["version"] == report["checkpoint_version"] == lake.version("t")
    assert report["log_cleanup"] is False, "a table with kept versions keeps its log (time travel needs it)"
    assert lake.read("t", version=2)["v"].to_list() == [2.0] * 2
    assert lake.maintain("t", retention_hours=0)["log_cleanup"] is True


def test_tables_are_created_with_a_short_checkpoint_interval(lake):
    from mlops_assets.lake import TABLE_CONFIGURATION

    lake.write_partitions("t", _rows("2026-01-01", 1, 1.0), ["2026-01-01"])
    assert DeltaTable(lake.uri("t")).metadata().configuration == TABLE_CONFIGURATION


def test_partition_counts_come_from_the_log_and_match_a_scan(lake):
    lake.write_partitions("t", pl.concat([_rows("2026-01-01", 3, 1.0), _rows("2026-01-02", 4, 2.0),
                                          _rows("2026-01-03", 1, 2.0)]), ["2026-01-01", "2026-01-02", "2026-01-03"])
    lake.write_partitions("t", _rows("2026-01-02", 6, 3.0), ["2026-01-02"])
    lake.write_partitions("t", _rows("2026-01-03", 0, 3.0), ["2026-01-03"])  # emptied
    scanned = dict(lake.scan("t").group_by("ds").len().collect().iter_rows())
    assert lake.partition_counts("t") == scanned == {"2026-01-01": 3, "2026-01-02": 6}
    assert lake.newest("t", "v") == 3.0, "the largest value of the newest partition with rows"
    assert lake.newest("missing", "v") is None and lake.partition_counts("missing") == {}
