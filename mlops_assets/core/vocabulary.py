"""Every name two parts of the platform must agree on, in one place.

Asset and Delta table names, jobs, sensors, MLflow aliases and tags, Dagster run tags,
metadata keys read back by other code, artifact names, audit actions and version statuses.
A module that writes a name and a module that reads it both import it from here; no
string literal of this kind appears anywhere else. The Delta table names (and the columns tables
share) are ``core.tables``' and re-exported here. Nothing here imports anything but the standard
library and ``core.tables``, so every layer may depend on it.

Typed accessors for values stored as text (the recorded Delta versions of a model's
lineage, a landing fingerprint in materialisation metadata) live beside their names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlops_assets.core.tables import (  # noqa: F401 - re-exported: tables are named from here
    AUDIT,
    DRIFT,
    ESTIMATED_PERFORMANCE,
    ESTIMATION_RECONCILIATION,
    EVALUATIONS,
    FEATURES,
    MODEL_VERSION_COLUMN,
    MULTIVARIATE_DRIFT,
    PARTITION_COLUMN,
    PERFORMANCE,
    QUARANTINE,
    RAW_EVENTS,
    RAW_LABELS,
    SCORES,
    SHADOW_SCORES,
    TABLES,
    TRAINING_SET,
)

# ---- assets and Delta tables -----------------------------------------------------------------
# A table's name is also its asset's (raw_events, features, scores, ...); the table names, and the
# columns tables share, are defined in core.tables and imported above. The assets without a table:
CANDIDATE_MODEL, EVALUATION_REPORT, CHAMPION = "candidate_model", "evaluation_report", "champion"
DRIFT_REPORT, MODEL_PERFORMANCE = "drift_report", "model_performance"
TABLE_MAINTENANCE, SCORECARD = "table_maintenance", "scorecard"

SPLIT_COLUMN = "split"  # training_set: which rows train, which are the time holdout
TRAIN, HOLDOUT = "train", "holdout"
DATASET_ROW, PREDICTION_ROW = "__dataset__", "__prediction__"  # pseudo-features of the drift table


# ---- jobs, sensors, schedules ----------------------------------------------------------------
class Group:
    """Asset groups: one lineage graph per plane in the UI."""

    DATA = "data"
    MODEL = "model"
    MONITORING = "monitoring"
    OPERATIONS = "operations"


class Job:
    INGEST, INGEST_LABELS, TRAINING = "ingest", "ingest_labels", "training"
    DAILY, SCORING, PERFORMANCE = "daily", "scoring", "performance"
    MAINTENANCE, SCORECARD = "maintenance", "scorecard_job"


class Sensor:
    LANDING, LABELS = "landing_sensor", "label_sensor"
    DRIFT, PERFORMANCE, GUARD = "drift_sensor", "performance_sensor", "performance_guard_sensor"
    RESCORE, SHADOW_PROMOTION = "rescore_sensor", "shadow_promotion_sensor"
    RUN_FAILURE = "alert_on_run_failure"
    RECONCILE = "reconcile_sensor"


class Schedule:
    TRAINING, MAINTENANCE, SCORECARD = (
        "training_schedule",
        "maintenance_schedule",
        "scorecard_schedule",
    )


# ---- Dagster run tags ------------------------------------------------------------------------
class RunTag:
    TRIGGER = "mlops/trigger"  # the sensor or schedule name that requested the run
    REASON = "mlops/reason"
    FILES = "mlops/files"
    DRIFT_FEATURES = "mlops/drift_features"
    DRIFT_PARTITIONS = "mlops/drift_partitions"  # "<first day>..<last day>" of a drift episode
    CONCURRENCY = "mlops/concurrency"  # deploy/dagster.yaml limits runs per value
    # Dagster's own
    PARTITION = "dagster/partition"
    SENSOR_NAME = "dagster/sensor_name"
    RUN_KEY = "dagster/run_key"
    RANGE_START = (
        "dagster/asset_partition_range_start"  # a single-run range: its first and last partition
    )
    RANGE_END = "dagster/asset_partition_range_end"


def run_partitions(tags: dict[str, str]) -> str | None:
    """The partition a run's tags name, or its single-run range as ``first..last``; None for
    neither.
    """
    if RunTag.PARTITION in tags:
        return tags[RunTag.PARTITION]
    if RunTag.RANGE_START in tags:
        return f"{tags[RunTag.RANGE_START]}..{tags.get(RunTag.RANGE_END, tags[RunTag.RANGE_START])}"
    return None


# ---- MLflow ----------------------------------------------------------------------------------
class Alias:
    CHAMPION, CHALLENGER, LAST_KNOWN_GOOD = "champion", "challenger", "last_known_good"


class Status:
    """Values of ``VersionTag.STATUS``: a version's place in the lifecycle."""

    CANDIDATE, REJECTED, CHALLENGER = "candidate", "rejected", "challenger"
    CHAMPION, RETIRED, ROLLED_BACK = "champion", "retired", "rolled_back"
    SUPERSEDED = (
        "superseded"  # registered, never gated, replaced by a later attempt at the same cutoff
    )


class VersionTag:
    """Tags of a registered model version (and its run)."""

    STATUS = "mlops.status"
    CUTOFF = "mlops.cutoff"
    GATES = "mlops.gates"  # passed | failed
    REJECTED_REASONS = "mlops.rejected_reasons"
    PROMOTED_AT = "mlops.promoted_at"
    PROMOTION_REASON = "mlops.promotion_reason"
    ROLLED_BACK_REASON = "mlops.rolled_back_reason"
    WAIVER = "mlops.waiver"  # JSON {owner, reason, expires}
    GUARD = "mlops.guard"  # "tripped" when the guard acted in alert-only mode
    GUARD_REASON = "mlops.guard_reason"
    SPEC = "mlops.spec"
    TASK = "mlops.task"
    MODEL_FILES_SHA = "registry.model_files_sha256"
    MODEL_ID = "registry.model_id"
    MANIFEST = "registry.manifest"  # JSON {"model": {path: sha256}, "run": {artifact: sha256}}
    TRUSTED_TYPES = "registry.skops_trusted_types"  # JSON list: the only types model.skops may load
    MONITOR_TRUSTED_TYPES = (
        "registry.monitor_trusted_types"  # JSON list: the types monitoring_models.skops may load
    )
    SUPERSEDED_BY = "mlops.superseded_by"  # on a superseded version: the version that replaced it
    SUPERSEDES = "mlops.supersedes"  # JSON list on the replacing version
    FAILED_REASON = "mlops.failed_reason"  # on an MLflow run marked FAILED by a later attempt


GATES_PASSED, GATES_FAILED, GUARD_TRIPPED = "passed", "failed", "tripped"


class LineageTag:
    """The ``lineage.*`` facts every model version carries."""

    PREFIX = "lineage."
    GIT_SHA = PREFIX + "git_sha"
    GIT_DIRTY = PREFIX + "git_dirty"
    LOCK_SHA = PREFIX + "lock_sha256"
    SPEC_SHA = PREFIX + "spec_sha256"
    DELTA_VERSIONS = PREFIX + "delta_versions"  # JSON {table: version}
    PARTITION_START = PREFIX + "partition_start"
    PARTITION_END = PREFIX + "partition_end"
    DAGSTER_RUN_ID = PREFIX + "dagster_run_id"
    SEED = PREFIX + "seed"
    MODEL_SHA = PREFIX + "model_sha256"  # sha256 of the serialised pipeline file

    REQUIRED = (
        GIT_SHA,
        GIT_DIRTY,
        LOCK_SHA,
        SPEC_SHA,
        DELTA_VERSIONS,
        PARTITION_START,
        PARTITION_END,
        DAGSTER_RUN_ID,
        SEED,
        MODEL_SHA,
    )


def recorded_delta_versions(tags: Mapping[str, str]) -> dict[str, int]:
    """table -> the Delta version a model version was trained from (``{}`` when not recorded)."""
    return {
        str(t): int(v) for t, v in json.loads(tags.get(LineageTag.DELTA_VERSIONS) or "{}").items()
    }


class Artifact:
    """Files logged with a candidate's MLflow run."""

    HOLDOUT_SCORES = "holdout_scores.json"  # {"ids", "scores"}: the integrity gate re-scores these
    REFERENCE_PROFILE = "reference_profile.json"  # the drift reference of the training rows
    MONITOR_MODELS = (
        "monitoring_models.skops"  # performance estimator + multivariate drift reference
    )


# ---- the audit log ---------------------------------------------------------------------------
class Action:
    PROMOTE, APPROVE, WAIVER_PROMOTE, ROLLBACK = "promote", "approve", "waiver_promote", "rollback"
    REJECT, AWAIT_APPROVAL, AWAIT_SHADOW, NOOP = "reject", "await_approval", "await_shadow", "noop"
    RECONCILE = "reconcile"  # aliases restored from the ledger
    APPLIED = "applied"  # the completion row of a move (the move itself is its intent row)

    PROMOTIONS = (PROMOTE, APPROVE, WAIVER_PROMOTE)  # moves of the champion alias to a new version


# ---- materialisation metadata read back by other code ----------------------------------------
class Meta:
    LANDING_FINGERPRINT = "landing_fingerprint"  # {day: content fingerprint} of the files ingested
    MODEL_VERSION = "model_version"
    MODE = "mode"
    ACTION = "action"
    CHAMPION = "champion"
    SHARE_DRIFTED = "share_drifted"
    DELTA_VERSION = "delta_version"
    MODEL_SOURCE = "model_source"  # registry | cache: where the serving model was loaded from
    CHALLENGER_VERSION = "challenger_version"  # the version that wrote shadow_scores[D]
    SCORECARD_BREAKDOWN = "scorecard"  # the scorecard asset's whole card, as JSON


def fingerprints_metadata(fingerprints: Mapping[str, str]) -> dict[str, str]:
    """The value written under ``Meta.LANDING_FINGERPRINT``: always ``{day: fingerprint}``."""
    return {str(day): str(fp) for day, fp in sorted(fingerprints.items())}


def recorded_fingerprint(value: Any, day: str) -> str | None:
    """The fingerprint of ``day`` in a ``Meta.LANDING_FINGERPRINT`` value (None when absent)."""
    return value.get(day) if isinstance(value, Mapping) else None
