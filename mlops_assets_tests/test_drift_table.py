"""Rows of the drift Delta table and the per-partition summary read back from them: pure
functions on small hand-made results and frames."""

from __future__ import annotations

import polars as pl

from mlops_assets.core.vocabulary import DATASET_ROW, PREDICTION_ROW
from mlops_assets.monitoring.drift.methods import (
    DRIFT_SUMMARY_SCHEMA,
    DRIFT_TABLE_SCHEMA,
    drift_rows,
    drift_summary,
    drift_table,
)


def _result(prediction=None, dataset_drifted=True):
    return {
        "features": {
            "amount": {
                "method": "wasserstein",
                "score": 0.4,
                "threshold": 0.1,
                "drifted": True,
                "status": "ok",
                "rows": 3000,
            },
            "channel": {
                "method": "jensenshannon",
                "score": None,
                "threshold": 0.1,
                "drifted": False,
                "status": "empty_current",
                "rows": 0,
            },
        },
        "prediction": prediction,
        "share_drifted": 1.0,
        "dataset_drifted": dataset_drifted,
        "status": "ok",
        "note": "3000 rows of 1 partition(s) 2026-03-02",
        "rows": 3000,
    }


def test_rows_of_a_two_feature_result():
    rows = drift_rows("2026-03-02", _result(), 0.3)
    none = {"status": None, "note": None, "rows": None}
    assert rows == [
        {
            "ds": "2026-03-02",
            "feature": "amount",
            "method": "wasserstein",
            "score": 0.4,
            "threshold": 0.1,
            "drifted": True,
            **none,
            "status": "ok",
            "rows": 3000,
        },
        {
            "ds": "2026-03-02",
            "feature": "channel",
            "method": "jensenshannon",
            "score": None,
            "threshold": 0.1,
            "drifted": False,
            **none,
            "status": "empty_current",
            "rows": 0,
        },
        {
            "ds": "2026-03-02",
            "feature": PREDICTION_ROW,
            "method": None,
            "score": None,
            "threshold": None,
            "drifted": False,
            **none,
        },
        {
            "ds": "2026-03-02",
            "feature": DATASET_ROW,
            "method": "share_drifted",
            "score": 1.0,
            "threshold": 0.3,
            "drifted": True,
            "status": "ok",
            "note": "3000 rows of 1 partition(s) 2026-03-02",
            "rows": 3000,
        },
    ]


def test_prediction_row_carries_the_prediction_result():
    pred = {"method": "wasserstein", "score": 0.2, "threshold": 0.1, "drifted": True}
    rows = drift_rows("2026-03-02", _result(prediction=pred, dataset_drifted=False), 0.5)
    assert rows[2] == {
        "ds": "2026-03-02",
        "feature": PREDICTION_ROW,
        "method": "wasserstein",
        "score": 0.2,
        "threshold": 0.1,
        "drifted": True,
        "status": None,
        "note": None,
        "rows": None,
    }
    assert rows[3]["drifted"] is False and rows[3]["threshold"] == 0.5


def test_table_has_the_schema_and_the_champion():
    frame = drift_table(drift_rows("2026-03-02", _result(), 0.3), champion_version=7)
    assert frame.schema == pl.Schema({**DRIFT_TABLE_SCHEMA, "champion_version": pl.Int64})
    assert frame.height == 4 and frame["champion_version"].to_list() == [7] * 4
    empty = drift_table([], 3)
    assert empty.is_empty() and empty.schema == frame.schema


def test_summary_of_two_days():
    day1 = drift_rows("2026-03-02", _result(), 0.3)
    calm = {
        "features": {
            "amount": {"method": "wasserstein", "score": 0.01, "threshold": 0.1, "drifted": False}
        },
        "prediction": {"method": "wasserstein", "score": 0.5, "threshold": 0.1, "drifted": True},
        "share_drifted": 0.0,
        "dataset_drifted": False,
        "rows": 2500,
    }
    day2 = drift_rows("2026-03-03", calm, 0.3)
    two = _result()
    two["features"]["channel"] = {"method": "psi", "score": 0.9, "threshold": 0.1, "drifted": True}
    day0 = drift_rows("2026-03-01", two, 0.3)
    summary = drift_summary(drift_table(day2 + day1 + day0, 1))
    assert summary.schema == DRIFT_SUMMARY_SCHEMA
    assert summary.rows() == [
        ("2026-03-01", 1.0, True, "amount,channel", "ok", 3000, 1),
        ("2026-03-02", 1.0, True, "amount", "ok", 3000, 1),
        (
            "2026-03-03",
            0.0,
            False,
            None,
            "ok",
            2500,
            1,
        ),  # a drifted prediction is not a drifted feature
    ]


def test_insufficient_data_is_a_verdict_not_drift():
    from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
    from mlops_assets.monitoring.drift.methods import insufficient_data

    result = insufficient_data(
        load_spec(BUNDLED_SPEC), 24, "insufficient data: only 24 rows of 1 partition(s)"
    )
    frame = drift_table(drift_rows("2026-03-02", result, 0.3), 2)
    assert set(frame["status"]) == {"insufficient_data", None} and not frame["drifted"].any()
    assert drift_summary(frame).rows() == [
        ("2026-03-02", 0.0, False, None, "insufficient_data", 24, 2)
    ]


def test_summary_of_a_table_written_before_status_rows_and_champion():
    old = pl.DataFrame(
        {
            "ds": ["2026-03-02"],
            "feature": [DATASET_ROW],
            "method": ["share_drifted"],
            "score": [0.5],
            "threshold": [0.3],
            "drifted": [True],
        }
    )
    assert drift_summary(old).rows() == [("2026-03-02", 0.5, True, None, "ok", None, None)]


def test_summary_of_an_empty_table():
    out = drift_summary(pl.DataFrame(schema=DRIFT_TABLE_SCHEMA))
    assert out.is_empty() and out.schema == DRIFT_SUMMARY_SCHEMA
    assert drift_summary(pl.DataFrame()).schema == DRIFT_SUMMARY_SCHEMA
