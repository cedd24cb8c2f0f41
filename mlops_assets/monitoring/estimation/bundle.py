"""What a model version carries for monitoring before labels: its performance estimation method
(CBPE or DLE, fitted on the holdout) and its multivariate drift reference (PCA of the training
rows).

One skops file, ``Artifact.MONITOR_MODELS``, logged with the candidate's run: hashed into the
registration manifest like every run artifact and loaded only through the verified path
(``registry.integrity.load_artifact_skops``) with the types recorded under
``VersionTag.MONITOR_TRUSTED_TYPES`` — a subset of ``estimation.METHOD_TRUSTED_TYPES``.
A version registered without this artifact is skipped with a note by estimation and multivariate
drift (``Bundles``, each version's bundle loaded once per run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import Artifact, VersionTag
from mlops_assets.model.bounds import clip_predictions
from mlops_assets.model.datasets import EVENT_DAY
from mlops_assets.monitoring.drift import multivariate as multivariate_drift
from mlops_assets.monitoring.estimation import methods as estimation

if TYPE_CHECKING:
    from mlops_assets.model.candidate import TrainedCandidate

BUNDLE_FORMAT = 1


def drift_columns(spec: DatasetSpec) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns of the multivariate reference: the model features without
    ``drift.exclude`` (calendar columns count as numeric)."""
    out = set(spec.drift.exclude)
    numeric = [c for c in spec.numeric_features + spec.calendar_features if c not in out]
    return numeric, [c for c in spec.categorical_features if c not in out]


def build_bundle(trained: TrainedCandidate, spec: DatasetSpec) -> dict[str, Any]:
    """The estimation method (fitted on the holdout's served scores and labels) and the PCA
    reference (fitted on the train split, thresholds from its days)."""
    from mlops_assets.model import training as T

    X_hold = T.to_model_frame(trained.holdout, spec)
    y = T.target_codes(trained.holdout[spec.target], spec)
    served = clip_predictions(trained.holdout_scores, spec)
    method = estimation.fit_method(
        spec.task,
        y,
        served,
        X_hold,
        spec.numeric_features + spec.calendar_features,
        spec.categorical_features,
        seed=spec.training.seed,
    )
    numeric, categorical = drift_columns(spec)
    reference = (
        multivariate_drift.fit_reference(
            trained.train, numeric, categorical, EVENT_DAY, seed=spec.training.seed
        )
        if numeric or categorical
        else None
    )
    return {
        "format": BUNDLE_FORMAT,
        "task": spec.task,
        "estimator": method,  # the stored key: bundles of every registered version carry it
        "multivariate_reference": reference,
        "holdout_rows": int(len(y)),
    }


def monitor_artifacts(
    trained: TrainedCandidate, spec: DatasetSpec
) -> tuple[dict[str, bytes], dict[str, str]]:
    """(run artifacts, version tags) to log with the candidate: the bundle's skops bytes and the
    exact types it needs trusted."""
    import skops.io

    data = skops.io.dumps(build_bundle(trained, spec))
    types = sorted(skops.io.get_untrusted_types(data=data))
    unknown = set(types) - set(estimation.METHOD_TRUSTED_TYPES)
    if unknown:
        raise RuntimeError(
            f"the monitoring bundle needs types outside METHOD_TRUSTED_TYPES: {sorted(unknown)}"
        )
    return {Artifact.MONITOR_MODELS: data}, {VersionTag.MONITOR_TRUSTED_TYPES: json.dumps(types)}


class Bundles:
    """Each version's monitoring bundle, loaded (verified) once per run; None for a version without
    one. ``load(version)``: the verified bundle or None (the registry's skops path)."""

    def __init__(self, load: Callable[[int], dict | None]):
        self.load, self.loaded, self.notes = load, {}, []

    def get(self, version: int) -> dict | None:
        if version not in self.loaded:
            bundle = self.load(version)
            if bundle is None:
                self.notes.append(
                    f"v{version} was registered without {Artifact.MONITOR_MODELS} (before"
                    " estimation existed): skipped; retrain to get estimates and multivariate"
                    " drift"
                )
            self.loaded[version] = bundle
        return self.loaded[version]
