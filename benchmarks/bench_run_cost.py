"""Per-run cost as a table ages: the lake work of one daily ingest run, at the first partitions vs after
``N`` (1,000) daily partitions, each its own commit.

One run's lake work, as ``raw_events[D]`` does it: ``write_partitions`` of the day (one predicate
overwrite, 200 rows), then ``counts_and_newest``: the volume check's rows per partition (from the Delta
log's file statistics) and the freshness check's newest event (a read of the newest partition only), one
load of the log for both. Each run is
timed; "first" is the median of runs 2–11 (run 1 creates the table), "after" the median of the last 10.
Tables are created with ``delta.checkpointInterval = 20`` (``lake.TABLE_CONFIGURATION``), so loading one
replays a checkpoint and at most 20 commits; the daily ``table_maintenance`` adds a checkpoint too.

Info, side by side at the same two points: the full-table scan the checks used before
(``scan().group_by(ds).len()`` and ``max(timestamp)`` over every partition).
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time

import polars as pl

from benchmarks.common import Result, Table, goal, ratio, secs, temp_dir

START = dt.date(2023, 1, 1)
ROWS = 200


def _day_rows(day: dt.date, n: int = ROWS) -> pl.DataFrame:
    return pl.DataFrame({
        "ds": [day.isoformat()] * n, "id": [f"{day}-{i:05d}" for i in range(n)],
        "event_time": [dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=400 * i) for i in range(n)],
        "amount": [float(i) for i in range(n)]}, schema_overrides={"event_time": pl.Datetime("us")})


def _counts_and_newest(lake):
    if hasattr(lake, "counts_and_newest"):
        return lake.counts_and_newest("raw", "event_time")
    # the code before (a checkout of an older commit): rows per partition and the newest event by full scans
    return lake.partition_counts("raw"), lake.scan("raw").select(pl.col("event_time").max()).collect().item()


def _full_scan(lake) -> None:
    lake.scan("raw").group_by("ds").len().collect()
    lake.scan("raw").select(pl.col("event_time").max()).collect()


def bench(quick: bool = False) -> Result:
    from mlops_assets.lake import DeltaLake

    n = 60 if quick else 1_000
    k = 10 if not quick else 5
    per_run: list[float] = []
    scans: dict[str, list[float]] = {"first": [], "after": []}
    with temp_dir("run_cost") as home:
        lake = DeltaLake(root=str(home / "lake"))
        for i in range(n):
            day = START + dt.timedelta(days=i)
            rows = _day_rows(day)
            t = time.perf_counter()
            lake.write_partitions("raw", rows, [day.isoformat()], run_id=f"run-{i}")
            counts, newest = _counts_and_newest(lake)
            per_run.append(time.perf_counter() - t)
            if newest is None or counts.get(day.isoformat()) != ROWS:
                raise AssertionError(f"run {i}: counts {counts.get(day.isoformat())}, newest {newest}")
            if 1 <= i <= k or i >= n - k:
                t = time.perf_counter()
                _full_scan(lake)
                scans["first" if i <= k else "after"].append(time.perf_counter() - t)
        version = lake.version("raw")
        files = len(counts)
    first, after = statistics.median(per_run[1:k + 1]), statistics.median(per_run[-k:])
    scan_first, scan_after = statistics.median(scans["first"]), statistics.median(scans["after"])
    table = Table(f"one run's lake work (write + volume + freshness) as the table ages to {n:,} daily partitions "
                  f"({files:,} partitions, version {version})", ["", "first runs", f"after {n:,}", "after / first"])
    table.add("write_partitions + counts_and_newest", secs(first), secs(after), ratio(after, first))
    table.add("before: full-table scan for counts + max(event_time) (info)", secs(scan_first), secs(scan_after),
              ratio(scan_after, scan_first))
    table.notes.append(f"medians of {k} runs each; slowest run {secs(max(per_run))}, total {secs(sum(per_run))}")
    keys = {"run_cost.after_1000_vs_first": after / first, "run_cost.partitions": float(n),
            "run_cost.first_s": first, "run_cost.after_s": after}
    goals = [goal(f"run cost after {n:,} partitions vs the first", "<= 1.3x", ratio(after, first),
                  after / first <= 1.3)]
    data = {"partitions": n, "rows_per_partition": ROWS, "per_run_s": per_run, "first_s": first, "after_s": after,
            "full_scan_first_s": scan_first, "full_scan_after_s": scan_after}
    return Result("run_cost", [table], goals, data, keys)


if __name__ == "__main__":
    for tbl in bench("--quick" in sys.argv).tables:
        print(tbl.render(), end="\n\n")
