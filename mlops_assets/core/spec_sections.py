"""The sections of the dataset spec (features, landing, labels, training, model, gates, drift,
volume, freshness, maintenance, guard, estimation): each a strict pydantic model whose errors name
the field. ``spec.py`` assembles them into ``DatasetSpec`` and re-exports them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops_assets.data.readers import READERS

CALENDAR_FEATURES = ("hour", "day_of_week", "is_weekend", "day_of_month", "month")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericColumn(_Strict):
    dtype: Literal["float", "int"] = "float"
    min: float | None = None
    max: float | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _range_ordered(self) -> NumericColumn:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class CategoricalColumn(_Strict):
    allowed: list[str] | None = None
    nullable: bool = False

    @field_validator("allowed")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("allowed must list at least one category (or be omitted)")
        return v


class Features(_Strict):
    numeric: dict[str, NumericColumn] = Field(default_factory=dict)
    categorical: dict[str, CategoricalColumn] = Field(default_factory=dict)
    calendar: list[Literal["hour", "day_of_week", "is_weekend", "day_of_month", "month"]] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _some_features(self) -> Features:
        if not self.numeric and not self.categorical and not self.calendar:
            raise ValueError("at least one numeric, categorical or calendar feature is required")
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"columns declared both numeric and categorical: {sorted(both)}")
        return self


class Landing(_Strict):
    path: str
    formats: list[str] = Field(default_factory=lambda: list(READERS))

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        unknown = [f for f in v if f not in READERS]
        if unknown:
            raise ValueError(
                f"unknown landing format(s) {unknown}; readable formats: {list(READERS)}"
            )
        return v


class LabelFeed(_Strict):
    """Labels that arrive later in their own files: ``<path>/<arrival date>/*``."""

    path: str
    id: str
    target: str | None = None  # column name in the label files; default: the spec's target
    delay_days: int = Field(ge=0)


class Training(_Strict):
    window_days: int = Field(ge=2)
    holdout_days: int = Field(ge=1)
    seed: int = 0
    cadence_days: int = Field(default=7, ge=1)
    allow_partial_window: bool = Field(
        default=False, description="train a cutoff whose window starts before partition_start"
    )

    @model_validator(mode="after")
    def _holdout_inside_window(self) -> Training:
        if self.holdout_days >= self.window_days:
            raise ValueError(
                f"holdout_days ({self.holdout_days}) must be smaller than window_days"
                f" ({self.window_days})"
            )
        return self


class Model(_Strict):
    registered_name: str
    estimator: str = "hist_gradient_boosting"
    params: dict[str, Any] = Field(default_factory=dict)
    require_approval: bool = False


class Leakage(_Strict):
    """Target-leakage tripwires (gate ``leakage``, on by default). ``max_skill``: a holdout skill
    (r2, roc_auc: best 1) this high is implausibly perfect; the columns carrying it (permutation
    importance) are named (null: off). ``max_feature_skill``: a feature whose one-feature model (fit
    on train, judged on the holdout) reaches it is a suspect. ``allow``: features declared known at
    prediction time (never suspects)."""

    enabled: bool = True
    max_skill: float | None = Field(default=0.99, gt=0, le=1)
    max_feature_skill: float = Field(default=0.95, gt=0, le=1)
    allow: list[str] = Field(default_factory=list)


class Gates(_Strict):
    """Promotion gates: floors are on the higher-is-better metric, ceilings on errors.
    ``beats_baseline_margin``: least skill of the primary metric over the naive baseline (training
    mean / prior) on the holdout, (metric - baseline) / (best - baseline), e.g.
    1 - rmse/rmse_baseline (null: off). Under ``min_holdout_rows`` rows or (classification)
    ``min_positives`` rows in a class, every metric gate fails with "insufficient evidence"
    instead of a number."""

    floors: dict[str, float] = Field(default_factory=dict)
    ceilings: dict[str, float] = Field(default_factory=dict)
    max_regression: float = Field(default=0.01, ge=0)
    primary_metric: str | None = None
    slice_floor: float | None = None
    min_slice_rows: int = Field(default=200, ge=1)
    max_calibration_error: float | None = Field(default=None, gt=0)
    shadow_days: int = Field(default=0, ge=0)
    beats_baseline_margin: float | None = Field(default=0.05, le=1)
    min_holdout_rows: int = Field(default=200, ge=1)
    min_positives: int = Field(default=20, ge=1)
    leakage: Leakage = Field(default_factory=Leakage)


# methods chosen as Evidently's DataDriftPreset does unless pinned: see monitoring.drift.methods
class Drift(_Strict):
    numeric_threshold: float | None = Field(default=None, gt=0)
    categorical_threshold: float | None = Field(default=None, gt=0)
    numeric_method: str | None = None  # pin one method for every numeric column
    categorical_method: str | None = None  # pin one method for every categorical column
    methods: dict[str, str] = Field(default_factory=dict)  # feature → pinned method
    share_drifted: float = Field(default=0.5, gt=0, le=1)
    consecutive_partitions: int = Field(default=2, ge=1)
    cooldown_days: int = Field(default=7, ge=0)
    min_rows: int = Field(
        default=1000, ge=1
    )  # rows the current sample needs (latest partitions back)
    max_lookback_partitions: int = Field(default=14, ge=1)  # partitions the sample may reach back
    report_sample_rows: int = Field(default=20_000, ge=100)
    report_retention: int = Field(default=20, ge=1)  # drift HTML reports kept (the newest)
    exclude: list[str] = Field(default_factory=list)  # features left out of the drift verdict
    multivariate: Literal["off", "alert", "retrain"] = Field(
        default="alert",
        description=(
            "PCA reconstruction error of each day against the champion's training reference"
            " (`multivariate_drift`): `off` (not computed), `alert` (computed;"
            " `drift.consecutive_partitions` drifted days in a row that per-column drift does not"
            " flag send an alert, the drift sensor's retrains unchanged) or `retrain` (a"
            " multivariate drifted day counts as a drifted day for the drift sensor)"
        ),
    )


class Volume(_Strict):
    trailing_partitions: int = Field(default=7, ge=1)
    tolerance: float = Field(default=0.5, gt=0)


class Freshness(_Strict):
    max_lag_hours: float = Field(default=36, gt=0)


class Maintenance(_Strict):
    retention_hours: int = Field(
        default=168, ge=0
    )  # vacuum files unreferenced for longer than this
    log_retention_days: int = Field(
        default=30, ge=1
    )  # Delta log entries older than this are dropped


class Sensors(_Strict):
    landing_interval_seconds: int = Field(default=30, ge=1)
    monitoring_interval_seconds: int = Field(default=60, ge=1)
    shadow_promotion_interval_seconds: int = Field(default=300, ge=1)


class Guard(_Strict):
    floor: float | None = None
    margin_vs_last_known_good: float = Field(default=0.05, ge=0)
    action: Literal["rollback", "alert"] = "rollback"
    use_estimate: Literal["off", "alert", "rollback"] = Field(
        default="alert",
        description=(
            "act on the estimated performance (before labels) when it is below `floor` for"
            " `estimation.consecutive_days` days and the estimator is trustworthy"
            " (`estimation.tolerance`): `off`, `alert` only, or `rollback` (as `action` says:"
            " rollback, or degrade when `action: alert`)"
        ),
    )


class Estimation(_Strict):
    """Performance estimated before the labels (CBPE for classification, DLE for regression;
    fitted on the holdout at training time) and reconciled with the realised metric when the
    labels mature."""

    enabled: bool = Field(
        default=True, description="compute `estimated_performance` for every scored day"
    )
    consecutive_days: int = Field(
        default=2,
        ge=1,
        description=(
            "days in a row the estimated primary metric must be below `guard.floor` before the"
            " check fails and the guard may act"
        ),
    )
    tolerance: float = Field(
        default=0.05,
        gt=0,
        description=(
            "largest median |estimate - realised| of the primary metric over the recent reconciled"
            " days for the estimator to count as trustworthy; above it the reconciliation check"
            " fails and the guard ignores estimates"
        ),
    )
    trust_days: int = Field(
        default=3, ge=1, description="recent reconciled days of the version whose error is judged"
    )
    min_rows: int = Field(
        default=100, ge=1, description="least scored rows of a day to estimate or judge it"
    )
