"""Event timestamps with UTC offsets are parsed and normalised to naive UTC by the data contract,
in CSV and Parquet (text, or a time-zone-aware column); naive timestamps keep meaning UTC."""

import datetime as dt

import polars as pl
import pytest

from mlops_assets.core.spec import parse_spec
from mlops_assets.data.contract import event_contract
from mlops_assets.data.features import compute_features
from mlops_assets.data.ingest import ingest_partition

DAY = "2026-03-10"
SPEC = parse_spec(
    {
        "name": "events",
        "task": "regression",
        "landing": {"path": "landing"},
        "timestamp": "at",
        "id": "id",
        "target": "y",
        "features": {"numeric": {"x": {}}, "calendar": ["hour"]},
        "partition_start": "2026-01-01",
        "training": {"window_days": 7, "holdout_days": 2},
        "model": {"registered_name": "m", "estimator": "ridge"},
        "gates": {"primary_metric": "rmse"},
    }
)
UTC = dt.datetime(2026, 3, 10, 0, 2, 4)  # what every spelling below means


def land(tmp_path, name: str, frame: pl.DataFrame):
    folder = tmp_path / DAY
    folder.mkdir(exist_ok=True)
    path = folder / name
    frame.write_csv(path) if name.endswith(".csv") else frame.write_parquet(path)
    return ingest_partition(tmp_path, DAY, event_contract(SPEC))


def rows(at: list) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"e{i}" for i in range(len(at))],
            "at": at,
            "x": [1.0] * len(at),
            "y": [2.0] * len(at),
        }
    )


SPELLINGS = [
    "2026-03-10T00:02:04Z",
    "2026-03-10T00:02:04+00:00",
    "2026-03-10T02:02:04+02:00",
    "2026-03-09T19:02:04-05:00",
    "2026-03-10 05:32:04+0530",
    "2026-03-10T00:02:04.000Z",
    "2026-03-10T00:02:04 UTC",
    "2026-03-10T00:02:04",
    "2026-03-10 00:02:04",
]


@pytest.mark.parametrize("name", ["events.csv", "events.parquet"])
def test_offsets_are_normalised_to_naive_utc_and_naive_text_is_utc(tmp_path, name):
    result = land(tmp_path, name, rows(SPELLINGS))
    assert result.quarantine.is_empty(), result.quarantine["reason"].to_list()
    assert result.accepted.schema["at"] == pl.Datetime("us")  # naive: UTC inside
    assert result.accepted.sort("_source_row")["at"].to_list() == [UTC] * len(SPELLINGS)
    assert compute_features(result.accepted, SPEC)["hour"].to_list() == [0.0] * len(SPELLINGS)


def test_a_naive_dataset_keeps_its_inferred_format(tmp_path):
    result = land(tmp_path, "events.csv", rows(["2026-03-10 08:00:00.250", "2026-03-10 23:59:59"]))
    assert result.accepted["at"].to_list() == [
        dt.datetime(2026, 3, 10, 8, 0, 0, 250000),
        dt.datetime(2026, 3, 10, 23, 59, 59),
    ]


def test_a_time_zone_aware_parquet_column_is_converted(tmp_path):
    local = pl.Series(
        "at", [dt.datetime(2026, 3, 10, 1, 2, 4), dt.datetime(2026, 3, 10, 12)]
    ).dt.replace_time_zone("Europe/Berlin")
    result = land(tmp_path, "events.parquet", rows([None, None]).with_columns(local))
    assert result.accepted["at"].to_list() == [UTC, dt.datetime(2026, 3, 10, 11)]
    assert result.accepted.schema["at"] == pl.Datetime("us")


def test_the_partition_date_is_the_utc_date_and_garbage_is_named(tmp_path):
    result = land(
        tmp_path,
        "events.csv",
        rows(
            [
                "2026-03-10T01:00:00+02:00",
                "2026-03-10T12:00:00+02:00",
                "10/03/2026 12:00+02:00",
                "2026-03-10T25:00:00Z",
            ]
        ),
    )
    assert result.accepted["at"].to_list() == [dt.datetime(2026, 3, 10, 10)]
    q = result.quarantine.select("row", "column", "rule").rows()
    assert q == [(1, "at", "outside_partition"), (3, "at", "wrong_type"), (4, "at", "wrong_type")]
    assert result.quarantine["reason"][0] == (
        "at: 2026-03-10T01:00:00+02:00 (2026-03-09 23:00:00.000000 UTC) "
        "is not on partition date 2026-03-10"
    )
