"""The spec loader rejects each kind of bad spec with a message naming the field."""

import copy

import pytest
import yaml

from mlops_assets.spec import BUNDLED_SPEC, SpecError, load_spec, parse_spec

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
