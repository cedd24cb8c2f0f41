"""The reference profile: what drift monitoring keeps of the training data.

Built once at training time (``build_reference_profile``) and stored with the model as JSON;
every later partition is compared against it (``mlops_assets.monitoring.drift.methods``). Pure
numpy + polars. The helpers that read a column (finite floats, categories as strings) and bin it
are shared with the drift statistics, so reference and current values are cleaned the same way:
nulls and non-finite numbers are dropped per column (as Evidently does:
``replace([-inf, inf], nan).dropna()``) and counted in the output.

A numeric column keeps a fixed-size stratified sample, so every numeric statistic except
``psi_quantile`` is exactly what Evidently returns given that sample as the reference
(``profile_numeric``); a categorical column keeps exact counts, so its statistics equal
Evidently run on the full reference column (``profile_categorical``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CATEGORICAL",
    "LOW_CARDINALITY",
    "NUMERIC",
    "PROFILE_FORMAT",
    "as_category_series",
    "bin_counts",
    "build_reference_profile",
    "category_counts",
    "finite_float",
    "float_or_none",
    "numeric_value_counts",
    "nunique_sorted",
    "profile_categorical",
    "profile_numeric",
    "value_key",
]

PROFILE_FORMAT = "mlops_assets.drift/1"
NUMERIC, CATEGORICAL = "numeric", "categorical"  # the kinds of column (and profile sections)
# Evidently: a numeric column with <= 5 distinct values is judged as categorical
LOW_CARDINALITY = 5


# ---- reading and binning a column (shared with the statistics) ------------------------------


def finite_float(values: Any) -> tuple[np.ndarray, int]:
    """Finite float64 values and how many were dropped (null, NaN or ±inf)."""
    import numpy as np

    if isinstance(values, pl.Series):
        values = values.cast(pl.Float64).to_numpy()
    arr = np.asarray(values, dtype=np.float64).ravel()
    mask = np.isfinite(arr)
    if mask.all():
        return arr, 0
    return arr[mask], int(arr.size - mask.sum())


def float_or_none(x: float) -> float | None:
    """``x`` as a float, or None when it is not finite (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per right-closed bin ``(-inf, e0], (e0, e1], ..., (e_last, +inf)``."""
    import numpy as np

    idx = np.searchsorted(edges, values, side="left")  # right-closed bins
    return np.bincount(idx, minlength=edges.size + 1)


def nunique_sorted(sorted_vals: np.ndarray) -> int:
    """Number of distinct values of an already-sorted array."""
    import numpy as np

    if sorted_vals.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(sorted_vals))) + 1


def value_key(value: float) -> str:
    """The category a numeric value is counted under (``1.0`` → ``"1.0"``), the same on both
    sides."""
    return repr(float(value) + 0.0)  # + 0.0: -0.0 and 0.0 are one value


def numeric_value_counts(finite: np.ndarray) -> dict[str, int]:
    """Count per distinct value of finite floats, keyed by ``value_key``."""
    import numpy as np

    values, counts = np.unique(finite, return_counts=True)
    return {value_key(v): int(c) for v, c in zip(values, counts, strict=True)}


def as_category_series(values: Any) -> pl.Series:
    """Values as a String series (NaN → null), the form categories are compared in."""
    s = values if isinstance(values, pl.Series) else pl.Series("values", values, strict=False)
    if s.dtype.is_float():
        s = s.fill_nan(None)
    return s.cast(pl.String)


def category_counts(s: pl.Series) -> dict[str, int]:
    """Non-null count per category of a String series."""
    vc = s.drop_nulls().alias("value").value_counts(name="n")
    return {str(k): int(c) for k, c in zip(vc.to_series(0), vc.to_series(1), strict=True)}


def _stratified_sample(sorted_vals: np.ndarray, size: int, seed: int) -> np.ndarray:
    """One seeded random element from each of ``size`` equal-count strata (stays sorted)."""
    import numpy as np

    n = sorted_vals.size
    if n <= size:
        return sorted_vals.copy()
    rng = np.random.default_rng(seed)
    bounds = (np.arange(size + 1, dtype=np.int64) * n) // size  # strictly increasing (n > size)
    lo = bounds[:-1]
    width = bounds[1:] - lo
    idx = lo + np.minimum((rng.random(size) * width).astype(np.int64), width - 1)
    return sorted_vals[idx]


def _quantile_bins(sorted_vals: np.ndarray, bins: int) -> np.ndarray:
    """Distinct inner quantile edges; bins are (-inf, e0], (e0, e1], ..., (e_last, +inf)."""
    import numpy as np

    if sorted_vals.size == 0:
        return np.empty(0)
    if bins <= 1:
        return np.unique(sorted_vals[[0]])  # two bins: <= min and > min
    inner = np.quantile(sorted_vals, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


# ---- profiles -------------------------------------------------------------------------------


def profile_numeric(
    values: np.ndarray, bins: int = 10, sample_size: int = 5000, seed: int = 0
) -> dict:
    """Summary of one numeric reference column.

    ``count``/``nulls``/``missing_share``/``mean``/``std`` (population, ddof=0)/``min``/``max``/
    ``distinct`` of the whole column; quantile bins for the classic PSI (``bin_edges`` = distinct
    inner quantiles, bins ``(-inf, e0], (e0, e1], ..., (e_last, +inf)``, with ``bin_counts`` /
    ``bin_proportions``); and ``sample``: a sorted, deterministic, fixed-size *stratified* sample
    (one seeded random order statistic from each of ``sample_size`` equal-count strata of the
    sorted column; the whole column when it is smaller). Evidently's KS, Wasserstein, PSI and JS
    need raw reference values; every numeric statistic except ``psi_quantile`` is exactly what
    Evidently returns given this sample as the reference, with one deliberate exception:
    normalised Wasserstein divides by the std of the *whole* column (``std``, what Evidently
    would use on the full training data) rather than the sample's, which for heavy-tailed
    columns is off by several percent (the raw ``wasserstein`` is the sample's).

    A column with at most ``LOW_CARDINALITY`` distinct values also keeps exact ``value_counts``
    (keyed by ``value_key``): Evidently judges such a column as categorical (chi-square / Z-test /
    Jensen–Shannon on value counts), and with them those statistics equal Evidently run on the
    whole column. A profile without ``value_counts`` falls back to the sample's counts.
    """
    import numpy as np

    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if sample_size < 1:
        raise ValueError(f"sample_size must be at least 1, got {sample_size}")
    arr, nulls = finite_float(values)
    total = arr.size + nulls
    srt = np.sort(arr)
    edges = _quantile_bins(srt, bins)
    counts = bin_counts(srt, edges) if srt.size else np.zeros(0, dtype=np.int64)
    n = int(srt.size)
    distinct = nunique_sorted(srt)
    low = {"value_counts": numeric_value_counts(srt)} if 0 < distinct <= LOW_CARDINALITY else {}
    return {
        "kind": NUMERIC,
        "count": n,
        "nulls": nulls,
        "missing_share": float(nulls / total) if total else 0.0,
        "mean": float_or_none(srt.mean()) if n else None,
        "std": float_or_none(srt.std()) if n else None,
        "min": float(srt[0]) if n else None,
        "max": float(srt[-1]) if n else None,
        "distinct": distinct,
        **low,
        "bin_edges": [float(e) for e in edges],
        "bin_counts": [int(c) for c in counts],
        "bin_proportions": [float(c) / n for c in counts] if n else [],
        "sample": [float(v) for v in _stratified_sample(srt, sample_size, seed)],
    }


def profile_categorical(values: Any) -> dict:
    """Exact category counts and shares of one categorical reference column (nulls dropped).

    ``count``/``nulls``/``missing_share`` and per-category ``counts`` and ``shares``. Categorical
    statistics depend only on counts, so they equal Evidently run on the *full* column. Values
    are compared as strings (numbers are cast with polars, e.g. ``1`` → ``"1"``).
    """
    s = as_category_series(values)
    nulls = int(s.null_count())
    counts = dict(sorted(category_counts(s).items()))
    n = sum(counts.values())
    return {
        "kind": CATEGORICAL,
        "count": n,
        "nulls": nulls,
        "missing_share": float(nulls / (n + nulls)) if n + nulls else 0.0,
        "counts": counts,
        "shares": {k: c / n for k, c in counts.items()} if n else {},
    }


def _profile_any(values: Any, bins: int, sample_size: int, seed: int) -> dict:
    import numpy as np

    dtype = values.dtype if isinstance(values, pl.Series) else np.asarray(values).dtype
    if isinstance(dtype, pl.DataType):
        numeric = dtype.is_numeric()
    else:
        numeric = bool(np.issubdtype(dtype, np.number))
    if numeric:
        return profile_numeric(values, bins, sample_size, seed)
    return profile_categorical(values)


def build_reference_profile(
    frame: pl.DataFrame,
    numeric: list[str],
    categorical: list[str],
    prediction: np.ndarray | None = None,
    *,
    bins: int = 10,
    sample_size: int = 5000,
    seed: int = 0,
) -> dict:
    """JSON-serialisable reference profile of ``frame`` (typically the training features).

    ``numeric`` should be the spec's numeric + calendar features, ``categorical`` its
    categorical features. ``prediction`` (model outputs on the same rows) is profiled as
    numeric when it has a numeric dtype (scores), else as categorical (labels)::

        {"format": "mlops_assets.drift/1", "rows": N, "bins": B, "sample_size": S, "seed": s,
         "numeric":     {col: <profile_numeric>},
         "categorical": {col: <profile_categorical>},
         "prediction":  <profile_numeric | profile_categorical> | None}
    """

    def numeric_profile(c: str) -> dict:
        values = frame.get_column(c).cast(pl.Float64).to_numpy()
        return profile_numeric(values, bins, sample_size, seed)

    pred = None if prediction is None else _profile_any(prediction, bins, sample_size, seed)
    return {
        "format": PROFILE_FORMAT,
        "rows": int(frame.height),
        "bins": bins,
        "sample_size": sample_size,
        "seed": seed,
        NUMERIC: {c: numeric_profile(c) for c in numeric},
        CATEGORICAL: {c: profile_categorical(frame.get_column(c)) for c in categorical},
        "prediction": pred,
    }
