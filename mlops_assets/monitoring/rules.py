"""Monitoring decisions (pure): the kill switch, drift episodes, the performance guard, and what
the sensors request (days whose labels arrived, days a rolled-back version scored).

The Dagster sensors and assets only gather inputs and act on these verdicts, so the
rules are unit-testable and one place each.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import polars as pl

from mlops_assets.core.metrics_catalog import higher_is_better, primary_metric
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import MODEL_VERSION_COLUMN, PARTITION_COLUMN
from mlops_assets.monitoring.drift.multivariate import as_drift_summary, merge_into_summary

KILL_SWITCH_ENV = "MLOPS_KILL_SWITCH"  # the environment's kill switch, read by the scoring wiring


def kill_switch(spec: DatasetSpec, switch_value: str | None = None) -> str | None:
    """Why scoring is switched off, or None. ``switch_value``: the value of ``$MLOPS_KILL_SWITCH``
    (1, true, yes or on, any case, switch scoring off)."""
    if spec.kill_switch:
        return "kill switch set in the spec (kill_switch: true)"
    if (switch_value or "").strip().lower() in ("1", "true", "yes", "on"):
        return f"kill switch set in the environment (${KILL_SWITCH_ENV})"
    return None


def drift_view(spec: DatasetSpec, also: Iterable[str] = ()) -> DatasetSpec:
    """The spec as a drift report sees it: ``drift.exclude`` features and ``also`` (e.g. the
    features found constant within partitions) left out."""
    ex = set(spec.drift.exclude) | set(also)
    if not ex:
        return spec
    features = spec.features.model_copy(
        update={
            "numeric": {k: v for k, v in spec.features.numeric.items() if k not in ex},
            "categorical": {k: v for k, v in spec.features.categorical.items() if k not in ex},
            "calendar": [c for c in spec.features.calendar if c not in ex],
        }
    )
    return spec.model_copy(update={"features": features})


# ---- the current sample: recent partitions sized by rows ---------------------------------------


@dataclass(frozen=True)
class DriftWindow:
    """The partitions judged together for partition ``day`` (newest last) and their rows."""

    day: str
    days: tuple[str, ...]
    rows: int
    sufficient: bool

    @property
    def note(self) -> str:
        span = f"{self.days[0]}..{self.days[-1]}" if len(self.days) > 1 else self.days[0]
        what = f"{self.rows} rows of {len(self.days)} partition(s) {span}"
        return what if self.sufficient else f"insufficient data: only {what}"


def drift_window(
    counts: Mapping[str, int],
    day: str,
    min_rows: int,
    max_partitions: int,
    not_before: str | None = None,
) -> DriftWindow:
    """The current sample for daily partition ``day``: ``day`` and the partitions before it, back
    until ``min_rows`` rows, at most ``max_partitions`` partitions and none before
    ``not_before`` (the champion's cutoff: earlier days are its training data; ignored when
    ``day`` itself is earlier). ``counts``: rows per partition (missing = 0). Fewer rows than
    ``min_rows`` within those bounds → ``sufficient`` False (insufficient data, not drift)."""
    first = dt.date.fromisoformat(day)
    floor = dt.date.fromisoformat(not_before) if not_before and not_before <= day else dt.date.min
    days, rows = [], 0
    for back in range(max_partitions):
        d = first - dt.timedelta(days=back)
        if d < floor:
            break
        key = d.isoformat()
        rows += int(counts.get(key, 0))
        if counts.get(key, 0) or key == day:  # partitions without rows are walked past, not listed
            days.append(key)
        if rows >= min_rows:
            break
    return DriftWindow(day, tuple(reversed(days)), rows, rows >= min_rows)


def partition_constant_features(
    frame: pl.DataFrame | pl.LazyFrame, columns: Iterable[str], partition: str = PARTITION_COLUMN
) -> dict[str, str]:
    """Features whose value is a property of the partition, found from the data: in every
    partition with at least two non-null values the column holds one value, there are at least
    two such partitions, and the value differs between them (day_of_week in daily partitions).
    Their distribution in a few partitions says which partitions were picked, not drift. A column
    that turns constant everywhere (a broken feed) keeps one value across partitions: still judged.
    Returns feature → note."""
    columns = list(columns)
    if not columns:
        return {}
    lf = (
        frame.lazy()
        .group_by(partition)
        .agg(
            *(pl.col(c).drop_nulls().count().alias(f"{c}|rows") for c in columns),
            *(pl.col(c).drop_nulls().n_unique().alias(f"{c}|unique") for c in columns),
            *(pl.col(c).drop_nulls().first().cast(pl.String).alias(f"{c}|value") for c in columns),
        )
    )
    stats = lf.collect()
    out = {}
    for c in columns:
        seen = stats.filter(pl.col(f"{c}|rows") >= 2)
        if (
            seen.height >= 2
            and bool((seen[f"{c}|unique"] == 1).all())
            and seen[f"{c}|value"].n_unique() > 1
        ):
            out[c] = (
                f"constant within each of {seen.height} partitions, varying between them: "
                "a property of the partition, left out of the verdict"
            )
    return out


# ---- drift episodes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftEpisode:
    """Consecutive drifted partitions, ending at the latest judged one, all judged against the
    reference of champion ``champion``. A new champion (new reference) starts a new episode."""

    days: tuple[str, ...]
    shares: tuple[float, ...]
    features: tuple[str, ...]
    champion: int | None = None  # whose reference judged the days (None: not recorded)
    repeat: int = 0  # cooldown periods the episode has lasted beyond its first k days

    @property
    def run_key(self) -> str:
        base = f"drift:{'' if self.champion is None else f'v{self.champion}:'}{self.days[0]}"
        return f"{base}#{self.repeat}" if self.repeat else base

    @property
    def reason(self) -> str:
        against = "" if self.champion is None else f"against champion v{self.champion}'s reference "
        return (
            f"dataset drift on {len(self.days)} consecutive partitions"
            f" {self.days[0]}..{self.days[-1]} {against}(share of drifted features"
            f" {', '.join(f'{s:.2f}' for s in self.shares)}); features: {', '.join(self.features)}"
        )


def _drifted_run(summary: pl.DataFrame, champion: int) -> pl.DataFrame:
    """The unbroken run of drifted partitions (consecutive days, judged against ``champion``)
    ending at the latest judged partition; empty when that one is not such a partition."""
    ordered = summary.sort(PARTITION_COLUMN)
    days = [dt.date.fromisoformat(d) for d in ordered[PARTITION_COLUMN]]
    ok = [
        bool(d) and v == champion
        for d, v in zip(ordered["dataset_drifted"], ordered["champion_version"], strict=True)
    ]
    start = len(ordered)
    while (
        start > 0
        and ok[start - 1]
        and (start == len(ordered) or (days[start] - days[start - 1]).days == 1)
    ):
        start -= 1
    return ordered[start:]


def drift_episode(
    summary: pl.DataFrame, spec: DatasetSpec, champion: int | None = None
) -> DriftEpisode | None:
    """``summary``: ``drift_summary`` rows (ds, share_drifted, dataset_drifted, drifted_features,
    champion_version). An episode = at least ``consecutive_partitions`` consecutive drifted
    partitions ending at the latest judged partition, all judged against the current
    ``champion``'s reference (insufficient data is not drift and breaks the run). Without
    ``champion``: the reference that judged the latest partition."""
    k = spec.drift.consecutive_partitions
    if summary.is_empty():
        return None
    if "champion_version" not in summary.columns:
        summary = summary.with_columns(pl.lit(None, pl.Int64).alias("champion_version"))
    if champion is None:
        champion = summary.sort(PARTITION_COLUMN)["champion_version"][-1]
    run = _drifted_run(summary, champion)
    if run.height < k:
        return None
    feats = sorted(
        {f for fs in run.tail(k)["drifted_features"].to_list() for f in (fs or "").split(",") if f}
    )
    repeat = (run.height - k) // max(spec.drift.cooldown_days, 1)
    return DriftEpisode(
        tuple(run[PARTITION_COLUMN].to_list()),
        tuple(float(x) for x in run["share_drifted"]),
        tuple(feats),
        champion,
        repeat,
    )


def episode_start_days(summary: pl.DataFrame, champion: int, days: Iterable[str]) -> list[str]:
    """Which of ``days`` start a drift episode: drifted against ``champion``'s reference while
    the partition before was not (or was judged against another reference)."""
    verdict = {
        r[PARTITION_COLUMN]: bool(r["dataset_drifted"]) and r["champion_version"] == champion
        for r in summary.iter_rows(named=True)
    }

    def before(d: str) -> str:
        return (dt.date.fromisoformat(d) - dt.timedelta(days=1)).isoformat()

    return sorted(d for d in set(days) if verdict.get(d) and not verdict.get(before(d)))


@dataclass(frozen=True)
class GuardBreach:
    version: int
    metric: str
    value: float
    reason: str


def guard_breach(
    perf: pl.DataFrame, spec: DatasetSpec, champion: int, min_coverage: float = 0.8, window: int = 3
) -> GuardBreach | None:
    """The champion's matured-label performance over its latest ``window`` partitions
    (labelled coverage ≥ ``min_coverage``): below the guard floor, or worse than
    last_known_good on the same rows by more than the margin → a breach."""
    metric = primary_metric(spec)
    mine = perf.filter(
        (pl.col(MODEL_VERSION_COLUMN) == champion)
        & (pl.col("coverage") >= min_coverage)
        & pl.col("primary").is_not_null()
    ).sort(PARTITION_COLUMN)
    if mine.height < window:  # judge on enough matured days, not on one noisy day
        return None
    recent = mine.tail(window)
    value = float(recent["primary"].mean())
    up = higher_is_better(metric)
    floor = spec.guard.floor
    days = f"{recent[PARTITION_COLUMN][0]}..{recent[PARTITION_COLUMN][-1]}"
    if floor is not None and (value < floor if up else value > floor):
        return GuardBreach(
            champion,
            metric,
            value,
            f"performance_guard: champion v{champion} {metric} {value:.3f} on matured labels of"
            f" {days} is {'below' if up else 'above'} the guard floor {floor:.3f}",
        )
    lkg = recent.filter(pl.col("lkg_primary").is_not_null())
    if lkg.height:
        lkg_value = float(lkg["lkg_primary"].mean())
        gap = (lkg_value - value) if up else (value - lkg_value)
        if gap > spec.guard.margin_vs_last_known_good:
            return GuardBreach(
                champion,
                metric,
                value,
                f"performance_guard: champion v{champion} {metric} {value:.3f} trails"
                f" last_known_good v{int(lkg['lkg_version'][0])} ({lkg_value:.3f}) by {gap:.3f} >"
                f" margin {spec.guard.margin_vs_last_known_good:.3f} on matured labels of {days}",
            )
    return None


@dataclass(frozen=True)
class RetrainRequest:
    """A drift episode that should retrain now: the cutoff to train at and the new cursor."""

    episode: DriftEpisode
    cutoff: dt.date
    cursor: dict


def drift_retrain(
    episode: DriftEpisode | None, cursor: dict, spec: DatasetSpec, last_partition: dt.date
) -> RetrainRequest | str:
    """Whether a drift episode triggers a retrain: when it reaches ``consecutive_partitions``
    days, and again each ``drift.cooldown_days`` it persists (``episode.repeat``: a rejected
    candidate leaves the shift in place); never within ``cooldown_days`` of the last drift
    retrain. A new champion's reference starts a new episode, so a shift that outlives one
    retrain is retrained on again. Returns the request, or why not."""
    if episode is None:
        return "no drift episode"
    if episode.run_key in cursor.get("episodes", []):
        return (
            f"episode starting {episode.days[0]} already triggered a retrain; again if it persists"
            f" {spec.drift.cooldown_days} more day(s) or a new champion still drifts"
        )
    last = cursor.get("last_trigger_day")
    day = dt.date.fromisoformat(episode.days[-1])
    if last and (day - dt.date.fromisoformat(last)).days < spec.drift.cooldown_days:
        return f"cooldown: last drift retrain for {last}, cooldown {spec.drift.cooldown_days} days"
    cutoff = min(day + dt.timedelta(days=1), last_partition)
    new_cursor = {
        "episodes": [*cursor.get("episodes", []), episode.run_key][-50:],
        "last_trigger_day": day.isoformat(),
    }
    return RetrainRequest(episode, cutoff, new_cursor)


# ---- what the sensors request --------------------------------------------------------------------


def label_arrivals(
    history: list[dict], after_version: int, every_day: Callable[[], Iterable[str]]
) -> list[str]:
    """Arrival days of the label commits after ``after_version``, from the table's log
    ``history`` (commit dicts with ``version`` and comma-joined ``partitions``). When the log no
    longer holds every commit since (dropped by maintenance after the log retention), every
    arrival day (``every_day()``) counts: a day's performance is recomputed rather than missed."""
    if min((h.get("version", 0) for h in history), default=0) > after_version + 1:
        return sorted(d for d in every_day() if d)
    return sorted(
        {
            p
            for h in history
            if h.get("version", -1) > after_version
            for p in (h.get("partitions") or "").split(",")
            if p
        }
    )


def labelled_score_days(
    scores: pl.LazyFrame, labels: pl.LazyFrame, arrivals: list[str], spec: DatasetSpec
) -> list[str]:
    """The scored event days holding an id whose label arrived on one of ``arrivals``."""
    ids = labels.filter(pl.col(PARTITION_COLUMN).is_in(arrivals)).select(
        pl.col(spec.labels.id).alias(spec.id)
    )
    return (
        scores.select(PARTITION_COLUMN, spec.id)
        .join(ids, on=spec.id, how="semi")
        .select(PARTITION_COLUMN)
        .unique()
        .collect()[PARTITION_COLUMN]
        .sort()
        .to_list()
    )


def rolled_back_pairs(
    scored: pl.DataFrame, is_rolled_back: Callable[[int], bool]
) -> list[tuple[str, int]]:
    """(day, version) for every day of ``scored`` (unique ``ds``, ``model_version`` rows) holding
    rows of a rolled-back version, sorted; the baseline fallback (negative version) never is."""
    rolled = [
        v for v in scored[MODEL_VERSION_COLUMN].unique().to_list() if v >= 0 and is_rolled_back(v)
    ]
    return sorted(scored.filter(pl.col(MODEL_VERSION_COLUMN).is_in(rolled)).iter_rows())


def rescore_due(
    scored: list[tuple[str, int]], champion: int, cursor: str | None
) -> tuple[list[tuple[str, int]], str]:
    """(the ``scored`` (day, version) pairs not yet requested for ``champion``, the cursor after
    requesting them). A day is re-scored once per champion and rolled-back version that scored it,
    however the set of days moves between ticks (a daily run that scored with the old version after
    the rollback, a day re-processed): the runs are per block of days, so their run keys alone
    would request a moved block's days again. The cursor keeps only the pairs still scored (a
    re-scored day leaves it): it stays small."""
    before = json.loads(cursor) if cursor else {}
    requested = (
        {(day, version) for day, version in before.get("requested", [])}
        if before.get("champion") == champion
        else set()
    )
    due = [pair for pair in scored if pair not in requested]
    return due, json.dumps({"champion": champion, "requested": sorted(set(scored))})


def multivariate_news(
    summary: pl.DataFrame,
    multivariate: pl.DataFrame,
    spec: DatasetSpec,
    champion: int | None,
) -> tuple[pl.DataFrame, DriftEpisode | None]:
    """(the drift summary the drift sensor judges, a multivariate episode to alert on or None).
    ``drift.multivariate``: ``retrain`` folds the multivariate verdicts into ``summary``;
    ``alert`` leaves it as it is and returns the multivariate episode when per-column drift does
    not see it (its latest day not drifted there); ``off`` (or no verdicts) changes nothing."""
    mode = spec.drift.multivariate
    if mode == "off" or multivariate.is_empty():
        return summary, None
    if mode == "retrain":
        return merge_into_summary(summary, multivariate), None
    episode = drift_episode(as_drift_summary(multivariate), spec, champion)
    if episode is None:
        return summary, None
    seen = set(
        summary.filter(pl.col("dataset_drifted").fill_null(False))[PARTITION_COLUMN].to_list()
    )
    return summary, (episode if episode.days[-1] not in seen else None)
