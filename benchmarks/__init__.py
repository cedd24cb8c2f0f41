"""The benchmark suite: ``python -m benchmarks [name ...] [--quick]``.

Speed and memory are measured here, never in timed tests: each benchmark prints its numbers
next to a baseline run side by side in the same process, as ratios, plus its goals
(PASS/MISS). Results also go to ``benchmarks/results/latest.json`` (git-ignored).

Each ``bench_<name>.py`` module has ``bench(quick: bool) -> common.Result``.
"""

# Run order; bench_drift goes last because it imports Evidently (heavy, and never unloaded).
BENCHMARKS = ("features", "ingest", "run_cost", "backfill", "import", "sensor", "scoring", "drift")
