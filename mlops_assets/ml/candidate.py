"""A candidate's life on its training set: fit on the train split, judge on the time holdout.

``train_candidate`` fits the spec's pipeline and returns everything the registry records
with it (scores on the holdout for the integrity gate, train metrics, the drift
reference profile). ``evaluate_candidate`` scores candidate and champion on the same
holdout rows, computes metrics and slices, and judges every gate. No Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from mlops_assets.gates import GateResult, evaluate_gates
from mlops_assets.ml import training as T
from mlops_assets.ml.datasets import EVENT_DAY, split_rows
from mlops_assets.ml.evaluation import slice_metrics, task_metrics
from mlops_assets.spec import DatasetSpec


@dataclass(frozen=True)
class TrainedCandidate:
    pipeline: Any
    train: pl.DataFrame
    holdout: pl.DataFrame
    X_train: pd.DataFrame
    holdout_scores: np.ndarray
    train_metrics: dict[str, Any]
    profile: dict[str, Any]

    @property
    def partition_range(self) -> tuple[str, str]:
        return self.train[EVENT_DAY].min(), self.holdout[EVENT_DAY].max()

    def holdout_record(self, id_col: str) -> dict[str, list]:
        """What the integrity gate re-scores later: holdout ids and the in-memory model's scores."""
        return {"ids": self.holdout[id_col].to_list(), "scores": self.holdout_scores.tolist()}


def train_candidate(ts: pl.DataFrame, spec: DatasetSpec) -> TrainedCandidate:
    train, holdout = split_rows(ts, spec)
    X_train = T.to_model_frame(train, spec)
    pipeline = T.fit(spec, X_train, train[spec.target].to_numpy())
    train_scores = T.predict_scores(pipeline, X_train, spec.task)
    holdout_scores = T.predict_scores(pipeline, T.to_model_frame(holdout, spec), spec.task)
    return TrainedCandidate(
        pipeline=pipeline, train=train, holdout=holdout, X_train=X_train, holdout_scores=holdout_scores,
        train_metrics=task_metrics(spec.task, train[spec.target].to_numpy(), train_scores),
        profile=T.reference_profile(train, spec, prediction=train_scores),
    )


def recorded_scores_for(recorded: dict[str, list], holdout: pl.DataFrame, id_col: str) -> np.ndarray:
    """The training-time holdout scores, aligned to ``holdout``'s rows by id (NaN where missing)."""
    return (pl.DataFrame({id_col: recorded["ids"], "s": recorded["scores"]})
            .join(holdout.select(id_col), on=id_col, how="right", maintain_order="right")["s"].to_numpy())


@dataclass(frozen=True)
class Evaluation:
    X: pd.DataFrame
    y: np.ndarray
    candidate_scores: np.ndarray
    candidate_metrics: dict[str, Any]
    champion_scores: np.ndarray | None
    champion_metrics: dict[str, Any] | None
    slices: list[dict[str, Any]]
    gates: list[GateResult]


def evaluate_candidate(holdout: pl.DataFrame, spec: DatasetSpec, *, candidate: Any | None, recorded: np.ndarray,
                       integrity: dict[str, Any], champion: Any | None) -> Evaluation:
    """Judge a candidate on ``holdout``. ``candidate``: the loaded model, or None when it failed
    to load (then the recorded training-time scores stand in, and the integrity gate fails);
    ``champion``: the current champion's model, scored on the same rows, or None."""
    X, y = T.to_model_frame(holdout, spec), holdout[spec.target].to_numpy()
    scores = T.predict_scores(candidate, X, spec.task) if candidate is not None else recorded
    metrics = task_metrics(spec.task, y, scores)
    champion_scores = T.predict_scores(champion, X, spec.task) if champion is not None else None
    champion_metrics = task_metrics(spec.task, y, champion_scores) if champion_scores is not None else None
    slices = slice_metrics(spec.task, holdout, y, scores, spec.categorical_features, spec.gates.min_slice_rows)
    gates = evaluate_gates(spec, metrics, champion_metrics, slices, integrity)
    return Evaluation(X, y, scores, metrics, champion_scores, champion_metrics, slices, gates)


def scorer(spec: DatasetSpec) -> Callable[[Any, pd.DataFrame], np.ndarray]:
    """``model, X -> scores`` for the spec's task (what the registry re-scores with)."""
    return lambda model, X: T.predict_scores(model, X, spec.task)
