"""Per-run cost as a table ages: the lake work of one daily ingest run, at the first partitions
vs after ``N`` (1,000) daily partitions, each its own commit.

One run's lake work is what ``raw_events[D]`` does in a Dagster run (``_run``). Runs on a young
table (5 partitions) and on the aged one alternate, 25 each (side by side, so the machine's load
hits both alike): "first" is the young table's median, "after" the aged one's. Both tables live
as in production: after every run (one simulated day) the daily ``table_maintenance`` runs
(``DeltaLake.maintain``, untimed: it is its own job) — a checkpoint, then the log entries older
than the 30-day log retention dropped. Time is simulated: each run's new log entries are dated
its simulated day (their modification time, which is what the log retention reads); the last
runs, and the young table's, are dated the last days before now.

Info, side by side at the same two points: a full-table scan for the same counts and newest
event (``scan().group_by(ds).len()`` and ``max(timestamp)``), and the log length.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import polars as pl

from benchmarks.common import Result, Table, goal, ratio, secs, temp_dir

START = dt.date(2023, 1, 1)
ROWS = 200
YOUNG = 5  # partitions of the young table the aged one is compared with
DAY_S = 86_400
LOG_RETENTION_HOURS = 30 * 24  # the spec's default maintenance.log_retention_days


def _day_rows(day: dt.date, n: int = ROWS) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ds": [day.isoformat()] * n,
            "id": [f"{day}-{i:05d}" for i in range(n)],
            "event_time": [
                dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=400 * i)
                for i in range(n)
            ],
            "amount": [float(i) for i in range(n)],
        },
        schema_overrides={"event_time": pl.Datetime("us")},
    )


def _counts_and_newest(lake, table: str):
    if hasattr(lake, "counts_and_newest"):
        return lake.counts_and_newest(table, "event_time")
    # a checkout without counts_and_newest: rows per partition and the newest event by full
    # scans
    return (
        lake.partition_counts(table),
        lake.scan(table).select(pl.col("event_time").max()).collect().item(),
    )


def _full_scan(lake, table: str) -> None:
    lake.scan(table).group_by("ds").len().collect()
    lake.scan(table).select(pl.col("event_time").max()).collect()


def _run(maintained, table: str, day: dt.date, dated: float) -> float:
    """One run's lake work on ``table`` for ``day`` through a fresh resource like ``maintained``
    (the one the maintenance uses), then the day's maintenance; the run's wall time. The log
    entries the day wrote are dated ``dated`` (the simulated day, as epoch seconds).

    The run's own ``DeltaLake`` (each run gets its own, so the run loads the table's log),
    ``write_partitions`` of the day (one predicate overwrite, 200 rows), then
    ``counts_and_newest``: the volume check's rows per partition (from the Delta log's file
    statistics) and the freshness check's newest event (a read of the newest partition only),
    on the handle the write left (no second load)."""
    rows = _day_rows(day)
    t = time.perf_counter()
    lake = type(maintained)(root=maintained.root)  # the run's own resource
    lake.write_partitions(table, rows, [day.isoformat()], run_id=f"run-{day}")
    counts, newest = _counts_and_newest(lake, table)
    elapsed = time.perf_counter() - t
    if newest is None or counts.get(day.isoformat()) != ROWS:
        raise AssertionError(
            f"{table} {day}: counts {counts.get(day.isoformat())}, newest {newest}"
        )
    _date_new_entries(lake, table, dated)
    if hasattr(maintained, "maintain"):
        maintained.maintain(table, retention_hours=168, log_retention_hours=LOG_RETENTION_HOURS)
        # the checkpoint maintenance wrote: 03:00 next day
        _date_new_entries(maintained, table, dated + 3 * 3600)
    return elapsed


def _log(lake, table: str) -> Path:
    return Path(lake.uri(table)) / "_delta_log"


def _date_new_entries(lake, table: str, dated: float) -> None:
    """Date every log entry written since the benchmark began (modification time newer than an
    hour ago)."""
    fresh = time.time() - 3600
    for entry in _log(lake, table).iterdir():
        if entry.stat().st_mtime > fresh:
            os.utime(entry, (dated, dated))


def bench(quick: bool = False) -> Result:
    from mlops_assets.data.lake import DeltaLake

    n = 60 if quick else 1_000
    k = 5 if quick else 25
    first_day = time.time() - (n + k + 1) * DAY_S  # run i: first_day + i days; the last, yesterday

    def dated(i: int) -> float:
        return first_day + i * DAY_S

    with temp_dir("run_cost") as home:
        lake = DeltaLake(root=str(home / "lake"))
        # the table ages
        aging = [_run(lake, "raw", START + dt.timedelta(days=i), dated(i)) for i in range(n)]
        for i in range(YOUNG):  # the young table: created five days before the side-by-side runs
            _run(lake, "young", START + dt.timedelta(days=i), dated(n - YOUNG + i))
        # side by side, alternated: one more run on the young table, one on the aged table, k
        # times each
        young, aged, scan_young, scan_aged = [], [], [], []
        for j in range(k):
            young.append(_run(lake, "young", START + dt.timedelta(days=YOUNG + j), dated(n + j)))
            aged.append(_run(lake, "raw", START + dt.timedelta(days=n + j), dated(n + j)))
        # after the runs: a scan of 1,000 files between two runs would slow the next one
        for _ in range(k):
            scan_young.append(_timed(lambda: _full_scan(lake, "young")))
            scan_aged.append(_timed(lambda: _full_scan(lake, "raw")))
        version, files = lake.version("raw"), len(lake.partition_counts("raw"))
        log_young, log_aged = (sum(1 for _ in _log(lake, t).iterdir()) for t in ("young", "raw"))
    first, after = statistics.median(young), statistics.median(aged)
    s_first, s_after = statistics.median(scan_young), statistics.median(scan_aged)
    table = Table(
        f"one run's lake work (write + volume + freshness): a {YOUNG}-partition table vs one aged"
        f" to {files:,} daily partitions (version {version}), each maintained daily; medians of {k}"
        " alternated runs",
        ["", f"{YOUNG} partitions", f"{files:,} partitions", "aged / young"],
    )
    table.add("write_partitions + counts_and_newest", secs(first), secs(after), ratio(after, first))
    table.add(
        "before: full-table scan for counts + max(event_time) (info)",
        secs(s_first),
        secs(s_after),
        ratio(s_after, s_first),
    )
    table.add(
        "log entries after the runs (info)",
        str(log_young),
        str(log_aged),
        ratio(log_aged, log_young),
    )
    table.notes.append(
        f"while aging: runs 2–11 {secs(statistics.median(aging[1:11]))}, the last 10 "
        f"{secs(statistics.median(aging[-10:]))} (not side by side: machine load moves in between)"
    )
    keys = {
        "run_cost.after_1000_vs_first": after / first,
        "run_cost.partitions": float(n),
        "run_cost.first_s": first,
        "run_cost.after_s": after,
    }
    goals = [
        goal(
            f"run cost after {n:,} partitions vs the first",
            "<= 1.3x",
            f"{after / first:.2f}x",
            after / first <= 1.3,
        )
    ]
    data = {
        "partitions": n,
        "rows_per_partition": ROWS,
        "aging_s": aging,
        "young_s": young,
        "aged_s": aged,
        "full_scan_young_s": scan_young,
        "full_scan_aged_s": scan_aged,
        "log_entries_young": log_young,
        "log_entries_aged": log_aged,
    }
    return Result("run_cost", [table], goals, data, keys)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    for tbl in bench("--quick" in sys.argv).tables:
        print(tbl.render(), end="\n\n")
