"""The O(n) merge and ranks behind the numeric drift statistics equal the sort and searchsorted
they replace, value for value (so every statistic — and verdict — is unchanged)."""

import numpy as np
import pytest

from mlops_assets.ml.drift_stats import merge_sorted, numeric_stats, right_ranks


@pytest.mark.parametrize("seed", range(6))
def test_merge_and_ranks_equal_a_stable_sort_and_searchsorted(seed):
    rng = np.random.default_rng(seed)
    ref = np.sort(np.round(rng.normal(0, 2, rng.integers(1, 400)), seed % 3))  # ties, within and across
    cur = np.sort(np.round(rng.normal(0.3, 2, rng.integers(1, 3000)), seed % 3))
    if seed == 5:
        ref, cur = np.array([-0.0, 0.0, 1.0]), np.array([0.0, -0.0, 0.0, 2.0])
    expected = np.concatenate((ref, cur))
    expected.sort(kind="stable")
    combined, is_ref = merge_sorted(ref, cur)
    assert np.array_equal(combined, expected) and is_ref.sum() == ref.size
    assert np.array_equal(right_ranks(combined, is_ref), ref.searchsorted(expected, "right"))
    assert np.array_equal(right_ranks(combined, ~is_ref), cur.searchsorted(expected, "right"))


def test_numeric_stats_do_not_depend_on_the_input_order():
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(0, 1, 500), np.round(rng.normal(0.2, 1, 5000), 2)
    assert numeric_stats(ref, cur) == numeric_stats(np.sort(ref), np.sort(cur))
