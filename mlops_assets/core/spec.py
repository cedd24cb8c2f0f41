"""The dataset spec: one YAML file that describes a dataset and its model.

Validated at load so that every error names the offending field
(``features.numeric.amount.min: ...``): the YAML loader refuses duplicate keys (naming the key
and both lines) and leaves an impossible date as text for its field to reject; pydantic checks
each field; ``spec_problems`` then checks what needs the task: the estimator and its parameters
(``estimators``), the metric names of the gates and their ranges (``metrics_catalog``). Nothing
here imports the ML stack.

``pii`` columns never rest in the clear (``pii_mode``): with ``hash`` (the default) each value is
replaced by its HMAC-SHA256 under the key in ``$MLOPS_PII_KEY`` before anything is written (raw
rows and quarantine records), so equal values still match; without a key, and always with
``drop``, the values are dropped (the columns stay, empty, so the stored schema never depends on
the key).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Hashable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlops_assets.core.metrics_catalog import (
    DEFAULT_PRIMARY_METRIC,
    classification_metric_names,
    higher_is_better,
    metric_range_problem,
    task_metric_names,
)
from mlops_assets.core.spec_sections import (  # noqa: F401  (re-exported: the spec's sections)
    CALENDAR_FEATURES,
    CategoricalColumn,
    Drift,
    Estimation,
    Features,
    Freshness,
    Gates,
    Guard,
    LabelFeed,
    Landing,
    Leakage,
    Maintenance,
    Model,
    NumericColumn,
    Sensors,
    Training,
    Volume,
    _Strict,
)
from mlops_assets.model.estimators import estimator_problem, params_problems

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"  # the bundled example specs
BUNDLED_SPEC = SPECS_DIR / "card_transactions.yaml"
# Dagster's rules for asset owners and tags (what its UI accepts), checked here so the error
# names the field.
OWNER_PATTERN = re.compile(r"team:[A-Za-z0-9_.-]+|[^@\s:]+@[^@\s]+\.[^@\s]+")
TAG_KEY_PATTERN = re.compile(r"([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}")
TAG_VALUE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{0,63}")


def class_slug(label: str | int) -> str:
    """A class label as a column-name suffix (``probability__<slug>``): letters, digits and
    ``_``."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in str(label))


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file and the field."""


class DatasetSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    task: Literal["classification", "regression"]
    landing: Landing
    timestamp: str
    id: str
    target: str
    classes: list[StrictStr | StrictInt] | None = Field(
        default=None,
        description=(
            "classification: the target's labels (strings or integers), in a fixed order; the data"
            " contract rejects any other value. Two classes: binary, the second listed is the"
            " positive class. More: multiclass. Omitted: binary with 0/1 labels"
        ),
    )
    target_min: float | None = Field(
        default=None, description="regression: least target value; predictions are clipped"
    )
    target_max: float | None = Field(
        default=None, description="regression: greatest target value; predictions are clipped"
    )
    features: Features
    pii: list[str] = Field(default_factory=list)
    # hash: HMAC-SHA256 with $MLOPS_PII_KEY (dropped without it)
    pii_mode: Literal["hash", "drop"] = "hash"
    labels: LabelFeed | None = None
    schema_evolution: Literal["ignore", "merge", "reject"] = "ignore"
    partition_start: dt.date
    training: Training
    model: Model
    gates: Gates = Field(default_factory=Gates)
    drift: Drift = Field(default_factory=Drift)
    volume: Volume = Field(default_factory=Volume)
    freshness: Freshness = Field(default_factory=Freshness)
    guard: Guard = Field(default_factory=Guard)
    estimation: Estimation = Field(default_factory=Estimation)
    maintenance: Maintenance = Field(default_factory=Maintenance)
    sensors: Sensors = Field(default_factory=Sensors)
    fallback: Literal["last_known_good", "baseline"] = "last_known_good"
    kill_switch: bool = False
    owners: list[str] = Field(
        default_factory=list,
        description=(
            "who answers for this dataset's assets: `team:<name>` or an email; shown on every asset"
            " and check in the Dagster UI and named in every alert"
        ),
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Dagster asset tags put on every asset (`key: value`; keys and values of letters,"
            " digits, `-`, `_`, `.`, at most 63 characters; keys may have a `prefix/`)"
        ),
    )

    @model_validator(mode="after")
    def _columns_consistent(self) -> DatasetSpec:
        feats = set(self.features.numeric) | set(self.features.categorical)
        reserved = {self.timestamp, self.id, self.target}
        clash = feats & reserved
        if clash:
            raise ValueError(
                f"features may not reuse the timestamp, id or target column: {sorted(clash)}"
            )
        leaked = feats & set(self.pii)
        if leaked:
            raise ValueError(f"pii columns may not be features: {sorted(leaked)}")
        if self.pii and (set(self.pii) & reserved):
            raise ValueError("pii may not name the timestamp, id or target column")
        return self

    @field_validator("owners")
    @classmethod
    def _owners_are_teams_or_emails(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not OWNER_PATTERN.fullmatch(o)]
        if bad:
            raise ValueError(
                f"{bad}: an owner is `team:<name>` (letters, digits, `-`, `_`, `.`) or an email"
                " address"
            )
        return v

    @field_validator("tags")
    @classmethod
    def _tags_are_dagster_tags(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [
            f"{k}: {t}"
            for k, t in v.items()
            if not TAG_KEY_PATTERN.fullmatch(k) or not TAG_VALUE_PATTERN.fullmatch(t)
        ]
        if bad:
            raise ValueError(
                f"{bad}: tag keys and values are letters, digits, `-`, `_`, `.` (at most 63"
                " characters; a key may have one `prefix/`); values may be empty"
            )
        return v

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_are_labels(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return v
        if info.data.get("task") == "regression":
            raise ValueError(
                "classes are the labels of a classification target; this spec's task is regression"
            )
        if not isinstance(v, list) or len(v) < 2:
            raise ValueError("list at least two classes (or omit classes for a binary 0/1 target)")
        if any(isinstance(c, bool) for c in v):
            raise ValueError(
                f"{v}: YAML reads yes/no/true/false as booleans; quote the class names"
            )
        if not all(isinstance(c, str | int) for c in v) or len({type(c) for c in v}) > 1:
            raise ValueError(f"{v}: classes are either all strings or all integers")
        if len(set(v)) < len(v) or len({class_slug(c) for c in v}) < len(v):
            raise ValueError(
                f"{v}: classes must be distinct (also as column suffixes:"
                f" {[class_slug(c) for c in v]})"
            )
        if any(isinstance(c, str) and not c.strip() for c in v):
            raise ValueError("a class name may not be empty")
        return v

    @field_validator("gates")
    @classmethod
    def _gate_metrics_suit_the_classes(cls, v: Gates, info: ValidationInfo) -> Gates:
        """Binary and multiclass models compute different metrics (``metrics_catalog``)."""
        if info.data.get("task") != "classification" or "classes" not in info.data:
            return v
        multiclass = len(info.data["classes"] or ()) > 2
        known = classification_metric_names(multiclass)
        named = [*(f"floors.{m}" for m in v.floors), *(f"ceilings.{m}" for m in v.ceilings)]
        named += [f"primary_metric.{v.primary_metric}"] if v.primary_metric else []
        # a name no classifier computes is left to spec_problems (which names its field)
        wrong = [
            n
            for n in named
            if n.split(".", 1)[1] in task_metric_names("classification")
            and n.split(".", 1)[1] not in known
        ]
        if wrong:
            kind = "multiclass" if multiclass else "binary"
            raise ValueError(
                f"{wrong}: not computed for {kind} classification (classes:"
                f" {info.data['classes']}); expected metrics among {list(known)}"
            )
        return v

    # ---- derived facts (one place each) -------------------------------------------------
    @property
    def target_classes(self) -> list[str | int]:
        """Classification: the declared ``classes`` or ``[0, 1]``. A class's code (what the
        features, the training set and the model hold) is its index here."""
        if self.task != "classification":
            return []
        return list(self.classes) if self.classes else [0, 1]

    @property
    def multiclass(self) -> bool:
        return len(self.target_classes) > 2

    @property
    def named_classes(self) -> bool:
        """Whether the target's labels are declared (``classes``), rather than the default 0/1."""
        return self.task == "classification" and self.classes is not None

    @property
    def numeric_features(self) -> list[str]:
        return list(self.features.numeric)

    @property
    def categorical_features(self) -> list[str]:
        return list(self.features.categorical)

    @property
    def calendar_features(self) -> list[str]:
        return list(self.features.calendar)

    @property
    def model_features(self) -> list[str]:
        """Columns the model sees, in a fixed order."""
        return self.numeric_features + self.calendar_features + self.categorical_features

    @property
    def target_in_events(self) -> bool:
        return self.labels is None

    @property
    def label_target(self) -> str:
        return self.labels.target if self.labels and self.labels.target else self.target

    @property
    def event_columns(self) -> list[str]:
        """Columns every landing file must carry (the schema contract)."""
        cols = [
            self.id,
            self.timestamp,
            *self.numeric_features,
            *self.categorical_features,
            *self.pii,
        ]
        if self.target_in_events:
            cols.append(self.target)
        return cols

    @cached_property
    def digest(self) -> str:
        # What the spec file says: fields left at their defaults are out (the defaults are code,
        # recorded by the lineage's git sha), so a release that adds a field keeps the digest of
        # every spec not using it.
        return hashlib.sha256(self.model_dump_json(exclude_defaults=True).encode()).hexdigest()

    def resolve(self, path: str, home: Path) -> Path:
        p = Path(os.path.expandvars(path)).expanduser()
        return p if p.is_absolute() else home / p


def _format_errors(source: str, err: ValidationError) -> str:
    return _format_problems(
        source, [(".".join(str(p) for p in e["loc"]) or "<root>", e["msg"]) for e in err.errors()]
    )


def _format_problems(source: str, problems: list[tuple[str, str]]) -> str:
    return "\n".join(
        [f"invalid dataset spec {source}:", *(f"  {field}: {msg}" for field, msg in problems)]
    )


def _gate_bound_problems(spec: DatasetSpec) -> list[tuple[str, str]]:
    known, out = task_metric_names(spec.task), []
    for kind, bounds, higher in (
        ("floors", spec.gates.floors, True),
        ("ceilings", spec.gates.ceilings, False),
    ):
        for metric, value in bounds.items():
            field = f"gates.{kind}.{metric}"
            if metric not in known:
                out.append(
                    (
                        field,
                        (
                            f"{metric!r} is not computed for {spec.task}; expected one of"
                            f" {list(known)}"
                        ),
                    )
                )
            elif higher_is_better(metric) != higher:
                other = "ceilings" if higher else "floors"
                direction = "lower" if higher else "higher"
                out.append(
                    (field, f"{metric} is {direction}-is-better: put it under gates.{other}")
                )
            elif problem := metric_range_problem(metric, value):
                out.append((field, problem))
    return out


def spec_problems(spec: DatasetSpec) -> list[tuple[str, str]]:
    """(field, why) for what a field alone cannot check: the estimator and its params for the
    task, the gates' metric names, directions and ranges, and thresholds on the primary
    metric."""
    out: list[tuple[str, str]] = []
    if problem := estimator_problem(spec.model.estimator, spec.task):
        out.append(("model.estimator", problem))
    else:
        out += [
            (f"model.params.{p}", why)
            for p, why in params_problems(
                spec.model.estimator, spec.task, spec.model.params
            ).items()
        ]
    out += _gate_bound_problems(spec)
    primary, known = (
        spec.gates.primary_metric or DEFAULT_PRIMARY_METRIC[spec.task],
        task_metric_names(spec.task),
    )
    if primary not in known:
        why = f"{primary!r} is not computed for {spec.task}; expected one of {list(known)}"
        out.append(("gates.primary_metric", why))
    else:
        for field, value in (
            ("gates.slice_floor", spec.gates.slice_floor),
            ("guard.floor", spec.guard.floor),
        ):
            if value is not None and (problem := metric_range_problem(primary, value)):
                out.append((field, f"{problem} (a threshold on the primary metric {primary})"))
    if spec.gates.max_calibration_error is not None and (
        problem := metric_range_problem("calibration_error", spec.gates.max_calibration_error)
    ):
        out.append(("gates.max_calibration_error", problem))
    out += _evidence_field_problems(spec)
    return out


def _evidence_field_problems(spec: DatasetSpec) -> list[tuple[str, str]]:
    """Target bounds: regression only, ordered; the leakage allow-list: model features only."""
    lo, hi, unknown = (
        spec.target_min,
        spec.target_max,
        sorted(set(spec.gates.leakage.allow) - set(spec.model_features)),
    )
    out = [
        (f, f"bounds a regression target, not {spec.task}")
        for f, v in (("target_min", lo), ("target_max", hi))
        if v is not None and spec.task != "regression"
    ]
    out += (
        [("target_min", f"{lo:g} is greater than target_max ({hi:g})")]
        if None not in (lo, hi) and lo > hi
        else []
    )
    return out + (
        [("gates.leakage.allow", f"{unknown} are not model features {spec.model_features}")]
        if unknown
        else []
    )


def parse_spec(data: Any, source: str = "<spec>") -> DatasetSpec:
    if not isinstance(data, dict):
        raise SpecError(
            f"invalid dataset spec {source}: the top level must be a mapping, got"
            f" {type(data).__name__}"
        )
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_errors(source, err)) from None
    if problems := spec_problems(spec):
        raise SpecError(_format_problems(source, problems))
    return spec


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, field: str, first_line: int, line: int):
        self.field = field
        self.reason = (
            f"duplicate key {field.rpartition('.')[2]!r} at line {line} (first at line"
            f" {first_line}); the later value would silently win: keep one"
        )
        super().__init__(f"{field}: {self.reason}")


class SpecLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when built in
    """A safe loader that refuses a duplicate mapping key (naming its field path and both lines) and
    leaves an impossible date (``2026-02-30``) as text, so the field's own validation names it."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self._paths: dict[int, str] = {}
        self._index_paths(node, "")
        return self.construct_document(node)

    def _index_paths(self, node: yaml.Node, path: str) -> None:
        self._paths[id(node)] = path
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    self._index_paths(value, f"{path}.{key.value}" if path else str(key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._index_paths(item, f"{path}.{i}" if path else str(i))

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                continue  # the base constructor refuses it with its own message
            if key in seen:
                parent = getattr(self, "_paths", {}).get(id(node), "")
                raise DuplicateKeyError(f"{parent}.{key}" if parent else str(key), seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:  # 2026-02-30: a date-shaped string that is no date
            return self.construct_scalar(node)


SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", SpecLoader.construct_yaml_timestamp)


def load_spec(path: str | os.PathLike[str] | None = None) -> DatasetSpec:
    """Load the spec at ``path``, else ``$MLOPS_SPEC``, else the bundled default."""
    p = Path(path or os.environ.get("MLOPS_SPEC") or BUNDLED_SPEC)
    try:
        text = p.read_text()
    except OSError as err:
        raise SpecError(f"cannot read dataset spec {p}: {err.strerror}") from None
    try:
        data = yaml.load(text, Loader=SpecLoader)  # a safe loader: no Python objects
    except DuplicateKeyError as err:
        raise SpecError(_format_problems(str(p), [(err.field, err.reason)])) from None
    except yaml.YAMLError as err:
        raise SpecError(f"dataset spec {p} is not valid YAML: {err}") from None
    return parse_spec(data, str(p))
