"""Which model scores: the champion when usable, else the spec's declared fallback.

``serving_model`` is the rule, with model loading passed in (so it is tested on plain
values); ``choose_serving_model`` applies it to the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mlops_assets.registry import IntegrityError, ModelRegistry
from mlops_assets.scoring import BASELINE_VERSION, DEGRADED, NORMAL, ConstantBaseline, ServingModel
from mlops_assets.spec import DatasetSpec
from mlops_assets.vocabulary import GUARD_TRIPPED, Alias, Artifact, VersionTag


def serving_model(alias: str, version: int | None, tags: Mapping[str, str], *, fallback: str,
                  last_known_good: int | None, load: Callable[[int], Any],
                  baseline_prior: Callable[[], float]) -> ServingModel | None:
    """The model that serves under ``alias`` (None when the alias is unset).

    The version serves (``normal``) unless its guard tripped or its artifact fails the
    integrity check (``load`` raises ``IntegrityError``). Then, for the champion only, the
    fallback serves (``degraded``): ``last_known_good`` when the spec says so and it loads,
    else a constant baseline at the training prior. A challenger that is unusable serves nothing.
    """
    if version is None:
        return None
    if tags.get(VersionTag.GUARD) == GUARD_TRIPPED:
        problem = f"{alias} v{version} unusable: guard tripped ({tags.get(VersionTag.GUARD_REASON, '')})"
    else:
        try:
            return ServingModel(load(version), version, alias, NORMAL, f"{alias} v{version}")
        except IntegrityError as err:
            problem = f"{alias} v{version} unusable: artifact integrity failed ({err})"
    if alias != Alias.CHAMPION:
        return None
    if fallback == "last_known_good" and last_known_good is not None and last_known_good != version:
        try:
            return ServingModel(load(last_known_good), last_known_good, Alias.LAST_KNOWN_GOOD, DEGRADED,
                                f"{problem}; serving last_known_good v{last_known_good}")
        except IntegrityError as err:
            problem += f"; last_known_good v{last_known_good} also unusable ({err})"
    prior = baseline_prior()
    return ServingModel(ConstantBaseline(prior), BASELINE_VERSION, "baseline", DEGRADED,
                        f"{problem}; serving the constant baseline {prior:.4f}")


def training_prior(profile: Mapping[str, Any]) -> float:
    """The mean training prediction recorded in a reference profile (the baseline's constant)."""
    return float((profile.get("prediction") or {}).get("mean") or 0.0)


def choose_serving_model(spec: DatasetSpec, registry: ModelRegistry, alias: str = Alias.CHAMPION) -> ServingModel | None:
    version = registry.get_alias(alias)
    return serving_model(
        alias, version, registry.version_tags(version) if version is not None else {},
        fallback=spec.fallback, last_known_good=registry.get_alias(Alias.LAST_KNOWN_GOOD),
        load=registry.load_model,
        baseline_prior=lambda: training_prior(registry.load_artifact_json(version, Artifact.REFERENCE_PROFILE)))
