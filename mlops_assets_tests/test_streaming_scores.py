"""Scoring streams: categoricals encoded in polars with the pipeline's fitted categories give the
pipeline's own scores bit for bit (every estimator, binary / multiclass / regression, unseen
categories, nulls, rare categories grouped), read as strings or as Parquet dictionaries
(``pl.Categorical``), and score batches go to the lake through one record-batch stream: one commit
replacing exactly the partition, rows equal to the in-memory path."""

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from threadpoolctl import threadpool_limits

from mlops_assets.core.spec import parse_spec
from mlops_assets.data.lake import DeltaLake, _file_batches
from mlops_assets.model import training as T
from mlops_assets.model.encoded_input import MISSING_CATEGORY, compile_input
from mlops_assets.model.estimators import ESTIMATORS
from mlops_assets.scoring.rows import (
    DEGRADED,
    NORMAL,
    ConstantBaseline,
    ScoreTally,
    ServingModel,
    predictor,
    score_batches,
    score_column,
    score_columns,
    score_frame,
)

DAY = "2026-05-04"
COLOURS = ["red", "green", "blue", "cyan", "magenta", "yellow"]
SIZES = ["s", "m", "l"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def make_spec(kind: str, estimator: str, params: dict | None = None):
    data = {
        "name": "widgets",
        "task": "regression" if kind == "regression" else "classification",
        "landing": {"path": "landing/widgets/events", "formats": ["csv", "parquet"]},
        "timestamp": "made_at",
        "id": "widget_id",
        "target": "y",
        "features": {
            "numeric": {"weight": {}, "length": {"dtype": "int"}},
            "categorical": {"colour": {}, "size": {"nullable": True}},
            "calendar": ["hour"],
        },
        "partition_start": "2026-05-01",
        "training": {"window_days": 10, "holdout_days": 3, "seed": 3, "cadence_days": 7},
        "model": {"registered_name": "widgets", "estimator": estimator, "params": params or {}},
    }
    if kind == "multiclass":
        data["classes"] = ["a", "b", "c"]
    return parse_spec(data)


def features(n: int, seed: int, kind: str, *, unseen: bool = False) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(COLOURS, n, p=[0.4, 0.3, 0.2, 0.05, 0.03, 0.02]).astype(object)
    size = rng.choice(SIZES, n).astype(object)
    weight = rng.normal(10, 3, n)
    if unseen:  # categories never seen in training, nulls, NaN and null numbers
        colour[::7], size[::5], size[1::9] = "ultraviolet", None, "xxl"
        weight[::11] = np.nan
    signal = weight / 3 + (colour == "red") * 2 + (size == "l")
    frame = pl.DataFrame(
        {
            "ds": [DAY] * n,
            "widget_id": [f"w{seed}-{i:06d}" for i in range(n)],
            "made_at": [dt.datetime(2026, 5, 4, i % 24) for i in range(n)],
            "weight": weight,
            "length": rng.integers(1, 50, n).astype(float),
            "hour": [float(i % 24) for i in range(n)],
            "colour": colour.tolist(),
            "size": size.tolist(),
        },
        schema_overrides={"colour": pl.String, "size": pl.String},
        strict=False,
    )
    if unseen:
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) % 13 == 0)
            .then(None)
            .otherwise(pl.col("length"))
            .alias("length")
        )
    noise = rng.normal(0, 1, n)
    y = {
        "regression": signal + noise,
        "binary": (signal + noise > 5).astype(float),
        "multiclass": np.digitize(signal + noise, [4.5, 6.0]).astype(float),
    }[kind]
    return frame.with_columns(pl.Series("y", y))


CASES = [
    (kind, name)
    for kind in ("binary", "multiclass", "regression")
    for name, est in ESTIMATORS.items()
    if est.supports("regression" if kind == "regression" else "classification")
]


@pytest.mark.parametrize(("kind", "estimator"), CASES)
def test_polars_encoding_gives_the_pipeline_scores_bit_for_bit(kind, estimator):
    spec = make_spec(kind, estimator)
    train = features(600, 1, kind)
    pipeline = T.fit(spec, T.to_model_frame(train, spec), train["y"].to_numpy())
    assert compile_input(pipeline, spec) is not None, (
        "every estimator's pipeline is replayed in polars"
    )
    rows = features(400, 2, kind, unseen=True)
    expected = T.predict_scores(pipeline, T.to_model_frame(rows, spec), spec.task)
    got = predictor(pipeline, spec)(rows)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected), (
        f"{kind}/{estimator}: max |diff| {np.abs(got - expected).max()}"
    )


def test_rare_categories_grouped_by_max_bins_encode_as_the_pipeline_does():
    spec = make_spec("binary", "hist_gradient_boosting", {"max_bins": 3, "max_iter": 30})
    train = features(800, 3, "binary")
    pipeline = T.fit(spec, T.to_model_frame(train, spec), train["y"].to_numpy())
    encoder = pipeline.named_steps["prep"].named_transformers_["cat"]
    assert any(c is not None for c in encoder.infrequent_categories_), (
        "the case has grouped categories"
    )
    rows = features(300, 4, "binary", unseen=True)
    encoded = compile_input(pipeline, spec)
    assert np.array_equal(
        encoded.matrix(rows),
        pipeline.named_steps["prep"].transform(T.to_model_frame(rows, spec)),
        equal_nan=True,
    )
    assert np.array_equal(
        predictor(pipeline, spec)(rows),
        T.predict_scores(pipeline, T.to_model_frame(rows, spec), spec.task),
    )


def test_only_an_estimator_whose_predictions_ignore_the_layout_gets_a_column_major_matrix():
    """HistGradientBoosting reads rows through a strided view: the same numbers on either layout
    (the
    bit-for-bit tests above score it from the column-major matrix); a linear model's BLAS product
    may
    round differently, so it keeps the ColumnTransformer's C order."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    from mlops_assets.model.estimators import input_order

    assert input_order(HistGradientBoostingClassifier()) == "F"
    assert {
        input_order(e) for e in (LogisticRegression(), Ridge(), RandomForestRegressor(), object())
    } == {"C"}
    spec = make_spec("binary", "hist_gradient_boosting")
    train = features(300, 21, "binary")
    pipeline = T.fit(spec, T.to_model_frame(train, spec), train["y"].to_numpy())
    rows = features(200, 22, "binary", unseen=True)
    matrix = compile_input(pipeline, spec).matrix(rows)
    assert matrix.flags.f_contiguous and not matrix.flags.c_contiguous
    estimator = pipeline.steps[-1][1]
    assert np.array_equal(
        estimator.predict_proba(matrix), estimator.predict_proba(np.ascontiguousarray(matrix))
    )


def test_the_missing_category_stand_in_is_the_trainings():
    assert MISSING_CATEGORY == T.MISSING_CATEGORY


def test_an_unknown_model_shape_falls_back_to_the_pipeline_itself():
    spec = make_spec("binary", "hist_gradient_boosting")
    assert compile_input(object(), spec) is None


def test_score_batches_stream_into_one_commit_that_replaces_exactly_the_partition(tmp_path):
    spec = make_spec("binary", "hist_gradient_boosting", {"max_iter": 20})
    train = features(500, 5, "binary")
    pipeline = T.fit(spec, T.to_model_frame(train, spec), train["y"].to_numpy())
    lake = DeltaLake(root=str(tmp_path / "lake"))
    other = features(50, 6, "binary").with_columns(pl.lit("2026-05-05").alias("ds"))
    lake.write_partitions(
        "features",
        pl.concat([features(1_000, 7, "binary", unseen=True), other]),
        [DAY, "2026-05-05"],
    )
    serving = ServingModel(pipeline, 3, "champion", NORMAL, "test")
    at = dt.datetime(2026, 5, 5, 6)
    lake.write_partitions(
        "scores",
        score_frame(serving, lake.read("features"), spec, scored_at=at),
        [DAY, "2026-05-05"],
    )
    before = lake.version("scores")
    tally = ScoreTally(
        score_column(spec)
    )  # as the asset does: batches pulled from the files inside the write
    version = lake.write_stream(
        "scores",
        lambda: tally.count(
            score_batches(
                serving,
                lake.iter_batches(
                    "features", [DAY], batch_rows=128, dictionary_columns=spec.categorical_features
                ),
                spec,
                scored_at=at,
            )
        ),
        score_columns(spec),
        [DAY],
        run_id="run-s",
    )
    assert version == before + 1, "one commit, however many batches"
    stored = lake.read("scores").sort("ds", "widget_id")
    in_memory = score_frame(serving, lake.read("features"), spec, scored_at=at).sort(
        "ds", "widget_id"
    )
    assert stored.equals(in_memory)
    assert stored.filter(pl.col("ds") == "2026-05-05").height == 50, (
        "the other partition is untouched"
    )
    meta = tally.metadata()
    assert (
        meta["rows"] == 1_000
        and meta["score_rows_normal"] == 1_000
        and meta["score_rows_degraded"] == 0
    )
    assert meta["mean_score"] == pytest.approx(
        stored.filter(pl.col("ds") == DAY)["probability"].mean()
    )
    commit = lake.history("scores", 1)[0]
    assert commit["operationParameters"]["predicate"] == f"ds = '{DAY}'"
    assert commit["dagster_run_id"] == "run-s"


def test_a_stream_with_no_rows_empties_the_partition_and_a_stray_row_is_refused(tmp_path):
    spec = make_spec("regression", "ridge")
    lake = DeltaLake(root=str(tmp_path / "lake"))
    baseline = ServingModel(ConstantBaseline(2.5), -1, "baseline", DEGRADED, "no model")
    rows = features(20, 8, "regression")
    lake.write_stream(
        "scores", lambda: score_batches(baseline, rows, spec), score_columns(spec), [DAY]
    )
    assert lake.partition_counts("scores") == {DAY: 20}
    tally = ScoreTally(score_column(spec))
    lake.write_stream(
        "scores",
        lambda: tally.count(score_batches(baseline, rows.head(0), spec)),
        score_columns(spec),
        [DAY],
    )
    assert lake.partition_counts("scores") == {} and tally.metadata()["score_rows_degraded"] == 0
    stray = rows.with_columns(pl.lit("2026-05-09").alias("ds"))
    with pytest.raises(ValueError, match="outside the write"):
        lake.write_stream(
            "scores", lambda: score_batches(baseline, stray, spec), score_columns(spec), [DAY]
        )
    degraded = ScoreTally(score_column(spec))
    lake.write_stream(
        "scores",
        lambda: degraded.count(score_batches(baseline, rows, spec)),
        score_columns(spec),
        [DAY],
    )
    assert (
        degraded.metadata()["score_rows_degraded"] == 20
        and degraded.metadata()["score_rows_normal"] == 0
    )


def test_iter_batches_yields_exactly_the_partitions_rows_in_batches(tmp_path):
    lake = DeltaLake(root=str(tmp_path / "lake"))
    rows = features(700, 9, "binary")
    lake.write_partitions(
        "features",
        pl.concat([rows, rows.with_columns(pl.lit("2026-05-05").alias("ds"))]),
        [DAY, "2026-05-05"],
    )
    lake.append(
        "features", features(300, 10, "binary", unseen=True)
    )  # a second file in the partition
    batches = list(lake.iter_batches("features", [DAY], batch_rows=128))
    assert max(b.height for b in batches) <= 128
    got = pl.concat(batches).select(lake.read("features").columns).sort("widget_id")
    assert got.equals(lake.read("features", [DAY]).sort("widget_id"))
    assert list(lake.iter_batches("missing", [DAY])) == []
    # string columns asked for as dictionaries come as pl.Categorical; others (and absent names) are
    # left as stored
    read = list(
        lake.iter_batches(
            "features",
            [DAY],
            batch_rows=128,
            dictionary_columns=["colour", "size", "weight", "absent"],
        )
    )
    assert all(
        b.schema["colour"] == pl.Categorical
        and b.schema["size"] == pl.Categorical
        and b.schema["weight"] == pl.Float64
        and b.schema["widget_id"] == pl.String
        for b in read
    )
    assert [b.height for b in read] == [b.height for b in batches]
    back = pl.concat(read).with_columns(pl.col("colour", "size").cast(pl.String))
    assert back.select(got.columns).sort("widget_id").equals(got)


DICTIONARY_CASES = [
    (
        "binary",
        "hist_gradient_boosting",
        {"max_bins": 3, "max_iter": 20},
    ),  # rare categories grouped
    ("multiclass", "random_forest", {"n_estimators": 5}),  # ordinal codes
    ("binary", "logistic_regression", {}),
    ("regression", "ridge", {}),
]  # one-hot


def _row_groups_with_their_own_dictionaries(path, kind: str) -> pl.DataFrame:
    """Rows with unseen values and nulls, sorted so each 100-row group holds other categories (its
    own
    dictionary), one group with ``size`` all null; written by pyarrow (dictionary-encoded
    strings)."""
    rows = features(1_000, 12, kind, unseen=True).sort("colour", "size", nulls_last=True)
    rows = rows.with_columns(
        pl.when(pl.int_range(pl.len()).is_between(300, 399))
        .then(None)
        .otherwise(pl.col("size"))
        .alias("size")
    )
    pq.write_table(rows.to_arrow(), path, row_group_size=100)
    return rows


@pytest.mark.parametrize("train_nulls", [False, True], ids=["null-unseen", "null-fitted"])
@pytest.mark.parametrize(("kind", "estimator", "params"), DICTIONARY_CASES)
def test_categoricals_read_as_dictionaries_encode_bit_for_bit_like_strings(
    tmp_path, kind, estimator, params, train_nulls
):
    spec = make_spec(kind, estimator, params)
    train = features(800, 11, kind)
    if train_nulls:  # MISSING_CATEGORY is then a fitted category, not an unseen one
        train = train.with_columns(
            pl.when(pl.int_range(pl.len()) % 4 == 0)
            .then(None)
            .otherwise(pl.col("size"))
            .alias("size")
        )
    pipeline = T.fit(spec, T.to_model_frame(train, spec), train["y"].to_numpy())
    encoded, prep = compile_input(pipeline, spec), pipeline.named_steps["prep"]
    path = tmp_path / "rows.parquet"
    _row_groups_with_their_own_dictionaries(path, kind)
    groups = pq.ParquetFile(path, read_dictionary=["colour"])
    assert (
        len(
            {
                tuple(groups.read_row_group(i)["colour"].chunk(0).dictionary.to_pylist())
                for i in range(groups.num_row_groups)
            }
        )
        > 3
    ), "the row groups' dictionaries differ"
    as_dictionaries = list(_file_batches([(DAY, str(path))], 64, spec.categorical_features))
    as_strings = pl.concat(_file_batches([(DAY, str(path))], 64))
    assert (
        len(as_dictionaries) > 10 and max(b.height for b in as_dictionaries) <= 64
    )  # batches end with row groups
    offsets = np.cumsum([0] + [b.height for b in as_dictionaries])
    assert offsets[-1] == as_strings.height
    for read, start in zip(as_dictionaries, offsets, strict=False):
        strings = as_strings.slice(start, read.height)
        assert read.schema["colour"] == pl.Categorical and read.schema["size"] == pl.Categorical
        assert read.with_columns(pl.col("colour", "size").cast(pl.String)).equals(strings)
        expected = prep.transform(T.to_model_frame(strings, spec))
        got = encoded.matrix(read)
        assert got.dtype == expected.dtype and (
            got.flags.c_contiguous if encoded.order == "C" else got.flags.f_contiguous
        )
        assert np.array_equal(got, expected, equal_nan=True)
        assert np.array_equal(
            predictor(pipeline, spec)(read),
            T.predict_scores(pipeline, T.to_model_frame(strings, spec), spec.task),
        )
        # the fallback (no polars encoding) sees the same object strings, not pandas categories
        pd.testing.assert_frame_equal(T.to_model_frame(read, spec), T.to_model_frame(strings, spec))


def test_categoricals_of_a_large_pool_or_of_categories_of_their_own_encode_as_their_strings():
    spec = make_spec("binary", "hist_gradient_boosting", {"max_bins": 3, "max_iter": 20})
    train = features(600, 13, "binary")
    pipeline = T.fit(spec, T.to_model_frame(train, spec), train["y"].to_numpy())
    encoded, prep = compile_input(pipeline, spec), pipeline.named_steps["prep"]
    pl.Series(
        [f"pool-{i}" for i in range(5_000)], dtype=pl.Categorical
    )  # the process-wide categories grow
    rows = features(40, 14, "binary", unseen=True)
    own = pl.Categorical(pl.Categories("widgets-test"))  # and a column with categories of its own
    read = rows.with_columns(pl.col("colour").cast(pl.Categorical), pl.col("size").cast(own))
    assert np.array_equal(
        encoded.matrix(read), prep.transform(T.to_model_frame(rows, spec)), equal_nan=True
    )
