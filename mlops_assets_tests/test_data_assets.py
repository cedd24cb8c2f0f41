"""raw_events / features against real Delta tables and a real Dagster instance."""

import datetime as dt

import polars as pl
import pytest
from dagster import AssetKey

from mlops_assets.data.simulator import BAD_FILE_KINDS, Injection, simulate, write_bad_file

from .conftest import DAY0, check_evaluations, days, run_ingest, table

EXPECTED_RULE = {
    "truncated_parquet": ("contract_schema", "unreadable"),
    "malformed_csv": ("contract_schema", "unreadable"),
    "wrong_types": ("contract_schema", "wrong_type"),
    "missing_column": ("contract_schema", "missing_column"),
    "nan_flood": ("contract_not_null", "null"),
    "duplicated_ids": ("contract_unique_ids", "duplicate_id"),
    "path_trick": ("contract_schema", "file_name"),
}


def test_materialising_twice_is_idempotent_and_spares_neighbours(platform, defs, instance, lake):
    simulate(platform.landing.parent, DAY0, 3, seed=1)
    d0, d1, d2 = days(DAY0, 3)
    for d in (d0, d1, d2):
        assert run_ingest(defs, instance, d).success
    before = {t: table(lake, t) for t in ("raw_events", "features")}
    version = lake.version("features")
    assert run_ingest(defs, instance, d1).success
    assert lake.version("features") == version + 1  # a new commit …
    for t, frame in before.items():
        assert table(lake, t).equals(frame), t  # … with identical content, neighbours included
    history = lake.history("features", 1)[0]
    assert history["partitions"] == d1 and history["dagster_run_id"]
    feats = lake.read("features", [d1])
    assert set(feats.columns).isdisjoint(platform.spec.pii)  # PII never reaches features
    assert feats.height == lake.read("raw_events", [d1]).height > 1000


def test_single_run_backfill_equals_per_partition_runs(tmp_path, monkeypatch):
    from dagster import instance_for_test

    from mlops_assets.core.platform import Platform
    from mlops_assets.data.lake import DeltaLake
    from mlops_assets.location.build import build_definitions

    n = 30
    keys = days(DAY0, n)
    tables = {}
    for mode in ("range", "single"):
        root = tmp_path / mode
        monkeypatch.setenv("MLOPS_HOME", str(root))
        platform = Platform.from_env()
        simulate(platform.landing.parent, DAY0, n, seed=3)
        defs = build_definitions(platform)
        (tmp_path / f"{mode}-dagster").mkdir()
        with instance_for_test(temp_dir=str(tmp_path / f"{mode}-dagster")) as instance:
            if mode == "range":
                result = run_ingest(defs, instance, start=keys[0], end=keys[-1])
                assert result.success
                mats = [
                    e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"
                ]
                assert sorted(m.partition for m in mats if m.asset_key.path == ["features"]) == keys
            else:
                for k in keys:
                    assert run_ingest(defs, instance, k).success
            for key in ("raw_events", "features"):
                assert sorted(instance.get_materialized_partitions(AssetKey(key))) == keys
        lake = DeltaLake(root=str(platform.home.lake))
        tables[mode] = {t: table(lake, t) for t in ("raw_events", "features")}
    for t in ("raw_events", "features"):
        assert tables["range"][t].height > 30 * 1000
        assert tables["range"][t].equals(tables["single"][t]), t


@pytest.mark.parametrize("kind", BAD_FILE_KINDS)
def test_each_bad_file_kind_is_quarantined_and_blocks_downstream(
    kind, platform, defs, instance, lake
):
    simulate(platform.landing.parent, DAY0, 1, seed=2)
    day = DAY0.isoformat()
    assert run_ingest(defs, instance, day).success
    features_before = table(lake, "features")
    features_version = lake.version("features")
    good_rows = lake.read("raw_events", [day]).height

    bad = write_bad_file(platform.landing / day, kind, DAY0, seed=5)
    result = run_ingest(defs, instance, day)
    assert not result.success  # a blocking ERROR check failed the run
    check, rule = EXPECTED_RULE[kind]
    evaluation = check_evaluations(result)[check]
    assert not evaluation.passed and evaluation.partition == day
    assert bad.name in evaluation.description or repr(bad.name)[1:-1] in evaluation.description

    q = lake.read("quarantine", [day])
    mine = q.filter(pl.col("file") == bad.name)
    assert mine.height >= 1 and set(mine["rule"]) == {rule}, mine.select(
        "rule", "reason"
    ).to_dicts()[:3]
    assert all(r for r in mine["reason"])
    # nothing downstream changed
    assert lake.version("features") == features_version
    assert table(lake, "features").equals(features_before)
    # nothing lost: every input row is either accepted or quarantined (row-level kinds)
    if rule not in ("unreadable", "missing_column", "file_name"):
        bad_rows = (
            pl.read_parquet(bad).height
            if bad.suffix == ".parquet"
            else pl.read_csv(bad, infer_schema=False).height
        )
        raw = lake.read("raw_events", [day])
        assert raw.height + q.height == good_rows + bad_rows


@pytest.mark.parametrize("mode", ["ignore", "merge", "reject"])
def test_schema_evolution_follows_the_spec(mode, home, monkeypatch, instance):
    import yaml

    from mlops_assets.core.platform import Platform
    from mlops_assets.core.spec import BUNDLED_SPEC
    from mlops_assets.data.lake import DeltaLake
    from mlops_assets.location.build import build_definitions

    data = yaml.safe_load(BUNDLED_SPEC.read_text())
    data["schema_evolution"] = mode
    spec_file = home / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MLOPS_SPEC", str(spec_file))
    platform = Platform.from_env()
    defs = build_definitions(platform)
    lake = DeltaLake(root=str(platform.home.lake))
    simulate(
        platform.landing.parent,
        DAY0,
        3,
        seed=4,
        inject=[Injection("schema_change", DAY0 + dt.timedelta(days=1))],
    )
    results = {d: run_ingest(defs, instance, d) for d in days(DAY0, 3)}
    raw = lake.read("raw_events")
    changed = days(DAY0, 3)[1]
    if mode == "reject":
        assert not results[changed].success
        q = lake.read("quarantine", [changed])
        assert set(q["rule"]) == {"unexpected_column"} and "device_type" in q["reason"][0]
        assert "device_type" not in raw.columns
    else:
        assert all(r.success for r in results.values())
        assert ("device_type" in raw.columns) == (mode == "merge")
        if mode == "merge":
            assert raw.filter(pl.col("ds") == changed)["device_type"].null_count() == 0
    assert "device_type" not in lake.read("features").columns
