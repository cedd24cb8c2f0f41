"""The O(n) merge and the CDFs over distinct values behind the numeric drift statistics equal the
sort
and searchsorted they replace, value for value, and the statistics equal scipy's (so every
statistic —
and verdict — is unchanged)."""

import numpy as np
import pytest

from mlops_assets.monitoring.drift.stats import CdfGrid, merge_sorted, numeric_stats


@pytest.mark.parametrize("seed", range(6))
def test_merge_and_ranks_equal_a_stable_sort_and_searchsorted(seed):
    rng = np.random.default_rng(seed)
    ref = np.sort(
        np.round(rng.normal(0, 2, rng.integers(1, 400)), seed % 3)
    )  # ties, within and across
    cur = np.sort(np.round(rng.normal(0.3, 2, rng.integers(1, 3000)), seed % 3))
    if seed == 5:
        ref, cur = np.array([-0.0, 0.0, 1.0]), np.array([0.0, -0.0, 0.0, 2.0])
    expected = np.concatenate((ref, cur))
    expected.sort(kind="stable")
    combined, is_ref = merge_sorted(ref, cur)
    assert np.array_equal(combined, expected) and is_ref.sum() == ref.size
    grid = CdfGrid.of(ref, cur)
    distinct = np.unique(expected)
    assert (
        np.array_equal(grid.values[grid.real], distinct)
        and grid.ref_distinct == np.unique(ref).size
    )
    assert np.array_equal(grid.cum_ref[grid.real], ref.searchsorted(distinct, "right"))
    assert np.array_equal(grid.cum_cur[grid.real], cur.searchsorted(distinct, "right"))


@pytest.mark.parametrize("seed", range(4))
def test_ks_and_wasserstein_over_distinct_values_equal_scipys(seed):
    from scipy import stats

    rng = np.random.default_rng(seed)
    ref = np.round(
        rng.normal(0, 2, 5000), seed
    )  # seed 0: few distinct values, ties across the samples
    cur = np.round(rng.normal(0.2, 2.2, 20_000), seed)
    out = numeric_stats(ref, cur, reference_std=1.0)
    assert out["ks_statistic"] == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)
    assert out["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)


def test_numeric_stats_do_not_depend_on_the_input_order():
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(0, 1, 500), np.round(rng.normal(0.2, 1, 5000), 2)
    assert numeric_stats(ref, cur) == numeric_stats(np.sort(ref), np.sort(cur))
