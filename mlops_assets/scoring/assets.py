"""Scoring wiring, daily partitions D: scores[D] (champion) and shadow_scores[D] (challenger).

`scores` never runs on a partition whose blocking contract failed, degrades to the spec's fallback
when the champion is unusable (guard tripped, or its files differ from the registration manifest:
alert ``model_integrity``), scores from the local verified model cache when MLflow is unreachable
(metadata ``model_source: cache``, alert ``registry_unavailable``), and stops on the kill switch
(the spec's ``kill_switch`` or ``$MLOPS_KILL_SWITCH``) — in each case with the reason in the log
and metadata. An asset with nothing to do (no champion yet, no challenger) produces no
materialisation. Both stay in the ``monitoring`` asset group.
"""

import os

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.control.alerts import AlertKind, AlertSink
from mlops_assets.control.instance_queries import failed_checks
from mlops_assets.control.registry import IntegrityError, ModelRegistry, RegistryUnavailable
from mlops_assets.control.registry.links import version_links
from mlops_assets.core.platform import Platform
from mlops_assets.core.redaction import redact
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import (
    FEATURES,
    PARTITION_COLUMN,
    RAW_EVENTS,
    SCORES,
    SHADOW_SCORES,
    Alias,
    Group,
    Meta,
)
from mlops_assets.data.contract_checks import BLOCKING_CHECKS
from mlops_assets.data.lake import DeltaLake
from mlops_assets.location.common import follow_upstream, urls
from mlops_assets.monitoring.rules import KILL_SWITCH_ENV, kill_switch
from mlops_assets.scoring.rows import CACHE, DEGRADED, ScoreTally, ServingModel, shadow_agreement
from mlops_assets.scoring.serving import choose_serving_model, refused, stream_scores


def build_scoring_assets(platform: Platform) -> list:
    spec, daily = platform.spec, platform.daily

    @asset(
        name=SCORES,
        partitions_def=daily,
        deps=[FEATURES],
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=follow_upstream(),
        output_required=False,
        group_name=Group.MONITORING,
        kinds={"sklearn", "delta"},
        description=(
            "The champion's predictions for features[D]; every row names the model version, alias,"
            " mode (normal | degraded) and scoring time. Not produced from a partition whose"
            " contract failed."
        ),
    )
    def scores(
        context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry, alerts: AlertSink
    ):
        stop = kill_switch(spec, os.environ.get(KILL_SWITCH_ENV))
        if stop:
            context.log.warning(f"scores skipped: {stop}")
            return
        serving = serving_or_fail(context, spec, registry, alerts)
        if serving is None:
            context.log.info("scores skipped: no champion yet")
            return
        keys = unblocked_keys(context)
        if not keys:
            return
        announce_serving(context, alerts, serving, keys)
        tally, version = stream_scores(
            lake,
            spec,
            serving,
            SCORES,
            keys,
            context.run.run_id,
            metadata={
                Meta.MODEL_VERSION: serving.version,
                "mode": serving.mode,
                Meta.MODEL_SOURCE: serving.source,
            },
        )
        yield MaterializeResult(metadata=scores_metadata(tally, serving, registry, version, keys))

    @asset(
        name=SHADOW_SCORES,
        partitions_def=daily,
        deps=[scores],
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        group_name=Group.MONITORING,
        kinds={"sklearn", "delta"},
        description=(
            "The challenger (passed every gate, not champion) scored on the same rows; compared"
            " with the champion's scores. Evidence for the shadow-days gate."
        ),
    )
    def shadow_scores(context: AssetExecutionContext, lake: DeltaLake, registry: ModelRegistry):
        try:
            serving = choose_serving_model(spec, registry, alias=Alias.CHALLENGER)
        except RegistryUnavailable as err:
            context.log.warning(f"shadow_scores skipped: {err}")
            return
        champion_scores = lake.read(SCORES, context.partition_keys) if serving is not None else None
        if serving is None or champion_scores.is_empty():
            context.log.info(
                "shadow_scores skipped: "
                + ("no challenger" if serving is None else "no champion scores to compare with")
            )
            return
        keys = sorted(set(champion_scores[PARTITION_COLUMN].to_list()))
        tally, version = stream_scores(lake, spec, serving, SHADOW_SCORES, keys, context.run.run_id)
        out = lake.read(SHADOW_SCORES, keys, version=version)
        yield MaterializeResult(
            metadata={
                "rows": tally.rows,
                "challenger_version": serving.version,
                Meta.DELTA_VERSION: version,
                **shadow_agreement(out, champion_scores, spec),
            }
        )

    return [scores, shadow_scores]


# ---- which partitions may be scored, and by which model, said out loud ------------------------
def unblocked_keys(context: AssetExecutionContext) -> list[str]:
    """The run's partitions whose blocking contract checks passed; each other one is logged with
    the checks that failed."""
    blocked = {
        k: failed_checks(context.instance, RAW_EVENTS, BLOCKING_CHECKS, k)
        for k in context.partition_keys
    }
    for k, failed in sorted(blocked.items()):
        if failed:
            context.log.warning(
                f"scores[{k}] not produced: blocking contract checks failed ({', '.join(failed)})"
            )
    return [k for k in context.partition_keys if not blocked[k]]


def serving_or_fail(
    context: AssetExecutionContext, spec: DatasetSpec, registry: ModelRegistry, alerts: AlertSink
) -> ServingModel | None:
    """The champion's ``ServingModel``; a redacted ``Failure`` (and an alert) when neither MLflow
    nor the local cache can serve it."""
    where = {
        "run_id": context.run.run_id,
        "asset": SCORES,
        "partition": ",".join(context.partition_keys),
    }
    try:
        return choose_serving_model(spec, registry)
    except RegistryUnavailable as err:
        message = redact(str(err), registry.secrets())
        alerts.send(
            AlertKind.REGISTRY_UNAVAILABLE,
            reason="scoring stopped: MLflow unreachable and no verified cached champion",
            details={"error": message},
            **where,
        )
        raise Failure(
            f"{message}. Way out: restore MLflow (check MLFLOW_TRACKING_URI), then re-run scoring; "
            "a champion served once before is scored from the local cache"
        ) from None
    except IntegrityError as err:
        refused(
            context.log,
            alerts,
            str(err),
            run_id=context.run.run_id,
            asset=SCORES,
            keys=context.partition_keys,
        )
        raise Failure(
            redact(
                f"{err}. Way out: restore or re-register the model (see the runbook)",
                registry.secrets(),
            )
        ) from None


def announce_serving(
    context: AssetExecutionContext, alerts: AlertSink, serving: ServingModel, keys
) -> None:
    """Log and alert what is unusual about the serving model: integrity refusals on the way,
    serving from the local cache, degraded mode."""
    where = {"run_id": context.run.run_id, "asset": SCORES, "partition": ",".join(keys)}
    for message in serving.refused:
        refused(context.log, alerts, message, run_id=context.run.run_id, asset=SCORES, keys=keys)
    if serving.source == CACHE:
        context.log.warning(f"scoring from the local model cache: {serving.reason}")
        alerts.send(
            AlertKind.REGISTRY_UNAVAILABLE,
            severity="warning",
            reason=(
                f"MLflow unreachable: {serving.alias} "
                f"v{serving.version} served from the local model cache"
            ),
            **where,
        )
    if serving.mode == DEGRADED:
        context.log.warning(f"scoring DEGRADED: {serving.reason}")
        alerts.send(
            AlertKind.SCORING_DEGRADED,
            reason=f"scoring degraded: {serving.reason}",
            **where,
        )


def scores_metadata(
    tally: ScoreTally, serving: ServingModel, registry: ModelRegistry, version: int, keys
) -> dict:
    """What a ``scores`` materialisation says: the rows streamed, which model served them and
    why, links to it in MLflow (none when served from the cache), the partitions written."""
    return {
        **tally.metadata(),
        Meta.MODEL_VERSION: serving.version,
        "alias": serving.alias,
        "mode": serving.mode,
        Meta.MODEL_SOURCE: serving.source,
        "serving_reason": serving.reason,
        **urls(version_links(registry, serving.version) if serving.source != CACHE else {}),
        Meta.DELTA_VERSION: version,
        "partitions": MetadataValue.json(keys),
    }
