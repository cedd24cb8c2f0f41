"""``docs/spec.md``, the dataset spec reference, generated from the pydantic schema in ``spec.py``.

Every field of ``DatasetSpec`` (walked through ``model_fields``, sections and per-column entries
included) gets its type and constraints, its default, its meaning and an example. The meaning is the
field's ``Field(description=...)`` when the schema has one, else ``DESCRIPTIONS`` below; a section's
is its class docstring, else ``DESCRIPTIONS``. The example is ``EXAMPLES[path]``, else the value in
a bundled spec (``specs/*.yaml``), else the default. ``mlops_assets_tests/test_spec_docs.py``
regenerates the page and fails when ``docs/spec.md`` differs or a field has no meaning; refresh::

    python -m mlops_assets.core.spec_docs > docs/spec.md
"""

from __future__ import annotations

import datetime as dt
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mlops_assets.core.spec import BUNDLED_SPEC, DatasetSpec

COLUMN = "<column>"  # a per-column entry of a mapping section (features.numeric.<column>.min)
NO_MEANING = (
    "(no description: add `Field(description=...)` in spec.py or an entry in"
    " `core/spec_docs.DESCRIPTIONS`)"
)

DESCRIPTIONS: dict[str, str] = {
    "name": (
        "the dataset's name: lowercase letters, digits and `_`; names the MLflow experiment and"
        " reports"
    ),
    "task": (
        "what the model predicts: `classification` (a class, scored as probabilities) or"
        " `regression` (a number)"
    ),
    "landing": (
        "where the event files land: `<path>/<YYYY-MM-DD>/<file>`, one folder per event date"
    ),
    "landing.path": (
        "the landing folder; a relative path is under `$MLOPS_HOME`; `$VARS` and `~` are expanded"
    ),
    "landing.formats": (
        "file formats read from the landing zone (the file suffix); others are quarantined"
    ),
    "timestamp": (
        "the event time column; its date must be the partition's date; calendar features come"
        " from it"
    ),
    "id": "the column unique per event; duplicates are quarantined; the label feed joins on it",
    "target": (
        "the column the model predicts (in the events, or in the label files when `labels` is set)"
    ),
    "features": "the model's inputs; every column named here is checked by the data contract",
    "features.numeric": "numeric feature columns by name",
    "features.numeric.<column>.dtype": (
        "`int` or `float`: a value of the other type is rejected (`12.0` passes as int)"
    ),
    "features.numeric.<column>.min": "the least valid value; a smaller one quarantines the row",
    "features.numeric.<column>.max": "the greatest valid value; a larger one quarantines the row",
    "features.numeric.<column>.nullable": (
        "whether the value may be missing; otherwise a null quarantines the row"
    ),
    "features.categorical": "categorical feature columns by name (stored as text)",
    "features.categorical.<column>.allowed": (
        "the valid categories; any other value quarantines the row; omitted: any value"
    ),
    "features.categorical.<column>.nullable": (
        "whether the value may be missing; otherwise a null quarantines the row"
    ),
    "features.calendar": (
        "features derived from the timestamp (UTC): `hour`, `day_of_week` (1 = Monday), "
        "`is_weekend`, `day_of_month`, `month`"
    ),
    "pii": (
        "columns holding personal data: never features, stored only keyed-hashed or dropped"
        " (`pii_mode`)"
    ),
    "pii_mode": (
        "`hash`: HMAC-SHA256 with `$MLOPS_PII_KEY` (dropped when no key is set); `drop`: always"
        " emptied"
    ),
    "labels": (
        "a delayed label feed: labels arrive later in their own files `<path>/<arrival date>/*`; "
        "omitted: the target is in the event files"
    ),
    "labels.path": (
        "the label landing folder (relative: under `$MLOPS_HOME`), one folder per arrival date"
    ),
    "labels.id": "the column of the label files that names the event (joined to the spec's `id`)",
    "labels.target": "the label column's name in the label files; omitted: the spec's `target`",
    "labels.delay_days": (
        "days after an event by which its label has arrived: newer events are not yet matured "
        "for training and holdout"
    ),
    "schema_evolution": (
        "a landing file with columns the spec does not name: `ignore` them, `merge` them into "
        "raw_events, or `reject` the file"
    ),
    "partition_start": "the first daily partition (YYYY-MM-DD); nothing earlier is ingested",
    "training": "how `training_set[C]` is cut for a cutoff C",
    "training.window_days": "days of features before the cutoff that a training set reads",
    "training.holdout_days": (
        "the last matured days of the window, held out by time for evaluation and the gates"
    ),
    "training.seed": (
        "the seed of every random choice in training (the model's, the drift profile's sample)"
    ),
    "training.cadence_days": (
        "days between scheduled retrains (`training_schedule`, 04:00 UTC; 7 = Mondays)"
    ),
    "model": "the model and where it is registered",
    "model.registered_name": (
        "the MLflow registered model whose versions and aliases this spec's models are"
    ),
    "model.estimator": (
        "the estimator by name from the registry in `estimators.py` (e.g. `hist_gradient_boosting`,"
        " `random_forest`, `logistic_regression`)"
    ),
    "model.params": "keyword arguments for the estimator, checked against its signature",
    "model.require_approval": (
        "a candidate that passes every gate waits as challenger for `mlops-assets approve`"
    ),
    "gates": (
        "promotion gates: blocking checks of `evaluation_report`; a candidate is promoted only when"
        " all pass"
    ),
    "gates.floors": (
        "metric → least value on the holdout, for higher-is-better metrics (roc_auc, pr_auc, r2)"
    ),
    "gates.ceilings": (
        "metric → greatest value on the holdout, for lower-is-better metrics (brier, log_loss, "
        "rmse, mae)"
    ),
    "gates.max_regression": (
        "how much worse than the current champion on the same holdout the candidate may be "
        "(primary metric)"
    ),
    "gates.primary_metric": (
        "the metric of the no-regression, slice and guard rules; omitted: roc_auc "
        "(classification) or rmse (regression)"
    ),
    "gates.slice_floor": (
        "least primary metric in every categorical slice with at least `min_slice_rows` rows; "
        "omitted: no slice gate"
    ),
    "gates.min_slice_rows": "slices with fewer holdout rows are reported but not judged",
    "gates.max_calibration_error": (
        "classification: the greatest expected calibration error; omitted: no calibration gate"
    ),
    "gates.shadow_days": (
        "days of shadow scores a passing candidate needs beside a champion before promotion "
        "(0: promote at once)"
    ),
    "gates.beats_baseline_margin": (
        "least skill of the primary metric over the naive baseline (training mean or "
        "prior) on the same holdout: (metric - baseline) / (best - baseline); null: off"
    ),
    "gates.min_holdout_rows": (
        "fewer holdout rows and every metric gate fails with 'insufficient evidence'"
    ),
    "gates.min_positives": (
        "classification: fewer holdout rows in any class and every metric gate fails with "
        "'insufficient evidence'"
    ),
    "gates.leakage": "target-leakage tripwires (the `leakage` gate)",
    "gates.leakage.enabled": "whether the leakage gate runs",
    "gates.leakage.max_skill": (
        "a candidate whose holdout skill reaches this is implausibly perfect; null: off"
    ),
    "gates.leakage.max_feature_skill": (
        "a single feature whose one-feature model reaches this skill is a leakage suspect"
    ),
    "gates.leakage.allow": "features known at prediction time: never leakage suspects",
    "drift": "data drift of each scored day against the champion's training profile",
    "drift.numeric_threshold": (
        "the drift threshold of numeric features (a distance, or a p-value for ks); "
        "omitted: the chosen method's default"
    ),
    "drift.categorical_threshold": (
        "the drift threshold of categorical features; omitted: the method's default"
    ),
    "drift.numeric_method": (
        "one drift method for every numeric feature; omitted: chosen per column as "
        "Evidently's preset does"
    ),
    "drift.categorical_method": (
        "one drift method for every categorical feature; omitted: chosen per column"
    ),
    "drift.methods": "feature → drift method, pinned for that feature",
    "drift.share_drifted": (
        "the dataset drifted when at least this share of the judged features drifted"
    ),
    "drift.consecutive_partitions": (
        "drifted days in a row that make the drift sensor request one retrain"
    ),
    "drift.cooldown_days": (
        "days after a drift retrain before another drift episode can trigger one"
    ),
    "drift.min_rows": (
        "rows the current sample needs; a small day reaches back to earlier partitions"
    ),
    "drift.max_lookback_partitions": "how many partitions a small day's sample may reach back",
    "drift.report_sample_rows": "rows sampled into an Evidently HTML report",
    "drift.report_retention": "drift HTML reports kept (the newest)",
    "drift.exclude": (
        "features left out of the drift verdict (those constant within a day, e.g. day_of_week)"
    ),
    "volume": "the `volume_anomaly` WARN check of raw_events",
    "volume.trailing_partitions": "days whose median row count is the expected volume",
    "volume.tolerance": "relative deviation from that median that warns (0.5 = ±50%)",
    "freshness": "the `freshness` WARN check of raw_events",
    "freshness.max_lag_hours": "hours since the newest event time after which the data is stale",
    "guard": "the performance guard: matured performance of the champion on labelled days",
    "guard.floor": (
        "least primary metric over the last matured days; below it the guard acts; omitted: no"
        " floor"
    ),
    "guard.margin_vs_last_known_good": (
        "how far the champion may fall behind last_known_good on the same rows"
    ),
    "guard.action": (
        "`rollback` to last_known_good, or `alert` only (scoring degrades to the fallback)"
    ),
    "maintenance": "Delta table maintenance (`maintenance_schedule`)",
    "maintenance.retention_hours": (
        "vacuum files unreferenced for longer than this (versions in champion lineage are kept)"
    ),
    "maintenance.log_retention_days": (
        "Delta log entries older than this are dropped, so loading a table reads a "
        "short log; time travel reaches back this far, and always to the versions in "
        "champion lineage"
    ),
    "sensors": "how often the daemon evaluates the sensors (Dagster's minimum interval)",
    "sensors.landing_interval_seconds": "the landing and label sensors",
    "sensors.monitoring_interval_seconds": (
        "the drift, performance, guard, rescore and ledger-reconcile sensors"
    ),
    "sensors.shadow_promotion_interval_seconds": (
        "the sensor that promotes a challenger after its shadow days"
    ),
    "fallback": (
        "what scores when the champion cannot: `last_known_good`, or `baseline` (the training"
        " prior/mean)"
    ),
    "kill_switch": "true: scoring stops (also `$MLOPS_KILL_SWITCH=1`)",
}
"""Meaning of the fields the schema gives no ``Field(description=...)``; a schema description
wins."""

EXAMPLES: dict[str, Any] = {
    "classes": ["on_time", "late"],
    "target_min": 0,
    "target_max": 240,
    "labels.target": "is_fraud",
    "gates.leakage.allow": ["dep_delay"],
    "drift.methods": {"amount": "psi"},
    "drift.numeric_method": "wasserstein",
    "drift.categorical_method": "jensenshannon",
    "model.require_approval": True,
    "gates.shadow_days": 3,
    "kill_switch": True,
    "pii_mode": "drop",
}
"""Examples for fields the bundled specs do not show (the default is not a useful example)."""


PER_COLUMN: set[str] = (
    set()
)  # filled by spec_rows: the per-column mapping sections (features.numeric)


@dataclass(frozen=True)
class Row:
    path: str
    kind: str
    default: str
    meaning: str
    example: str
    section: bool


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the section model a field holds, whether it is a per-column mapping of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [_model_of(a) for a in args if a is not type(None)]
        return inner[0] if len(inner) == 1 else (None, False)
    if origin is dict and args and _model_of(args[1])[0] is not None:
        return _model_of(args[1])[0], True
    return None, False


def type_text(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {type_text(args[0])}"
    if origin is dict:
        return f"mapping {type_text(args[0])} → {type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    names = {
        str: "text",
        int: "integer",
        float: "number",
        bool: "true/false",
        dt.date: "date (YYYY-MM-DD)",
    }
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _constraints(info: FieldInfo) -> str:
    signs = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "pattern": "matches"}
    found = [
        f"{signs[k]} `{getattr(m, k)}`"
        for m in info.metadata
        for k in signs
        if getattr(m, k, None) is not None
    ]
    return f" ({', '.join(found)})" if found else ""


def _yaml(value: Any) -> str:
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=1 << 30, allow_unicode=True
    )
    return text.strip().removesuffix("...").strip()


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its fields' defaults"
    return f"`{_yaml(value)}`"


def bundled_examples() -> list[dict]:
    """The bundled specs as data, the default first: where the examples come from."""
    paths = [
        BUNDLED_SPEC,
        *sorted(p for p in BUNDLED_SPEC.parent.glob("*.yaml") if p != BUNDLED_SPEC),
    ]
    return [yaml.safe_load(p.read_text()) for p in paths]


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or not data:
            return None
        data = next(iter(data.values())) if part == COLUMN else data.get(part)
    return data


def _example(path: str, info: FieldInfo, specs: list[dict], section: bool) -> str:
    """``key: value`` of an example; a plain section has none (its fields have), a per-column
    mapping shows its first bundled entry."""
    if section:
        entry = next(
            (v for v in (_lookup(s, path) for s in specs) if isinstance(v, dict) and v), None
        )
        first = next(iter(entry.items())) if entry else None
        return (
            f"`{path.rsplit('.', 1)[-1]}: {_yaml(dict([first]))}`"
            if first and path in PER_COLUMN
            else ""
        )
    if path in EXAMPLES:
        value = EXAMPLES[path]
    else:
        value = next((v for v in (_lookup(s, path) for s in specs) if v is not None), None)
        if value is None and not info.is_required():
            value = info.get_default(call_default_factory=True)
    key = path.rsplit(".", 1)[-1]
    return f"`{key}: {_yaml(value)}`"


def _meaning(path: str, info: FieldInfo, model: type[BaseModel] | None) -> str:
    doc = (
        (model.__doc__ or "").replace("``", "`")
        if model is not None and model.__doc__ != BaseModel.__doc__
        else ""
    )
    return info.description or " ".join(doc.split()) or DESCRIPTIONS.get(path) or NO_MEANING


def spec_rows(
    model: type[BaseModel] = DatasetSpec, prefix: str = "", specs: list[dict] | None = None
) -> list[Row]:
    """One row per field, depth first, in declaration order."""
    specs = bundled_examples() if specs is None else specs
    rows = []
    for name, info in model.model_fields.items():
        path = prefix + name
        sub, per_column = _model_of(info.annotation)
        kind = "section" if sub is not None and not per_column else type_text(info.annotation)
        if per_column:
            kind = f"mapping column name → {sub.__name__} section"
            PER_COLUMN.add(path)
        rows.append(
            Row(
                path,
                kind + _constraints(info),
                _default(info),
                _meaning(path, info, sub),
                _example(path, info, specs, sub is not None),
                sub is not None,
            )
        )
        if sub is not None:
            rows += spec_rows(sub, f"{path}.{COLUMN}." if per_column else f"{path}.", specs)
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


INTRO = """# The dataset spec — reference

One YAML file describes a dataset and its model (`$MLOPS_SPEC`; bundled examples in
`mlops_assets/specs/`). **This page is generated from the pydantic schema** (`mlops_assets/core/spec.py`) by
`python -m mlops_assets.core.spec_docs > docs/spec.md`; `mlops_assets_tests/test_spec_docs.py` fails when it
is out of date. Write a first spec from sample files with `mlops-assets spec infer`, check one with
`mlops-assets spec check FILE` (errors name the field, e.g.
`features.numeric.amount.min: Input should be a valid number`).

Beyond each field's own rules, the spec is checked as a whole: the estimator must support the task and
accept its `params`; gate metrics must be computed for the task (and the classes) and sit under `floors`
(higher is better) or `ceilings` (lower is better) within the metric's range; features may not reuse the
timestamp, id, target or a `pii` column; `holdout_days` < `window_days`; a duplicate YAML key is refused.
`<column>` stands for a column name.
"""  # noqa: E501 - the lines of the generated page, as written to docs/spec.md


def render_markdown(rows: list[Row] | None = None) -> str:
    rows = spec_rows() if rows is None else rows
    sections = {r.path: r for r in rows if r.section and "." not in r.path}
    groups: dict[str, list[Row]] = {"": [], **{name: [] for name in sections}}
    for row in rows:
        top = row.path.split(".")[0]
        if row.path not in sections:
            groups[top if top in sections else ""].append(row)
    out = [INTRO]
    for top, members in groups.items():
        out.append(f"\n## `{top}`\n\n{sections[top].meaning}\n" if top else "\n## Top level\n")
        out.append(
            "| field | type | default | meaning | example |\n| --- | --- | --- | --- | --- |"
        )
        out += [
            f"| `{r.path}` | {_cell(r.kind)} | {_cell(r.default)} | {_cell(r.meaning)} |"
            f" {_cell(r.example)} |"
            for r in members
        ]
    return "\n".join(out) + "\n"


def main() -> int:
    sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
