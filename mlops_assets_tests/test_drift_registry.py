"""The drift-method registry: one list of methods drives scoring, the drift rule and the
validation of method names per kind of column."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
from mlops_assets.monitoring.drift import methods as drift
from mlops_assets.monitoring.drift.methods import (
    DRIFT_METHODS,
    DriftMethod,
    drift_method,
    method_names,
)
from mlops_assets.monitoring.drift.profile import CATEGORICAL, NUMERIC, build_reference_profile
from mlops_assets.monitoring.drift.stats import CATEGORICAL_STATS, NUMERIC_STATS


@pytest.fixture(scope="module")
def spec():
    spec = load_spec(BUNDLED_SPEC)
    return spec.model_copy(update={"drift": spec.drift.model_copy(update={"exclude": []})})


def _frame(spec, rng: np.random.Generator, n: int, shift: float = 0.0) -> pl.DataFrame:
    cols = {c: rng.normal(shift, 1.0, n) for c in spec.numeric_features + spec.calendar_features}
    cats = ["a", "b", "c"]
    p = [0.6, 0.3, 0.1] if not shift else [0.1, 0.3, 0.6]
    cols |= {c: rng.choice(cats, n, p=p) for c in spec.categorical_features}
    return pl.DataFrame(cols)


@pytest.fixture(scope="module")
def profile(spec):
    frame = _frame(spec, np.random.default_rng(1), 2000)
    return build_reference_profile(
        frame, spec.numeric_features + spec.calendar_features, spec.categorical_features
    )


def test_registry_lists_the_methods_per_kind():
    assert method_names(NUMERIC) == ["jensenshannon", "ks", "psi", "psi_quantile", "wasserstein"]
    assert method_names(CATEGORICAL) == ["chisquare", "jensenshannon", "psi", "z"]
    assert all(name == m.name for name, m in DRIFT_METHODS.items())


def test_every_statistic_is_produced_for_every_kind_it_applies_to():
    produced = {NUMERIC: set(NUMERIC_STATS), CATEGORICAL: set(CATEGORICAL_STATS)}
    for m in DRIFT_METHODS.values():
        assert m.kinds, m.name
        for kind in m.kinds:
            assert m.statistic in produced[kind], (m.name, kind)


def test_rules_decide_drift():
    distance, ks, chi = (DRIFT_METHODS[m] for m in ("wasserstein", "ks", "chisquare"))
    assert distance.drifted(0.1, 0.1) and not distance.drifted(0.09, 0.1)
    assert ks.drifted(0.05, 0.05) and not ks.drifted(0.06, 0.05)
    assert not chi.drifted(0.05, 0.05) and chi.drifted(0.049, 0.05)
    for m in (distance, ks, chi):
        assert m.drifted(None, 0.1) is False and m.drifted(math.nan, 0.1) is False


def test_method_is_frozen_and_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DRIFT_METHODS["psi"].rule = "<"  # type: ignore[misc]
    with pytest.raises(ValueError, match="rule must be one of"):
        DriftMethod("x", frozenset({NUMERIC}), "psi", ">")
    with pytest.raises(ValueError, match="unknown kinds"):
        DriftMethod("x", frozenset({"text"}), "psi", ">=")


def test_registry_drives_validation(spec, profile):
    """A numeric-only method is rejected for categorical columns, and the message lists the
    categorical methods from the registry."""
    assert drift_method("ks", NUMERIC) is DRIFT_METHODS["ks"]
    expected = (
        "unknown categorical drift method 'ks'; choose from ['chisquare', 'jensenshannon', 'psi',"
        " 'z']"
    )
    with pytest.raises(ValueError) as err:
        drift_method("ks", CATEGORICAL)
    assert str(err.value) == expected
    cur = _frame(spec, np.random.default_rng(2), 500)
    with pytest.raises(ValueError) as err:
        drift.feature_drift(profile, cur, spec, categorical_method="ks")
    assert str(err.value) == expected
    numeric = r"unknown numeric drift method 'chisquare'; choose from \['jensenshannon', 'ks'"
    with pytest.raises(ValueError, match=numeric):
        drift.feature_drift(profile, cur, spec, per_feature_method={"amount": "chisquare"})


def test_a_new_registry_entry_is_a_usable_method(spec, profile, monkeypatch):
    """Adding a method is one registry entry: feature_drift accepts it and scores with its
    statistic and rule."""
    method = DriftMethod("ks_distance", frozenset({NUMERIC}), "ks_statistic", ">=")
    monkeypatch.setitem(DRIFT_METHODS, method.name, method)
    assert "ks_distance" in method_names(NUMERIC)
    assert "ks_distance" not in method_names(CATEGORICAL)
    cur = _frame(spec, np.random.default_rng(3), 800, shift=1.0)
    res = drift.feature_drift(
        profile, cur, spec, numeric_method="ks_distance", numeric_threshold=0.2
    )
    amount = res["features"]["amount"]
    assert amount["method"] == "ks_distance" and amount["score"] == amount["ks_statistic"]
    assert amount["drifted"] == (amount["score"] >= 0.2) and amount["drifted"]
