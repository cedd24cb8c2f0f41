"""The operator's commands for one's own data — ingest, train, score, spec infer/check, drift,
instance —
launching real runs on the instance under ``$MLOPS_HOME/dagster`` (the one ``make ui`` shows)."""

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
import yaml
from dagster import DagsterInstance, RunsFilter

from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import BUNDLED_SPEC
from mlops_assets.core.vocabulary import RunTag
from mlops_assets.data.simulator import Injection, simulate
from mlops_assets.operations.cli import main
from mlops_assets.operations.runs import instance_warning

from .conftest import DAY0

DAYS = 17
CUTOFF = DAY0 + dt.timedelta(days=15)  # window 14 days, label delay 5, holdout 3


def small_spec(home, **gates) -> str:
    """The bundled card spec with a two-week window, so a first cutoff needs 15 days of data."""
    data = yaml.safe_load(BUNDLED_SPEC.read_text())
    data["training"].update(window_days=14, holdout_days=3)
    data["partition_start"] = DAY0.isoformat()
    data["gates"].update(gates)
    path = home / f"spec-{len(list(home.glob('spec-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ingest_train_score_through_the_cli_on_the_mlops_home_instance(home, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_SPEC", small_spec(home))
    simulate(Platform.from_env().landing.parent, DAY0, DAYS, seed=1)
    last = (DAY0 + dt.timedelta(days=DAYS - 1)).isoformat()

    code, out, err = run(capsys, "ingest", "--from", DAY0.isoformat(), "--to", last)
    assert code == 0, out + err
    assert (
        f"raw_events {DAY0}..{last}: " in out
        and " rows accepted from 17 file(s), 0 quarantined" in out
    )
    assert f"raw_labels {DAY0}..{last}: " in out and f"features {DAY0}..{last}: " in out
    assert (
        "… raw_events" in err and "✓ features" in err and f"instance: {home / 'dagster'}" in err
    )  # progress

    code, out, err = run(capsys, "train", "--cutoff", CUTOFF.isoformat(), "--json")
    decision = json.loads(out)
    assert code == 0 and decision["decision"] == "promoted", decision
    assert decision["version"] == 1 and decision["cutoff"] == CUTOFF.isoformat()
    assert {"roc_auc", "pr_auc", "brier"} <= set(decision["metrics"]) and decision["reasons"] == [
        "passed every blocking gate"
    ]
    assert "✓ champion (action=promote)" in err

    code, out, _ = run(capsys, "score", "--from", CUTOFF.isoformat(), "--to", last)
    assert code == 0 and f"scores {CUTOFF}..{last}: " in out
    assert "scored by v1 (champion, mode normal) for 2 day(s)" in out

    # the same lake, stricter gates: the next cutoff's candidate is rejected, exit 3, the gate named
    monkeypatch.setenv("MLOPS_SPEC", small_spec(home, floors={"roc_auc": 0.999}))
    code, out, _ = run(capsys, "train", "--cutoff", last, "--json")
    rejected = json.loads(out)
    assert code == 3 and rejected["decision"] == "rejected" and rejected["version"] == 2
    assert any(r.startswith("floor:roc_auc") for r in rejected["reasons"]), rejected["reasons"]
    assert rejected["metrics"]["roc_auc"] < 0.999

    # every run is on $MLOPS_HOME/dagster, ranges as one run with Dagster's range tags
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs(RunsFilter(tags={"mlops/trigger": "cli"}))
    assert sorted(r.job_name for r in runs) == [
        "ingest",
        "ingest_labels",
        "scoring",
        "training",
        "training",
    ]
    ingest = next(r for r in runs if r.job_name == "ingest")
    assert (ingest.tags[RunTag.RANGE_START], ingest.tags[RunTag.RANGE_END]) == (
        DAY0.isoformat(),
        last,
    )


def test_train_without_data_is_a_pipeline_error_exit_1(home, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_SPEC", small_spec(home))
    code, out, _ = run(capsys, "train", "--cutoff", CUTOFF.isoformat(), "--json")
    decision = json.loads(out)
    assert code == 1 and decision["decision"] == "error" and decision["version"] is None
    assert any("training_set" in r for r in decision["reasons"]), decision


def test_ingest_blocked_by_a_contract_exits_3_naming_the_file(home, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_SPEC", small_spec(home))
    simulate(
        Platform.from_env().landing.parent,
        DAY0,
        2,
        seed=1,
        inject=[Injection("corrupt_file", DAY0)],
    )
    code, out, _ = run(
        capsys,
        "ingest",
        "--from",
        DAY0.isoformat(),
        "--to",
        (DAY0 + dt.timedelta(days=1)).isoformat(),
    )
    assert code == 3
    assert (
        "✗ contract_schema" in out
        and "part2.parquet" in out
        and "run the same command again" in out
    )


def test_dates_outside_the_partitions_are_refused(home, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_SPEC", small_spec(home))
    code, _, err = run(capsys, "ingest", "--from", "2020-01-01", "--to", "2020-01-02")
    assert code == 2 and f"outside the partitions {DAY0}.." in err
    code, _, err = run(capsys, "score", "--from", "2026-03-05", "--to", "2026-03-04")
    assert code == 2 and "before --from" in err


def test_spec_check_validates_and_lints(home, tmp_path, capsys):
    code, out, _ = run(capsys, "spec", "check", str(BUNDLED_SPEC))
    assert code == 0 and out.startswith(
        f"ok: {BUNDLED_SPEC} is a valid classification spec 'card_transactions'"
    )
    assert (
        "warning: landing.path:" in out and "does not exist yet" in out
    )  # nothing has landed in this home
    assert run(capsys, "spec", "check", "--strict", str(BUNDLED_SPEC))[0] == 2
    broken = yaml.safe_load(BUNDLED_SPEC.read_text())
    broken["features"]["numeric"]["amount"]["min"] = "lots"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    code, _, err = run(capsys, "spec", "check", str(tmp_path / "broken.yaml"))
    assert code == 2 and "features.numeric.amount.min: Input should be a valid number" in err


def test_spec_infer_writes_a_valid_spec_and_refuses_a_missing_target(home, tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 1500
    at = [
        dt.datetime(2026, 2, 1) + dt.timedelta(minutes=int(m))
        for m in np.sort(rng.integers(0, 7 * 1440, n))
    ]
    frame = pl.DataFrame(
        {
            "ride_id": [f"r{i}" for i in range(n)],
            "started": at,
            "km": rng.gamma(2, 2, n),
            "bike": rng.choice(["e", "classic"], n),
            "rider_email": [f"r{i}@x.io" for i in range(n)],
        }
    )
    frame = frame.with_columns((pl.col("km") * 4 + rng.normal(0, 2, n)).alias("minutes"))
    frame.write_parquet(tmp_path / "rides.parquet")
    code, out, err = run(
        capsys, "spec", "infer", str(tmp_path / "rides.parquet"), "--target", "minutes"
    )
    assert code == 0, err
    (tmp_path / "rides.yaml").write_text(out)
    assert run(capsys, "spec", "check", str(tmp_path / "rides.yaml"))[0] == 0
    spec = yaml.safe_load(out)
    assert (
        spec["name"] == "rides" and spec["task"] == "regression" and spec["pii"] == ["rider_email"]
    )
    assert spec["landing"] == {"path": "landing/rides/events", "formats": ["parquet"]}
    assert "inferred regression spec rides" in err
    code, _, err = run(capsys, "spec", "infer", str(tmp_path / "rides.parquet"), "--target", "nope")
    assert code == 2 and "no column 'nope'" in err


def test_drift_between_two_files_with_the_platforms_drift_code(tmp_path, capsys):
    rng = np.random.default_rng(5)
    n = 3000

    def frame(shift: float) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "amount": rng.lognormal(3 + shift, 1, n),
                "age": rng.integers(18, 90, n),
                "channel": rng.choice(["pos", "online"], n, p=[0.7 - shift / 2, 0.3 + shift / 2]),
            }
        )

    frame(0).write_csv(tmp_path / "ref.csv")
    frame(0).write_csv(tmp_path / "same.csv")
    frame(0.8).write_parquet(tmp_path / "moved.parquet")
    code, out, _ = run(
        capsys,
        "drift",
        "--reference",
        str(tmp_path / "ref.csv"),
        "--current",
        str(tmp_path / "moved.parquet"),
        "--json",
    )
    report = json.loads(out)
    assert code == 0 and report["dataset_drifted"] is True
    by = {c["column"]: c for c in report["columns"]}
    assert (
        set(by) == {"amount", "age", "channel"}
        and by["amount"]["drifted"]
        and by["channel"]["drifted"]
    )
    assert not by["age"]["drifted"] and set(by["age"]) >= {
        "method",
        "statistic",
        "threshold",
        "drifted",
    }
    code, out, _ = run(
        capsys,
        "drift",
        "--reference",
        str(tmp_path / "ref.csv"),
        "--current",
        str(tmp_path / "same.csv"),
        "--numeric",
        "amount",
        "--categorical",
        "channel",
        "--json",
    )
    same = json.loads(out)
    assert [c["column"] for c in same["columns"]] == ["amount", "channel"] and not same[
        "dataset_drifted"
    ]
    code, out, _ = run(
        capsys,
        "drift",
        "--reference",
        str(tmp_path / "ref.csv"),
        "--current",
        str(tmp_path / "moved.parquet"),
    )
    assert "DRIFT amount:" in out and "dataset DRIFTED" in out


def test_a_dagster_home_elsewhere_is_warned_about(home, tmp_path, monkeypatch, capsys):
    platform = Platform.from_env()
    assert instance_warning(platform, {"DAGSTER_HOME": str(home / "dagster")}) is None
    assert instance_warning(platform, {}) is None
    elsewhere = tmp_path / "other_dagster"
    warning = instance_warning(platform, {"DAGSTER_HOME": str(elsewhere)})
    assert (
        warning
        and str(elsewhere) in warning
        and f"export DAGSTER_HOME={home / 'dagster'}" in warning
    )
    production = tmp_path / "prod"
    production.mkdir()
    (production / "dagster.yaml").write_text("storage:\n  postgres: {}\n")
    assert instance_warning(platform, {"DAGSTER_HOME": str(production)}) is None

    monkeypatch.setenv("DAGSTER_HOME", str(elsewhere))
    code, out, _ = run(capsys, "instance", "--json")
    info = json.loads(out)
    assert (
        code == 0 and info["dagster_home"] == str(elsewhere) and str(elsewhere) in info["warning"]
    )
    code, _, err = run(capsys, "score", "--from", "2026-01-02", "--to", "2026-01-02")
    assert f"warning: $DAGSTER_HOME={elsewhere} is not $MLOPS_HOME/dagster" in err


@pytest.mark.parametrize("argv", [["ingest", "--from", "x", "--to", "2026-01-01"], ["train"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
