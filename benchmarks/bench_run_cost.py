"""Per-run cost as a table ages: the lake work of one daily ingest run, at the first partitions vs after
``N`` (1,000) daily partitions, each its own commit.

One run's lake work, as ``raw_events[D]`` does it: ``write_partitions`` of the day (one predicate
overwrite, 200 rows), then ``counts_and_newest``: the volume check's rows per partition (from the Delta
log's file statistics) and the freshness check's newest event (a read of the newest partition only), one
load of the log for both. Each run is
timed; then runs on a young table (5 partitions) and on the aged one alternate, 15 each (side by side,
so the machine's load hits both alike): "first" is the young table's median, "after" the aged one's.
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
YOUNG = 5  # partitions of the young table the aged one is compared with


def _day_rows(day: dt.date, n: int = ROWS) -> pl.DataFrame:
    return pl.DataFrame({
        "ds": [day.isoformat()] * n, "id": [f"{day}-{i:05d}" for i in range(n)],
        "event_time": [dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=400 * i) for i in range(n)],
        "amount": [float(i) for i in range(n)]}, schema_overrides={"event_time": pl.Datetime("us")})


def _counts_and_newest(lake, table: str):
    if hasattr(lake, "counts_and_newest"):
        return lake.counts_and_newest(table, "event_time")
    # the code before (a checkout of an older commit): rows per partition and the newest event by full scans
    return lake.partition_counts(table), lake.scan(table).select(pl.col("event_time").max()).collect().item()


def _full_scan(lake, table: str) -> None:
    lake.scan(table).group_by("ds").len().collect()
    lake.scan(table).select(pl.col("event_time").max()).collect()


def _run(lake, table: str, day: dt.date) -> float:
    """One run's lake work on ``table`` for ``day``; its wall time."""
    rows = _day_rows(day)
    t = time.perf_counter()
    lake.write_partitions(table, rows, [day.isoformat()], run_id=f"run-{day}")
    counts, newest = _counts_and_newest(lake, table)
    elapsed = time.perf_counter() - t
    if newest is None or counts.get(day.isoformat()) != ROWS:
        raise AssertionError(f"{table} {day}: counts {counts.get(day.isoformat())}, newest {newest}")
    return elapsed


def bench(quick: bool = False) -> Result:
    from mlops_assets.lake import DeltaLake

    n = 60 if quick else 1_000
    k = 5 if quick else 15
    with temp_dir("run_cost") as home:
        lake = DeltaLake(root=str(home / "lake"))
        aging = [_run(lake, "raw", START + dt.timedelta(days=i)) for i in range(n)]  # the table ages
        for i in range(YOUNG):
            _run(lake, "young", START + dt.timedelta(days=i))
        # side by side, alternated: one more run on the young table, one on the aged table, k times each
        young, aged, scan_young, scan_aged = [], [], [], []
        for j in range(k):
            young.append(_run(lake, "young", START + dt.timedelta(days=YOUNG + j)))
            aged.append(_run(lake, "raw", START + dt.timedelta(days=n + j)))
            scan_young.append(_timed(lambda: _full_scan(lake, "young")))
            scan_aged.append(_timed(lambda: _full_scan(lake, "raw")))
        version, files = lake.version("raw"), len(lake.partition_counts("raw"))
    first, after = statistics.median(young), statistics.median(aged)
    s_first, s_after = statistics.median(scan_young), statistics.median(scan_aged)
    table = Table(f"one run's lake work (write + volume + freshness): a {YOUNG}-partition table vs one aged to "
                  f"{files:,} daily partitions (version {version}); medians of {k} alternated runs",
                  ["", f"{YOUNG} partitions", f"{files:,} partitions", "aged / young"])
    table.add("write_partitions + counts_and_newest", secs(first), secs(after), ratio(after, first))
    table.add("before: full-table scan for counts + max(event_time) (info)", secs(s_first), secs(s_after),
              ratio(s_after, s_first))
    table.notes.append(f"while aging: runs 2–11 {secs(statistics.median(aging[1:11]))}, the last 10 "
                       f"{secs(statistics.median(aging[-10:]))} (not side by side: machine load moves in between)")
    keys = {"run_cost.after_1000_vs_first": after / first, "run_cost.partitions": float(n),
            "run_cost.first_s": first, "run_cost.after_s": after}
    goals = [goal(f"run cost after {n:,} partitions vs the first", "<= 1.3x", ratio(after, first),
                  after / first <= 1.3)]
    data = {"partitions": n, "rows_per_partition": ROWS, "aging_s": aging, "young_s": young, "aged_s": aged,
            "full_scan_young_s": scan_young, "full_scan_aged_s": scan_aged}
    return Result("run_cost", [table], goals, data, keys)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    for tbl in bench("--quick" in sys.argv).tables:
        print(tbl.render(), end="\n\n")
