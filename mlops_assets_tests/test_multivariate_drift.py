"""PCA reconstruction error (pure): what it sees, its threshold, and how it feeds the drift sensor's
summary.

The end-to-end version (simulator ``correlation_drift`` through the real drift pipeline and
assets) is
``test_estimation.test_correlation_drift_is_missed_by_univariate_drift_and_caught_by_multivariate``.
"""

import datetime as dt

import numpy as np
import polars as pl
from scipy.stats import ks_2samp

from mlops_assets.monitoring.drift import multivariate as M

DAY0 = dt.date(2026, 1, 1)


def _world(rng, n, *, correlated=True, day="2026-02-01"):
    a = rng.normal(0, 1, n)
    b = 0.9 * a + np.sqrt(1 - 0.81) * rng.normal(0, 1, n) if correlated else rng.normal(0, 1, n)
    c = rng.normal(5, 2, n)
    kind = np.where(a + rng.normal(0, 0.3, n) > 0, "high", "low")
    return pl.DataFrame({"a": a, "b": b, "c": c, "kind": kind, "day": [day] * n})


def _reference(rng, days=20, rows=2000):
    frames = [_world(rng, rows, day=(DAY0 + dt.timedelta(days=i)).isoformat()) for i in range(days)]
    return M.fit_reference(pl.concat(frames), ["a", "b", "c"], ["kind"], "day", seed=1)


def test_broken_correlation_is_caught_while_each_marginal_is_unchanged():
    rng = np.random.default_rng(0)
    ref = _reference(rng)
    same, broken = _world(rng, 3000), _world(rng, 3000, correlated=False)
    assert M.judge(same, ref)["drifted"] is False
    verdict = M.judge(broken, ref)
    assert verdict["drifted"] is True and verdict["reconstruction_error"] > verdict["threshold"]
    for col in ("a", "b", "c"):  # the marginals themselves do not drift (two-sample K-S)
        assert ks_2samp(same[col].to_numpy(), broken[col].to_numpy()).pvalue > 0.01


def test_the_threshold_comes_from_the_references_own_spread_and_widens_for_small_samples():
    rng = np.random.default_rng(1)
    ref = _reference(rng)
    assert 1 <= ref["n_components"] < 4  # 65% of the variance: the correlated pair collapses
    assert ref["chunk_std"] > 0 and ref["bootstrap_std"] > 0
    assert (
        M.threshold(ref, 200)
        > M.threshold(ref, 2000)
        >= ref["reference_error"] + 3 * ref["chunk_std"] - 1e-12
    )
    # repeated stable days rarely cross it (3 sigma)
    flags = [M.judge(_world(rng, 2000), ref)["drifted"] for _ in range(30)]
    assert sum(flags) <= 1


def test_too_few_rows_are_not_judged_and_unseen_categories_do_not_crash():
    rng = np.random.default_rng(2)
    ref = _reference(rng, days=6, rows=500)
    small = M.judge(_world(rng, 50), ref)
    assert small["drifted"] is None and "insufficient data" in small["note"]
    odd = _world(rng, 500).with_columns(
        pl.lit("never_seen").alias("kind"), pl.lit(None, pl.Float64).alias("c")
    )
    verdict = M.judge(odd, ref)
    assert verdict["drifted"] is not None and np.isfinite(verdict["reconstruction_error"])


def test_encoding_follows_nannyml_frequency_then_standardise():
    frame = pl.DataFrame({"x": [1.0, 2.0, None, 3.0], "k": ["u", "u", "v", None], "day": ["d"] * 4})
    ref = M._fit_encoding(frame, ["x"], ["k"])
    assert ref["impute"]["x"] == 2.0
    assert ref["frequencies"]["k"] == {"u": 0.5, "v": 0.25, M.MISSING: 0.25}
    Z = M.encode(frame, ref)
    assert np.allclose(Z.mean(axis=0), 0) and np.allclose(Z.std(axis=0), 1)


def test_multivariate_verdicts_fold_into_the_drift_summary_only_for_the_same_champion():
    summary = pl.DataFrame(
        {
            "ds": ["2026-01-01", "2026-01-02"],
            "share_drifted": [0.1, 0.4],
            "dataset_drifted": [False, True],
            "drifted_features": [None, "amount"],
            "status": ["ok", "ok"],
            "rows": [10, 10],
            "champion_version": [3, 3],
        }
    )
    mv = pl.DataFrame(
        {
            "ds": ["2026-01-01", "2026-01-02", "2026-01-03"],
            "champion_version": [3, 3, 2],
            "rows": [10] * 3,
            "reconstruction_error": [2.0, 0.5, 3.0],
            "threshold": [1.0] * 3,
            "drifted": [True, False, True],
            "note": [""] * 3,
        }
    )
    merged = M.merge_into_summary(summary, mv)
    rows = {r["ds"]: r for r in merged.iter_rows(named=True)}
    assert merged.columns == summary.columns
    assert (
        rows["2026-01-01"]["dataset_drifted"]
        and rows["2026-01-01"]["drifted_features"] == M.MULTIVARIATE_FEATURE
    )
    assert (
        rows["2026-01-02"]["dataset_drifted"] and rows["2026-01-02"]["drifted_features"] == "amount"
    )
    assert rows["2026-01-03"]["dataset_drifted"] and rows["2026-01-03"]["champion_version"] == 2
    assert M.merge_into_summary(summary, mv.head(0)).equals(summary)
