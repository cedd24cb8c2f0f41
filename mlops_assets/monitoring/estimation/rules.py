"""Rules over estimated performance (pure): the table rows, reconciliation with the realised metric,
whether a version's estimation method (CBPE / DLE) is trustworthy, and when an estimate beyond the
guard floor should act.

* ``estimated_performance`` rows: one per (day, model version, metric).
* reconciliation (``estimation_reconciliation`` rows, two columns of the ``performance`` table):
  when a day's labels mature, each estimate beside the realised metric of the same version on that
  day, and |estimate − realised|.
* trust: the version's latest ``estimation.trust_days`` reconciled days (labelled coverage ≥
  ``MIN_COVERAGE``) of the primary metric; trustworthy when their median error ≤
  ``estimation.tolerance``. No reconciled day yet: not (yet) trustworthy — the guard waits.
* floor: the estimated primary metric below (or, for an error metric, above) ``guard.floor`` on
  ``estimation.consecutive_days`` consecutive days ending at the latest estimated day.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from mlops_assets.core.metrics_catalog import higher_is_better, primary_metric
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.tables import ESTIMATE_SCHEMA, PERFORMANCE_COLUMNS, RECONCILIATION_SCHEMA
from mlops_assets.core.vocabulary import MODEL_VERSION_COLUMN, PARTITION_COLUMN

MIN_COVERAGE = (
    0.8  # a day counts as reconciled when this share of its rows is labelled (as the guard)
)


def estimate_rows(
    day: str, version: int, estimates: dict, rows: int, method: str, spec: DatasetSpec
) -> list[dict]:
    """One row per estimated metric of ``version`` on ``day``; ``method``: cbpe | dle."""
    metric = primary_metric(spec)
    return [
        {
            PARTITION_COLUMN: day,
            MODEL_VERSION_COLUMN: version,
            "metric": m,
            "estimate": float(v),
            "rows": rows,
            "estimator": method,
            "primary": m == metric,
        }
        for m, v in sorted(estimates.items())
        if v is not None
    ]


def estimate_table(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ESTIMATE_SCHEMA)


def estimates_beside_realised(performance: pl.DataFrame, estimates: pl.DataFrame) -> pl.DataFrame:
    """Reconciliation rows: every estimate of a (day, version) the ``performance`` rows judge,
    beside the realised value of the same metric (from the rows' ``metrics`` JSON; null when not
    computed there)."""
    if performance.is_empty() or estimates.is_empty():
        return pl.DataFrame(schema=RECONCILIATION_SCHEMA)
    perf = {
        (r[PARTITION_COLUMN], int(r[MODEL_VERSION_COLUMN])): r
        for r in performance.iter_rows(named=True)
    }
    out = []
    for e in estimates.sort(PARTITION_COLUMN, MODEL_VERSION_COLUMN, "metric").iter_rows(named=True):
        p = perf.get((e[PARTITION_COLUMN], int(e[MODEL_VERSION_COLUMN])))
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
                PARTITION_COLUMN: e[PARTITION_COLUMN],
                MODEL_VERSION_COLUMN: e[MODEL_VERSION_COLUMN],
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
        PARTITION_COLUMN,
        MODEL_VERSION_COLUMN,
        pl.col("metric"),
        pl.col("estimate").alias("estimated_primary"),
        pl.col("abs_error").alias("estimate_abs_error"),
    )
    joined = performance.drop(list(PERFORMANCE_COLUMNS), strict=False).join(
        mine,
        on=[PARTITION_COLUMN, MODEL_VERSION_COLUMN, "metric"],
        how="left",
        maintain_order="left",
    )
    return joined.with_columns(*(pl.col(c).cast(t) for c, t in PERFORMANCE_COLUMNS.items()))


@dataclass(frozen=True)
class Trust:
    trusted: bool
    median_error: float | None
    days: tuple[str, ...]
    reason: str


def method_trust(reconciliation: pl.DataFrame, spec: DatasetSpec, version: int) -> Trust:
    """Whether ``version``'s estimation method has been right lately (see the module docstring)."""
    metric, e = primary_metric(spec), spec.estimation
    recent = (
        (
            reconciliation.filter(
                (pl.col(MODEL_VERSION_COLUMN) == version)
                & (pl.col("metric") == metric)
                & (pl.col("coverage") >= MIN_COVERAGE)
                & pl.col("abs_error").is_not_null()
            )
            .sort(PARTITION_COLUMN)
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
        tuple(recent[PARTITION_COLUMN].to_list()),
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
    ``guard.floor``, ending at its latest estimated day; None when there is no floor, no estimate
    of the primary metric, or no such run."""
    metric, floor, k = primary_metric(spec), spec.guard.floor, spec.estimation.consecutive_days
    if floor is None or estimates.is_empty():
        return None
    mine = estimates.filter(
        (pl.col(MODEL_VERSION_COLUMN) == version) & (pl.col("metric") == metric)
    ).sort(PARTITION_COLUMN)
    if mine.height < k:
        return None
    tail = mine.tail(k)
    days = [dt.date.fromisoformat(d) for d in tail[PARTITION_COLUMN]]
    consecutive = all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False))
    up = higher_is_better(metric)
    beyond = all((v < floor) if up else (v > floor) for v in tail["estimate"])
    if not (consecutive and beyond):
        return None
    return FloorRun(
        version,
        metric,
        tuple(tail[PARTITION_COLUMN].to_list()),
        tuple(float(v) for v in tail["estimate"]),
    )


@dataclass(frozen=True)
class EstimateBreach:
    """The champion's estimate beyond the floor, its estimation method trusted: the guard acts."""

    run: FloorRun
    trust: Trust
    key: str  # what the guard's cursor remembers: one action per version


def estimate_breach(
    estimates: Callable[[], pl.DataFrame],
    reconciliation: Callable[[], pl.DataFrame],
    spec: DatasetSpec,
    champion: int,
    handled: list,
) -> EstimateBreach | str:
    """``guard.use_estimate``: the champion's estimate beyond the floor on
    ``estimation.consecutive_days`` days (``floor_run`` on ``estimates()``), acted on only while
    its estimation method is trustworthy (``method_trust`` on ``reconciliation()``) and once per
    version (``handled``: the guard's cursor). Returns the breach, or why the guard does not act;
    the tables are read only when needed."""
    run = floor_run(estimates(), spec, champion) if spec.guard.use_estimate != "off" else None
    if run is None:
        return f"champion v{champion} within its guard"
    trust = method_trust(reconciliation(), spec, champion)
    if not trust.trusted:
        return f"{run.reason}; ignored: the estimator is not trustworthy ({trust.reason})"
    key = f"estimate:v{champion}"
    if key in handled:
        return f"estimate breach of v{champion} already handled"
    return EstimateBreach(run, trust, key)
