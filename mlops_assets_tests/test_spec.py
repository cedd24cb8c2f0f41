"""The spec loader rejects each kind of bad spec with a message naming the field."""

import copy

import pytest
import yaml

from mlops_assets.core.spec import BUNDLED_SPEC, SpecError, load_spec, parse_spec
from mlops_assets.core.vocabulary import Sensor

BASE = yaml.safe_load(BUNDLED_SPEC.read_text())


def test_bundled_spec_loads_with_derived_columns():
    spec = load_spec()
    assert spec.task == "classification"
    assert "email" not in spec.model_features and "card_number" not in spec.model_features
    assert spec.model_features[: len(spec.numeric_features)] == spec.numeric_features
    assert spec.target not in spec.event_columns  # labels come in their own feed


def test_env_selects_spec(tmp_path, monkeypatch):
    data = copy.deepcopy(BASE)
    data["name"] = "other_name"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MLOPS_SPEC", str(path))
    assert load_spec().name == "other_name"


def _mutate(path: str, value):
    data = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "expected_field"),
    [
        ("task", "clustering", "task"),
        ("name", "Bad Name!", "name"),
        ("timestamp", KeyError, "timestamp"),
        ("partition_start", "yesterday-ish", "partition_start"),
        ("features.numeric.amount.min", "zero", "features.numeric.amount.min"),
        ("features.numeric.amount", {"min": 10, "max": 1}, "features.numeric.amount"),
        ("features.categorical.channel.allowed", [], "features.categorical.channel.allowed"),
        ("features.calendar", ["fortnight"], "features.calendar.0"),
        ("training.holdout_days", 60, "training"),
        ("training.window_days", -3, "training.window_days"),
        ("labels.delay_days", -1, "labels.delay_days"),
        ("schema_evolution", "shrug", "schema_evolution"),
        ("fallback", "pray", "fallback"),
        ("gates.max_regression", -0.1, "gates.max_regression"),
        ("drift.share_drifted", 1.5, "drift.share_drifted"),
        ("sensors", {"landing_interval_seconds": 0}, "sensors.landing_interval_seconds"),
        ("model.unexpected_key", 1, "model.unexpected_key"),
        ("pii", ["amount"], "<root>"),
        ("id", "amount", "<root>"),
    ],
)
def test_bad_spec_names_the_field(path, value, expected_field):
    with pytest.raises(SpecError) as err:
        parse_spec(_mutate(path, value), "bad.yaml")
    message = str(err.value)
    assert "bad.yaml" in message
    assert f"  {expected_field}:" in message, message


def test_the_sensors_tick_at_the_intervals_the_spec_sets(tmp_path, monkeypatch):
    from mlops_assets.core.platform import Platform
    from mlops_assets.location.build import build_definitions

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    data = copy.deepcopy(BASE)
    data["sensors"] = {"landing_interval_seconds": 7, "shadow_promotion_interval_seconds": 90}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MLOPS_SPEC", str(tmp_path / "spec.yaml"))
    intervals = {
        s.name: s.minimum_interval_seconds for s in build_definitions(Platform.from_env()).sensors
    }
    assert intervals[Sensor.LANDING] == intervals[Sensor.LABELS] == 7
    assert intervals[Sensor.SHADOW_PROMOTION] == 90
    assert intervals[Sensor.DRIFT] == intervals[Sensor.GUARD] == 60  # the default


def test_unreadable_and_non_mapping_specs(tmp_path):
    with pytest.raises(SpecError, match="cannot read dataset spec"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="top level must be a mapping"):
        load_spec(bad)


def test_digest_changes_with_content():
    a = parse_spec(BASE)
    b = parse_spec(_mutate("training.seed", 99))
    assert a.digest != b.digest and a.digest == parse_spec(copy.deepcopy(BASE)).digest


# ---- errors at load that used to load fine (or crash without naming the field) -------------------


def _load_text(tmp_path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_duplicate_keys_are_refused_naming_the_key_and_its_lines(tmp_path):
    """Before: the last value silently won."""
    text = BUNDLED_SPEC.read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines, 1) if line.startswith("fallback:"))
    message = _load_text(tmp_path, text + "fallback: baseline\n")
    assert (
        f"  fallback: duplicate key 'fallback' at line {len(lines) + 1} (first at line {first})"
        in message
    )
    nested = text.replace(
        "floors: {roc_auc: 0.80, pr_auc: 0.10}", "floors: {roc_auc: 0.80, roc_auc: 0.60}"
    )
    assert "  gates.floors.roc_auc: duplicate key 'roc_auc'" in _load_text(tmp_path, nested)
    block = text.replace(
        "freshness: {max_lag_hours: 36}", "freshness: {max_lag_hours: 36}\ndrift: {}"
    )
    assert "  drift: duplicate key 'drift'" in _load_text(tmp_path, block)


def test_an_impossible_date_names_the_field(tmp_path):
    """Before: 'day is out of range for month', from the YAML parser, naming no field."""
    text = BUNDLED_SPEC.read_text().replace(
        "partition_start: 2026-01-01", "partition_start: 2026-02-30"
    )
    message = _load_text(tmp_path, text)
    assert "  partition_start: " in message and "day value is outside expected range" in message
    assert (
        load_spec(BUNDLED_SPEC).partition_start.isoformat() == "2026-01-01"
    )  # a real date still loads


def _with(changes: dict) -> dict:
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return data


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"model.estimator": "xgboost"}, "model.estimator", "unknown estimator 'xgboost'"),
        ({"model.estimator": "ridge"}, "model.estimator", "the task is classification"),
        (
            {"model.params": {"max_iters": 10}},
            "model.params.max_iters",
            "not an argument of HistGradientBoostingClassifier",
        ),
        (
            {"model.estimator": "random_forest", "model.params": {"n_trees": 3}},
            "model.params.n_trees",
            "not an argument of RandomForestClassifier",
        ),
        (
            {"gates.floors": {"roc_acu": 0.8}},
            "gates.floors.roc_acu",
            "'roc_acu' is not computed for classification",
        ),
        ({"gates.floors": {"rmse": 1.0}}, "gates.floors.rmse", "not computed for classification"),
        (
            {"gates.ceilings": {"roc_auc": 0.99}},
            "gates.ceilings.roc_auc",
            "higher-is-better: put it under gates.floors",
        ),
        (
            {"gates.floors": {"brier": 0.01}},
            "gates.floors.brier",
            "lower-is-better: put it under gates.ceilings",
        ),
        (
            {"gates.floors": {"roc_auc": 1.5}},
            "gates.floors.roc_auc",
            "outside the range of roc_auc [0, 1]",
        ),
        (
            {"gates.ceilings": {"brier": -0.1}},
            "gates.ceilings.brier",
            "outside the range of brier [0, 1]",
        ),
        (
            {"gates.primary_metric": "rmse"},
            "gates.primary_metric",
            "'rmse' is not computed for classification",
        ),
        ({"gates.slice_floor": 2.0}, "gates.slice_floor", "primary metric roc_auc"),
        ({"guard.floor": 5}, "guard.floor", "outside the range of roc_auc [0, 1]"),
        (
            {"gates.max_calibration_error": 1.5},
            "gates.max_calibration_error",
            "outside the range of calibration_error",
        ),
        ({"pii_mode": "rot13"}, "pii_mode", "'hash' or 'drop'"),
        (
            {
                "task": "regression",
                "labels": None,
                "gates": {"floors": {"r2": 1.5}, "primary_metric": "r2"},
            },
            "gates.floors.r2",
            "outside the range of r2 [-inf, 1]",
        ),
        (
            {
                "task": "regression",
                "labels": None,
                "gates": {"ceilings": {"rmse": -1}},
                "guard.floor": 0.5,
            },
            "gates.ceilings.rmse",
            "outside the range of rmse [0, inf]",
        ),
    ],
)
def test_values_that_need_the_task_are_checked_at_load_naming_the_field(changes, field, says):
    """Before: each loaded fine (an unknown estimator failed at training; a misspelt gate metric
    failed closed
    forever; an impossible threshold could never be met)."""
    with pytest.raises(SpecError) as err:
        parse_spec(_with(changes), "bad.yaml")
    message = str(err.value)
    assert "bad.yaml" in message
    line = next((line for line in message.splitlines() if line.startswith(f"  {field}: ")), None)
    assert line is not None and says in line, message


def test_the_bundled_specs_pass_every_load_check():
    from mlops_assets.data.simulator import BIKE_SPEC

    for path in (BUNDLED_SPEC, BIKE_SPEC):
        spec = load_spec(path)
        assert spec.pii and spec.pii_mode == "hash"
    assert (
        parse_spec(
            _with(
                {
                    "task": "regression",
                    "labels": None,
                    "model.params": {},
                    "gates": {
                        "floors": {"r2": 0.5},
                        "ceilings": {"rmse": 3.0},
                        "primary_metric": "rmse",
                        "slice_floor": 4.0,
                    },
                    "guard.floor": 4.0,
                }
            )
        ).task
        == "regression"
    )


def test_param_names_match_scikit_learn():
    """``estimators.PARAM_NAMES`` (what the spec checks without scikit-learn) is exactly each
    class's
    ``get_params()``: a scikit-learn upgrade that adds or removes an argument fails here."""
    import importlib

    from mlops_assets.model.estimators import ESTIMATORS, PARAM_NAMES

    classes = {c for e in ESTIMATORS.values() for c in e.classes.values()}
    assert classes == set(PARAM_NAMES)
    for path in classes:
        module, _, name = path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert PARAM_NAMES[path] == set(cls().get_params(deep=False)), path


def test_pii_mode_enters_the_digest_only_when_it_is_not_the_default():
    """The digest is what the spec file says: a field at its default (pii_mode, classes, the newer
    gates)
    is left out, so a release that adds fields keeps the digest recorded in earlier lineage."""
    import hashlib

    default, drop = parse_spec(BASE), parse_spec(_with({"pii_mode": "drop"}))
    assert default.pii_mode == "hash" and default.digest != drop.digest
    assert (
        default.digest
        == hashlib.sha256(default.model_dump_json(exclude_defaults=True).encode()).hexdigest()
    )
    explicit = parse_spec(_with({"pii_mode": "hash"}))  # the default written out changes nothing
    assert explicit.digest == default.digest
