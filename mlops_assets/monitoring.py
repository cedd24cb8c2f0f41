"""Monitoring decisions (pure): which model serves, drift episodes, the performance guard.

The Dagster sensors and assets only gather inputs and act on these verdicts, so the
rules are unit-testable and one place each.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import polars as pl

from mlops_assets.metrics_catalog import higher_is_better, primary_metric
from mlops_assets.spec import DatasetSpec

KILL_SWITCH_ENV = "MLOPS_KILL_SWITCH"


def kill_switch(spec: DatasetSpec) -> str | None:
    """Why scoring is switched off, or None."""
    if spec.kill_switch:
        return "kill switch set in the spec (kill_switch: true)"
    if os.environ.get(KILL_SWITCH_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return f"kill switch set in the environment (${KILL_SWITCH_ENV})"
    return None


def drift_view(spec: DatasetSpec) -> DatasetSpec:
    """The spec as the drift statistics see it: ``drift.exclude`` features left out (calendar
    features such as day_of_week are constant within a daily partition and always 'drift')."""
    if not spec.drift.exclude:
        return spec
    ex = set(spec.drift.exclude)
    features = spec.features.model_copy(update={
        "numeric": {k: v for k, v in spec.features.numeric.items() if k not in ex},
        "categorical": {k: v for k, v in spec.features.categorical.items() if k not in ex},
        "calendar": [c for c in spec.features.calendar if c not in ex],
    })
    return spec.model_copy(update={"features": features})


@dataclass(frozen=True)
class DriftEpisode:
    days: tuple[str, ...]
    shares: tuple[float, ...]
    features: tuple[str, ...]

    @property
    def run_key(self) -> str:
        return f"drift:{self.days[0]}"

    @property
    def reason(self) -> str:
        return (f"dataset drift on {len(self.days)} consecutive partitions {self.days[0]}..{self.days[-1]} "
                f"(share of drifted features {', '.join(f'{s:.2f}' for s in self.shares)}); "
                f"features: {', '.join(self.features)}")


def drift_episode(summary: pl.DataFrame, spec: DatasetSpec) -> DriftEpisode | None:
    """``summary``: one row per partition (ds, share_drifted, dataset_drifted, drifted_features).
    An episode = the latest ``consecutive_partitions`` partitions, consecutive days, all drifted."""
    k = spec.drift.consecutive_partitions
    if summary.height < k:
        return None
    recent = summary.sort("ds").tail(k)
    days = [dt.date.fromisoformat(d) for d in recent["ds"]]
    consecutive = all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False))
    if not consecutive or not bool(recent["dataset_drifted"].all()):
        return None
    # the episode starts at the first drifted day of the unbroken drifted run ending now
    ordered = summary.sort("ds")
    start = len(ordered) - 1
    while start > 0 and ordered["dataset_drifted"][start - 1] and (
        dt.date.fromisoformat(ordered["ds"][start]) - dt.date.fromisoformat(ordered["ds"][start - 1])
    ).days == 1:
        start -= 1
    episode_days = tuple(ordered["ds"][start:].to_list())
    feats = sorted({f for fs in recent["drifted_features"].to_list() for f in (fs or "").split(",") if f})
    return DriftEpisode(episode_days, tuple(float(x) for x in ordered["share_drifted"][start:]), tuple(feats))


@dataclass(frozen=True)
class GuardBreach:
    version: int
    metric: str
    value: float
    reason: str


def guard_breach(perf: pl.DataFrame, spec: DatasetSpec, champion: int, min_coverage: float = 0.8,
                 window: int = 3) -> GuardBreach | None:
    """The champion's matured-label performance over its latest ``window`` partitions
    (labelled coverage ≥ ``min_coverage``): below the guard floor, or worse than
    last_known_good on the same rows by more than the margin → a breach."""
    metric = primary_metric(spec)
    mine = perf.filter((pl.col("model_version") == champion) & (pl.col("coverage") >= min_coverage)
                       & pl.col("primary").is_not_null()).sort("ds")
    if mine.height < window:  # judge on enough matured days, not on one noisy day
        return None
    recent = mine.tail(window)
    value = float(recent["primary"].mean())
    up = higher_is_better(metric)
    floor = spec.guard.floor
    days = f"{recent['ds'][0]}..{recent['ds'][-1]}"
    if floor is not None and (value < floor if up else value > floor):
        return GuardBreach(champion, metric, value,
                           f"performance_guard: champion v{champion} {metric} {value:.3f} on matured labels of {days} "
                           f"is {'below' if up else 'above'} the guard floor {floor:.3f}")
    lkg = recent.filter(pl.col("lkg_primary").is_not_null())
    if lkg.height:
        lkg_value = float(lkg["lkg_primary"].mean())
        gap = (lkg_value - value) if up else (value - lkg_value)
        if gap > spec.guard.margin_vs_last_known_good:
            return GuardBreach(champion, metric, value,
                               f"performance_guard: champion v{champion} {metric} {value:.3f} trails last_known_good "
                               f"v{int(lkg['lkg_version'][0])} ({lkg_value:.3f}) by {gap:.3f} > margin "
                               f"{spec.guard.margin_vs_last_known_good:.3f} on matured labels of {days}")
    return None


@dataclass(frozen=True)
class RetrainRequest:
    """A drift episode that should retrain now: the cutoff to train at and the new cursor."""

    episode: DriftEpisode
    cutoff: dt.date
    cursor: dict


def drift_retrain(episode: DriftEpisode | None, cursor: dict, spec: DatasetSpec,
                  last_partition: dt.date) -> RetrainRequest | str:
    """Whether a drift episode triggers a retrain: once per episode (its first day), at most one
    per ``drift.cooldown_days``. Returns the request, or why not."""
    if episode is None:
        return "no drift episode"
    if episode.run_key in cursor.get("episodes", []):
        return f"episode starting {episode.days[0]} already triggered a retrain"
    last = cursor.get("last_trigger_day")
    day = dt.date.fromisoformat(episode.days[-1])
    if last and (day - dt.date.fromisoformat(last)).days < spec.drift.cooldown_days:
        return f"cooldown: last drift retrain for {last}, cooldown {spec.drift.cooldown_days} days"
    cutoff = min(day + dt.timedelta(days=1), last_partition)
    new_cursor = {"episodes": [*cursor.get("episodes", []), episode.run_key][-50:], "last_trigger_day": day.isoformat()}
    return RetrainRequest(episode, cutoff, new_cursor)
