"""Data drift: a reference profile of the training data and per-feature drift statistics.

Pure numpy + polars, so it is cheap to import at code-location load and fast on large
partitions. The statistics mirror Evidently 0.7.23's stattests *exactly* (same binning,
same epsilon for empty bins, same normalisation, same log base, same drift rule), read
from ``evidently/legacy/calculations/stattests/{psi,wasserstein_distance_norm,ks_stattest,
jensenshannon,chisquare_stattest,utils}.py``. The only scipy use is the KS p-value and the
chi-square tail probability, imported lazily inside the functions that need them.

Reference profile (``build_reference_profile``), JSON-serialisable::

    {"format": "mlops_assets.drift/1", "rows": N, "bins": B, "sample_size": S, "seed": s,
     "numeric":     {col: <profile_numeric>},
     "categorical": {col: <profile_categorical>},
     "prediction":  <profile_numeric | profile_categorical> | None}

``profile_numeric``: ``count``/``nulls``/``missing_share``/``mean``/``std`` (population,
ddof=0)/``min``/``max``/``distinct`` of the whole column; quantile bins for the classic
PSI (``bin_edges`` = distinct inner quantiles, bins ``(-inf, e0], (e0, e1], ...,
(e_last, +inf)``, with ``bin_counts``/``bin_proportions``); and ``sample``: a sorted,
deterministic, fixed-size *stratified* sample (one seeded random order statistic from each
of ``sample_size`` equal-count strata of the sorted column; the whole column when it is
smaller). Evidently's KS, Wasserstein, PSI and JS need raw reference values; every
numeric statistic below except ``psi_quantile`` is **exactly what Evidently returns when
it is given this sample as the reference**, with one deliberate exception: normalised
Wasserstein divides by the std of the *whole* reference column (``profile["std"]``, what
Evidently would use on the full training data) rather than the sample's std, which for
heavy-tailed columns is off by several percent (the raw ``wasserstein`` is the sample's).

``profile_categorical``: ``count``/``nulls``/``missing_share`` and exact per-category
``counts`` and ``shares``. Categorical statistics depend only on counts, so they equal
Evidently run on the *full* reference column.

Definitions (Evidently 0.7.23):

- ``psi`` (psi.py + utils.get_binned_data): numeric with reference nunique > 20 →
  ``np.histogram_bin_edges(reference ∪ current, "sturges")`` equal-width bins (*not*
  quantiles); otherwise — and for categoricals — one bin per value seen on either side.
  Shares = count / non-null rows; empty bins get ``min(non-zero share)/1e6`` if that min is
  <= 1e-4, else ``1e-4`` (separately per side); ``sum((ref - cur) * ln(ref / cur))``.
- ``psi_quantile`` (ours, not Evidently): the same PSI formula and epsilon on the profile's
  reference-quantile bins over the whole reference column; independent of the sizes.
- ``jensenshannon`` (jensenshannon.py): same bins as ``psi`` but no epsilon;
  ``scipy.spatial.distance.jensenshannon`` with ``base=None`` → natural log, so the
  distance lies in ``[0, sqrt(ln 2)]``.
- ``wasserstein_norm`` (wasserstein_distance_norm.py):
  ``scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)`` (ddof=0).
- ``ks_statistic``/``ks_pvalue`` (ks_stattest.py): two-sided ``scipy.stats.ks_2samp``,
  method "auto" (exact p-value when both sizes <= 10000, else ``kstwo.sf``).
- ``chisquare_*`` (chisquare_stattest.py): categories of either side,
  ``f_exp = ref_count * n_cur / n_ref``, ``scipy.stats.chisquare(f_obs, f_exp)``: a
  category unseen in the reference gives ``+inf`` / p = 0. One category in all: p = 1.0
  (scipy gives nan; the drift decision is the same).
- Drift: distances drift when ``score >= threshold``, KS when ``p <= threshold``,
  chi-square when ``p < threshold``; the dataset when ``share >= drift_share``.

Nulls and non-finite numbers are dropped per column (Evidently does the same:
``replace([-inf, inf], nan).dropna()``) and counted in the output.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:  # pragma: no cover
    from mlops_assets.spec import DatasetSpec

PROFILE_FORMAT = "mlops_assets.drift/1"

# Methods per feature type and how a score is turned into "drifted" (Evidently's rules):
# distances drift when score >= threshold; KS drifts when p <= threshold; chi-square when
# p < threshold. "psi_quantile" is ours (classic PSI on the profile's quantile bins).
NUMERIC_METHODS = {
    "wasserstein": ("wasserstein_norm", ">="),
    "psi": ("psi", ">="),
    "psi_quantile": ("psi_quantile", ">="),
    "jensenshannon": ("jensenshannon", ">="),
    "ks": ("ks_pvalue", "<="),
}
CATEGORICAL_METHODS = {
    "jensenshannon": ("jensenshannon", ">="),
    "psi": ("psi", ">="),
    "chisquare": ("chisquare_pvalue", "<"),
}

_EVIDENTLY_DISCRETE_MAX = 20  # get_binned_data: reference nunique > 20 → Sturges bins
_KS_MAX_AUTO_N = 10_000  # scipy ks_2samp(method="auto"): exact p-value up to this size
_WASSERSTEIN_MIN_NORM = 0.001  # wasserstein_distance_norm: max(std(reference), 0.001)
_NUMERIC_STATS = (
    "ks_statistic",
    "ks_pvalue",
    "wasserstein",
    "wasserstein_norm",
    "psi",
    "jensenshannon",
    "psi_quantile",
)


# ---- reference profile ----------------------------------------------------------------------


def _finite_float(values: Any) -> tuple[np.ndarray, int]:
    """Finite float64 values and how many were dropped (null, NaN or ±inf)."""
    if isinstance(values, pl.Series):
        values = values.cast(pl.Float64).to_numpy()
    arr = np.asarray(values, dtype=np.float64).ravel()
    mask = np.isfinite(arr)
    if mask.all():
        return arr, 0
    return arr[mask], int(arr.size - mask.sum())


def _stratified_sample(sorted_vals: np.ndarray, size: int, seed: int) -> np.ndarray:
    """One seeded random element from each of ``size`` equal-count strata (stays sorted)."""
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
    if sorted_vals.size == 0:
        return np.empty(0)
    if bins <= 1:
        return np.unique(sorted_vals[[0]])  # two bins: <= min and > min
    inner = np.quantile(sorted_vals, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges, values, side="left")  # right-closed bins
    return np.bincount(idx, minlength=edges.size + 1)


def _nunique_sorted(sorted_vals: np.ndarray) -> int:
    if sorted_vals.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(sorted_vals))) + 1


def _float_or_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def profile_numeric(
    values: np.ndarray, bins: int = 10, sample_size: int = 5000, seed: int = 0
) -> dict:
    """Summary of one numeric reference column (see the module docstring)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if sample_size < 1:
        raise ValueError(f"sample_size must be at least 1, got {sample_size}")
    arr, nulls = _finite_float(values)
    total = arr.size + nulls
    srt = np.sort(arr)
    edges = _quantile_bins(srt, bins)
    counts = _bin_counts(srt, edges) if srt.size else np.zeros(0, dtype=np.int64)
    n = int(srt.size)
    return {
        "kind": "numeric",
        "count": n,
        "nulls": nulls,
        "missing_share": float(nulls / total) if total else 0.0,
        "mean": _float_or_none(srt.mean()) if n else None,
        "std": _float_or_none(srt.std()) if n else None,
        "min": float(srt[0]) if n else None,
        "max": float(srt[-1]) if n else None,
        "distinct": _nunique_sorted(srt),
        "bin_edges": [float(e) for e in edges],
        "bin_counts": [int(c) for c in counts],
        "bin_proportions": [float(c) / n for c in counts] if n else [],
        "sample": [float(v) for v in _stratified_sample(srt, sample_size, seed)],
    }


def _as_category_series(values: Any) -> pl.Series:
    s = values if isinstance(values, pl.Series) else pl.Series("values", values, strict=False)
    if s.dtype.is_float():
        s = s.fill_nan(None)
    return s.cast(pl.String)


def _category_counts(s: pl.Series) -> dict[str, int]:
    vc = s.drop_nulls().alias("value").value_counts(name="n")
    return {str(k): int(c) for k, c in zip(vc.to_series(0), vc.to_series(1))}


def profile_categorical(values: Any) -> dict:
    """Exact category counts and shares of one categorical reference column (nulls dropped).

    Values are compared as strings (numbers are cast with polars, e.g. ``1`` → ``"1"``).
    """
    s = _as_category_series(values)
    nulls = int(s.null_count())
    counts = dict(sorted(_category_counts(s).items()))
    n = sum(counts.values())
    return {
        "kind": "categorical",
        "count": n,
        "nulls": nulls,
        "missing_share": float(nulls / (n + nulls)) if n + nulls else 0.0,
        "counts": counts,
        "shares": {k: c / n for k, c in counts.items()} if n else {},
    }


def _profile_any(values: Any, bins: int, sample_size: int, seed: int) -> dict:
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
    numeric when it has a numeric dtype (scores), else as categorical (labels).
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
        "numeric": {c: numeric_profile(c) for c in numeric},
        "categorical": {c: profile_categorical(frame.get_column(c)) for c in categorical},
        "prediction": pred,
    }


# ---- statistics (Evidently 0.7.23 definitions) -------------------------------------------------


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    """utils.get_binned_data(feel_zeroes=True): empty bins get min(non-zero)/1e6 if that min
    is <= 1e-4, else 1e-4."""
    nz = p[p != 0]
    if nz.size == 0:
        return p
    m = nz.min()
    return np.where(p == 0, m / 10**6 if m <= 0.0001 else 0.0001, p)


def _psi_from_percents(ref_p: np.ndarray, cur_p: np.ndarray) -> float:
    """psi._psi: sum((ref - cur) * ln(ref / cur)) after the zero fill."""
    r, c = _fill_zeroes(ref_p), _fill_zeroes(cur_p)
    return float(np.sum((r - c) * np.log(r / c)))


def _rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = x[pos] * np.log(x[pos] / y[pos])
    return out


def _jensenshannon_from_percents(ref_p: np.ndarray, cur_p: np.ndarray) -> float:
    """scipy.spatial.distance.jensenshannon(ref, cur, base=None): natural log, distance
    (square root of the divergence), inputs renormalised to sum 1; no zero fill."""
    p = ref_p / np.sum(ref_p)
    q = cur_p / np.sum(cur_p)
    m = (p + q) / 2.0
    js = np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))
    return float(np.sqrt(js / 2.0))


def _unique_counts_sorted(srt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if srt.size == 0:
        return srt, np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(srt)) + 1))
    counts = np.diff(np.concatenate((starts, [srt.size])))
    return srt[starts], counts


def _hist_sorted(srt: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """np.histogram(values, edges)[0] for already-sorted values (numpy's own method:
    searchsorted 'left' on all edges but the last, 'right' on the last)."""
    cum = np.concatenate(
        (srt.searchsorted(edges[:-1], "left"), srt.searchsorted(edges[-1:], "right"))
    )
    return np.diff(cum)


def _evidently_binned(
    ref: np.ndarray, cur: np.ndarray, combined: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """utils.get_binned_data for a numerical column, before the zero fill.

    Reference nunique > 20: Sturges equal-width bins over reference+current
    (``np.histogram_bin_edges(combined, "sturges")``), shares per bin; otherwise one
    "bin" per distinct value seen in either sample. ``ref``/``cur`` are sorted.
    """
    if _nunique_sorted(ref) > _EVIDENTLY_DISCRETE_MAX:
        edges = np.histogram_bin_edges(combined, bins="sturges")
        return _hist_sorted(ref, edges) / ref.size, _hist_sorted(cur, edges) / cur.size
    rv, rc = _unique_counts_sorted(ref)
    cv, cc = _unique_counts_sorted(cur)
    keys = np.union1d(rv, cv)
    ref_counts = np.zeros(keys.size)
    cur_counts = np.zeros(keys.size)
    ref_counts[np.searchsorted(keys, rv)] = rc
    cur_counts[np.searchsorted(keys, cv)] = cc
    return ref_counts / ref.size, cur_counts / cur.size


def _ks_pvalue(d: float, ref: np.ndarray, cur: np.ndarray) -> float:
    """Two-sided p-value exactly as scipy.stats.ks_2samp(method="auto") (used by
    ks_stattest._ks_stat_test): the exact distribution when max(n1, n2) <= 10000, else
    ``kstwo.sf(d, round(n1*n2/(n1+n2)))``. scipy is imported lazily."""
    from scipy import stats

    n1, n2 = ref.size, cur.size
    if max(n1, n2) <= _KS_MAX_AUTO_N:
        with warnings.catch_warnings():  # scipy's own "exact failed → asymp" fallback
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.ks_2samp(ref, cur).pvalue)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def numeric_stats(
    ref_sample: np.ndarray,
    cur: np.ndarray,
    quantile_edges: np.ndarray | None = None,
    quantile_proportions: np.ndarray | None = None,
    reference_std: float | None = None,
) -> dict[str, float | None]:
    """All numeric statistics of current values ``cur`` against the reference sample.

    Both arrays must be non-empty and finite; they are sorted here if needed.
    ``psi_quantile`` is computed only when the profile's quantile bins are given.
    ``wasserstein_norm`` divides by ``max(reference_std, 0.001)``; with ``reference_std``
    None that is ``np.std(ref_sample)``, i.e. exactly Evidently on ``ref_sample``.
    """
    ref = np.asarray(ref_sample, dtype=np.float64)
    cur = np.asarray(cur, dtype=np.float64)
    if ref.size > 1 and np.any(ref[1:] < ref[:-1]):
        ref = np.sort(ref)
    cur = np.sort(cur)
    combined = np.concatenate((ref, cur))
    combined.sort(kind="stable")  # two sorted runs: a near-linear merge

    # Empirical CDFs at every observed value (scipy's ks_2samp / _cdf_distance).
    cdf_r = ref.searchsorted(combined, "right") / ref.size
    cdf_c = cur.searchsorted(combined, "right") / cur.size
    diff = np.abs(cdf_r - cdf_c)
    ks = float(diff.max())
    # wasserstein_distance_norm: scipy.stats.wasserstein_distance / max(np.std(ref), 0.001)
    wd = float(np.dot(diff[:-1], np.diff(combined)))
    std = float(np.std(ref)) if reference_std is None else float(reference_std)
    norm = max(std, _WASSERSTEIN_MIN_NORM)

    ref_p, cur_p = _evidently_binned(ref, cur, combined)
    out: dict[str, float | None] = {
        "ks_statistic": ks,
        "ks_pvalue": _ks_pvalue(ks, ref, cur),
        "wasserstein": wd,
        "wasserstein_norm": wd / norm,
        "psi": _psi_from_percents(ref_p, cur_p),
        "jensenshannon": _jensenshannon_from_percents(ref_p, cur_p),
        "psi_quantile": None,
    }
    if quantile_edges is not None and quantile_proportions is not None and len(quantile_edges):
        ref_q = np.asarray(quantile_proportions, dtype=np.float64)
        cur_q = _bin_counts(cur, np.asarray(quantile_edges, dtype=np.float64)) / cur.size
        out["psi_quantile"] = _psi_from_percents(ref_q, cur_q)
    return out


def categorical_stats(ref_counts: dict[str, int], cur_counts: dict[str, int]) -> dict[str, Any]:
    """JS distance, chi-square statistic and p-value, and PSI over categories.

    Keys are the categories present in either side (Evidently's
    ``get_unique_not_nan_values_list_from_series``); shares are count / non-null rows.
    Both sides must have at least one non-null value.
    """
    keys = sorted({k for counts in (ref_counts, cur_counts) for k, n in counts.items() if n > 0})
    r = np.array([ref_counts.get(k, 0) for k in keys], dtype=np.float64)
    c = np.array([cur_counts.get(k, 0) for k in keys], dtype=np.float64)
    n_ref, n_cur = r.sum(), c.sum()
    ref_p, cur_p = r / n_ref, c / n_cur
    # chisquare_stattest._chi_stat_test: f_exp = ref counts * n_cur / n_ref, scipy chisquare.
    f_exp = r * (n_cur / n_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float(np.sum((c - f_exp) ** 2 / f_exp))  # +inf when a category is new
    dof = len(keys) - 1
    if dof < 1:
        p = 1.0  # one category on both sides: no drift possible (scipy returns nan here)
    else:
        from scipy.special import chdtrc

        p = float(chdtrc(dof, chi2))
    return {
        "jensenshannon": _jensenshannon_from_percents(ref_p, cur_p),
        "chisquare_statistic": chi2,
        "chisquare_pvalue": p,
        "psi": _psi_from_percents(ref_p, cur_p),
        "unseen_categories": [k for k in keys if ref_counts.get(k, 0) == 0],
        "missing_categories": [k for k in keys if cur_counts.get(k, 0) == 0],
    }


# ---- drift of a partition ------------------------------------------------------------------


def _is_drifted(score: float | None, rule: str, threshold: float) -> bool:
    if score is None or math.isnan(score):
        return False
    if rule == ">=":
        return bool(score >= threshold)
    if rule == "<=":
        return bool(score <= threshold)
    return bool(score < threshold)


def _numeric_feature(profile: dict, values: Any, method: str, threshold: float) -> dict:
    if method not in NUMERIC_METHODS:
        raise ValueError(
            f"unknown numeric drift method {method!r}; choose from {sorted(NUMERIC_METHODS)}"
        )
    if "sample" not in profile:
        raise ValueError(
            "reference profile has no 'sample': build it with "
            "mlops_assets.ml.drift.build_reference_profile"
        )
    key, rule = NUMERIC_METHODS[method]
    cur, nulls = _finite_float(values)
    out: dict[str, Any] = {
        "type": "numeric",
        "rows": int(cur.size),
        "nulls": nulls,
        "reference_rows": profile["count"],
        "reference_sample_rows": len(profile["sample"]),
        "mean": _float_or_none(cur.mean()) if cur.size else None,
        "std": _float_or_none(cur.std()) if cur.size else None,
        "reference_mean": profile["mean"],
        "reference_std": profile["std"],
    }
    stats: dict[str, Any] = dict.fromkeys(_NUMERIC_STATS)
    if not profile["sample"]:
        status = "no_reference"
    elif cur.size == 0:
        status = "empty_current"
    else:
        status = "ok"
        stats = numeric_stats(
            np.asarray(profile["sample"], dtype=np.float64),
            cur,
            np.asarray(profile["bin_edges"], dtype=np.float64),
            np.asarray(profile["bin_proportions"], dtype=np.float64),
            reference_std=profile["std"],
        )
    score = stats[key]
    out.update(stats)
    out.update(
        status=status,
        method=method,
        score=score,
        threshold=threshold,
        drifted=_is_drifted(score, rule, threshold),
    )
    return out


def _categorical_feature(profile: dict, values: Any, method: str, threshold: float) -> dict:
    if method not in CATEGORICAL_METHODS:
        raise ValueError(
            f"unknown categorical drift method {method!r}; "
            f"choose from {sorted(CATEGORICAL_METHODS)}"
        )
    if "counts" not in profile:
        raise ValueError(
            "reference profile has no category 'counts': build it with "
            "mlops_assets.ml.drift.build_reference_profile"
        )
    key, rule = CATEGORICAL_METHODS[method]
    s = _as_category_series(values)
    nulls = int(s.null_count())
    cur_counts = _category_counts(s)
    n = sum(cur_counts.values())
    out: dict[str, Any] = {
        "type": "categorical",
        "rows": n,
        "nulls": nulls,
        "reference_rows": profile["count"],
    }
    stats: dict[str, Any] = {
        "jensenshannon": None,
        "chisquare_statistic": None,
        "chisquare_pvalue": None,
        "psi": None,
        "unseen_categories": [],
        "missing_categories": [],
    }
    if profile["count"] == 0:
        status = "no_reference"
    elif n == 0:
        status = "empty_current"
    else:
        status = "ok"
        stats = categorical_stats(profile["counts"], cur_counts)
    out.update(stats)
    out["shares"] = {k: c / n for k, c in sorted(cur_counts.items())} if n else {}
    score = stats[key]
    out.update(
        status=status,
        method=method,
        score=score,
        threshold=threshold,
        drifted=_is_drifted(score, rule, threshold),
    )
    return out


def _column(current: pl.DataFrame, name: str) -> pl.Series:
    if name in current.columns:
        return current.get_column(name)
    if current.height == 0:
        return pl.Series(name, [], dtype=pl.Float64)
    raise ValueError(f"current data has no column {name!r} (columns: {current.columns})")


def feature_drift(
    reference_profile: dict,
    current: pl.DataFrame | pl.LazyFrame,
    spec: DatasetSpec,
    *,
    prediction: Any | None = None,
    numeric_method: str = "wasserstein",
    categorical_method: str = "jensenshannon",
    numeric_threshold: float | None = None,
    categorical_threshold: float | None = None,
    per_feature_method: dict[str, str] | None = None,
    per_feature_threshold: dict[str, float] | None = None,
) -> dict:
    """Drift of ``current`` against the reference profile, per feature and for the dataset.

    Numeric features are the spec's numeric + calendar features; categorical ones its
    categorical features. Defaults follow Evidently's choice for > 1000 reference rows:
    normalised Wasserstein for numeric, Jensen–Shannon for categorical, with thresholds
    ``spec.drift.numeric_threshold`` / ``categorical_threshold`` (overridable; for the
    p-value methods ``ks`` and ``chisquare`` the threshold is a significance level).

    A feature whose current column is empty (after dropping nulls) or whose reference
    column was empty gets ``status`` ``"empty_current"`` / ``"no_reference"``, no scores,
    ``drifted=False``, and does not count in ``share_drifted`` (= drifted / evaluated).
    ``dataset_drifted`` is ``share_drifted >= spec.drift.share_drifted`` with at least one
    evaluated feature. Prediction drift (when the profile has a prediction and
    ``prediction`` is given, or ``current`` has a ``prediction`` column) is reported on its
    own and does not count in the share.
    """
    if isinstance(current, pl.LazyFrame):
        current = current.collect()
    methods = per_feature_method or {}
    thresholds = per_feature_threshold or {}
    num_thr = spec.drift.numeric_threshold if numeric_threshold is None else numeric_threshold
    cat_thr = (
        spec.drift.categorical_threshold if categorical_threshold is None else categorical_threshold
    )
    num_prof = reference_profile.get("numeric", {})
    cat_prof = reference_profile.get("categorical", {})

    features: dict[str, dict] = {}
    for name in spec.numeric_features + spec.calendar_features:
        if name not in num_prof:
            raise ValueError(f"numeric feature {name!r} is not in the reference profile")
        features[name] = _numeric_feature(
            num_prof[name],
            _column(current, name),
            methods.get(name, numeric_method),
            thresholds.get(name, num_thr),
        )
    for name in spec.categorical_features:
        if name not in cat_prof:
            raise ValueError(f"categorical feature {name!r} is not in the reference profile")
        features[name] = _categorical_feature(
            cat_prof[name],
            _column(current, name),
            methods.get(name, categorical_method),
            thresholds.get(name, cat_thr),
        )

    pred_result = None
    ref_pred = reference_profile.get("prediction")
    if ref_pred is not None:
        if prediction is None and "prediction" in current.columns:
            prediction = current.get_column("prediction")
        if prediction is not None:
            if ref_pred["kind"] == "numeric":
                pred_result = _numeric_feature(ref_pred, prediction, numeric_method, num_thr)
            else:
                pred_result = _categorical_feature(
                    ref_pred, prediction, categorical_method, cat_thr
                )

    evaluated = [n for n, f in features.items() if f["status"] == "ok"]
    drifted = [n for n in evaluated if features[n]["drifted"]]
    share = len(drifted) / len(evaluated) if evaluated else 0.0
    return {
        "features": features,
        "prediction": pred_result,
        "n_features": len(features),
        "n_evaluated": len(evaluated),
        "n_drifted": len(drifted),
        "drifted_features": drifted,
        "share_drifted": share,
        "dataset_drifted": bool(evaluated) and share >= spec.drift.share_drifted,
        "rows": int(current.height),
    }
