"""Range backfill of N daily partitions of the ``ingest`` job: ONE single-run backfill vs N runs.

* single run: ``job.execute_in_process(tags={dagster/asset_partition_range_start/_end})`` —
  what a backfill launches for assets with ``BackfillPolicy.single_run()``;
* baseline: ``job.execute_in_process(partition_key=…)`` once per partition, in order.

Both on the same simulated landing data, each in its own fresh ``$MLOPS_HOME`` and SQLite
instance, in this process; the features (and raw_events) tables of both homes must be
identical. Goal: single run ≥ 5× faster. N = 90 (5 with --quick); the method is in ``bench``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import (
    QUIET_RUN_CONFIG,
    Result,
    Table,
    goal,
    project_env,
    ratio,
    secs,
    temp_dir,
)

SEED = 0
GOAL_SPEEDUP = 5.0


def _start(n: int) -> dt.date:
    """A Monday early in 2026 (inside the spec's partitions); earlier if today is too close."""
    start = dt.date(2026, 3, 2)
    latest = dt.date.today() - dt.timedelta(days=n + 2)
    while start > latest:
        start -= dt.timedelta(days=7)
    return start


def _keys(start: dt.date, n: int) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]


def _home(root: Path, name: str, landing: Path) -> Path:
    home = root / name
    shutil.copytree(landing, home / "landing")  # copy2: contents and mtimes
    (home / "dagster").mkdir(parents=True)
    return home


def _ingest(home: Path, keys: list[str], mode: str) -> dict[str, Any]:
    """Run the ingest job over ``keys`` in ``home``; returns timings and the tables written."""
    from dagster import AssetKey, instance_for_test

    from mlops_assets.core.platform import Platform
    from mlops_assets.core.vocabulary import Job, RunTag
    from mlops_assets.data.lake import DeltaLake
    from mlops_assets.location.build import build_definitions

    with project_env(MLOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster")):
        platform = Platform.from_env()
        defs = build_definitions(platform)
        job = defs.resolve_job_def(Job.INGEST)
        per_run: list[float] = []
        with instance_for_test(temp_dir=str(home / "dagster")) as instance:
            t0 = time.perf_counter()
            if mode == "range":
                tags = {RunTag.RANGE_START: keys[0], RunTag.RANGE_END: keys[-1]}
                result = job.execute_in_process(
                    instance=instance, tags=tags, run_config=QUIET_RUN_CONFIG, raise_on_error=False
                )
                if not result.success:
                    raise RuntimeError(f"single-run backfill {keys[0]}..{keys[-1]} failed")
            else:
                for key in keys:
                    t = time.perf_counter()
                    result = job.execute_in_process(
                        instance=instance,
                        partition_key=key,
                        run_config=QUIET_RUN_CONFIG,
                        raise_on_error=False,
                    )
                    per_run.append(time.perf_counter() - t)
                    if not result.success:
                        raise RuntimeError(f"per-partition run {key} failed")
            seconds = time.perf_counter() - t0
            last = instance.get_runs(limit=1)[0]
            events = Counter(
                e.dagster_event.event_type_value if e.dagster_event else "LOG (ours)"
                for e in instance.all_logs(last.run_id)
            )
            materialized = sorted(instance.get_materialized_partitions(AssetKey("features")))
            runs = len(instance.get_runs())
        lake = DeltaLake(root=str(platform.home.lake))
        tables = {name: _sorted(lake.read(name)) for name in ("features", "raw_events")}
    return {
        "seconds": seconds,
        "per_run": per_run,
        "materialized": materialized,
        "runs": runs,
        "tables": tables,
        "events": dict(events),
    }


def _pure(home: Path, keys: list[str]) -> list[float]:
    """The ingest job's lake and contract work for each of ``keys``, one partition at a time,
    without Dagster: the calls the ``raw_events`` and ``features`` bodies make (contract, write,
    quarantine, volume and freshness, features). Seconds per partition."""
    import datetime as dt_

    import polars as pl

    from mlops_assets.core.platform import Platform
    from mlops_assets.data.contract import event_contract
    from mlops_assets.data.contract_checks import partition_verdicts
    from mlops_assets.data.features import compute_features, input_columns
    from mlops_assets.data.ingest import ingest_range
    from mlops_assets.data.lake import PARTITION_COLUMN, DeltaLake

    with project_env(MLOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster")):
        platform = Platform.from_env()
        spec, contract = platform.spec, event_contract(platform.spec)
        out = []
        for key in keys:
            # a fresh resource per run, as Dagster gives each run
            lake = DeltaLake(root=str(platform.home.lake))
            t = time.perf_counter()
            ingested = ingest_range(platform.landing, [key], contract)
            lake.write_partitions("raw_events", ingested.accepted, [key], run_id="pure")
            lake.append(
                "quarantine",
                ingested.quarantine("raw_events", "pure", dt_.datetime.now()),
                run_id="pure",
            )
            counts, _ = lake.counts_and_newest("raw_events", contract.timestamp)
            partition_verdicts(ingested.results, contract, "events", spec, counts)
            raw = (
                lake.scan("raw_events")
                .filter(pl.col(PARTITION_COLUMN).is_in([key]))
                .select(input_columns(spec))
                .collect()
            )
            lake.write_partitions("features", compute_features(raw, spec), [key], run_id="pure")
            out.append(time.perf_counter() - t)
    return out


def _sorted(frame):
    cols = sorted(frame.columns)
    return frame.select(cols).sort(cols) if not frame.is_empty() else frame


def bench(quick: bool = False) -> Result:
    """Same landing data for both modes (``simulator.simulate(landing, start, N, seed=0)``
    written once and copied, mtimes kept), each mode in its own fresh temp ``$MLOPS_HOME`` and
    its own ``instance_for_test`` (SQLite). A one-partition warm-up run in a throwaway home comes
    first (imports, Delta/SQLite first use), so neither mode pays one-off costs; the single run
    is done twice, before and after the per-partition runs (fresh home each), and their mean is
    compared, so load drift on a shared machine hits both modes alike. The features (and
    raw_events) tables of both homes must be identical (all columns, sorted). Dagster's console
    logger is set to ERROR for every run (the event log is unchanged). The simulator has no knob
    for the daily volume (~3,000 rows/day)."""
    from mlops_assets.data.simulator import simulate

    n = 5 if quick else 90
    start = _start(n)
    keys = _keys(start, n)
    with temp_dir("backfill") as root:
        landing = root / "template" / "landing"
        t = time.perf_counter()
        simulate(landing, start, n, seed=SEED)
        simulate_s = time.perf_counter() - t

        warm_home = root / "warmup"
        shutil.copytree(landing / "events" / keys[0], warm_home / "landing" / "events" / keys[0])
        (warm_home / "dagster").mkdir()
        warm = _ingest(warm_home, keys[:1], "single")

        # The single run goes before AND after the per-partition runs (fresh homes each), so
        # load drift on a shared machine hits both modes alike; their mean is compared.
        single = _ingest(_home(root, "range", landing), keys, "range")
        per = _ingest(_home(root, "per_partition", landing), keys, "single")
        again = _ingest(_home(root, "range_again", landing), keys, "range")
        pure = _pure(_home(root, "pure", landing), keys[: min(n, 20)])

    same = {
        name: (
            single["tables"][name].equals(per["tables"][name])
            and again["tables"][name].equals(per["tables"][name])
        )
        for name in ("features", "raw_events")
    }
    rows = {name: single["tables"][name].height for name in ("features", "raw_events")}
    complete = (
        single["materialized"] == keys
        and per["materialized"] == keys
        and again["materialized"] == keys
    )
    single_s = (single["seconds"] + again["seconds"]) / 2
    speedup = per["seconds"] / single_s
    runs = per["per_run"]
    k = min(10, len(runs) // 2)
    first_k, last_k = statistics.mean(runs[:k]), statistics.mean(runs[-k:])

    per_run_median, pure_median = (
        statistics.median(runs[1:] or runs),
        statistics.median(pure[1:] or pure),
    )
    overhead = per_run_median - pure_median
    table = Table(
        f"ingest backfill of {n} daily partitions {keys[0]}..{keys[-1]} "
        f"({rows['features']:,} feature rows, {rows['raw_events']:,} raw rows)",
        ["mode", "runs", "seconds", "per partition", "× single run"],
    )
    table.add(
        "ONE single-run backfill (range tags)",
        single["runs"],
        secs(single_s),
        secs(single_s / n),
        "1.0x",
    )
    table.add(
        f"{n} per-partition runs (baseline)",
        per["runs"],
        secs(per["seconds"]),
        secs(per["seconds"] / n),
        ratio(per["seconds"], single_s),
    )
    table.add(
        f"the same work without Dagster, {len(pure)} partitions (info)",
        "—",
        secs(sum(pure)),
        secs(pure_median),
        "—",
    )
    table.notes += [
        (
            f"one partition through Dagster: {secs(per_run_median)} per run (median) vs"
            f" {secs(pure_median)} for the same calls without it: {secs(overhead)} per run is"
            " Dagster's (run and step events, check evaluations, materialisations in the SQLite"
            " event log)"
        ),
        f"events one per-partition run writes: {sum(per['events'].values())} — "
        + ", ".join(f"{k} {v}" for k, v in sorted(per["events"].items(), key=lambda kv: -kv[1])),
        (
            f"single run: mean of {secs(single['seconds'])} (before) and {secs(again['seconds'])}"
            " (after the per-partition runs), each in its own fresh home and instance"
        ),
        (
            f"per-partition run time: first {k} runs {secs(first_k)} each, last {k} {secs(last_k)}"
            f" each (min {secs(min(runs))}, max {secs(max(runs))}); warm-up run"
            f" {secs(warm['seconds'])}; simulating the landing data {secs(simulate_s)}"
        ),
        (
            f"features identical: {same['features']}, raw_events identical: {same['raw_events']}; "
            f"all {n} partitions materialized in both: {complete}"
        ),
    ]
    goals = [
        goal(
            f"single-run vs {n} runs speedup",
            f">= {GOAL_SPEEDUP:g}x",
            f"{speedup:.1f}x ({secs(single_s)} vs {secs(per['seconds'])})",
            speedup >= GOAL_SPEEDUP,
        ),
        goal(
            "identical features tables",
            "identical",
            "identical" if same["features"] and complete else "DIFFERENT",
            same["features"] and complete,
        ),
    ]
    data = {
        "partitions": n,
        "first": keys[0],
        "last": keys[-1],
        "seed": SEED,
        "single_run_s": single_s,
        "single_run_samples_s": [single["seconds"], again["seconds"]],
        "per_partition_total_s": per["seconds"],
        "per_partition_runs_s": runs,
        "speedup": speedup,
        "warmup_s": warm["seconds"],
        "simulate_s": simulate_s,
        "rows": rows,
        "identical": same,
        "all_partitions_materialized": complete,
        "pure_per_partition_s": pure,
        "events_per_partition_run": per["events"],
    }
    return Result(
        "backfill",
        [table],
        goals,
        data,
        {
            "backfill.per_partition_over_single_run": speedup,
            "backfill.partitions": float(n),
            "backfill.dagster_s_per_run": overhead,
            "backfill.pure_s_per_partition": pure_median,
        },
    )


if __name__ == "__main__":
    res = bench("--quick" in sys.argv)
    for tbl in res.tables:
        print(tbl.render())
