"""What the demo's runs did, in words: read from in-process run results and the lake.

Each function turns a run's events (or a Delta table) into the phrase the demo prints on
its day line or in its summary; none of them launches anything.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from mlops_assets.core.vocabulary import (
    CANDIDATE_MODEL,
    CHAMPION,
    DRIFT_REPORT,
    ESTIMATED_PERFORMANCE,
    ESTIMATION_RECONCILIATION,
    MODEL_VERSION_COLUMN,
    MULTIVARIATE_DRIFT,
    PARTITION_COLUMN,
    SCORES,
    Meta,
)

MATERIALIZATION, CHECK_EVALUATION = "ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"


def _metadata(events, asset: str) -> list:
    """The metadata of every materialisation of ``asset`` among ``events``."""
    return [
        e.event_specific_data.materialization.metadata
        for e in events
        if e.event_type_value == MATERIALIZATION and e.asset_key.path == [asset]
    ]


def materialised(runs: list, asset: str) -> list:
    """The metadata of every materialisation of ``asset`` in ``runs`` (in-process results)."""
    return [m for r in runs for m in _metadata(r.result.all_events, asset)]


def blocking_failures(result) -> list:
    """The failed ERROR-severity check evaluations of a run (what blocked it)."""
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == CHECK_EVALUATION
        and not e.event_specific_data.passed
        and e.event_specific_data.severity.value == "ERROR"
    ]


def rescored_versions(runs: list) -> list:
    """The model versions that wrote ``scores`` in ``runs``, sorted."""
    return sorted({m[Meta.MODEL_VERSION].value for m in materialised(runs, SCORES)})


def shadow_note(meta) -> str:
    """A ``shadow_scores`` materialisation in words: the challenger and its label agreement."""
    agree = (
        f", label agreement {meta['label_agreement'].value:.3f}"
        if "label_agreement" in meta
        else ""
    )
    return (
        f"shadow: challenger v{meta[Meta.CHALLENGER_VERSION].value} scored beside the"
        f" champion{agree}"
    )


def day_text(daily: list) -> str:
    """``scored by v1 (normal), drift share 0.12, est. …`` from the day's landing runs."""
    scores, drift, estimate, mv = (
        materialised(daily, a)
        for a in (SCORES, DRIFT_REPORT, ESTIMATED_PERFORMANCE, MULTIVARIATE_DRIFT)
    )
    s = scores[0] if scores else None
    scored = (
        f"scored by v{s[Meta.MODEL_VERSION].value} ({s[Meta.MODE].value})" if s else "not scored"
    )
    dr = drift[0] if drift else None
    drift_txt = f"drift share {dr[Meta.SHARE_DRIFTED].value:.2f}" if dr else "no drift report"
    return f"{scored}, {drift_txt}" + estimate_text(
        estimate[0] if estimate else None, mv[0] if mv else None
    )


def estimate_text(estimate, mv) -> str:
    """`` est. roc_auc 0.85, mv 1.21/1.26`` for the day line (what is known before the labels)."""
    out = ""
    if estimate and "estimated_roc_auc" in estimate:
        out += f", est. roc_auc {estimate['estimated_roc_auc'].value:.3f}"
    if mv and mv["threshold"].value == mv["threshold"].value:  # NaN: not judged
        out += (
            f", multivariate {mv['reconstruction_error'].value:.2f}/{mv['threshold'].value:.2f}"
            + (" DRIFTED" if mv["drifted"].value else "")
        )
    return out


def champion_outcome(result) -> str:
    """What a champion-only run (the shadow promotion) did."""
    champ = _metadata(result.all_events, CHAMPION)
    if not champ:
        return (
            f"no promotion (run {result.run_id[:8]} {'succeeded' if result.success else 'failed'})"
        )
    return champion_step(champ[0])


def champion_step(meta) -> str:
    """The champion asset's metadata in words: promoted (→ champion vN) or parked
    (→ challenger vN)."""
    if Meta.CHAMPION in meta:
        return f"{meta[Meta.ACTION].value} → champion v{meta[Meta.CHAMPION].value}"
    return (
        f"{meta[Meta.ACTION].value} → challenger v{meta['challenger'].value}:"
        f" {meta['reason'].value}"
    )


def training_outcome(result) -> str:
    """What a training run did: the champion step's action, or the gates that rejected the
    candidate.
    """
    events = result.all_events
    champ, cand = _metadata(events, CHAMPION), _metadata(events, CANDIDATE_MODEL)
    version = f"v{cand[0][Meta.MODEL_VERSION].value}" if cand else "?"
    if champ:
        return f"{version} {champion_step(champ[0])}"
    failed = [
        e.event_specific_data.description
        for e in events
        if e.event_type_value == CHECK_EVALUATION and not e.event_specific_data.passed
    ]
    if failed:
        return f"{version} REJECTED by the gates: " + "; ".join(failed)[:220]
    return f"{version}: failed before the gates (run {result.run_id[:8]})"


def estimation_story(lake, correction: Path | None, drift_day: dt.date) -> list[str]:
    """Summary lines: the estimate before the labels, how wrong it was once they came,
    multivariate drift.
    """
    recon = lake.read(ESTIMATION_RECONCILIATION)
    estimates = lake.read(ESTIMATED_PERFORMANCE)
    if estimates.is_empty():
        return ["estimated performance: none (no champion with a monitoring bundle)"]
    est = estimates.filter(pl.col("metric") == "roc_auc")
    days = est[PARTITION_COLUMN].n_unique()
    matured = (
        set(recon.filter(pl.col("metric") == "roc_auc")[PARTITION_COLUMN].to_list())
        if not recon.is_empty()
        else set()
    )
    out = [
        f"estimated performance: {days} day(s) estimated by CBPE before their labels; "
        f"{days - len(matured & set(est[PARTITION_COLUMN].to_list()))} still without matured labels"
    ]
    out += _drift_estimate_lines(est, recon, drift_day)
    if not recon.is_empty():
        r = recon.filter(pl.col("metric") == "roc_auc").sort(PARTITION_COLUMN)
        worst = r.sort("abs_error", descending=True).row(0, named=True)
        out.append(
            f"estimator error: median |estimate - realised| roc_auc {r['abs_error'].median():.3f}"
            f" over {r.height} reconciled day(s); worst {worst['abs_error']:.3f}"
            f" on {worst[PARTITION_COLUMN]}"
            f" (estimate {worst['estimate']:.3f}, realised {worst['realised']:.3f})"
            + (f"; labels corrected by {correction.name}" if correction else "")
        )
    return out + _multivariate_lines(lake)


def _drift_estimate_lines(est: pl.DataFrame, recon: pl.DataFrame, drift_day: dt.date) -> list:
    """The estimate just before the covariate drift and on its first days, beside the realised."""
    daily = est.sort(MODEL_VERSION_COLUMN).group_by(PARTITION_COLUMN).last().sort(PARTITION_COLUMN)
    before = daily.filter(pl.col(PARTITION_COLUMN) < drift_day.isoformat()).tail(1)
    after = daily.filter(pl.col(PARTITION_COLUMN) >= drift_day.isoformat()).head(3)
    if not (before.height and after.height):
        return []
    first = after.row(0, named=True)
    realised = (
        recon.filter(
            (pl.col(PARTITION_COLUMN) == first[PARTITION_COLUMN]) & (pl.col("metric") == "roc_auc")
        )
        if not recon.is_empty()
        else recon
    )
    return [
        f"before the labels: covariate drift from {drift_day}; the estimate went "
        f"{before['estimate'][0]:.3f} → "
        + " → ".join(f"{e:.3f}" for e in after["estimate"])
        + f" on {', '.join(after[PARTITION_COLUMN])}, the day it was scored;"
        + f" realised on {first[PARTITION_COLUMN]}: "
        + (
            f"{realised['realised'][0]:.3f} once its labels matured"
            if realised.height
            else "not matured"
        )
    ]


def _multivariate_lines(lake) -> list[str]:
    mv = (
        lake.read(MULTIVARIATE_DRIFT)
        .filter(pl.col("reconstruction_error").is_not_null())
        .sort(PARTITION_COLUMN)
    )
    if not mv.height:
        return []
    fired = mv.filter(pl.col("drifted"))[PARTITION_COLUMN].to_list()
    return [
        f"multivariate drift: {len(fired)} of {mv.height} judged day(s) drifted"
        + (f", first {fired[0]}" if fired else "")
        + " (reconstruction error "
        f"{mv['reconstruction_error'].min():.2f}..{mv['reconstruction_error'].max():.2f}, "
        f"threshold ~{mv['threshold'].median():.2f})"
    ]
