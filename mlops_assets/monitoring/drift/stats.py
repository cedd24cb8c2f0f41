"""Drift statistics of current values against a reference, as Evidently 0.7.23 defines them.

Pure numpy; the statistics mirror Evidently's stattests *exactly* (same binning, same epsilon
for empty bins, same normalisation, same log base), read from
``evidently/legacy/calculations/stattests/{psi,wasserstein_distance_norm,ks_stattest,
jensenshannon,chisquare_stattest,z_stattest,utils}.py``; ``numeric_stats`` and
``categorical_stats`` define each one. scipy serves only the KS p-value and the chi-square and
normal tail probabilities, imported inside the functions that need them (cheap code-location load).

``numeric_column`` / ``categorical_column`` score one current column against its profile
(``mlops_assets.monitoring.drift.profile``): every statistic, plus the status, sizes and
cardinality a method is chosen by. A numeric column with at most ``LOW_CARDINALITY`` distinct
values (reference ∪ current) also gets the categorical statistics over its exact value counts,
which is how Evidently judges it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.monitoring.drift.profile import (
    CATEGORICAL,
    LOW_CARDINALITY,
    NUMERIC,
    as_category_series,
    category_counts,
    finite_float,
    float_or_none,
    numeric_value_counts,
    nunique_sorted,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CATEGORICAL_STATS",
    "NUMERIC_STATS",
    "categorical_column",
    "categorical_stats",
    "numeric_column",
    "numeric_stats",
]

_EVIDENTLY_DISCRETE_MAX = 20  # get_binned_data: reference nunique > 20 → Sturges bins
_KS_MAX_AUTO_N = 10_000  # scipy ks_2samp(method="auto"): exact p-value up to this size
_WASSERSTEIN_MIN_NORM = 0.001  # wasserstein_distance_norm: max(std(reference), 0.001)

NUMERIC_STATS = (
    "ks_statistic",
    "ks_pvalue",
    "wasserstein",
    "wasserstein_norm",
    "psi",
    "jensenshannon",
    "psi_quantile",
)
"""The keys of ``numeric_stats``' result."""

CATEGORICAL_STATS = ("jensenshannon", "chisquare_statistic", "chisquare_pvalue", "psi", "z_pvalue")
"""The score keys of ``categorical_stats``' result (it also lists unseen/missing categories)."""


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    """utils.get_binned_data(feel_zeroes=True): empty bins get min(non-zero)/1e6 if that min
    is <= 1e-4, else 1e-4."""
    import numpy as np

    nz = p[p != 0]
    if nz.size == 0:
        return p
    m = nz.min()
    return np.where(p == 0, m / 10**6 if m <= 0.0001 else 0.0001, p)


def _psi_from_percents(ref_p: np.ndarray, cur_p: np.ndarray) -> float:
    """psi._psi: sum((ref - cur) * ln(ref / cur)) after the zero fill."""
    import numpy as np

    r, c = _fill_zeroes(ref_p), _fill_zeroes(cur_p)
    return float(np.sum((r - c) * np.log(r / c)))


def _rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import numpy as np

    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = x[pos] * np.log(x[pos] / y[pos])
    return out


def _jensenshannon_from_percents(ref_p: np.ndarray, cur_p: np.ndarray) -> float:
    """scipy.spatial.distance.jensenshannon(ref, cur, base=None): natural log, distance
    (square root of the divergence), inputs renormalised to sum 1; no zero fill."""
    import numpy as np

    p = ref_p / np.sum(ref_p)
    q = cur_p / np.sum(cur_p)
    m = (p + q) / 2.0
    js = np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))
    return float(np.sqrt(js / 2.0))


def _unique_counts_sorted(srt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if srt.size == 0:
        return srt, np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(srt[1:] != srt[:-1]) + 1))
    counts = np.diff(np.concatenate((starts, [srt.size])))
    return srt[starts], counts


def _hist_sorted(srt: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """np.histogram(values, edges)[0] for already-sorted values (numpy's own method:
    searchsorted 'left' on all edges but the last, 'right' on the last)."""
    import numpy as np

    cum = np.concatenate(
        (srt.searchsorted(edges[:-1], "left"), srt.searchsorted(edges[-1:], "right"))
    )
    return np.diff(cum)


def _bin_counts_sorted(srt: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``profile.bin_counts`` (right-closed bins, the two open ends included) for sorted values: one
    searchsorted per edge, not per value."""
    import numpy as np

    return np.diff(np.concatenate(([0], srt.searchsorted(edges, "right"), [srt.size])))


def _evidently_binned(
    ref: np.ndarray, cur: np.ndarray, grid: CdfGrid
) -> tuple[np.ndarray, np.ndarray]:
    """utils.get_binned_data for a numerical column, before the zero fill.

    Reference nunique > 20: Sturges equal-width bins over reference+current
    (``np.histogram_bin_edges(reference ∪ current, "sturges")``), shares per bin; otherwise one
    "bin" per distinct value seen in either sample. ``ref``/``cur`` are sorted.
    """
    import numpy as np

    if grid.ref_distinct > _EVIDENTLY_DISCRETE_MAX:
        edges = np.histogram_bin_edges(np.concatenate((ref, cur)), bins="sturges")
        return _hist_sorted(ref, edges) / ref.size, _hist_sorted(cur, edges) / cur.size
    at_value = grid.cum_ref[grid.real], grid.cum_cur[grid.real]  # counts up to each distinct value
    return np.diff(at_value[0], prepend=0) / ref.size, np.diff(at_value[1], prepend=0) / cur.size


@dataclass(frozen=True)
class CdfGrid:
    """Every distinct value of either sorted sample, in order, with each sample's count up to it:
    both empirical CDFs, computed over distinct values (counts per value) rather than over every
    row, so a column of few distinct values costs next to nothing. A value in both samples sits
    twice (reference first, as a stable sort of ``reference ∪ current`` puts it); only its second
    position is a point of both CDFs (``real``)."""

    values: np.ndarray
    cum_ref: np.ndarray
    cum_cur: np.ndarray
    real: np.ndarray
    ref_distinct: int

    @classmethod
    def of(cls, ref: np.ndarray, cur: np.ndarray) -> CdfGrid:
        import numpy as np

        rv, rc = _unique_counts_sorted(ref)
        cv, cc = _unique_counts_sorted(cur)
        values, is_ref = merge_sorted(rv, cv)
        w_ref, w_cur = np.zeros(values.size, dtype=np.int64), np.zeros(values.size, dtype=np.int64)
        w_ref[is_ref], w_cur[~is_ref] = rc, cc
        real = np.ones(values.size, dtype=bool)
        real[:-1] = values[1:] != values[:-1]
        return cls(values, np.cumsum(w_ref), np.cumsum(w_cur), real, rv.size)


def _sorted(values: np.ndarray) -> np.ndarray:
    """``values`` sorted (returned as they are when already in order: an O(n) check, no copy)."""
    import numpy as np

    if values.size > 1 and np.any(values[1:] < values[:-1]):
        return np.sort(values)
    return values


def merge_sorted(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.concatenate((ref, cur))`` stably sorted, for two sorted arrays — in O(n), no sort — and
    which of its positions hold a ``ref`` value. As the stable sort does, a reference value goes
    before the current values equal to it (``searchsorted(..., "left")``)."""
    import numpy as np

    at = cur.searchsorted(ref, "left") + np.arange(ref.size)
    is_ref = np.zeros(ref.size + cur.size, dtype=bool)
    is_ref[at] = True
    combined = np.empty(ref.size + cur.size, dtype=np.float64)
    combined[at] = ref
    combined[~is_ref] = cur
    return combined, is_ref


def _ks_pvalue(d: float, ref: np.ndarray, cur: np.ndarray) -> float:
    """Two-sided p-value exactly as scipy.stats.ks_2samp(method="auto") (used by
    ks_stattest._ks_stat_test): the exact distribution when max(n1, n2) <= 10000, else
    ``kstwo.sf(d, round(n1*n2/(n1+n2)))``. scipy is imported lazily."""
    import numpy as np
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

    - ``psi`` (psi.py + utils.get_binned_data): with reference nunique > 20,
      ``np.histogram_bin_edges(reference ∪ current, "sturges")`` equal-width bins (*not*
      quantiles); otherwise one bin per value seen on either side. Shares = count / rows; empty
      bins get ``min(non-zero share)/1e6`` if that min is <= 1e-4, else ``1e-4`` (separately per
      side); ``sum((ref - cur) * ln(ref / cur))``.
    - ``psi_quantile`` (ours, not Evidently): the same formula and epsilon on the profile's
      reference-quantile bins over the whole reference column, so independent of the sizes;
      computed only when those bins are given.
    - ``jensenshannon`` (jensenshannon.py): the bins of ``psi`` without epsilon;
      ``scipy.spatial.distance.jensenshannon`` with ``base=None`` (natural log), so the distance
      lies in ``[0, sqrt(ln 2)]``.
    - ``wasserstein_norm`` (wasserstein_distance_norm.py): ``scipy.stats.wasserstein_distance``
      divided by ``max(reference_std, 0.001)``; with ``reference_std`` None that is
      ``np.std(ref_sample)`` (ddof=0), i.e. exactly Evidently on ``ref_sample``.
    - ``ks_statistic`` / ``ks_pvalue`` (ks_stattest.py): two-sided ``scipy.stats.ks_2samp``,
      method "auto" (exact p-value when both sizes <= 10000, else ``kstwo.sf``).
    """
    import numpy as np

    ref = _sorted(np.asarray(ref_sample, dtype=np.float64))
    cur = _sorted(np.asarray(cur, dtype=np.float64))
    grid = CdfGrid.of(ref, cur)

    # Empirical CDFs at every observed value (scipy's ks_2samp / _cdf_distance), over the
    # distinct values
    diff = np.abs(grid.cum_ref / ref.size - grid.cum_cur / cur.size)
    ks = float(diff[grid.real].max())
    # wasserstein_distance_norm: scipy.stats.wasserstein_distance / max(np.std(ref), 0.001); a
    # value's first position (of two) is 0 wide, so it adds nothing
    wd = float(np.dot(diff[:-1], np.diff(grid.values)))
    std = float(np.std(ref)) if reference_std is None else float(reference_std)
    norm = max(std, _WASSERSTEIN_MIN_NORM)

    ref_p, cur_p = _evidently_binned(ref, cur, grid)
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
        cur_q = _bin_counts_sorted(cur, np.asarray(quantile_edges, dtype=np.float64)) / cur.size
        out["psi_quantile"] = _psi_from_percents(ref_q, cur_q)
    return out


def categorical_stats(ref_counts: dict[str, int], cur_counts: dict[str, int]) -> dict[str, Any]:
    """JS distance, chi-square statistic and p-value, and PSI over categories.

    Keys are the categories present in either side (Evidently's
    ``get_unique_not_nan_values_list_from_series``); shares are count / non-null rows.
    Both sides must have at least one non-null value. ``psi`` and ``jensenshannon`` as in
    ``numeric_stats`` with one bin per category. ``chisquare_*`` (chisquare_stattest.py):
    ``f_exp = ref_count * n_cur / n_ref``, ``scipy.stats.chisquare(f_obs, f_exp)``: a category
    unseen in the reference gives ``+inf`` / p = 0; one category in all gives p = 1.0 (scipy
    gives nan; the drift decision is the same). ``z_pvalue`` (z_stattest.py): two-sided
    two-proportion Z-test of "not the first (sorted) category" between the sides,
    ``2 * (1 - Φ(|z|))``; the same single value on both sides gives 1.
    """
    import numpy as np

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
        "z_pvalue": _z_pvalue(r, c),
        "unseen_categories": [k for k in keys if ref_counts.get(k, 0) == 0],
        "missing_categories": [k for k in keys if cur_counts.get(k, 0) == 0],
    }


def _z_pvalue(r: np.ndarray, c: np.ndarray) -> float:
    """z_stattest._z_stat_test on counts over the sorted categories: the share of rows that are
    not the first category, compared between the sides (pooled two-proportion Z-test)."""
    import numpy as np

    if np.count_nonzero(r) == 1 and np.count_nonzero(c) == 1 and np.array_equal(r > 0, c > 0):
        return 1.0  # one and the same value on both sides
    from scipy.special import ndtr  # = scipy.stats.norm.cdf

    n1, n2 = r.sum(), c.sum()
    p1, p2 = (n1 - r[0]) / n1, (n2 - c[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - ndtr(np.abs(z))))


# ---- one current column against its profile -------------------------------------------------


def _missing_profile(what: str) -> ValueError:
    return ValueError(
        f"reference profile has no {what}: build it with "
        "mlops_assets.monitoring.drift.profile.build_reference_profile"
    )


def _reference_value_counts(profile: dict) -> dict[str, int] | None:
    """Exact value counts of a low-cardinality numeric reference (the sample's when the profile
    keeps no ``value_counts``)."""
    import numpy as np

    if not 0 < profile.get("distinct", 0) <= LOW_CARDINALITY:
        return None
    if "value_counts" in profile:
        return profile["value_counts"]
    return numeric_value_counts(np.asarray(profile["sample"], dtype=np.float64))


# a low-cardinality reference is rebuilt from its counts up to this many rows
_EXACT_REFERENCE_MAX_ROWS = 1_000_000


def _reference_values(profile: dict, ref_counts: dict[str, int] | None) -> np.ndarray:
    """The reference values the numeric statistics use: the whole column rebuilt from its exact
    value counts (low cardinality, not too long), else the profile's sample."""
    import numpy as np

    if (
        ref_counts is not None
        and "value_counts" in profile
        and profile["count"] <= _EXACT_REFERENCE_MAX_ROWS
    ):
        keys = sorted(ref_counts, key=float)
        return np.repeat(np.array([float(k) for k in keys]), [ref_counts[k] for k in keys])
    return np.asarray(profile["sample"], dtype=np.float64)


def _mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and population std (``np.std``, ddof 0) of finite values; the squares summed by one
    ``einsum`` (no temporary of squares; not BLAS, so the same bits whatever the thread count)."""
    import numpy as np

    mean = float(values.mean())
    centred = values - mean
    return float_or_none(mean), float_or_none(
        np.sqrt(np.einsum("i,i->", centred, centred) / values.size)
    )


def numeric_column(profile: dict, values: Any) -> dict[str, Any]:
    """Statistics of a numeric current column against its profile (``numeric_stats``; a
    low-cardinality column also gets ``categorical_stats`` over its value counts)."""
    import numpy as np

    if "sample" not in profile:
        raise _missing_profile("'sample'")
    cur, nulls = finite_float(values)
    mean, std = _mean_std(cur) if cur.size else (None, None)  # as given
    cur = _sorted(cur)  # once: the cardinality and every statistic below use the sorted values
    ref_counts = _reference_value_counts(profile)
    cur_counts = numeric_value_counts(cur) if ref_counts is not None else {}
    cardinality = (
        len(set(ref_counts) | set(cur_counts))
        if ref_counts is not None
        else max(profile.get("distinct", 0), nunique_sorted(cur))
    )
    out: dict[str, Any] = {
        "type": NUMERIC,
        "rows": int(cur.size),
        "nulls": nulls,
        "reference_rows": profile["count"],
        "reference_sample_rows": len(profile["sample"]),
        "cardinality": cardinality,
        "mean": mean,
        "std": std,
        "reference_mean": profile["mean"],
        "reference_std": profile["std"],
        **dict.fromkeys(NUMERIC_STATS),
    }
    if not profile["sample"]:
        return {**out, "status": "no_reference"}
    if cur.size == 0:
        return {**out, "status": "empty_current"}
    out.update(
        numeric_stats(
            _reference_values(profile, ref_counts),
            cur,
            np.asarray(profile["bin_edges"], dtype=np.float64),
            np.asarray(profile["bin_proportions"], dtype=np.float64),
            reference_std=profile["std"],
        )
    )
    if ref_counts is not None and cardinality <= LOW_CARDINALITY:  # judged as categories
        cats = categorical_stats(ref_counts, cur_counts)
        out.update({k: cats[k] for k in CATEGORICAL_STATS})
    return {**out, "status": "ok"}


def categorical_column(profile: dict, values: Any) -> dict[str, Any]:
    """Statistics of a categorical current column against its profile's exact counts."""
    if "counts" not in profile:
        raise _missing_profile("category 'counts'")
    s = as_category_series(values)
    cur_counts = category_counts(s)
    n = sum(cur_counts.values())
    ref = {k: c for k, c in profile["counts"].items() if c > 0}
    out: dict[str, Any] = {
        "type": CATEGORICAL,
        "rows": n,
        "nulls": int(s.null_count()),
        "reference_rows": profile["count"],
        "cardinality": len(set(ref) | set(cur_counts)),
        **dict.fromkeys(CATEGORICAL_STATS),
        "unseen_categories": [],
        "missing_categories": [],
        "shares": {k: c / n for k, c in sorted(cur_counts.items())} if n else {},
    }
    if profile["count"] == 0:
        return {**out, "status": "no_reference"}
    if n == 0:
        return {**out, "status": "empty_current"}
    return {**out, **categorical_stats(profile["counts"], cur_counts), "status": "ok"}
