"""Rules over estimated performance (pure): the table rows, reconciliation with the realised metric,
whether
the estimator is trustworthy, and when an estimate below the guard floor should act.

* ``estimated_performance`` rows: one per (day, model version, metric).
* reconciliation (``estimation_reconciliation`` rows, and two columns of the ``performance``
  table): when a
  day's labels mature, each estimate beside the realised metric of the same version on that day, and
  |estimate − realised|.
* trust: the version's latest ``estimation.trust_days`` reconciled days (labelled coverage ≥
  ``MIN_COVERAGE``) of the primary metric; trustworthy when their median error ≤
  ``estimation.tolerance``.
  No reconciled day yet: not (yet) trustworthy — the guard waits for evidence.
* floor: the estimated primary metric below (or, for an error metric, above) ``guard.floor`` on
  ``estimation.consecutive_days`` consecutive days ending at the latest estimated day.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from dataclasses import dataclass

import polars as pl

from mlops_assets.core.metrics_catalog import higher_is_better, primary_metric
from mlops_assets.core.spec import DatasetSpec

MIN_COVERAGE = (
    0.8  # a day counts as reconciled when this share of its rows is labelled (as the guard)
)

ESTIMATE_SCHEMA = {
    "ds": pl.String,
    "model_version": pl.Int64,
    "metric": pl.String,
    "estimate": pl.Float64,
    "rows": pl.Int64,
    "estimator": pl.String,
    "primary": pl.Boolean,
}
RECONCILIATION_SCHEMA = {
    "ds": pl.String,
    "model_version": pl.Int64,
    "metric": pl.String,
    "estimate": pl.Float64,
    "realised": pl.Float64,
    "abs_error": pl.Float64,
    "labelled_rows": pl.Int64,
    "coverage": pl.Float64,
}
PERFORMANCE_COLUMNS = {"estimated_primary": pl.Float64, "estimate_abs_error": pl.Float64}


def estimate_rows(
    day: str, version: int, estimates: dict, rows: int, estimator: str, spec: DatasetSpec
) -> list[dict]:
    metric = primary_metric(spec)
    return [
        {
            "ds": day,
            "model_version": version,
            "metric": m,
            "estimate": float(v),
            "rows": rows,
            "estimator": estimator,
            "primary": m == metric,
        }
        for m, v in sorted(estimates.items())
        if v is not None
    ]


def estimate_table(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ESTIMATE_SCHEMA)


def reconcile(performance: pl.DataFrame, estimates: pl.DataFrame) -> pl.DataFrame:
    """Reconciliation rows: every estimate of a (day, version) the ``performance`` rows judge,
    beside the
    realised value of the same metric (from the rows' ``metrics`` JSON; null when not computed
    there)."""
    if performance.is_empty() or estimates.is_empty():
        return pl.DataFrame(schema=RECONCILIATION_SCHEMA)
    perf = {(r["ds"], int(r["model_version"])): r for r in performance.iter_rows(named=True)}
    out = []
    for e in estimates.sort("ds", "model_version", "metric").iter_rows(named=True):
        p = perf.get((e["ds"], int(e["model_version"])))
        if p is None:
            continue
        realised = json.loads(p["metrics"] or "{}").get(e["metric"])
        realised = (
            float(realised)
            if isinstance(realised, int | float) and not isinstance(realised, bool)
            else None
        )
        out.append(
            {
                "ds": e["ds"],
                "model_version": e["model_version"],
                "metric": e["metric"],
                "estimate": e["estimate"],
                "realised": realised,
                "abs_error": abs(e["estimate"] - realised) if realised is not None else None,
                "labelled_rows": p["labelled_rows"],
                "coverage": p["coverage"],
            }
        )
    return pl.DataFrame(out, schema=RECONCILIATION_SCHEMA)


def with_estimates(performance: pl.DataFrame, reconciliation: pl.DataFrame) -> pl.DataFrame:
    """The ``performance`` rows with the estimate of their primary metric beside it (null when
    none).
    """
    mine = reconciliation.select(
        "ds",
        "model_version",
        pl.col("metric"),
        pl.col("estimate").alias("estimated_primary"),
        pl.col("abs_error").alias("estimate_abs_error"),
    )
    joined = performance.drop(list(PERFORMANCE_COLUMNS), strict=False).join(
        mine, on=["ds", "model_version", "metric"], how="left", maintain_order="left"
    )
    return joined.with_columns(*(pl.col(c).cast(t) for c, t in PERFORMANCE_COLUMNS.items()))


@dataclass(frozen=True)
class Trust:
    trusted: bool
    median_error: float | None
    days: tuple[str, ...]
    reason: str


def estimator_trust(reconciliation: pl.DataFrame, spec: DatasetSpec, version: int) -> Trust:
    """Whether ``version``'s estimator has been right lately (see the module docstring)."""
    metric, e = primary_metric(spec), spec.estimation
    recent = (
        (
            reconciliation.filter(
                (pl.col("model_version") == version)
                & (pl.col("metric") == metric)
                & (pl.col("coverage") >= MIN_COVERAGE)
                & pl.col("abs_error").is_not_null()
            )
            .sort("ds")
            .tail(e.trust_days)
        )
        if not reconciliation.is_empty()
        else reconciliation
    )
    if recent.is_empty():
        return Trust(
            False,
            None,
            (),
            f"v{version}: no reconciled day of {metric} yet: the estimator is unproven",
        )
    error, days = (
        float(statistics.median(recent["abs_error"].to_list())),
        tuple(recent["ds"].to_list()),
    )
    ok = error <= e.tolerance
    return Trust(
        ok,
        error,
        days,
        f"v{version}: median |estimate - realised| of {metric} {error:.3f} over "
        f"{days[0]}..{days[-1]} is {'within' if ok else 'above'} the tolerance {e.tolerance:.3f}",
    )


@dataclass(frozen=True)
class FloorRun:
    version: int
    metric: str
    days: tuple[str, ...]
    values: tuple[float, ...]

    @property
    def reason(self) -> str:
        return (
            f"estimated_performance: v{self.version} estimated {self.metric}"
            f" {', '.join(f'{v:.3f}' for v in self.values)} on {self.days[0]}..{self.days[-1]}"
            " (before the labels) is beyond the guard floor"
        )


def floor_run(estimates: pl.DataFrame, spec: DatasetSpec, version: int) -> FloorRun | None:
    """``estimation.consecutive_days`` consecutive estimated days of ``version`` beyond
    ``guard.floor``, ending at
    its latest estimated day; None when there is no floor, no estimate of the primary metric, or
    no such run."""
    metric, floor, k = primary_metric(spec), spec.guard.floor, spec.estimation.consecutive_days
    if floor is None or estimates.is_empty():
        return None
    mine = estimates.filter(
        (pl.col("model_version") == version) & (pl.col("metric") == metric)
    ).sort("ds")
    if mine.height < k:
        return None
    tail = mine.tail(k)
    days = [dt.date.fromisoformat(d) for d in tail["ds"]]
    consecutive = all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False))
    up = higher_is_better(metric)
    beyond = all((v < floor) if up else (v > floor) for v in tail["estimate"])
    if not (consecutive and beyond):
        return None
    return FloorRun(
        version, metric, tuple(tail["ds"].to_list()), tuple(float(v) for v in tail["estimate"])
    )
