"""Drift on one large partition: our numpy/polars ``feature_drift`` vs Evidently's DataDriftPreset.

Same data for both: a 200k-row reference and a 200k-row (mildly shifted) current partition,
10 numeric (4 spec + 3 calendar + 3 extra) and 3 categorical columns. Ours works from the
reference profile (built once, at training time; timed separately); Evidently needs the raw
reference, as pandas. Time is wall clock, best of ``repeats`` after one warm-up (the first
call's scipy / Evidently lazy imports are reported separately). Memory is the tracemalloc
peak of one call: it sees numpy and pandas buffers, not polars' (Rust) allocations.

    .venv/bin/python benchmarks/bench_drift.py [rows]
"""

from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import yaml

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.ml.drift import feature_drift  # noqa: E402
from mlops_assets.ml.drift_profile import build_reference_profile  # noqa: E402
from mlops_assets.spec import BUNDLED_SPEC, DatasetSpec, parse_spec  # noqa: E402

EXTRA_NUMERIC = ["merchant_risk", "balance", "velocity_7d"]


def bench_spec() -> DatasetSpec:
    data = yaml.safe_load(BUNDLED_SPEC.read_text())
    for col in EXTRA_NUMERIC:
        data["features"]["numeric"][col] = {}
    return parse_spec(data, "bench")


def synth(rng: np.random.Generator, n: int, shift: float = 0.0) -> pl.DataFrame:
    day = rng.integers(1, 8, n)
    return pl.DataFrame(
        {
            "amount": rng.lognormal(3.6 + shift, 1.1, n),
            "distance_from_home_km": rng.lognormal(2.5, 1.2, n),
            "card_age_days": rng.gamma(2.0, 400.0, n).round(),
            "tx_count_24h": rng.poisson(3.0 + 2 * shift, n).astype(float),
            "hour": rng.integers(0, 24, n).astype(float),
            "day_of_week": day.astype(float),
            "is_weekend": (day >= 6).astype(float),
            "merchant_risk": rng.beta(2, 8, n),
            "balance": rng.normal(1500, 600, n),
            "velocity_7d": rng.exponential(5 + 10 * shift, n),
            "merchant_category": rng.choice(
                ["grocery", "fuel", "restaurant", "electronics", "travel", "online_retail",
                 "gambling", "pharmacy"], n, p=[0.30, 0.15, 0.20, 0.08, 0.05, 0.15, 0.02, 0.05],
            ),
            "channel": rng.choice(["pos", "online", "atm"], n, p=[0.6 - shift, 0.32 + shift, 0.08]),
            "country": rng.choice(["home", "neighbour", "far"], n, p=[0.85, 0.10, 0.05]),
        }
    )


def _best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _peak_mb(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def run(rows: int = 200_000, repeats: int = 3) -> dict:
    """Time and memory of one partition's drift, ours vs Evidently; returns the numbers."""
    spec = bench_spec()
    numeric = spec.numeric_features + spec.calendar_features
    categorical = spec.categorical_features
    rng = np.random.default_rng(0)
    reference, current = synth(rng, rows), synth(rng, rows, shift=0.1)

    t = time.perf_counter()
    profile = build_reference_profile(reference, numeric, categorical)
    profile_s = time.perf_counter() - t

    def ours() -> dict:
        return feature_drift(profile, current, spec)

    t = time.perf_counter()
    ours()  # warm-up: lazy scipy import
    ours_first_s = time.perf_counter() - t
    ours_s, ours_result = _best_time(ours, repeats)
    ours_mb = _peak_mb(ours)

    t = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - t
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    preset = DataDriftPreset(
        num_method="wasserstein", cat_method="jensenshannon",
        num_threshold=spec.drift.numeric_threshold, cat_threshold=spec.drift.categorical_threshold,
        drift_share=spec.drift.share_drifted,
    )

    def evidently() -> dict:
        ref_ds = Dataset.from_pandas(reference.to_pandas(), data_definition=definition)
        cur_ds = Dataset.from_pandas(current.to_pandas(), data_definition=definition)
        return Report([preset]).run(current_data=cur_ds, reference_data=ref_ds).dict()

    t = time.perf_counter()
    evidently()  # warm-up
    ev_first_s = time.perf_counter() - t
    ev_s, ev_result = _best_time(evidently, max(1, repeats - 1))
    ev_mb = _peak_mb(evidently)

    # Agreement: ours (stored 5000-value sample) vs Evidently (full 200k reference).
    gaps: dict[str, float] = {}
    ev_count = None
    for m in ev_result["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            ev_count = int(m["value"]["count"])
        else:
            gaps[cfg["column"]] = abs(ours_result["features"][cfg["column"]]["score"] - m["value"])

    return {
        "rows": rows,
        "columns": {"numeric": len(numeric), "categorical": len(categorical)},
        "profile_build_s": profile_s,
        "ours_s": ours_s,
        "ours_first_call_s": ours_first_s,
        "ours_peak_mb": ours_mb,
        "evidently_import_s": import_s,
        "evidently_s": ev_s,
        "evidently_first_call_s": ev_first_s,
        "evidently_peak_mb": ev_mb,
        "speedup": ev_s / ours_s,
        "memory_ratio": ev_mb / ours_mb if ours_mb else float("inf"),
        "max_score_gap": max(gaps.values()),
        "drifted_ours": ours_result["n_drifted"],
        "drifted_evidently": ev_count,
        "profile_json_kb": len(json.dumps(profile)) / 1024,
    }


def print_table(r: dict) -> None:
    print(f"drift on {r['rows']:,} rows x {r['columns']['numeric']} numeric + "
          f"{r['columns']['categorical']} categorical (reference of the same size)")
    print(f"{'':32}{'ours':>12}{'evidently':>12}{'ratio':>10}")
    print(f"{'time per partition (s)':32}{r['ours_s']:>12.3f}{r['evidently_s']:>12.3f}"
          f"{r['speedup']:>9.1f}x")
    first_ratio = r["evidently_first_call_s"] / r["ours_first_call_s"]
    print(f"{'first call (s)':32}{r['ours_first_call_s']:>12.3f}"
          f"{r['evidently_first_call_s']:>12.3f}{first_ratio:>9.1f}x")
    print(f"{'peak traced memory (MB)':32}{r['ours_peak_mb']:>12.1f}{r['evidently_peak_mb']:>12.1f}"
          f"{r['memory_ratio']:>9.1f}x")
    print(f"{'drifted columns':32}{r['drifted_ours']:>12}{r['drifted_evidently']:>12}")
    print(f"one-off: profile build {r['profile_build_s']:.3f} s "
          f"({r['profile_json_kb']:.0f} KB JSON), import evidently {r['evidently_import_s']:.2f} s")
    print(f"max |score gap| ours (5000-value sample) vs Evidently (full reference): "
          f"{r['max_score_gap']:.4f}")


def bench(quick: bool = False):
    """The common runner's entry point (``python -m benchmarks drift``): 50k rows and fewer
    repeats with ``quick``. No goal is set for drift: the ratios are reported as info."""
    from benchmarks.common import Result, Table, goal, mb, ratio, secs

    r = run(rows=50_000, repeats=1) if quick else run()
    t = Table(f"drift on {r['rows']:,} rows x {r['columns']['numeric']} numeric + "
              f"{r['columns']['categorical']} categorical (reference of the same size)",
              ["", "ours", "evidently (baseline)", "evidently / ours"])
    t.add("time per partition", secs(r["ours_s"]), secs(r["evidently_s"]), ratio(r["evidently_s"], r["ours_s"]))
    t.add("first call", secs(r["ours_first_call_s"]), secs(r["evidently_first_call_s"]),
          ratio(r["evidently_first_call_s"], r["ours_first_call_s"]))
    t.add("peak traced memory", mb(r["ours_peak_mb"]), mb(r["evidently_peak_mb"]), f"{r['memory_ratio']:.1f}x")
    t.add("drifted columns", r["drifted_ours"], r["drifted_evidently"], "")
    t.notes += [
        f"one-off: profile build {secs(r['profile_build_s'])} ({r['profile_json_kb']:.0f} KB JSON), "
        f"import evidently {secs(r['evidently_import_s'])}",
        f"max |score gap| ours (5000-value sample) vs Evidently (full reference): {r['max_score_gap']:.4f}",
        "memory: tracemalloc peak of one call (numpy/pandas buffers, not polars' Rust allocations)",
    ]
    goals = [
        goal("drift speed vs Evidently", "info", f"{r['speedup']:.1f}x faster ({secs(r['ours_s'])})", None),
        goal("drifted columns agree with Evidently", "same count",
             f"{r['drifted_ours']} vs {r['drifted_evidently']}", r["drifted_ours"] == r["drifted_evidently"]),
    ]
    return Result("drift", [t], goals, r)


if __name__ == "__main__":
    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
