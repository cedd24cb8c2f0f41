"""Rows of the drift Delta table and the per-partition summary read back from them: pure
functions on small hand-made results and frames."""

from __future__ import annotations

import polars as pl

from mlops_assets.ml.drift import (
    DRIFT_SUMMARY_SCHEMA,
    DRIFT_TABLE_SCHEMA,
    drift_rows,
    drift_summary,
    drift_table,
)
from mlops_assets.vocabulary import DATASET_ROW, PREDICTION_ROW


def _result(prediction=None, dataset_drifted=True):
    return {
        "features": {
            "amount": {"method": "wasserstein", "score": 0.4, "threshold": 0.1, "drifted": True},
            "channel": {"method": "jensenshannon", "score": None, "threshold": 0.1,
                        "drifted": False, "status": "empty_current"},
        },
        "prediction": prediction,
        "share_drifted": 1.0,
        "dataset_drifted": dataset_drifted,
    }


def test_rows_of_a_two_feature_result():
    rows = drift_rows("2026-03-02", _result(), 0.3)
    assert rows == [
        {"ds": "2026-03-02", "feature": "amount", "method": "wasserstein", "score": 0.4,
         "threshold": 0.1, "drifted": True},
        {"ds": "2026-03-02", "feature": "channel", "method": "jensenshannon", "score": None,
         "threshold": 0.1, "drifted": False},
        {"ds": "2026-03-02", "feature": PREDICTION_ROW, "method": None, "score": None,
         "threshold": None, "drifted": False},
        {"ds": "2026-03-02", "feature": DATASET_ROW, "method": "share_drifted", "score": 1.0,
         "threshold": 0.3, "drifted": True},
    ]


def test_prediction_row_carries_the_prediction_result():
    pred = {"method": "wasserstein", "score": 0.2, "threshold": 0.1, "drifted": True}
    rows = drift_rows("2026-03-02", _result(prediction=pred, dataset_drifted=False), 0.5)
    assert rows[2] == {"ds": "2026-03-02", "feature": PREDICTION_ROW, "method": "wasserstein",
                       "score": 0.2, "threshold": 0.1, "drifted": True}
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
        "features": {"amount": {"method": "wasserstein", "score": 0.01, "threshold": 0.1,
                                "drifted": False}},
        "prediction": {"method": "wasserstein", "score": 0.5, "threshold": 0.1, "drifted": True},
        "share_drifted": 0.0,
        "dataset_drifted": False,
    }
    day2 = drift_rows("2026-03-03", calm, 0.3)
    two = _result()
    two["features"]["channel"] = {"method": "psi", "score": 0.9, "threshold": 0.1, "drifted": True}
    day0 = drift_rows("2026-03-01", two, 0.3)
    summary = drift_summary(drift_table(day2 + day1 + day0, 1))
    assert summary.schema == DRIFT_SUMMARY_SCHEMA
    assert summary.rows() == [
        ("2026-03-01", 1.0, True, "amount,channel"),
        ("2026-03-02", 1.0, True, "amount"),
        ("2026-03-03", 0.0, False, None),  # a drifted prediction is not a drifted feature
    ]


def test_summary_of_an_empty_table():
    out = drift_summary(pl.DataFrame(schema=DRIFT_TABLE_SCHEMA))
    assert out.is_empty() and out.schema == DRIFT_SUMMARY_SCHEMA
    assert drift_summary(pl.DataFrame()).schema == DRIFT_SUMMARY_SCHEMA
