"""Drift statistics: cross-checked against scipy and Evidently 0.7.23, detection power,
false-alarm rate on stable days, and edge cases. Real (synthetic card-transaction) data,
no mocks.

Tolerances
- Against scipy and Evidently on the *same* inputs (Evidently given the profile's stored
  reference sample for numeric columns, the full reference for categorical ones — the
  categorical profile keeps exact counts): ``rel 1e-9, abs 1e-12``. The formulas are
  identical; only floating-point summation order differs. Normalised Wasserstein is
  compared as raw distance / normaliser: ours divides by the full reference column's std
  (stored in the profile), Evidently-on-the-sample by the sample's std.
- Against Evidently on the *full* reference column (our numeric statistics use the
  5000-value stratified sample): normalised Wasserstein within ``abs 0.005`` (5% of the 0.1
  threshold) and never more than the sample's own distance to the full column,
  ``W(full, sample) / std(full)``, which bounds the difference (triangle inequality).
"""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
from mlops_assets.monitoring.drift import methods as drift
from mlops_assets.monitoring.drift import profile as drift_profile
from mlops_assets.monitoring.drift import stats as drift_stats

REL, ABS = 1e-9, 1e-12

MERCHANTS = [
    "grocery",
    "fuel",
    "restaurant",
    "electronics",
    "travel",
    "online_retail",
    "gambling",
    "pharmacy",
]
MERCHANT_SHARES = [0.30, 0.15, 0.20, 0.08, 0.05, 0.15, 0.02, 0.05]
CHANNELS, CHANNEL_SHARES = ["pos", "online", "atm"], [0.60, 0.32, 0.08]
COUNTRIES, COUNTRY_SHARES = ["home", "neighbour", "far"], [0.85, 0.10, 0.05]
# Diurnal pattern of transaction hours.
HOUR_SHARES = np.array([1, 1, 1, 1, 1, 2, 3, 5, 6, 6, 7, 7, 8, 7, 7, 7, 7, 8, 8, 7, 6, 4, 3, 2.0])
HOUR_SHARES /= HOUR_SHARES.sum()


def card_frame(
    rng: np.random.Generator,
    n: int,
    *,
    shift: bool = False,
    weekday: int | None = None,
    null_rate: float = 0.01,
) -> pl.DataFrame:
    """Card-transaction features as the ``features`` table has them (numeric as Float64)."""
    merchant_p = [0.10, 0.05, 0.10, 0.25, 0.10, 0.25, 0.10, 0.05] if shift else MERCHANT_SHARES
    channel_p = [0.30, 0.60, 0.10] if shift else CHANNEL_SHARES
    day = rng.integers(1, 8, n) if weekday is None else np.full(n, weekday)
    distance = rng.lognormal(2.5 + (0.8 if shift else 0.0), 1.2, n)
    distance[rng.random(n) < null_rate] = np.nan  # nulls, to be dropped and counted
    merchant = rng.choice(MERCHANTS, n, p=merchant_p).astype(object)
    merchant[rng.random(n) < null_rate] = None
    return pl.DataFrame(
        {
            "amount": rng.lognormal(3.6 + (0.7 if shift else 0.0), 1.1, n),
            "distance_from_home_km": distance,
            "card_age_days": rng.gamma(2.0, 400.0, n).round(),
            "tx_count_24h": rng.poisson(4.5 if shift else 3.0, n).astype(float),
            "hour": rng.choice(24, n, p=HOUR_SHARES).astype(float),
            "day_of_week": day.astype(float),
            "is_weekend": (day >= 6).astype(float),
            "merchant_category": pl.Series(merchant, dtype=pl.String),
            "channel": rng.choice(CHANNELS, n, p=channel_p),
            "country": rng.choice(COUNTRIES, n, p=COUNTRY_SHARES),
        },
        nan_to_null=True,
    )


def every_column(spec):
    """The spec with nothing excluded: the statistics of every column are checked here."""
    return spec.model_copy(update={"drift": spec.drift.model_copy(update={"exclude": []})})


@pytest.fixture(scope="module")
def spec():
    return every_column(
        load_spec(BUNDLED_SPEC)
    )  # the card-transactions spec, whatever $MLOPS_SPEC says


@pytest.fixture(scope="module")
def reference():
    return card_frame(np.random.default_rng(2024), 40_000)


@pytest.fixture(scope="module")
def profile(spec, reference):
    return _profile_of(reference, spec)


@pytest.fixture(scope="module")
def shifted_current():
    """A moderate shift on a 3000-row day, plus a merchant category never seen in training."""
    rng = np.random.default_rng(7)
    cur = card_frame(rng, 3000)
    extra_tx = pl.Series(rng.random(3000) < 0.2).cast(pl.Float64)
    crypto = pl.Series(rng.random(3000) < 0.02)
    return cur.with_columns(
        pl.col("amount") * 1.25,
        pl.col("tx_count_24h") + extra_tx,
        pl.when(crypto)
        .then(pl.lit("crypto"))
        .otherwise(pl.col("merchant_category"))
        .alias("merchant_category"),
    )


def _finite(s: pl.Series) -> np.ndarray:
    a = s.cast(pl.Float64).to_numpy()
    return a[np.isfinite(a)]


def _close(ours, theirs, what):
    assert ours == pytest.approx(theirs, rel=REL, abs=ABS), f"{what}: ours {ours!r} vs {theirs!r}"


def _profile_of(frame, spec, **kw):
    numeric = spec.numeric_features + spec.calendar_features
    return drift_profile.build_reference_profile(frame, numeric, spec.categorical_features, **kw)


# ---- the profile ---------------------------------------------------------------------------


def test_profile_is_json_serialisable_and_deterministic(spec, reference, profile):
    import pandas as pd

    assert json.dumps(profile) == json.dumps(_profile_of(reference, spec))
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile
    amount = profile["numeric"]["amount"]
    sample = np.array(amount["sample"])
    assert sample.size == 5000 and np.all(np.diff(sample) >= 0)
    full = np.sort(reference["amount"].to_numpy())
    assert amount["count"] == full.size and amount["std"] == pytest.approx(full.std(), rel=1e-12)
    # Stratified: the i-th sample value lies in the i-th 1/5000 slice of the sorted column.
    bounds = (np.arange(5001) * full.size) // 5000
    assert np.all(sample >= full[bounds[:-1]]) and np.all(sample <= full[bounds[1:] - 1])
    # Quantile bins (-inf, e0], (e0, e1], ..., (e_last, inf): same counts as pandas.cut.
    edges = [-np.inf, *amount["bin_edges"], np.inf]
    expected = pd.Series(pd.cut(full, edges, right=True)).value_counts(sort=False).to_numpy()
    assert amount["bin_counts"] == expected.tolist() and len(amount["bin_counts"]) == 10
    assert drift.feature_drift(profile, reference, spec)["features"]["amount"]["psi_quantile"] == 0
    # Nulls are dropped and counted.
    dist = profile["numeric"]["distance_from_home_km"]
    assert dist["nulls"] == reference["distance_from_home_km"].null_count() > 0
    merch = profile["categorical"]["merchant_category"]
    assert merch["nulls"] == reference["merchant_category"].null_count() > 0
    assert sum(merch["counts"].values()) == merch["count"] == reference.height - merch["nulls"]
    assert sum(merch["shares"].values()) == pytest.approx(1.0)


# ---- cross-checks against scipy ------------------------------------------------------------


@pytest.mark.parametrize("n_current", [3000, 25_000])  # exact and asymptotic KS p-value paths
def test_numeric_statistics_match_scipy(spec, profile, n_current):
    from scipy import stats

    cur = card_frame(np.random.default_rng(n_current), n_current, shift=False)
    cur = cur.with_columns(pl.col("amount") * 1.05)
    result = drift.feature_drift(profile, cur, spec)
    for name in spec.numeric_features + spec.calendar_features:
        f = result["features"][name]
        sample = np.array(profile["numeric"][name]["sample"])
        if "value_counts" in profile["numeric"][name]:  # <= 5 values: the exact column, rebuilt
            counts = profile["numeric"][name]["value_counts"]
            sample = np.repeat([float(k) for k in counts], list(counts.values()))
        values = _finite(cur[name])
        ks = stats.ks_2samp(sample, values)
        _close(f["ks_statistic"], ks.statistic, f"{name} KS statistic")
        _close(f["ks_pvalue"], ks.pvalue, f"{name} KS p-value")
        w = stats.wasserstein_distance(sample, values)
        _close(f["wasserstein"], w, f"{name} Wasserstein")
        norm = max(profile["numeric"][name]["std"], 0.001)
        _close(f["wasserstein_norm"], w / norm, f"{name} normalised Wasserstein")
        assert f["rows"] == values.size and f["nulls"] == n_current - values.size


def test_categorical_statistics_match_scipy(spec, profile, shifted_current):
    from scipy import stats
    from scipy.spatial import distance

    result = drift.feature_drift(profile, shifted_current, spec)
    for name in spec.categorical_features:
        f = result["features"][name]
        ref = profile["categorical"][name]["counts"]
        cur = dict(shifted_current[name].drop_nulls().value_counts().iter_rows())
        keys = sorted(set(ref) | set(cur))
        r = np.array([ref.get(k, 0) for k in keys], float)
        c = np.array([cur.get(k, 0) for k in keys], float)
        _close(f["jensenshannon"], distance.jensenshannon(r / r.sum(), c / c.sum()), f"{name} JS")
        with np.errstate(divide="ignore"):
            chi = stats.chisquare(c, r * c.sum() / r.sum())
        assert f["chisquare_statistic"] == pytest.approx(chi.statistic, rel=REL, abs=ABS)
        _close(f["chisquare_pvalue"], chi.pvalue, f"{name} chi-square p-value")
    merch = result["features"]["merchant_category"]
    assert merch["unseen_categories"] == ["crypto"]
    assert math.isinf(merch["chisquare_statistic"]) and merch["chisquare_pvalue"] == 0.0


# ---- cross-checks against Evidently 0.7.23 -------------------------------------------------


def _evidently_scores(reference_pd, current_pd, numeric, categorical, num_methods, cat_methods):
    """{(column, method): drift score} from an Evidently Report of per-column ValueDrift."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    metrics = [ValueDrift(column=c, method=m) for c in numeric for m in num_methods]
    metrics += [ValueDrift(column=c, method=m) for c in categorical for m in cat_methods]
    with np.errstate(divide="ignore"):
        snapshot = Report(metrics).run(
            current_data=Dataset.from_pandas(current_pd, data_definition=definition),
            reference_data=Dataset.from_pandas(reference_pd, data_definition=definition),
        )
    metrics = snapshot.dict()["metrics"]
    return {(m["config"]["column"], m["config"]["method"]): m["value"] for m in metrics}


def _as_evidently(features: dict, column: str, method: str, profile) -> float:
    """Our statistic in the form Evidently reports it when given the stored sample."""
    f = features[column]
    if method == "wasserstein":  # Evidently normalises by the std of the reference it is given
        if "value_counts" in profile["numeric"][column]:  # given the whole column: its std
            return f["wasserstein_norm"]
        return f["wasserstein"] / max(float(np.std(profile["numeric"][column]["sample"])), 0.001)
    key = {
        "psi": "psi",
        "ks": "ks_pvalue",
        "jensenshannon": "jensenshannon",
        "chisquare": "chisquare_pvalue",
    }[method]
    return f[key]


def _sample_reference_frame(profile, reference, numeric, categorical):
    """Numeric columns = the profile's stored samples (NaN-padded: Evidently drops NaN per
    column), except low-cardinality ones (<= 5 values: the profile keeps their exact value
    counts); categorical columns = the full reference (the profile has their exact counts)."""
    import pandas as pd

    n = max(reference.height, max(len(profile["numeric"][c]["sample"]) for c in numeric))
    cols = {}
    for c in numeric:
        s = np.full(n, np.nan)
        exact = "value_counts" in profile["numeric"][c]
        sample = (
            reference[c].cast(pl.Float64).to_numpy() if exact else profile["numeric"][c]["sample"]
        )
        s[: len(sample)] = sample
        cols[c] = s
    for c in categorical:
        cols[c] = pd.Series(list(reference[c]) + [None] * (n - reference.height), dtype=object)
    return pd.DataFrame(cols)


@pytest.mark.parametrize("n_current", [3000, 25_000])  # exact and asymptotic KS p-value paths
def test_statistics_match_evidently_on_the_stored_sample(
    spec, reference, profile, shifted_current, n_current
):
    numeric = spec.numeric_features + spec.calendar_features
    categorical = spec.categorical_features
    if n_current == 3000:
        cur = shifted_current
    else:
        cur = card_frame(np.random.default_rng(5), n_current, shift=True)
    ours = drift.feature_drift(profile, cur, spec)["features"]
    theirs = _evidently_scores(
        _sample_reference_frame(profile, reference, numeric, categorical),
        cur.to_pandas(),
        numeric,
        categorical,
        ["psi", "wasserstein", "ks", "jensenshannon"],
        ["psi", "jensenshannon", "chisquare"],
    )
    for (column, method), value in theirs.items():
        _close(_as_evidently(ours, column, method, profile), value, f"{column} {method} Evidently")
    assert len(theirs) == 4 * len(numeric) + 3 * len(categorical)


def test_dataset_decision_matches_evidently_preset(spec, reference, profile, shifted_current):
    """Evidently's own DataDriftPreset (default stattests for > 1000 rows: normalised
    Wasserstein / Jensen–Shannon; spec thresholds and drift share) reaches the same
    per-column scores and drifted count on the stored sample."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = spec.numeric_features + spec.calendar_features
    categorical = spec.categorical_features
    cur = card_frame(np.random.default_rng(11), 3000)
    cur = cur.with_columns(pl.col("amount") * 1.4, pl.col("hour") + 1.5)
    ours = drift.feature_drift(profile, cur, spec)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    preset = DataDriftPreset(
        num_threshold=spec.drift.numeric_threshold,
        cat_threshold=spec.drift.categorical_threshold,
        drift_share=spec.drift.share_drifted,
    )
    ref_pd = _sample_reference_frame(profile, reference, numeric, categorical)
    snap = (
        Report([preset])
        .run(
            current_data=Dataset.from_pandas(cur.to_pandas(), data_definition=definition),
            reference_data=Dataset.from_pandas(ref_pd, data_definition=definition),
        )
        .dict()
    )
    values = {}
    for m in snap["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            count = m["value"]
        else:
            # auto-resolved methods are recorded under their display names
            method = {
                "Wasserstein distance (normed)": "wasserstein",
                "Jensen-Shannon distance": "jensenshannon",
            }.get(cfg["method"], cfg["method"])
            values[cfg["column"]] = (method, m["value"])
    for name, (method, value) in values.items():
        f = ours["features"][name]
        expected_method = "wasserstein" if f["type"] == "numeric" else "jensenshannon"
        # is_weekend has <= 5 distinct values, so Evidently's auto choice is JS there.
        if name == "is_weekend":
            expected_method = "jensenshannon"
        assert method == expected_method, name
        ours_value = _as_evidently(ours["features"], name, method, profile)
        _close(ours_value, value, f"{name} preset {method}")
    # Same drifted columns, count, share and dataset decision (Evidently: share >= drift_share).
    thr = {
        n: spec.drift.numeric_threshold
        if ours["features"][n]["type"] == "numeric"
        else spec.drift.categorical_threshold
        for n in values
    }
    assert {n for n, (_, v) in values.items() if v >= thr[n]} == set(ours["drifted_features"])
    assert count["count"] == ours["n_drifted"] >= 2
    assert count["share"] == pytest.approx(ours["share_drifted"])
    assert (count["share"] >= spec.drift.share_drifted) == ours["dataset_drifted"]


def test_constant_reference_column_matches_evidently():
    """std 0 → Evidently normalises Wasserstein by 0.001; PSI/JS fall back to value bins."""
    import pandas as pd

    ref = np.zeros(2000)
    prof = drift_profile.profile_numeric(ref)
    assert prof["std"] == 0.0 and prof["distinct"] == 1
    for cur in (np.zeros(1500), np.r_[np.zeros(1400), np.ones(100)]):
        ours = drift_stats.numeric_stats(
            np.array(prof["sample"]),
            cur,
            np.array(prof["bin_edges"]),
            np.array(prof["bin_proportions"]),
        )
        theirs = _evidently_scores(
            pd.DataFrame({"x": ref}),
            pd.DataFrame({"x": cur}),
            ["x"],
            [],
            ["psi", "wasserstein", "ks", "jensenshannon"],
            [],
        )
        keys = {
            "psi": "psi",
            "wasserstein": "wasserstein_norm",
            "ks": "ks_pvalue",
            "jensenshannon": "jensenshannon",
        }
        for method, key in keys.items():
            _close(ours[key], theirs[("x", method)], f"constant column {method}")
    assert ours["wasserstein_norm"] == pytest.approx((100 / 1500) / 0.001)


def test_sample_based_wasserstein_close_to_evidently_on_full_reference(
    spec, reference, profile, shifted_current
):
    from scipy import stats

    numeric = spec.numeric_features + spec.calendar_features
    theirs = _evidently_scores(
        reference.select(numeric).to_pandas(),
        shifted_current.select(numeric).to_pandas(),
        numeric,
        [],
        ["wasserstein"],
        [],
    )
    ours = drift.feature_drift(profile, shifted_current, spec)["features"]
    for name in numeric:
        full = _finite(reference[name])
        sample = np.array(profile["numeric"][name]["sample"])
        w_full = theirs[(name, "wasserstein")]
        gap = abs(ours[name]["wasserstein_norm"] - w_full)
        # same normaliser (full std): |W(S,C) - W(F,C)| / sF <= W(F,S) / sF  (triangle ineq.)
        bound = stats.wasserstein_distance(full, sample) / max(full.std(), 0.001)
        print(
            f"{name:>22}: ours {ours[name]['wasserstein_norm']:.5f}  "
            f"evidently(full) {w_full:.5f}  gap {gap:.1e}  bound {bound:.1e}"
        )
        assert gap <= 0.005
        assert gap <= bound + 1e-9


# ---- detection and false alarms ------------------------------------------------------------


def test_strong_covariate_shift_is_dataset_drift(spec, profile):
    cur = card_frame(np.random.default_rng(99), 3000, shift=True)
    result = drift.feature_drift(profile, cur, spec)
    flagged = set(result["drifted_features"])
    shifted = {"amount", "distance_from_home_km", "tx_count_24h", "merchant_category", "channel"}
    assert shifted <= flagged
    assert result["dataset_drifted"] and result["share_drifted"] >= spec.drift.share_drifted
    assert not result["features"]["country"]["drifted"]
    assert not result["features"]["hour"]["drifted"]


def _stable_days(spec, profile, *, realistic_calendar: bool):
    rng = np.random.default_rng(31)
    dataset_alarms, feature_alarms = 0, {}
    for day in range(30):
        cur = card_frame(rng, 3000, weekday=(day % 7) + 1 if realistic_calendar else None)
        res = drift.feature_drift(profile, cur, spec)
        dataset_alarms += res["dataset_drifted"]
        for name in res["drifted_features"]:
            feature_alarms[name] = feature_alarms.get(name, 0) + 1
    return dataset_alarms, feature_alarms


def test_false_alarm_rate_on_stable_days(spec, profile):
    alarms, per_feature = _stable_days(spec, profile, realistic_calendar=False)
    print(
        f"\nstable days (iid): dataset false alarms {alarms}/30 = {alarms / 30:.1%}; "
        f"per feature {per_feature}"
    )
    assert alarms == 0
    assert sum(per_feature.values()) <= 3  # of 300 feature-days


def test_calendar_features_drift_structurally_in_daily_partitions(spec, profile):
    """A daily partition holds one weekday, so day_of_week and is_weekend look drifted
    every day (2 of 10 features = 0.2 of the share budget, spec share_drifted 0.3)."""
    alarms, per_feature = _stable_days(spec, profile, realistic_calendar=True)
    print(
        f"\nstable days (one weekday per day): dataset false alarms {alarms}/30 = "
        f"{alarms / 30:.1%}; per feature {per_feature}"
    )
    assert per_feature.get("day_of_week") == 30
    assert set(per_feature) <= {"day_of_week", "is_weekend"}
    assert alarms == 0


# ---- edge cases ----------------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["no_rows", "no_columns"])
def test_empty_current_partition(spec, profile, reference, empty):
    cur = reference.head(0) if empty == "no_rows" else pl.DataFrame()
    result = drift.feature_drift(profile, cur, spec)
    assert result["rows"] == 0 and result["n_evaluated"] == 0
    assert result["share_drifted"] == 0.0 and result["dataset_drifted"] is False
    for f in result["features"].values():
        assert f["status"] == "empty_current" and f["score"] is None and f["drifted"] is False
    json.dumps(result, allow_nan=False)


def test_all_null_column_and_null_counts(spec, profile):
    cur = card_frame(np.random.default_rng(3), 500).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("amount"),
        pl.lit(None, dtype=pl.String).alias("channel"),
        pl.Series("hour", [float("inf")] * 10 + [12.0] * 490),
    )
    result = drift.feature_drift(profile, cur, spec)
    features = result["features"]
    assert features["amount"]["status"] == "empty_current" and features["amount"]["nulls"] == 500
    assert features["channel"]["status"] == "empty_current" and features["channel"]["nulls"] == 500
    assert features["hour"]["nulls"] == 10 and features["hour"]["rows"] == 490
    assert result["n_evaluated"] == 8


def test_constant_reference_in_feature_drift(spec):
    ref = card_frame(np.random.default_rng(4), 5000).with_columns(tx_count_24h=pl.lit(2.0))
    prof = _profile_of(ref, spec)
    same = drift.feature_drift(prof, ref.head(1000), spec)["features"]["tx_count_24h"]
    assert same["wasserstein_norm"] == 0.0 and same["psi"] == 0.0 and same["drifted"] is False
    moved = ref.head(1000).with_columns(tx_count_24h=pl.lit(3.0))
    f = drift.feature_drift(prof, moved, spec)["features"]["tx_count_24h"]
    assert f["wasserstein_norm"] == pytest.approx(1.0 / 0.001)
    assert f["drifted"] and f["psi_quantile"] > 1


def test_unseen_category_and_empty_reference_column(spec, reference):
    prof = _profile_of(reference.with_columns(country=pl.lit(None, dtype=pl.String)), spec)
    assert prof["categorical"]["country"]["count"] == 0
    cur = card_frame(np.random.default_rng(8), 2000).with_columns(channel=pl.lit("mars"))
    result = drift.feature_drift(prof, cur, spec)
    country = result["features"]["country"]
    assert country["status"] == "no_reference" and not country["drifted"]
    ch = result["features"]["channel"]
    assert ch["unseen_categories"] == ["mars"]
    assert ch["missing_categories"] == ["atm", "online", "pos"]
    assert ch["drifted"] and ch["jensenshannon"] == pytest.approx(math.sqrt(math.log(2)))
    assert result["n_evaluated"] == 9
    json.dumps(result)  # chi-square statistic is +inf here (scipy's value), serialised as Infinity


def test_prediction_drift_and_json_round_trip(spec, reference):
    rng = np.random.default_rng(12)
    prof = json.loads(
        json.dumps(_profile_of(reference, spec, prediction=rng.beta(1, 30, reference.height)))
    )
    cur = card_frame(rng, 3000)
    stable = drift.feature_drift(prof, cur, spec, prediction=rng.beta(1, 30, 3000))
    moved = drift.feature_drift(prof, cur, spec, prediction=rng.beta(1, 10, 3000))
    assert stable["prediction"]["drifted"] is False and moved["prediction"]["drifted"] is True
    assert moved["n_drifted"] == stable["n_drifted"]  # prediction is not in the feature share
    assert drift.feature_drift(prof, cur, spec)["prediction"] is None


def test_methods_are_configurable(spec, profile, shifted_current):
    res = drift.feature_drift(
        profile,
        shifted_current,
        spec,
        numeric_method="ks",
        categorical_method="chisquare",
        numeric_threshold=0.05,
        categorical_threshold=0.05,
        per_feature_method={"amount": "psi"},
        per_feature_threshold={"amount": 0.2},
    )
    amount, hour, merch = (res["features"][k] for k in ("amount", "hour", "merchant_category"))
    assert (amount["method"], amount["threshold"], amount["score"]) == ("psi", 0.2, amount["psi"])
    assert hour["method"] == "ks" and hour["score"] == hour["ks_pvalue"]
    assert hour["drifted"] == (hour["score"] <= 0.05)
    assert merch["method"] == "chisquare" and merch["score"] == 0.0 and merch["drifted"]
    with pytest.raises(ValueError, match="unknown numeric drift method"):
        drift.feature_drift(profile, shifted_current, spec, numeric_method="kl")
