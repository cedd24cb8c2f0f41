"""Scoring a partition the way ``scores[D]`` does vs the floor of the same work, and its peak
memory.

Model: the spec's pipeline (hist gradient boosting) trained on ``TRAIN_DAYS`` whole simulated
days (``train_model``), not on the first rows of one. Features: one more simulated day of
``rows`` rows through the data contract and ``compute_features`` (``features_of``), written to
a Delta table. Side by side, interleaved, best of N (``bench``): ``predict`` (the least any
scoring can do), ``floor`` (bare read + predict + write), ``asset`` (what the asset body runs)
and, as info, ``floor_pipeline``; beside them the model input's cost per 1M rows. Peak memory:
partitions of 10M and 1M rows scored in a fresh interpreter each (``peak_memory``).
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.common import (
    Result,
    Table,
    goal,
    interleaved,
    mb,
    probe_main,
    project_env,
    ratio,
    run_probe,
    secs,
    temp_dir,
)

DAY = dt.date(2026, 3, 2)
TRAIN_DAYS = 3
PEAK_ROWS, PEAK_SMALL_ROWS = 10_000_000, 1_000_000
ENV_DIR = "MLOPS_BENCH_SCORING_DIR"
BIG, SMALL = "2026-03-03", "2026-03-04"  # partitions of the peak-memory table


def features_of(day: dt.date, rows: int, seed: int) -> pl.DataFrame:
    """A simulated day through the contract and ``compute_features``, with its labels
    (``is_fraud``)."""
    from mlops_assets.core.spec import load_spec
    from mlops_assets.data.contract import event_contract
    from mlops_assets.data.features import compute_features
    from mlops_assets.data.landing_file import validate_file
    from mlops_assets.data.simulator import card_events

    spec = load_spec()
    raw = card_events(day, rows, seed=seed)
    labels = raw.select(spec.id, "is_fraud")
    text = (
        raw.drop("is_fraud")
        .with_columns(pl.col(spec.timestamp).dt.strftime("%Y-%m-%dT%H:%M:%S"))
        .cast(pl.String)
    )
    accepted, _, _ = validate_file(text, event_contract(spec), day.isoformat(), "bench.csv")
    return compute_features(accepted, spec).join(
        labels, on=spec.id, how="left", maintain_order="left"
    )


def train_model(rows_per_day: int):
    """The spec's pipeline fitted on ``TRAIN_DAYS`` whole days before ``DAY``."""
    from mlops_assets.core.spec import load_spec
    from mlops_assets.model import training as T

    spec = load_spec()
    days = [
        features_of(DAY - dt.timedelta(days=TRAIN_DAYS - i), rows_per_day, seed=10 + i)
        for i in range(TRAIN_DAYS)
    ]
    train = pl.concat(days)
    return T.fit(spec, T.to_model_frame(train, spec), train["is_fraud"].to_numpy()), train.height


def _floor(lake, key: str, spec, make_matrix, predict, dictionaries: bool = True) -> None:
    """Bare read of the partition's files (the categoricals as dictionaries, as the asset reads
    them), one predict, one write of the same score rows (ds, id, timestamp, probability, label,
    model version, alias, mode, scoring time)."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, write_deltalake

    files = [
        u.removeprefix("file://")
        for u in DeltaTable(lake.uri("features")).file_uris([("ds", "=", key)])
    ]
    feats = pl.from_arrow(
        pq.read_table(
            files,
            read_dictionary=spec.categorical_features if dictionaries else None,
            partitioning=None,
        )
    ).with_columns(pl.lit(key).alias("ds"))
    p = predict(make_matrix(feats))[:, 1]
    # the same score rows as the asset's
    out = feats.select("ds", spec.id, spec.timestamp).with_columns(
        pl.Series("probability", p),
        pl.Series("label", (p >= 0.5).astype("int8")),
        pl.lit(1, pl.Int64).alias("model_version"),
        pl.lit("champion").alias("alias"),
        pl.lit("normal").alias("mode"),
        pl.lit(dt.datetime(2026, 3, 3), pl.Datetime("us")).alias("scored_at"),
    )
    uri = lake.uri("floor_scores")
    target = DeltaTable(uri) if DeltaTable.is_deltatable(uri) else uri
    write_deltalake(
        target, out.to_arrow(), mode="overwrite", predicate=f"ds = '{key}'", partition_by=["ds"]
    )


def bench(quick: bool = False) -> Result:
    """The variants, side by side, interleaved, best of N:

    * ``predict``: the fitted estimator's ``predict_proba`` on the model matrix already in
      memory (the least any scoring can do);
    * ``floor``: bare read + predict + write of the same rows (``_floor``): the partition's
      Parquet files read whole by pyarrow, the matrix built in polars
      (``model.encoded_input``), ``predict_proba``, the same score rows written by one
      ``write_deltalake`` overwrite;
    * ``asset``: what the asset body runs — ``DeltaLake.write_stream`` of
      ``scoring.score_batches`` over ``DeltaLake.iter_batches`` of the partition (100k-row
      batches pulled from its files, the spec's categoricals read as Parquet dictionaries:
      ``pl.Categorical``), counted by ``ScoreTally``: one commit;
    * ``floor_pipeline`` (info: the floor without the polars-built matrix): the same floor
      reading strings, with ``to_model_frame`` and the pipeline's own ``predict_proba``
      (scikit-learn's ``OrdinalEncoder`` on object strings).

    Model input per 1M rows (``scoring.encode_s_per_1m``): ``EncodedModel.matrix`` on the
    batches as the asset gets them (``iter_batches`` with the categoricals as dictionaries,
    read beforehand, not timed); beside it the read itself (``scoring.read_s_per_1m``; as
    strings: ``scoring.read_strings_s_per_1m``), ``matrix`` on the whole partition read as
    strings (``scoring.encode_strings_s_per_1m``) and ``to_model_frame`` + the
    ``ColumnTransformer`` (``scoring.encode_sklearn_s_per_1m``).
    """
    from mlops_assets.core.spec import load_spec
    from mlops_assets.data.lake import DeltaLake
    from mlops_assets.model import training as T
    from mlops_assets.model.encoded_input import compile_input
    from mlops_assets.scoring.rows import (
        NORMAL,
        ScoreTally,
        ServingModel,
        score_batches,
        score_column,
        score_columns,
    )

    rows = 50_000 if quick else 1_000_000
    repeats = 2 if quick else 5
    spec = load_spec()
    pipeline, train_rows = train_model(5_000 if quick else 100_000)
    feats = features_of(DAY, rows, seed=0).drop("is_fraud")
    serving = ServingModel(pipeline, 1, "champion", NORMAL, "bench")
    encoded = compile_input(pipeline, spec)
    matrix = encoded.matrix(feats)
    key, cats = DAY.isoformat(), spec.categorical_features

    with temp_dir("scoring") as home, project_env(MLOPS_HOME=str(home)):
        lake = DeltaLake(root=str(home / "lake"))
        lake.write_partitions("features", feats, [key])
        tally = ScoreTally(score_column(spec))
        # as the asset reads them
        batches = list(lake.iter_batches("features", [key], dictionary_columns=cats))

        def asset():
            return lake.write_stream(
                "scores",
                lambda: tally.count(
                    score_batches(
                        serving, lake.iter_batches("features", [key], dictionary_columns=cats), spec
                    )
                ),
                score_columns(spec),
                [key],
            )

        variants = {
            "predict": lambda: encoded.estimator.predict_proba(matrix),
            "floor": lambda: _floor(
                lake, key, spec, encoded.matrix, encoded.estimator.predict_proba
            ),
            "asset": asset,
            "floor_pipeline": lambda: _floor(
                lake,
                key,
                spec,
                lambda f: T.to_model_frame(f, spec),
                pipeline.predict_proba,
                dictionaries=False,
            ),
            "encode_polars": lambda: [encoded.matrix(b) for b in batches],
            "encode_polars_strings": lambda: encoded.matrix(feats),
            "read_dictionaries": lambda: list(
                lake.iter_batches("features", [key], dictionary_columns=cats)
            ),
            "read_strings": lambda: list(lake.iter_batches("features", [key])),
            "encode_sklearn": (
                lambda: pipeline.named_steps["prep"].transform(T.to_model_frame(feats, spec))
            ),
        }
        timings = interleaved(variants, repeats)
        stored = lake.read("scores", [key])
        expected = T.predict_scores(
            pipeline, T.to_model_frame(feats.sort(spec.id), spec), "classification"
        )
        same = stored.sort(spec.id)["probability"].equals(pl.Series("probability", expected))
        peak = peak_memory(
            home,
            feats,
            pipeline,
            PEAK_ROWS // 50 if quick else PEAK_ROWS,
            PEAK_SMALL_ROWS // 20 if quick else PEAK_SMALL_ROWS,
        )
    return _result(rows, repeats, train_rows, timings, stored.height, same, peak)


def peak_memory(
    home: Path, feats: pl.DataFrame, pipeline, big_rows: int, small_rows: int
) -> dict[str, Any]:
    """Write a table with a ``big_rows`` and a ``small_rows`` partition (copies of ``feats``
    with new ids), then score each in a fresh interpreter (``python -m benchmarks.bench_scoring
    --probe NAME``), streaming vs (small only) the in-memory path. Each probe resets the
    kernel's RSS high-water mark after loading the model and reads ``VmHWM`` after the commit:
    the peak RSS of the whole process during scoring (measured, not extrapolated), the small
    partition's beside the big one's (flat in the rows?)."""
    from mlops_assets.core.spec import load_spec
    from mlops_assets.data.lake import DeltaLake

    spec = load_spec()
    folder = home / "peak"
    lake = DeltaLake(root=str(folder / "lake"))
    for day, n in ((BIG, big_rows), (SMALL, small_rows)):
        for k in range(0, n, feats.height):
            part = feats.head(min(feats.height, n - k)).with_columns(
                pl.lit(day).alias("ds"), (pl.col(spec.id) + f"-{k}").alias(spec.id)
            )
            lake.append("features", part)
    (folder / "model.pkl").write_bytes(pickle.dumps(pipeline))
    env = {ENV_DIR: str(folder)}
    out = {
        name: run_probe("benchmarks.bench_scoring", name, env=env, timeout=1800)
        for name in ("stream_big", "stream_small", "in_memory_small")
    }
    out["rows"] = {"big": big_rows, "small": small_rows}
    return out


def probe_variants() -> dict[str, Any]:
    """``--probe NAME``: prepare (load the model; not measured) → the call to measure."""
    from mlops_assets.core.spec import load_spec
    from mlops_assets.data.lake import DeltaLake
    from mlops_assets.scoring.rows import (
        NORMAL,
        ScoreTally,
        ServingModel,
        score_batches,
        score_column,
        score_columns,
        score_frame,
    )

    folder = Path(os.environ.get(ENV_DIR, "."))

    def prepare(day: str, streaming: bool):
        def ready():
            spec = load_spec()
            lake = DeltaLake(root=str(folder / "lake"))
            serving = ServingModel(
                pickle.loads((folder / "model.pkl").read_bytes()), 1, "champion", NORMAL, "probe"
            )
            tally = ScoreTally(score_column(spec))
            if streaming:
                return lambda: lake.write_stream(
                    "scores",
                    lambda: tally.count(
                        score_batches(
                            serving,
                            lake.iter_batches(
                                "features", [day], dictionary_columns=spec.categorical_features
                            ),
                            spec,
                        )
                    ),
                    score_columns(spec),
                    [day],
                )
            scan = lake.scan("features").filter(pl.col("ds") == day)
            return lambda: lake.write_partitions("scores", score_frame(serving, scan, spec), [day])

        return ready

    return {
        "stream_big": prepare(BIG, True),
        "stream_small": prepare(SMALL, True),
        "in_memory_small": prepare(SMALL, False),
    }


def _result(rows, repeats, train_rows, timings, written, same, peak) -> Result:
    t = {k: v.best for k, v in timings.items()}
    table = Table(
        f"scoring {rows:,} rows, model trained on {TRAIN_DAYS} whole days ({train_rows:,} rows); "
        f"best of {repeats}, interleaved",
        ["variant", "best", "median", "× predict", "× floor"],
    )
    labels = {
        "predict": "estimator.predict_proba, matrix in memory",
        "floor": "floor: read + predict + write",
        "asset": "asset: iter_batches → score_batches → write_stream (1 commit)",
        "floor_pipeline": "floor before: to_model_frame + pipeline.predict_proba",
        "encode_polars": (
            "model input: matrix of the iter_batches batches (categoricals as dictionaries)"
        ),
        "encode_polars_strings": "model input: matrix of the partition read as strings",
        "encode_sklearn": "model input: to_model_frame + ColumnTransformer",
        "read_dictionaries": "read: iter_batches, categoricals as dictionaries",
        "read_strings": "read: iter_batches, as stored (strings)",
    }
    for name, label in labels.items():
        table.add(
            label,
            secs(timings[name].best),
            secs(timings[name].median),
            ratio(t[name], t["predict"]),
            ratio(t[name], t["floor"]),
        )
    big, small, mem_small = peak["stream_big"], peak["stream_small"], peak["in_memory_small"]
    mem = Table(
        "scoring peak memory: peak RSS of a fresh process while it scores one partition",
        ["variant", "rows", "peak RSS", "growth", "seconds"],
    )
    mem.add(
        "streamed (the asset)",
        f"{peak['rows']['big']:,}",
        mb(big["peak_mb"]),
        mb(big["delta_mb"]),
        secs(big["seconds"]),
    )
    mem.add(
        "streamed (the asset)",
        f"{peak['rows']['small']:,}",
        mb(small["peak_mb"]),
        mb(small["delta_mb"]),
        secs(small["seconds"]),
    )
    mem.add(
        "in memory (score_frame + write_partitions)",
        f"{peak['rows']['small']:,}",
        mb(mem_small["peak_mb"]),
        mb(mem_small["delta_mb"]),
        secs(mem_small["seconds"]),
    )
    mem.notes.append(
        f"{big['method']}; the model is loaded before the reset, the features are scanned from"
        " Delta"
    )
    table.notes.append(
        f"{written:,} score rows written; identical to the pipeline's own predict_proba: {same}"
    )
    per_1m = 1_000_000 / rows
    keys = {
        "scoring.asset_vs_floor": t["asset"] / t["floor"],
        "scoring.floor_vs_predict": t["floor"] / t["predict"],
        "scoring.peak_rss_mb_10m": big["peak_mb"],
        "scoring.peak_rss_rows": float(peak["rows"]["big"]),
        "scoring.floor_before_vs_predict": t["floor_pipeline"] / t["predict"],
        "scoring.encode_s_per_1m": t["encode_polars"] * per_1m,
        "scoring.encode_strings_s_per_1m": t["encode_polars_strings"] * per_1m,
        "scoring.read_s_per_1m": t["read_dictionaries"] * per_1m,
        "scoring.read_strings_s_per_1m": t["read_strings"] * per_1m,
        "scoring.encode_sklearn_s_per_1m": t["encode_sklearn"] * per_1m,
    }
    goals = [
        goal(
            "asset vs floor",
            "<= 1.05x",
            ratio(t["asset"], t["floor"]),
            keys["scoring.asset_vs_floor"] <= 1.05,
        ),
        goal(
            f"peak RSS, {peak['rows']['big']:,} rows",
            "<= 1.5 GB",
            mb(big["peak_mb"]),
            big["peak_mb"] <= 1536,
        ),
        goal(
            "polars encoding per 1M rows (as read)",
            "<= 0.05 s",
            secs(keys["scoring.encode_s_per_1m"]),
            keys["scoring.encode_s_per_1m"] <= 0.05,
        ),
        goal(
            "scores equal the pipeline's", "identical", "identical" if same else "DIFFERENT", same
        ),
    ]
    data = {
        "rows": rows,
        "repeats": repeats,
        "train_rows": train_rows,
        "identical": same,
        "peak": peak,
        **{k: v.to_json() for k, v in timings.items()},
    }
    return Result("scoring", [table, mem], goals, data, keys)


if __name__ == "__main__":
    if "--probe" in sys.argv:
        probe_main(probe_variants(), sys.argv)
    else:
        for tbl in bench("--quick" in sys.argv).tables:
            print(tbl.render(), end="\n\n")
