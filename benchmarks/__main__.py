"""Run the benchmark suite: ``.venv/bin/python -m benchmarks [name ...] [--quick]``."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
import time
import traceback
import warnings
from importlib import metadata

from benchmarks import BENCHMARKS
from benchmarks.common import RESULTS_DIR, Goal, Result, machine_info


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pkg in ("dagster", "polars", "deltalake", "evidently"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _status(g: Goal) -> str:
    return "info" if g.passed is None else ("PASS" if g.passed else "MISS")


def print_summary(results: dict[str, Result | BaseException], elapsed: dict[str, float]) -> None:
    rows = [("benchmark", "goal", "target", "measured", "")]
    for name, res in results.items():
        if isinstance(res, BaseException):
            message = " ".join(f"{type(res).__name__}: {res}".split())
            rows.append((name, "(benchmark failed)", "", message[:70], "ERROR"))
            continue
        for g in res.goals:
            rows.append((name, g.name, g.target, g.measured, _status(g)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    print("=" * (sum(widths) + 8))
    print("SUMMARY")
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(
        "  ".join(f"{k} {v:.0f} s" for k, v in elapsed.items())
        + f"  (total {sum(elapsed.values()):.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller workloads (CI-sized, ~3 minutes in all)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a goal is missed (not only on errors)"
    )
    parser.add_argument(
        "--json", default=str(RESULTS_DIR / "latest.json"), help="where to write the results"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    names = [n for n in BENCHMARKS if n in args.names] if args.names else list(BENCHMARKS)

    # Library chatter (Dagster beta/preview notices, deprecations) is not a benchmark result.
    warnings.simplefilter("ignore")
    started = dt.datetime.now(dt.UTC)
    info = {**machine_info(), "versions": _versions()}
    print(
        f"benchmarks {' '.join(names)}{' (quick)' if args.quick else ''} — {info['cpus']} CPUs, "
        f"load {info.get('load_avg_1m', float('nan')):.1f}, python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v),
        flush=True,
    )

    results: dict[str, Result | BaseException] = {}
    elapsed: dict[str, float] = {}
    for name in names:
        print(f"\n### {name}", flush=True)
        t = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            res = module.bench(quick=args.quick)
            results[name] = res
            for table in res.tables:
                print(table.render(), end="\n\n", flush=True)
        except Exception as err:  # one broken benchmark must not hide the others
            traceback.print_exc()
            results[name] = err
        elapsed[name] = time.perf_counter() - t
        print(f"({name}: {elapsed[name]:.0f} s)", flush=True)

    print()
    print_summary(results, elapsed)

    doc = {
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": info,
        "elapsed_s": elapsed,
        # the headline figures, one flat mapping ("scoring.asset_vs_floor": 1.02, ...): each a ratio
        # (or a measurement) taken side by side in this run
        "keys": {
            k: v for r in results.values() if isinstance(r, Result) for k, v in r.keys.items()
        },
        "benchmarks": {
            name: (
                {"error": f"{type(r).__name__}: {r}"}
                if isinstance(r, BaseException)
                else r.to_json()
            )
            for name, r in results.items()
        },
    }
    from pathlib import Path

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"results written to {out}")

    failed = any(isinstance(r, BaseException) for r in results.values())
    missed = any(
        g.passed is False for r in results.values() if isinstance(r, Result) for g in r.goals
    )
    return 1 if failed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
