"""``reproduce VERSION``: retrain from a version's recorded lineage and compare.

Delta time travel to the recorded ``training_set`` version, the same spec and seed,
the same pure training function; then compare holdout predictions and metrics with
the registered model. Agreement within ``tolerance`` → exit 0. The registered model is
loaded verified against its registration manifest: a version whose files changed, appeared or
disappeared raises ``IntegrityError`` (the CLI reports "refused"), it never "agrees".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    TRAINING_SET,
    LineageTag,
    VersionTag,
    recorded_delta_versions,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.model.datasets import split_rows


@dataclass
class Reproduction:
    version: int
    cutoff: str
    training_set_version: int
    spec_matches: bool
    max_abs_prediction_diff: float
    metric_diffs: dict
    agrees: bool
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def reproduce(
    spec: DatasetSpec,
    lake: DeltaLake,
    registry: ModelRegistry,
    version: int,
    tolerance: float = 1e-9,
) -> Reproduction:
    from mlops_assets.model import training as T
    from mlops_assets.model.evaluation import task_metrics

    tags = registry.version_tags(version)
    cutoff = tags.get(VersionTag.CUTOFF)
    versions = recorded_delta_versions(tags)
    if cutoff is None or TRAINING_SET not in versions:
        raise ValueError(
            f"version {version} has no recorded cutoff / training_set version: cannot reproduce"
        )
    ts_version = int(versions[TRAINING_SET])
    train, holdout = split_rows(lake.read(TRAINING_SET, [cutoff], version=ts_version), spec)
    X_holdout = T.to_model_frame(holdout, spec)
    y = holdout[spec.target].to_numpy()
    retrained = T.fit(spec, T.to_model_frame(train, spec), train[spec.target].to_numpy())
    new = T.predict_scores(retrained, X_holdout, spec.task)
    old = T.predict_scores(registry.load_model(version), X_holdout, spec.task)
    diff = float(np.max(np.abs(new - old))) if len(new) else 0.0
    m_new, m_old = task_metrics(spec.task, y, new), task_metrics(spec.task, y, old)
    metric_diffs = {
        k: abs(m_new[k] - m_old[k])
        for k in m_new
        if isinstance(m_new.get(k), float) and isinstance(m_old.get(k), float)
    }
    spec_matches = tags.get(LineageTag.SPEC_SHA) == spec.digest
    agrees = diff <= tolerance and all(d <= max(tolerance, 1e-12) for d in metric_diffs.values())
    detail = (
        f"retrained version {version} from training_set@v{ts_version} (cutoff {cutoff}, seed"
        f" {spec.training.seed}): max |Δprediction| = {diff:.3g} over {len(new)} holdout rows;"
        f" {'agrees' if agrees else 'DISAGREES'} within {tolerance:g}"
    )
    if not spec_matches:
        detail += "; warning: the current spec differs from the one recorded (lineage.spec_sha256)"
    return Reproduction(
        version, cutoff, ts_version, spec_matches, diff, metric_diffs, agrees, detail
    )
