"""Which model scores: the champion when usable, else the spec's declared fallback — from the
registry, or from the local verified cache while MLflow is unreachable.

``serving_model`` is the rule, with model loading passed in (so it is tested on plain
values); ``choose_serving_model`` applies it to the registry, and to the registry's local
cache (``model_source=cache``) when the registry raises ``RegistryUnavailable``.
``stream_scores`` writes a serving model's scores of some days to the lake; ``lkg_predictor``
re-scores with last_known_good; ``refused`` says out loud that a model failed its integrity check.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from mlops_assets.control.alerts import AlertKind, AlertSink
from mlops_assets.control.registry import (
    IntegrityError,
    ModelNotCached,
    ModelRegistry,
    RegistryUnavailable,
)
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import FEATURES, GUARD_TRIPPED, Alias, Artifact, VersionTag
from mlops_assets.data.lake import DeltaLake
from mlops_assets.scoring.rows import (
    BASELINE_VERSION,
    CACHE,
    DEGRADED,
    NORMAL,
    REGISTRY,
    ConstantBaseline,
    ScoreTally,
    ServingModel,
    predictor,
    score_batches,
    score_column,
    score_columns,
)

UNUSABLE = (IntegrityError, ModelNotCached)  # what makes a version unusable (the rest propagates)


def serving_model(
    alias: str,
    version: int | None,
    tags: Mapping[str, str],
    *,
    fallback: str,
    last_known_good: int | None,
    load: Callable[[int], Any],
    baseline_prior: Callable[[], float | list[float]],
    source: str = REGISTRY,
) -> ServingModel | None:
    """The model that serves under ``alias`` (None when the alias is unset).

    The version serves (``normal``) unless its guard tripped or it cannot be loaded as
    registered (``load`` raises ``IntegrityError``: a file changed, appeared or disappeared —
    or ``ModelNotCached`` when loading from the cache). Then, for the champion only, the
    fallback serves (``degraded``): ``last_known_good`` when the spec says so and it loads,
    else a constant baseline at the training prior. A challenger that is unusable serves
    nothing. Every integrity refusal is listed in ``refused`` (the caller alerts on them).
    """
    if version is None:
        return None
    refused: list[str] = []
    if tags.get(VersionTag.GUARD) == GUARD_TRIPPED:
        problem = (
            f"{alias} v{version} unusable: guard tripped ({tags.get(VersionTag.GUARD_REASON, '')})"
        )
    else:
        try:
            return ServingModel(
                load(version), version, alias, NORMAL, f"{alias} v{version}", source
            )
        except UNUSABLE as err:
            refused += [str(err)] if isinstance(err, IntegrityError) else []
            problem = f"{alias} v{version} unusable: {_why(err)} ({err})"
    if alias != Alias.CHAMPION:
        return None
    if fallback == "last_known_good" and last_known_good is not None and last_known_good != version:
        try:
            return ServingModel(
                load(last_known_good),
                last_known_good,
                Alias.LAST_KNOWN_GOOD,
                DEGRADED,
                f"{problem}; serving last_known_good v{last_known_good}",
                source,
                tuple(refused),
            )
        except UNUSABLE as err:
            refused += [str(err)] if isinstance(err, IntegrityError) else []
            problem += f"; last_known_good v{last_known_good} also unusable ({err})"
    prior = baseline_prior()
    shown = (
        f"{prior:.4f}"
        if isinstance(prior, float | int)
        else "[" + ", ".join(f"{p:.4f}" for p in prior) + "]"
    )
    return ServingModel(
        ConstantBaseline(prior),
        BASELINE_VERSION,
        "baseline",
        DEGRADED,
        f"{problem}; serving the constant baseline {shown}",
        source,
        tuple(refused),
    )


def _why(err: Exception) -> str:
    return (
        "artifact integrity failed" if isinstance(err, IntegrityError) else "not in the local cache"
    )


def training_prior(profile: Mapping[str, Any]) -> float | list[float]:
    """The baseline's constant, from a reference profile: the class priors of a multiclass model
    (``class_priors``, one probability per class), else the mean training prediction."""
    if profile.get("class_priors"):
        return [float(p) for p in profile["class_priors"]]
    return float((profile.get("prediction") or {}).get("mean") or 0.0)


def first_prior(
    read: Callable[[int], Mapping[str, Any]], versions: list[int | None]
) -> float | list[float]:
    """The training prior of the first of ``versions`` whose reference profile reads (verified)."""
    problems = []
    for v in [v for v in versions if v is not None]:
        try:
            return training_prior(read(v))
        except (*UNUSABLE, FileNotFoundError) as err:
            problems.append(f"v{v}: {err}")
    raise IntegrityError(
        "no verified reference profile for the constant baseline: " + "; ".join(problems)
    )


def choose_serving_model(
    spec: DatasetSpec, registry: ModelRegistry, alias: str = Alias.CHAMPION
) -> ServingModel | None:
    """``serving_model`` over the registry; over the local cache when MLflow is unreachable.

    Raises ``RegistryUnavailable`` when MLflow is unreachable and the cache cannot serve
    ``alias`` (no mapping recorded, or nothing of it cached and verified)."""
    try:
        return _from_registry(spec, registry, alias)
    except RegistryUnavailable as err:
        return _from_cache(spec, registry, alias, err)


def _from_registry(spec: DatasetSpec, registry: ModelRegistry, alias: str) -> ServingModel | None:
    aliases = registry.serving_aliases()
    version, lkg = aliases.get(alias), aliases.get(Alias.LAST_KNOWN_GOOD)
    serving = serving_model(
        alias,
        version,
        registry.version_tags(version) if version is not None else {},
        fallback=spec.fallback,
        last_known_good=lkg,
        load=lambda v: registry.load_model(v, cache=True),
        baseline_prior=lambda: first_prior(
            lambda v: registry.load_artifact_json(v, Artifact.REFERENCE_PROFILE), [version, lkg]
        ),
    )
    if (
        alias == Alias.CHAMPION
        and spec.fallback == "last_known_good"
        and lkg not in (None, version)
    ):
        # cached so an outage can still fall back to it; a failure is reported when it must serve
        with contextlib.suppress(UNUSABLE):
            registry.cache_version(lkg)
    return serving


def _from_cache(
    spec: DatasetSpec, registry: ModelRegistry, alias: str, err: RegistryUnavailable
) -> ServingModel | None:
    try:
        aliases, seen_at = registry.cached_aliases()
    except ModelNotCached:
        raise RegistryUnavailable(f"{err}; and no alias mapping in the local model cache") from None
    version, lkg = aliases.get(alias), aliases.get(Alias.LAST_KNOWN_GOOD)
    try:
        tags = registry.cached_version_tags(version) if version is not None else {}
    except ModelNotCached:
        tags = {}
    try:
        serving = serving_model(
            alias,
            version,
            tags,
            fallback=spec.fallback,
            last_known_good=lkg,
            load=registry.load_cached_model,
            baseline_prior=lambda: first_prior(
                lambda v: registry.load_cached_artifact_json(v, Artifact.REFERENCE_PROFILE),
                [version, lkg],
            ),
            source=CACHE,
        )
    except IntegrityError as missing:
        raise RegistryUnavailable(
            f"{err}; and the local model cache cannot serve {alias}: {missing}"
        ) from None
    if serving is None:
        return None
    return dataclasses.replace(
        serving,
        reason=f"{serving.reason} from the local model cache (MLflow unreachable: "
        f"{err}; alias mapping last seen {seen_at})",
    )


def stream_scores(
    lake: DeltaLake,
    spec: DatasetSpec,
    serving: ServingModel,
    table: str,
    keys: list[str],
    run_id: str,
    metadata: dict | None = None,
) -> tuple[ScoreTally, int]:
    """Score the features of ``keys`` with ``serving`` into ``table``, batch by batch (one commit);
    (the tally of the rows streamed, the table's new version)."""
    tally = ScoreTally(score_column(spec))  # the rows stream to the lake: counted on the way
    version = lake.write_stream(
        table,
        lambda: tally.count(
            score_batches(
                serving,
                lake.iter_batches(FEATURES, keys, dictionary_columns=spec.categorical_features),
                spec,
            )
        ),
        score_columns(spec),
        keys,
        run_id=run_id,
        metadata=metadata,
    )
    return tally, version


def lkg_predictor(
    registry: ModelRegistry,
    lkg: int | None,
    spec: DatasetSpec,
    on_refused: Callable[[str], None] | None = None,
):
    """``features -> scores`` of last_known_good, or None when there is none or its files
    differ from its registration manifest (then ``on_refused(message)``: no comparison)."""
    if lkg is None:
        return None
    try:
        model = registry.load_model(lkg)
    except IntegrityError as err:
        if on_refused is not None:
            on_refused(str(err))
        return None
    return predictor(model, spec)


def refused(log, alerts: AlertSink, message: str, *, run_id: str, asset: str, keys) -> None:
    """A model refused to load (its files differ from its registration manifest): an error in
    ``log`` and a ``model_integrity`` alert naming the run, asset and partitions."""
    log.error(f"integrity: {message}")
    alerts.send(
        AlertKind.MODEL_INTEGRITY,
        reason=f"refused to load: {message}",
        run_id=run_id,
        asset=asset,
        partition=",".join(keys),
    )
