"""Multivariate drift: PCA reconstruction error against the training reference (NannyML's
``DataReconstructionDriftCalculator``).

A shift in how features move *together* (a correlation that breaks while every marginal stays
put) is invisible to per-column tests. PCA fitted on the reference keeps the directions that
explain most of its variance; rows of a world with other correlations are reconstructed worse.
A row's error is the Euclidean distance between its standardised values (``encode``) and their
reconstruction, a sample's error the mean over its rows; a day above the reference's own spread
(``threshold``) is drifted. Plain numpy; no Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from mlops_assets.core.vocabulary import PARTITION_COLUMN

if TYPE_CHECKING:
    import numpy as np

VARIANCE_KEPT = 0.65  # NannyML's n_components
SIGMAS = 3.0
BOOTSTRAP = 200
MAX_FIT_ROWS = 50_000
MIN_ROWS = 100  # fewer rows in a day: not judged
MISSING = "__missing__"


def _categorical_values(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame[column].cast(pl.String).fill_null(MISSING).to_numpy()


def encode(frame: pl.DataFrame, ref: dict[str, Any]) -> np.ndarray:
    """Rows × columns, standardised as the reference was. As NannyML does it: categoricals
    frequency-encoded (their share in the reference; unseen values 0), missing numbers imputed
    with the reference mean, every column standardised with the reference's mean and standard
    deviation (the PCA then keeps the fewest components that explain more than
    ``VARIANCE_KEPT`` of the variance)."""
    import numpy as np

    parts = []
    for c in ref["numeric"]:
        v = frame[c].cast(pl.Float64).to_numpy().astype(np.float64)
        parts.append(np.where(np.isfinite(v), v, ref["impute"][c]))
    for c in ref["categorical"]:
        share = ref["frequencies"][c]
        parts.append(
            np.array([share.get(v, 0.0) for v in _categorical_values(frame, c)], np.float64)
        )
    raw = np.column_stack(parts) if parts else np.zeros((frame.height, 0))
    return (raw - ref["mean"]) / ref["scale"]


def row_errors(Z: np.ndarray, ref: dict[str, Any]) -> np.ndarray:
    import numpy as np

    centred = Z - ref["pca_mean"]
    V = ref["components"]
    return np.linalg.norm(centred - (centred @ V.T) @ V, axis=1)


def _components(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    mean = Z.mean(axis=0)
    _, S, Vt = np.linalg.svd(Z - mean, full_matrices=False)
    ratio = np.cumsum(S**2) / max(float(np.sum(S**2)), 1e-300)
    k = (
        int(np.searchsorted(ratio, VARIANCE_KEPT, side="right")) + 1
    )  # sklearn's rule for a fraction
    return mean, Vt[: min(k, Vt.shape[0])]


def _fit_encoding(
    sample: pl.DataFrame, numeric: list[str], categorical: list[str]
) -> dict[str, Any]:
    import numpy as np

    impute = {}
    for c in numeric:
        v = sample[c].cast(pl.Float64).to_numpy().astype(np.float64)
        impute[c] = float(np.nanmean(v)) if np.isfinite(v).any() else 0.0
    frequencies = {}
    for c in categorical:
        values, counts = np.unique(_categorical_values(sample, c), return_counts=True)
        frequencies[c] = {
            str(v): float(n) / sample.height for v, n in zip(values, counts, strict=True)
        }
    ref = {
        "numeric": list(numeric),
        "categorical": list(categorical),
        "impute": impute,
        "frequencies": frequencies,
        "mean": 0.0,
        "scale": 1.0,
    }
    raw = encode(sample, ref)
    scale = raw.std(axis=0)
    ref.update(mean=raw.mean(axis=0), scale=np.where(scale > 0, scale, 1.0))
    return ref


def fit_reference(
    frame: pl.DataFrame, numeric: list[str], categorical: list[str], day_column: str, seed: int = 0
) -> dict[str, Any]:
    """The reference of ``frame`` (the training rows, ``day_column`` naming each row's day)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sample = frame
    if frame.height > MAX_FIT_ROWS:
        sample = frame[np.sort(rng.choice(frame.height, MAX_FIT_ROWS, replace=False)).tolist()]
    ref = _fit_encoding(sample, numeric, categorical)
    Z = encode(sample, ref)
    ref["pca_mean"], ref["components"] = _components(Z)
    errors = row_errors(encode(frame, ref), ref)
    days = frame[day_column].cast(pl.String).to_numpy()
    chunk = {d: float(errors[days == d].mean()) for d in np.unique(days)}
    sizes = np.array([int((days == d).sum()) for d in chunk])
    m = int(np.median(sizes)) if len(sizes) else len(errors)
    boot = np.array([errors[rng.integers(0, len(errors), m)].mean() for _ in range(BOOTSTRAP)])
    ref.update(
        reference_error=float(np.mean(list(chunk.values()))),
        chunk_std=float(np.std(list(chunk.values()))) if len(chunk) > 1 else 0.0,
        bootstrap_std=float(boot.std()),
        chunk_rows=m,
        chunk_errors=chunk,
        n_components=int(ref["components"].shape[0]),
        reference_rows=int(frame.height),
    )
    return ref


def threshold(ref: dict[str, Any], rows: int) -> float:
    """The upper threshold for a sample of ``rows`` rows, from the reference's own spread: its
    rows are split into its daily partitions (NannyML's chunks) and also resampled
    (``BOOTSTRAP`` draws of the median day's size, seeded); the spread is the larger of the two
    standard deviations, scaled to the judged sample's size by sqrt(m / n), and the threshold is
    the reference mean + ``SIGMAS`` spreads (NannyML's default ``StandardDeviationThreshold`` of
    3)."""
    import numpy as np

    scaled = ref["bootstrap_std"] * np.sqrt(ref["chunk_rows"] / max(rows, 1))
    return float(ref["reference_error"] + SIGMAS * max(ref["chunk_std"], scaled))


def judge(frame: pl.DataFrame, ref: dict[str, Any], min_rows: int = MIN_ROWS) -> dict[str, Any]:
    """``{"rows", "reconstruction_error", "threshold", "drifted", "note"}`` of one sample
    (``drifted`` None when fewer than ``min_rows`` rows)."""
    rows = frame.height
    if rows < min_rows:
        return {
            "rows": rows,
            "reconstruction_error": None,
            "threshold": None,
            "drifted": None,
            "note": f"insufficient data: {rows} rows < {min_rows}",
        }
    error = float(row_errors(encode(frame, ref), ref).mean())
    limit = threshold(ref, rows)
    return {
        "rows": rows,
        "reconstruction_error": error,
        "threshold": limit,
        "drifted": bool(error > limit),
        "note": (
            f"{ref['n_components']} of {len(ref['numeric']) + len(ref['categorical'])} components; "
            f"reference error {ref['reference_error']:.4f}"
        ),
    }


MULTIVARIATE_FEATURE = (  # how a multivariate verdict is named among the drifted features
    "__multivariate__"
)


def as_drift_summary(mv: pl.DataFrame) -> pl.DataFrame:
    """``multivariate_drift`` rows in the shape of ``drift.methods.drift_summary`` (what drift
    episodes read): share = error / threshold, drifted = the verdict (unjudged days: not
    drifted)."""
    if mv.is_empty():
        return pl.DataFrame(
            schema={
                PARTITION_COLUMN: pl.String,
                "share_drifted": pl.Float64,
                "dataset_drifted": pl.Boolean,
                "drifted_features": pl.String,
                "champion_version": pl.Int64,
            }
        )
    return mv.sort(PARTITION_COLUMN).select(
        PARTITION_COLUMN,
        (pl.col("reconstruction_error") / pl.col("threshold")).alias("share_drifted"),
        pl.col("drifted").fill_null(False).alias("dataset_drifted"),
        pl.when(pl.col("drifted").fill_null(False))
        .then(pl.lit(MULTIVARIATE_FEATURE))
        .otherwise(None)
        .alias("drifted_features"),
        pl.col("champion_version").cast(pl.Int64),
    )


def merge_into_summary(summary: pl.DataFrame, mv: pl.DataFrame) -> pl.DataFrame:
    """The univariate ``drift_summary`` with multivariate verdicts folded in (``drift.multivariate:
    retrain``): a day is drifted when either says so (same champion's reference); a day judged only
    multivariately is added. Other columns of ``summary`` are kept as they are."""
    extra = as_drift_summary(mv).rename(
        {
            "share_drifted": "mv_share",
            "dataset_drifted": "mv_drifted",
            "drifted_features": "mv_features",
            "champion_version": "mv_champion",
        }
    )
    if extra.is_empty():
        return summary
    joined = summary.join(extra, on=PARTITION_COLUMN, how="full", coalesce=True)
    same = pl.col("champion_version").is_null() | (
        pl.col("champion_version") == pl.col("mv_champion")
    )
    mv_on = pl.col("mv_drifted").fill_null(False) & same
    return (
        joined.with_columns(
            pl.col("champion_version").fill_null(pl.col("mv_champion")),
            pl.col("share_drifted").fill_null(0.0),
            (pl.col("dataset_drifted").fill_null(False) | mv_on).alias("dataset_drifted"),
            pl.when(mv_on)
            .then(
                pl.concat_str(
                    [pl.col("drifted_features"), pl.lit(MULTIVARIATE_FEATURE)],
                    separator=",",
                    ignore_nulls=True,
                )
            )
            .otherwise(pl.col("drifted_features"))
            .alias("drifted_features"),
        )
        .select(summary.columns)
        .sort(PARTITION_COLUMN)
    )
