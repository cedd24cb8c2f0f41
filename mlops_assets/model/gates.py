"""Promotion gates: a registry of named rules that judge a candidate on its time holdout.

Each entry of ``GATES`` says which gate instances a spec enables (``floor:roc_auc``,
``no_regression`` ...) and how one is judged from the evaluation's plain inputs
(``GateInputs``). The evaluation asset declares one blocking Dagster check per name from
``gate_names(spec)``, so adding a gate is one ``Gate`` entry plus its test. Pure Python:
no scikit-learn, no Dagster, no MLflow.

A gate whose metric is undefined or missing fails (fail closed), except that an undefined champion
metric cannot block the candidate. Every gate that judges a holdout metric first asks for enough
evidence (``gates.min_holdout_rows`` rows and, for classification, ``gates.min_positives`` rows in
every class): without it the gate fails with "insufficient evidence (N rows, K positives)".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from mlops_assets.core.metrics_catalog import (
    HIGHER_IS_BETTER,
    METRIC_RANGES,
    primary_metric,
    spec_metric_names,
)
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.tables import EVALUATIONS_SCHEMA
from mlops_assets.core.vocabulary import (
    GATES_FAILED,
    GATES_PASSED,
    PARTITION_COLUMN,
    Status,
    VersionTag,
)


@dataclass(frozen=True)
class GateResult:
    """One promotion gate's verdict. ``value``/``threshold`` are ``None`` when not numeric."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateInputs:
    """Everything a gate may judge: candidate and champion metrics on the same holdout rows,
    per-slice metrics of the candidate, and the artifact integrity report; ``baseline``: the naive
    baseline's metrics on the same rows; ``leakage``: per-feature skill
    (``model.candidate.leakage_evidence``: ``metric``, ``univariate`` {column: one-feature skill},
    ``importance`` {column: permutation drop}); ``evidence``: the holdout's ``rows`` and ``classes``
    {label: rows} (None: read from the candidate metrics' ``rows``/``positives``)."""

    spec: DatasetSpec
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    slices: Sequence[dict[str, Any]]
    integrity: dict[str, Any]
    baseline: dict[str, Any] | None = None
    leakage: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True)
class Gate:
    """``names(spec)``: the instances of this gate the spec enables ([] = off);
    ``evaluate(name, inputs)``: the verdict of one instance."""

    kind: str
    names: Callable[[DatasetSpec], list[str]]
    evaluate: Callable[[str, GateInputs], GateResult]
    description: str


# ---- formatting helpers ----------------------------------------------------------------------
def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x != 0 and abs(x) < 0.001:
        return f"{x:.3g}"
    return f"{x:.3f}"


def _status(passed: bool) -> str:
    return "passed" if passed else "failed"


def _undefined(metrics: dict[str, Any], metric: str) -> str:
    reason = (metrics.get("undefined") or {}).get(metric)
    if reason:
        return f"undefined ({reason})"
    return "undefined" if metric in metrics else "not computed"


def _compare(value: float, threshold: float, higher_is_better: bool) -> tuple[bool, str]:
    """Whether ``value`` is on the good side of ``threshold``, and the operator to print."""
    if higher_is_better:
        return (True, ">=") if value >= threshold else (False, "<")
    return (True, "<=") if value <= threshold else (False, ">")


def _bound(
    name: str, metrics: dict[str, Any], metric: str, threshold: float, floor: bool
) -> GateResult:
    value = metrics.get(metric)
    if value is None:
        return GateResult(
            name, False, None, threshold, f"{name} failed: {metric} {_undefined(metrics, metric)}"
        )
    passed, op = _compare(value, threshold, higher_is_better=floor)
    return GateResult(
        name,
        passed,
        float(value),
        threshold,
        f"{name} {_status(passed)}: {_fmt(value)} {op} {_fmt(threshold)}",
    )


# ---- the gates -------------------------------------------------------------------------------
def _floor(name: str, x: GateInputs) -> GateResult:
    metric = name.split(":", 1)[1]
    return _bound(name, x.candidate, metric, x.spec.gates.floors[metric], floor=True)


def _ceiling(name: str, x: GateInputs) -> GateResult:
    metric = name.split(":", 1)[1]
    return _bound(name, x.candidate, metric, x.spec.gates.ceilings[metric], floor=False)


def _no_regression(name: str, x: GateInputs) -> GateResult:
    """The primary metric may trail the champion's (on the same rows) by
    ``gates.max_regression``."""
    metric, slack = primary_metric(x.spec), x.spec.gates.max_regression
    value = x.candidate.get(metric)
    if value is None:
        return GateResult(
            name,
            False,
            None,
            None,
            f"{name} failed: candidate {metric} {_undefined(x.candidate, metric)}",
        )
    if x.champion is None:
        return GateResult(
            name, True, float(value), None, f"{name} passed: no champion to compare with"
        )
    base = x.champion.get(metric)
    if base is None:
        return GateResult(
            name,
            True,
            float(value),
            None,
            f"{name} passed: champion {metric} {_undefined(x.champion, metric)}",
        )
    higher = HIGHER_IS_BETTER[metric]
    threshold = base - slack if higher else base + slack
    passed, op = _compare(value, threshold, higher)
    sign = "-" if higher else "+"
    return GateResult(
        name,
        passed,
        float(value),
        float(threshold),
        f"{name} {_status(passed)}: {metric} {_fmt(value)} {op} {_fmt(threshold)} "
        f"(champion {_fmt(base)} {sign} max_regression {_fmt(slack)})",
    )


def _slice_floor(name: str, x: GateInputs) -> GateResult:
    """Every judged slice must reach the floor: ``>=`` for higher-is-better metrics, ``<=``
    (a ceiling) for error metrics such as rmse. Slices whose metric is undefined (a slice
    without positives has no ROC AUC) cannot be judged and are reported, not failed."""
    # type: ignore[arg-type]
    metric, floor = primary_metric(x.spec), float(x.spec.gates.slice_floor)
    higher = HIGHER_IS_BETTER[metric]
    judged, undefined = [], []
    for s in x.slices:
        if s["enough_rows"]:
            v = s["metrics"].get(metric)
            (undefined if v is None else judged).append((v, s))
    note = f"; {len(undefined)} slice(s) skipped, {metric} undefined" if undefined else ""
    if not judged:
        return GateResult(
            name, True, None, floor, f"{name} passed: no slice with enough rows to judge{note}"
        )
    worst_v, worst = (min if higher else max)(judged, key=lambda t: t[0])
    n_bad = sum(not _compare(v, floor, higher)[0] for v, _ in judged)
    passed, op = _compare(worst_v, floor, higher)
    summary = f"all {len(judged)} slices ok" if passed else f"{n_bad} of {len(judged)} slices below"
    return GateResult(
        name,
        passed,
        float(worst_v),
        floor,
        f"{name} {_status(passed)}: worst slice {worst['column']}={worst['value']} {metric} "
        f"{_fmt(worst_v)} {op} {_fmt(floor)} ({summary}{note})",
    )


def _calibration(name: str, x: GateInputs) -> GateResult:
    return _bound(
        name, x.candidate, "calibration_error", x.spec.gates.max_calibration_error, floor=False
    )


INTEGRITY_CHECKS = ("sha256_match", "loads", "predictions_identical")


def _integrity(name: str, x: GateInputs) -> GateResult:
    """All of ``INTEGRITY_CHECKS`` must be present and true; a missing one fails."""
    failing = [
        f"{k}={x.integrity[k]}" if k in x.integrity else f"{k} not checked"
        for k in INTEGRITY_CHECKS
        if x.integrity.get(k) is not True
    ]
    ok = len(INTEGRITY_CHECKS) - len(failing)
    msg = (
        f"integrity failed: {', '.join(failing)}"
        if failing
        else f"integrity passed: {', '.join(INTEGRITY_CHECKS)}"
    )
    return GateResult(name, not failing, float(ok), float(len(INTEGRITY_CHECKS)), msg)


def skill_metric(spec: DatasetSpec) -> str | None:
    """The metric a leakage check reads as skill (best value 1, higher is better): the primary
    metric when it is one (roc_auc, pr_auc, r2), else the task's first such metric in
    ``metrics_catalog`` order."""

    def is_skill(m: str) -> bool:
        return HIGHER_IS_BETTER.get(m, False) and METRIC_RANGES.get(m, (None, None))[1] == 1.0

    primary = primary_metric(spec)
    return (
        primary
        if is_skill(primary)
        else next((m for m in spec_metric_names(spec) if is_skill(m)), None)
    )


def _beats_baseline(name: str, x: GateInputs) -> GateResult:
    """Skill score of the primary metric over the naive baseline on the same rows:
    (metric - baseline) / (best - baseline), best being the metric's perfect value (1 or 0)."""
    # type: ignore[arg-type]
    metric, margin = primary_metric(x.spec), float(x.spec.gates.beats_baseline_margin)
    value = x.candidate.get(metric)
    if value is None:
        return GateResult(
            name,
            False,
            None,
            margin,
            f"{name} failed: candidate {metric} {_undefined(x.candidate, metric)}",
        )
    base = None if x.baseline is None else x.baseline.get(metric)
    if base is None:
        why = "not computed" if x.baseline is None else _undefined(x.baseline, metric)
        return GateResult(name, False, None, margin, f"{name} failed: baseline {metric} {why}")
    higher = HIGHER_IS_BETTER[metric]
    lo, hi = METRIC_RANGES.get(metric, (None, None))
    best = hi if higher else lo
    if best is not None and best == base:
        return GateResult(
            name,
            False,
            None,
            margin,
            f"{name} failed: the baseline's {metric} is already perfect "
            f"({_fmt(base)}): the holdout cannot tell a model from the baseline",
        )
    skill = (
        (value - base) / (best - base)
        if best is not None
        else (value - base if higher else base - value)
    )
    passed = skill >= margin
    return GateResult(
        name,
        passed,
        float(skill),
        margin,
        f"{name} {_status(passed)}: skill {_fmt(skill)} {'>=' if passed else '<'} margin"
        f" {_fmt(margin)} ({metric} {_fmt(value)} vs the naive baseline's {_fmt(base)} on the same"
        " rows)",
    )


def _suspects(x: GateInputs) -> tuple[dict[str, str], bool, float | None]:
    """({column: why it is suspect}, whether the model's skill is implausibly perfect, that
    skill)."""
    cfg, ev = x.spec.gates.leakage, x.leakage or {}
    metric = ev.get("metric") or skill_metric(x.spec)
    skill = x.candidate.get(metric) if metric else None
    perfect = cfg.max_skill is not None and skill is not None and skill >= cfg.max_skill
    out = {
        c: f"alone {ev.get('feature_metric', metric)} {_fmt(s)}"
        for c, s in ev.get("univariate", {}).items()
        if s is not None and s >= cfg.max_feature_skill
    }
    importance = {c: d for c, d in ev.get("importance", {}).items() if d is not None}
    top = max(importance.values(), default=0.0)
    if perfect:  # the columns that carry the skill: permuting one of them costs a real share of it
        for c, drop in sorted(importance.items(), key=lambda t: -t[1]):
            if drop >= max(0.01, 0.1 * top):
                out[c] = ", ".join(
                    filter(None, (out.get(c), f"permuted costs {metric} {_fmt(drop)}"))
                )
    return out, perfect, skill


def _leakage(name: str, x: GateInputs) -> GateResult:
    """Fails an implausibly perfect candidate (skill >= ``gates.leakage.max_skill``) or one with a
    feature that alone reaches ``max_feature_skill``, naming the suspect columns; ``allow`` clears a
    column."""
    cfg = x.spec.gates.leakage
    if x.leakage is None:
        return GateResult(
            name, False, None, cfg.max_skill, f"{name} failed: per-feature skill not computed"
        )
    suspects, perfect, skill = _suspects(x)
    metric = x.leakage.get("metric") or skill_metric(x.spec)
    flagged = {c: why for c, why in suspects.items() if c not in cfg.allow}
    allowed = sorted(set(suspects) & set(cfg.allow))
    value = None if skill is None else float(skill)
    if perfect and not suspects:
        flagged_msg = (
            f"{metric} {_fmt(skill)} >= max_skill {_fmt(cfg.max_skill)} and no single column"
            " carries it"
        )
    elif flagged:
        head = f"{metric} {_fmt(skill)} >= max_skill {_fmt(cfg.max_skill)}; " if perfect else ""
        flagged_msg = (
            head
            + "suspect columns: "
            + "; ".join(f"{c} ({why})" for c, why in sorted(flagged.items()))
        )
    else:
        note = f" (allowed by gates.leakage.allow: {allowed})" if allowed else ""
        return GateResult(
            name,
            True,
            value,
            cfg.max_skill,
            f"{name} passed: {metric} {_fmt(skill)}, no feature alone reaches "
            f"{_fmt(cfg.max_feature_skill)}{note}",
        )
    cols = sorted(flagged) or ["COLUMN"]
    return GateResult(
        name,
        False,
        value,
        cfg.max_skill,
        f"{name} failed: possible target leakage: {flagged_msg}. If these columns are known at "
        f"prediction time, declare them in the spec (gates.leakage.allow: [{', '.join(cols)}]); "
        "otherwise drop them from the features. An explicit waiver can override: "
        "`mlops-assets promote VERSION --waiver-owner … --waiver-reason … --waiver-expires …`",
    )


def _holdout_counts(x: GateInputs) -> tuple[int | None, dict[str, int]]:
    """(rows, {class label as text: rows}) of the holdout: ``x.evidence``, else the candidate
    metrics' ``rows``/``positives`` (binary)."""
    if x.evidence is not None:
        return x.evidence.get("rows"), {
            str(k): int(v) for k, v in (x.evidence.get("classes") or {}).items()
        }
    rows, positives = x.candidate.get("rows"), x.candidate.get("positives")
    return rows, (
        {"0": rows - positives, "1": positives}
        if rows is not None and positives is not None
        else {}
    )


def _insufficient_evidence(x: GateInputs) -> str | None:
    """Why the holdout is too small to judge a metric on (``gates.min_holdout_rows`` rows, and for
    classification ``gates.min_positives`` rows in every class), or None."""
    g, regression = x.spec.gates, x.spec.task == "regression"
    rows, classes = _holdout_counts(x)
    if rows is None:
        return "insufficient evidence (holdout rows not counted)"
    short = {} if regression else {c: n for c, n in classes.items() if n < g.min_positives}
    if rows >= g.min_holdout_rows and not short:
        return None
    counts = [f"{rows} rows"]
    if set(classes) == {"0", "1"}:
        counts += [f"{classes['1']} positives"] + (
            [f"{classes['0']} negatives"] if "0" in short else []
        )
    else:
        counts += [f"{n} of class {c!r}" for c, n in sorted(short.items(), key=lambda t: t[1])[:3]]
    need = f"gates.min_holdout_rows {g.min_holdout_rows}" + (
        "" if regression else f" and gates.min_positives {g.min_positives} in every class"
    )
    return (
        f"insufficient evidence ({', '.join(counts)}): judging needs {need}; lengthen"
        " training.holdout_days or lower the minimum in the spec"
    )


def _with_evidence(
    evaluate: Callable[[str, GateInputs], GateResult],
) -> Callable[[str, GateInputs], GateResult]:
    """A metric gate that first asks for enough holdout evidence (fails without a number
    otherwise)."""

    def judged(name: str, x: GateInputs) -> GateResult:
        problem = _insufficient_evidence(x)
        if problem:
            return GateResult(name, False, None, None, f"{name} failed: {problem}")
        return evaluate(name, x)

    return judged


def _one(name: str, enabled: Callable[[DatasetSpec], bool]) -> Callable[[DatasetSpec], list[str]]:
    return lambda spec: [name] if enabled(spec) else []


GATES: dict[str, Gate] = {
    g.kind: g
    for g in (
        Gate(
            "floor",
            lambda s: [f"floor:{m}" for m in s.gates.floors],
            _with_evidence(_floor),
            "candidate metric >= gates.floors[metric]",
        ),
        Gate(
            "ceiling",
            lambda s: [f"ceiling:{m}" for m in s.gates.ceilings],
            _with_evidence(_ceiling),
            "candidate metric <= gates.ceilings[metric]",
        ),
        Gate(
            "no_regression",
            _one("no_regression", lambda s: True),
            _with_evidence(_no_regression),
            "primary metric no worse than the champion's on the same rows by more than"
            " gates.max_regression",
        ),
        Gate(
            "beats_baseline",
            _one("beats_baseline", lambda s: s.gates.beats_baseline_margin is not None),
            _with_evidence(_beats_baseline),
            "primary metric's skill over the naive baseline (training mean / prior) >="
            " gates.beats_baseline_margin",
        ),
        Gate(
            "slice_floor",
            _one("slice_floor", lambda s: s.gates.slice_floor is not None),
            _with_evidence(_slice_floor),
            "every slice with enough rows reaches gates.slice_floor on the primary metric",
        ),
        Gate(
            "calibration",
            _one(
                "calibration",
                lambda s: s.task == "classification" and s.gates.max_calibration_error is not None,
            ),
            _with_evidence(_calibration),
            "calibration_error <= gates.max_calibration_error (classification)",
        ),
        Gate(
            "leakage",
            _one("leakage", lambda s: s.gates.leakage.enabled),
            _with_evidence(_leakage),
            "no implausibly perfect skill (gates.leakage.max_skill) and no feature that alone"
            " reaches gates.leakage.max_feature_skill, unless declared in gates.leakage.allow",
        ),
        Gate(
            "integrity",
            _one("integrity", lambda s: True),
            _integrity,
            "the stored artifact matches its sha256, loads, and reproduces the training-time"
            " holdout scores",
        ),
    )
}
"""Every gate, in evaluation order."""


def gate_kind(name: str) -> str:
    return name.split(":", 1)[0]


def gate_names(spec: DatasetSpec) -> list[str]:
    """The promotion gates this spec enables, in evaluation order (one blocking check each)."""
    return [name for gate in GATES.values() for name in gate.names(spec)]


def gate_check_name(gate: str) -> str:
    """``floor:roc_auc`` → ``gate_floor_roc_auc`` (Dagster check names are identifiers)."""
    return "gate_" + re.sub(r"[^A-Za-z0-9_]", "_", gate)


def evaluate_gates(
    spec: DatasetSpec,
    candidate_metrics: dict[str, Any],
    champion_metrics: dict[str, Any] | None,
    slices: Sequence[dict[str, Any]],
    integrity: dict[str, Any],
    *,
    baseline: dict[str, Any] | None = None,
    leakage: dict[str, Any] | None = None,
    evidence: dict[str, Any] | None = None,
) -> list[GateResult]:
    """Every gate the spec enables, judged, in ``gate_names(spec)`` order (see ``GateInputs``)."""
    inputs = GateInputs(
        spec, candidate_metrics, champion_metrics, slices, integrity, baseline, leakage, evidence
    )
    return [GATES[gate_kind(name)].evaluate(name, inputs) for name in gate_names(spec)]


# ---- what the verdict means for the version --------------------------------------------------
@dataclass(frozen=True)
class GateVerdict:
    gates: list[GateResult]

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def reasons(self) -> str:
        return "; ".join(g.message for g in self.failed)

    def version_tags(self) -> dict[str, str]:
        """Tags the evaluated version gets: rejected with the reasons, or gates passed."""
        if self.passed:
            return {VersionTag.GATES: GATES_PASSED}
        return {
            VersionTag.STATUS: Status.REJECTED,
            VersionTag.GATES: GATES_FAILED,
            VersionTag.REJECTED_REASONS: self.reasons[:4000],
        }

    def as_dicts(self) -> list[dict[str, Any]]:
        return [g.to_dict() for g in self.gates]


def evaluation_rows(
    gates: Sequence[GateResult],
    *,
    cutoff: str,
    version: int,
    champion_version: int | None,
    evaluated_at: dt.datetime,
    run_id: str,
) -> pl.DataFrame:
    """The rows of the ``evaluations`` table for one evaluation: one per gate."""
    return pl.DataFrame(
        [
            {
                PARTITION_COLUMN: cutoff,
                "version": version,
                "gate": g.name,
                "passed": g.passed,
                "value": None if g.value is None else float(g.value),
                "threshold": None if g.threshold is None else float(g.threshold),
                "message": g.message,
                "champion_version": champion_version,
                "evaluated_at": evaluated_at,
                "run_id": run_id,
            }
            for g in gates
        ],
        schema=EVALUATIONS_SCHEMA,
    )
