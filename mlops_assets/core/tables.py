"""Every Delta table the platform writes: its name, and its schema where the spec does not set it.

The raw tables, ``features``, ``training_set`` and the two score tables take their columns from the
dataset spec (``data.contract``, ``data.features``, ``model.datasets``, ``scoring.rows``); every
other table's columns are fixed here, and the code that writes or reads one imports them from here.
``core.vocabulary`` re-exports the names, so a module that needs only a name imports it there.
"""

from __future__ import annotations

import polars as pl

# ---- names ------------------------------------------------------------------------------------
RAW_EVENTS, RAW_LABELS, FEATURES, QUARANTINE = "raw_events", "raw_labels", "features", "quarantine"
TRAINING_SET = "training_set"
SCORES, SHADOW_SCORES = "scores", "shadow_scores"
EVALUATIONS, AUDIT = "evaluations", "audit"  # written by evaluation_report / every alias move
DRIFT, PERFORMANCE = "drift", "performance"  # written by drift_report and model_performance
# the estimation plane's tables; the reconciliation table is written by model_performance
ESTIMATED_PERFORMANCE, MULTIVARIATE_DRIFT = "estimated_performance", "multivariate_drift"
ESTIMATION_RECONCILIATION = "estimation_reconciliation"

TABLES = (
    RAW_EVENTS,
    RAW_LABELS,
    FEATURES,
    QUARANTINE,
    TRAINING_SET,
    EVALUATIONS,
    AUDIT,
    SCORES,
    SHADOW_SCORES,
    DRIFT,
    PERFORMANCE,
    ESTIMATED_PERFORMANCE,
    MULTIVARIATE_DRIFT,
    ESTIMATION_RECONCILIATION,
)
"""Every Delta table the platform writes (status, maintenance)."""

# ---- columns several tables share -------------------------------------------------------------
PARTITION_COLUMN = "ds"  # the partition key column of every partitioned Delta table
MODEL_VERSION_COLUMN = "model_version"  # the registered version behind a score or metric row

# ---- schemas ----------------------------------------------------------------------------------
QUARANTINE_SCHEMA = {
    PARTITION_COLUMN: pl.String,
    "file": pl.String,
    "row": pl.Int64,
    "column": pl.String,
    "rule": pl.String,
    "reason": pl.String,
    "record": pl.String,
}
"""One rejection (a file or a row); the quarantine log adds ``feed``, ``run_id``,
``quarantined_at``."""

EVALUATIONS_SCHEMA = {
    PARTITION_COLUMN: pl.String,
    "version": pl.Int64,
    "gate": pl.String,
    "passed": pl.Boolean,
    "value": pl.Float64,
    "threshold": pl.Float64,
    "message": pl.String,
    "champion_version": pl.Int64,
    "evaluated_at": pl.Datetime("us"),
    "run_id": pl.String,
}

LEDGER_SCHEMA = {
    "seq": pl.Int64,
    "move_id": pl.String,
    "phase": pl.String,
    "at": pl.Datetime("us"),
    "actor": pl.String,
    "action": pl.String,
    "alias": pl.String,
    "from_version": pl.Int64,
    "to_version": pl.Int64,
    "reason": pl.String,
    "gate_results": pl.String,
    "run_id": pl.String,
    "waiver_owner": pl.String,
    "waiver_expires": pl.String,
    "plan": pl.String,
    "prev_hash": pl.String,
    "hash": pl.String,
}
"""The ``audit`` table: the hash-chained alias ledger."""
AUDIT_COLUMNS = (
    "at",
    "actor",
    "action",
    "alias",
    "from_version",
    "to_version",
    "reason",
    "gate_results",
    "run_id",
    "waiver_owner",
    "waiver_expires",
)
AUDIT_SCHEMA = {k: LEDGER_SCHEMA[k] for k in AUDIT_COLUMNS}  # a move's audit facts, no chain

DRIFT_TABLE_SCHEMA = pl.Schema(
    {
        PARTITION_COLUMN: pl.String,
        "feature": pl.String,
        "method": pl.String,
        "score": pl.Float64,
        "threshold": pl.Float64,
        "drifted": pl.Boolean,
        "status": pl.String,
        "note": pl.String,
        "rows": pl.Int64,
    }
)
"""Columns of ``drift_rows``' rows (the ``drift`` table adds ``champion_version``)."""

PERFORMANCE_SCHEMA = {
    PARTITION_COLUMN: pl.String,
    MODEL_VERSION_COLUMN: pl.Int64,
    "mode": pl.String,
    "labelled_rows": pl.Int64,
    "coverage": pl.Float64,
    "primary": pl.Float64,
    "metric": pl.String,
    "metrics": pl.String,
    "lkg_version": pl.Int64,
    "lkg_primary": pl.Float64,
}
PERFORMANCE_COLUMNS = {"estimated_primary": pl.Float64, "estimate_abs_error": pl.Float64}
"""The two columns reconciliation adds to the ``performance`` table."""

ESTIMATE_SCHEMA = {
    PARTITION_COLUMN: pl.String,
    MODEL_VERSION_COLUMN: pl.Int64,
    "metric": pl.String,
    "estimate": pl.Float64,
    "rows": pl.Int64,
    "estimator": pl.String,
    "primary": pl.Boolean,
}
"""The ``estimated_performance`` table."""

RECONCILIATION_SCHEMA = {
    PARTITION_COLUMN: pl.String,
    MODEL_VERSION_COLUMN: pl.Int64,
    "metric": pl.String,
    "estimate": pl.Float64,
    "realised": pl.Float64,
    "abs_error": pl.Float64,
    "labelled_rows": pl.Int64,
    "coverage": pl.Float64,
}
"""The ``estimation_reconciliation`` table."""

MULTIVARIATE_DRIFT_SCHEMA = {
    PARTITION_COLUMN: pl.String,
    "champion_version": pl.Int64,
    "rows": pl.Int64,
    "reconstruction_error": pl.Float64,
    "threshold": pl.Float64,
    "drifted": pl.Boolean,
    "note": pl.String,
}
"""The ``multivariate_drift`` table: one row per day."""
