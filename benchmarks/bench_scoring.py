"""Scoring a 1M-row partition the way `scores[D]` does (Delta scan → batched predict → one Delta
commit) vs bare `pipeline.predict_proba` on the same rows already in memory. Goal ≤ 1.25×."""

from __future__ import annotations

import datetime as dt

from benchmarks.common import Result, Table, goal, interleaved, project_env, ratio, secs, temp_dir

DAY = dt.date(2026, 3, 2)


def _features(rows: int):
    import polars as pl

    from mlops_assets.features import compute_features
    from mlops_assets.ingest import event_contract, validate_file
    from mlops_assets.simulator import card_events
    from mlops_assets.spec import load_spec

    spec = load_spec()
    raw = card_events(DAY, rows, seed=0)
    labels = raw["is_fraud"]
    raw = raw.drop("is_fraud").with_columns(pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S"))
    accepted, _, _ = validate_file(raw.cast(pl.String), event_contract(spec), DAY.isoformat(), "bench.csv")
    feats = compute_features(accepted, spec)
    return spec, feats, labels


def bench(quick: bool = False) -> Result:
    import polars as pl

    from mlops_assets.lake import DeltaLake
    from mlops_assets.ml import training as T
    from mlops_assets.scoring import NORMAL, ServingModel, score_frame

    rows = 200_000 if quick else 1_000_000
    repeats = 2 if quick else 3
    spec, feats, labels = _features(rows)
    train = feats.head(50_000).with_columns(pl.Series("is_fraud", labels.head(50_000)))
    pipeline = T.fit(spec, T.to_model_frame(train, spec), train["is_fraud"].to_numpy())
    serving = ServingModel(pipeline, 1, "champion", NORMAL, "bench")
    X = T.to_model_frame(feats, spec)  # the baseline's input, prepared once, outside the timing
    key = DAY.isoformat()

    with temp_dir("scoring") as home, project_env(MLOPS_HOME=str(home)):
        lake = DeltaLake(root=str(home / "lake"))
        lake.write_partitions("features", feats, [key])

        def bare():
            return pipeline.predict_proba(X)

        def asset_path(batch_rows: int):
            def run():
                out = score_frame(serving, lake.scan("features").filter(pl.col("ds") == key), spec,
                                  batch_rows=batch_rows)
                return lake.write_partitions("scores", out, [key])
            return run

        timings = interleaved({"bare predict_proba (in memory)": bare,
                               "read Delta → score (100k batches) → write Delta": asset_path(100_000),
                               "read Delta → score (one batch) → write Delta": asset_path(rows)}, repeats)
        scored = lake.read("scores", [key])

    base = timings["bare predict_proba (in memory)"].best
    table = Table(f"scoring {rows:,} rows (best of {repeats}, interleaved)", ["variant", "best", "median", "× bare"])
    for name, t in timings.items():
        table.add(name, secs(t.best), secs(t.median), ratio(t.best, base))
    table.notes.append(f"{scored.height:,} score rows written, model versions {scored['model_version'].unique().to_list()}")
    asset = timings["read Delta → score (100k batches) → write Delta"].best
    return Result("scoring", [table], [goal("asset path vs bare predict", "<= 1.25x", ratio(asset, base),
                                            asset / base <= 1.25)],
                  {k: t.to_json() for k, t in timings.items()} | {"rows": rows})
