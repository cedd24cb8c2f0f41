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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.core.spec import BUNDLED_SPEC, DatasetSpec, parse_spec  # noqa: E402
from mlops_assets.monitoring.drift.methods import feature_drift  # noqa: E402
from mlops_assets.monitoring.drift.profile import build_reference_profile  # noqa: E402

EXTRA_NUMERIC = [
    "merchant_risk",
    "balance",
    "velocity_7d",
    "basket_items",
    "session_seconds",
    "ip_risk",
    "refund_rate",
    "device_age_days",
    "login_failures",
    "avg_ticket",
    "tenure_months",
    "discount_share",
]
# judged: 4 spec + 12 extra + 1 calendar numeric (two calendar columns are drift.exclude'd) + 3
# categorical = 20


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
            "basket_items": rng.poisson(2.5, n).astype(float) + rng.random(n),
            "session_seconds": rng.lognormal(4.0 + 2 * shift, 0.8, n),
            "ip_risk": rng.beta(1.5, 6 + 20 * shift, n),
            "refund_rate": rng.beta(1, 30, n),
            "device_age_days": rng.gamma(3.0, 120.0 * (1 + 3 * shift), n),
            "login_failures": rng.poisson(0.3, n).astype(float) + rng.random(n) * 0.1,
            "avg_ticket": rng.normal(60 + 40 * shift, 25, n),
            "tenure_months": rng.gamma(2.0, 18.0, n),
            "discount_share": rng.beta(2, 12 - 20 * shift, n),
            "merchant_category": rng.choice(
                [
                    "grocery",
                    "fuel",
                    "restaurant",
                    "electronics",
                    "travel",
                    "online_retail",
                    "gambling",
                    "pharmacy",
                ],
                n,
                p=[0.30, 0.15, 0.20, 0.08, 0.05, 0.15, 0.02, 0.05],
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
    # the columns both judge: the spec's drift.exclude (constant-within-day calendar columns) left
    # out of both
    numeric = [
        c for c in spec.numeric_features + spec.calendar_features if c not in spec.drift.exclude
    ]
    categorical = [c for c in spec.categorical_features if c not in spec.drift.exclude]
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
        num_method="wasserstein",
        cat_method="jensenshannon",
        num_threshold=spec.drift.numeric_threshold,
        cat_threshold=spec.drift.categorical_threshold,
        drift_share=spec.drift.share_drifted,
    )

    def evidently() -> dict:
        ref_ds = Dataset.from_pandas(reference.to_pandas(), data_definition=definition)
        cur_ds = Dataset.from_pandas(current.to_pandas(), data_definition=definition)
        return Report([preset]).run(current_data=cur_ds, reference_data=ref_ds).dict()

    t = time.perf_counter()
    warm = {"ref": reference.head(20_000), "cur": current.head(20_000)}
    Report([preset]).run(
        current_data=Dataset.from_pandas(warm["cur"].to_pandas(), data_definition=definition),
        reference_data=Dataset.from_pandas(warm["ref"].to_pandas(), data_definition=definition),
    )
    ev_first_s = (
        time.perf_counter() - t
    )  # warm-up on 20k rows: Evidently's lazy imports, not timed below
    ev_s, ev_result = _best_time(evidently, max(1, repeats - 2))
    ev_mb = (
        _peak_mb(evidently) if rows <= 200_000 else None
    )  # tracemalloc at 1M rows would take minutes

    # Agreement per column: ours (stored 5000-value sample) vs Evidently (the full reference).
    gaps: dict[str, float] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    ev_count = None
    thresholds = {
        **dict.fromkeys(numeric, spec.drift.numeric_threshold),
        **dict.fromkeys(categorical, spec.drift.categorical_threshold),
    }
    for m in ev_result["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            ev_count = int(m["value"]["count"])
        else:
            col, value = cfg["column"], float(m["value"])
            ours_col = ours_result["features"][col]
            gaps[col] = abs(ours_col["score"] - value)
            verdicts[col] = {
                "ours": bool(ours_col["drifted"]),
                "evidently": value >= thresholds[col],
                "ours_score": ours_col["score"],
                "evidently_score": value,
            }
    agree = [v["ours"] == v["evidently"] for v in verdicts.values()]

    return {
        "rows": rows,
        "columns": {"numeric": len(numeric), "categorical": len(categorical)},
        "profile_build_s": profile_s,
        "ours_s": ours_s,
        "ours_first_call_s": ours_first_s,
        "ours_peak_mb": ours_mb,
        "evidently_import_s": import_s,
        "evidently_s": ev_s,
        "evidently_warmup_20k_s": ev_first_s,
        "evidently_peak_mb": ev_mb,
        "speedup": ev_s / ours_s,
        "memory_ratio": ev_mb / ours_mb if ours_mb and ev_mb else None,
        "max_score_gap": max(gaps.values()),
        "drifted_ours": ours_result["n_drifted"],
        "drifted_evidently": ev_count,
        "verdicts": verdicts,
        "verdicts_equal": sum(agree) / len(agree),
        "profile_json_kb": len(json.dumps(profile)) / 1024,
    }


def print_table(r: dict) -> None:
    print(
        f"drift on {r['rows']:,} rows x {r['columns']['numeric']} numeric + "
        f"{r['columns']['categorical']} categorical (reference of the same size)"
    )
    print(f"{'':32}{'ours':>12}{'evidently':>12}{'ratio':>10}")
    print(
        f"{'time per partition (s)':32}{r['ours_s']:>12.3f}{r['evidently_s']:>12.3f}"
        f"{r['speedup']:>9.1f}x"
    )
    print(f"{'verdicts equal (share of columns)':32}{r['verdicts_equal']:>12.2f}")
    print(f"{'drifted columns':32}{r['drifted_ours']:>12}{r['drifted_evidently']:>12}")
    print(
        f"one-off: profile build {r['profile_build_s']:.3f} s "
        f"({r['profile_json_kb']:.0f} KB JSON), import evidently {r['evidently_import_s']:.2f} s"
    )
    print(
        "max |score gap| ours (5000-value sample) vs Evidently (full reference): "
        f"{r['max_score_gap']:.4f}"
    )


def bench(quick: bool = False):
    """The common runner's entry point (``python -m benchmarks drift``): 50k rows and fewer
    repeats with ``quick``. No goal is set for drift: the ratios are reported as info."""
    from benchmarks.common import Result, Table, goal, mb, ratio, secs

    r = run(rows=5_000, repeats=1) if quick else run(rows=1_000_000, repeats=3)
    t = Table(
        f"drift on {r['rows']:,} rows x {r['columns']['numeric']} numeric + "
        f"{r['columns']['categorical']} categorical (reference of the same size)",
        ["", "ours", "evidently (baseline)", "evidently / ours"],
    )
    t.add(
        "time per partition",
        secs(r["ours_s"]),
        secs(r["evidently_s"]),
        ratio(r["evidently_s"], r["ours_s"]),
    )
    t.add(
        "peak traced memory",
        mb(r["ours_peak_mb"]),
        mb(r["evidently_peak_mb"]),
        "—" if r["memory_ratio"] is None else f"{r['memory_ratio']:.1f}x",
    )
    t.add("drifted columns", r["drifted_ours"], r["drifted_evidently"], "")
    t.add(
        "verdicts equal, per column", f"{r['verdicts_equal']:.0%} of {len(r['verdicts'])}", "", ""
    )
    t.notes += [
        (
            f"one-off: profile build {secs(r['profile_build_s'])} ({r['profile_json_kb']:.0f} KB"
            f" JSON), import evidently {secs(r['evidently_import_s'])}, Evidently warm-up on 20k"
            f" rows {secs(r['evidently_warmup_20k_s'])}; ours first call"
            f" {secs(r['ours_first_call_s'])}"
        ),
        (
            "max |score gap| ours (5000-value sample) vs Evidently (full reference):"
            f" {r['max_score_gap']:.4f}"
        ),
        (
            "memory: tracemalloc peak of one call (numpy/pandas buffers, not polars' Rust"
            " allocations); Evidently's is not traced above 200k rows (minutes under tracemalloc)"
        ),
    ]
    goals = [
        goal(
            "Evidently / ours",
            ">= 50x",
            f"{r['speedup']:.1f}x ({secs(r['ours_s'])})",
            r["speedup"] >= 50,
        ),
        goal(
            "verdicts equal per column",
            "all",
            f"{r['verdicts_equal']:.0%}",
            r["verdicts_equal"] == 1.0,
        ),
    ]
    keys = {
        "drift.evidently_over_ours_1m": r["speedup"],
        "drift.verdicts_equal": r["verdicts_equal"],
        "drift.rows": float(r["rows"]),
    }
    return Result("drift", [t], goals, r, keys)


if __name__ == "__main__":
    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
