"""A dataset spec inferred from sample files, and the lint of a spec (``mlops-assets spec infer``
/ ``check``).

``infer_spec(frame, opts)`` writes down what a sample shows as a spec — types, ranges, categories,
PII, drift exclusions, the task — every choice with the evidence beside it, as a YAML comment,
for a person to review; leakage suspects are left out of the features. ``spec_lints(spec)``
lists what validates but is likely a mistake. Pure polars + numpy; the only I/O is
``read_sample``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from mlops_assets.core.spec import CALENDAR_FEATURES, DatasetSpec
from mlops_assets.data.readers import file_format
from mlops_assets.model.leakage_scan import Leak, leakage_suspects

DAY_LEVEL_CALENDAR = (
    "day_of_week",
    "is_weekend",
    "day_of_month",
    "month",
)  # one value per daily partition
PII_SHARE = 0.8  # share of a column's non-null values that must match a PII pattern
DEFAULT_FLOORS = {
    "roc_auc": 0.6,
    "r2": 0.1,
}  # "better than a guess" until the owner sets real floors


# ---- reading samples
# --------------------------------------------------------------------------------
def read_sample(path: Path) -> pl.DataFrame:
    """A CSV (typed by inference, ``NA`` and empty as null) or Parquet sample file."""
    fmt = file_format(path)
    if fmt == "csv":
        return pl.read_csv(
            path, infer_schema_length=None, null_values=["", "NA", "NaN", "null", "NULL"]
        )
    if fmt == "parquet":
        return pl.read_parquet(path)
    raise ValueError(f"{path}: cannot read .{fmt} samples; expected .csv or .parquet")


def read_samples(paths: Sequence[Path]) -> pl.DataFrame:
    frames = [read_sample(Path(p)) for p in paths]
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


# ---- PII by value patterns
# ----------------------------------------------------------------------------
EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
PHONE = r"^\+?[0-9(][0-9 ().-]{5,}[0-9]$"
DATE_LIKE = r"^\d{4}-\d{2}-\d{2}"


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return digits.isdigit() and 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_phone(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    return (
        bool(re.match(PHONE, text))
        and not re.match(DATE_LIKE, text)
        and 7 <= digits <= 15
        and (text.startswith("+") or any(sep in text for sep in " ().-"))
    )


PII_PATTERNS = {
    "an e-mail address": lambda t: bool(re.match(EMAIL, t)),
    "a card number (Luhn-valid)": _is_card,
    "a phone number": _is_phone,
}


def pii_kind(values: pl.Series, limit: int = 1000) -> str | None:
    """The PII pattern at least ``PII_SHARE`` of the (first ``limit``) non-null values match, or
    None.
    """
    if not (values.dtype == pl.String or values.dtype.is_integer()):
        return None
    texts = [str(v).strip() for v in values.drop_nulls().head(limit).to_list()]
    if not texts:
        return None
    for kind, matches in PII_PATTERNS.items():
        if values.dtype.is_integer() and kind != "a card number (Luhn-valid)":
            continue
        if sum(map(matches, texts)) >= PII_SHARE * len(texts):
            return kind
    return None


# ---- columns
# ----------------------------------------------------------------------------------------
@dataclass
class Inferred:
    """An inferred spec: the data (``spec``), a YAML comment per dotted field (``comments``) and the
    columns left out with why (``left_out``); ``to_yaml()`` writes it for review."""

    spec: dict[str, Any]
    comments: dict[str, str] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        lines = [f"# {h}" for h in self.header]
        lines += _emit(self.spec, 0, "", self.comments)
        if self.left_out:
            lines += [
                "",
                (
                    "# Left out of the features (add one back under features: only if it is known"
                    " when the prediction is made):"
                ),
            ]
            lines += [f"#   {col}: {why}" for col, why in self.left_out]
        return "\n".join(lines) + "\n"


FLOW_PARENTS = ("features.numeric", "features.categorical")  # one line per column


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=1 << 30, allow_unicode=True
    )
    return text.strip().removesuffix("...").strip()


def _emit(data: dict, indent: int, path: str, comments: dict[str, str]) -> list[str]:
    """Block YAML of ``data`` with a trailing comment per dotted path; columns and lists on one
    line.
    """
    lines, pad = [], "  " * indent
    for key, value in data.items():
        here = f"{path}.{key}" if path else str(key)
        note = f"  # {comments[here]}" if here in comments else ""
        if isinstance(value, dict) and value and path not in FLOW_PARENTS:
            lines.append(f"{pad}{_scalar(key)}:{note}")
            lines += _emit(value, indent + 1, here, comments)
        else:
            lines.append(f"{pad}{_scalar(key)}: {_scalar(value)}{note}")
    return lines


def _nice(value: float, span: float, up: bool, integer: bool) -> float | int:
    """``value`` rounded outward to two significant digits of ``span`` (whole numbers for
    integers)."""
    step = 10 ** (math.floor(math.log10(span)) - 1) if span > 0 else 1
    step = max(step, 1) if integer else step
    out = (math.ceil if up else math.floor)(value / step) * step
    return int(out) if integer or float(out).is_integer() else round(out, 10)


def numeric_column(values: pl.Series, margin: float) -> tuple[dict, str]:
    """(spec entry, evidence) of a numeric column: dtype, widened range, nullability."""
    finite = values.cast(pl.Float64).drop_nulls().drop_nans()
    lo, hi, integer = float(finite.min()), float(finite.max()), values.dtype.is_integer()
    span = hi - lo or abs(hi) or 1.0
    if lo >= 0 and hi <= 1 and not integer:
        low, high = 0, 1
    else:
        low = _nice(lo - margin * span, span, False, integer)
        high = _nice(hi + margin * span, span, True, integer)
        low = max(low, 0) if lo >= 0 else low
    entry: dict[str, Any] = {"dtype": "int"} if integer else {}
    entry.update(min=low, max=high)
    nulls = values.null_count() + (int(values.is_nan().sum()) if values.dtype.is_float() else 0)
    if nulls:
        entry["nullable"] = True
    seen = f"sample {lo:g}..{hi:g}" + (f", {nulls} null" if nulls else "")
    return entry, seen


def _constant_within_days(values: pl.Series, days: pl.Series) -> bool:
    frame = pl.DataFrame({"v": values.cast(pl.String), "d": days})
    per_day = frame.group_by("d").agg(pl.col("v").n_unique())
    return days.n_unique() > 1 and int(per_day["v"].max()) <= 1


def _as_datetime(values: pl.Series) -> pl.Series:
    """Dates and times as naive UTC (text with an offset is converted); text that does not parse is
    null.
    """
    if values.dtype == pl.String:
        try:
            values = values.str.strip_chars().str.to_datetime(strict=False, time_unit="us")
        except pl.exceptions.ComputeError:  # no common format at all
            return pl.Series(values.name, [None] * values.len(), dtype=pl.Datetime("us"))
    if isinstance(values.dtype, pl.Datetime) and values.dtype.time_zone:
        values = values.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return values.cast(pl.Datetime("us")) if values.dtype == pl.Date else values


def detect_timestamp(frame: pl.DataFrame, exclude: set[str]) -> str:
    for col in frame.columns:
        s = frame[col]
        if col in exclude or s.null_count() == s.len():
            continue
        if isinstance(s.dtype, pl.Datetime | pl.Date):
            return col
        if (
            s.dtype == pl.String
            and s.drop_nulls().str.contains(r"^\s*\d{4}-\d{2}-\d{2}").all()
            and _as_datetime(s.drop_nulls()).null_count() == 0
        ):
            return col
    raise ValueError(
        "no timestamp column found (a datetime, or text such as 2026-01-31 12:00:00): pass"
        " --timestamp"
    )


def detect_id(frame: pl.DataFrame, exclude: set[str]) -> str:
    unique = [
        c
        for c in frame.columns
        if c not in exclude
        and frame[c].null_count() == 0
        and frame[c].n_unique() == frame.height
        and (frame[c].dtype == pl.String or frame[c].dtype.is_integer())
    ]
    named = [c for c in unique if c.lower() == "id" or c.lower().endswith(("_id", "id"))]
    if named or unique:
        return (named or unique)[0]
    raise ValueError("no column is unique per row (an event id): pass --id")


def target_task(values: pl.Series, max_classes: int = 20) -> tuple[str, list | None, str]:
    """(task, classes or None, evidence) from the target's values."""
    distinct = values.drop_nulls().unique().sort().to_list()
    if values.dtype == pl.Boolean or set(distinct) <= {0, 1}:
        return "classification", None, "binary 0/1 target"
    if values.dtype == pl.String or (values.dtype.is_integer() and len(distinct) <= max_classes):
        if len(distinct) > max_classes:
            raise ValueError(
                f"target has {len(distinct)} distinct text values: too many classes to infer"
            )
        kind = "multiclass" if len(distinct) > 2 else "binary"
        return "classification", distinct, f"{kind}: {len(distinct)} distinct values"
    return "regression", None, f"numeric target with {len(distinct)} distinct values"


@dataclass(frozen=True)
class InferOptions:
    target: str
    timestamp: str | None = None
    id: str | None = None
    name: str = "my_dataset"
    landing: str | None = None  # default landing/<name>/events (under $MLOPS_HOME)
    formats: tuple[str, ...] = ("csv", "parquet")
    # a delayed label feed's folder: labels are then not expected in the events
    labels: str | None = None
    label_delay: int = 1
    window_days: int = 28
    holdout_days: int | None = None  # default a quarter of the window
    margin: float = 0.25
    max_categories: int = 30
    max_open_categories: int = 1000
    seed: int = 0


def _roles(frame: pl.DataFrame, opts: InferOptions) -> tuple[str, str]:
    for given in (opts.target, opts.timestamp, opts.id):
        if given is not None and given not in frame.columns:
            raise ValueError(f"no column {given!r} in the sample; columns: {frame.columns}")
    ts = opts.timestamp or detect_timestamp(frame, {opts.target})
    return ts, opts.id or detect_id(frame, {opts.target, ts})


def _column_entry(s: pl.Series, opts: InferOptions) -> tuple[str, dict | str, str]:
    """(kind, entry or why, evidence) of one candidate column: kind numeric | categorical | pii
    | out."""
    if s.null_count() == s.len():
        return "out", "always null in the sample", ""
    if kind := pii_kind(s):
        return "pii", {}, f"values look like {kind}"
    if isinstance(s.dtype, pl.Datetime | pl.Date | pl.Time | pl.Duration):
        return "out", "a date/time column (only the timestamp feeds the calendar features)", ""
    if s.drop_nulls().n_unique() <= 1:
        return "out", f"constant in the sample ({s.drop_nulls()[0]!r})", ""
    if s.dtype.is_numeric():
        entry, seen = numeric_column(s, opts.margin)
        return "numeric", entry, seen
    text = s.cast(pl.String)
    distinct, rows = text.drop_nulls().n_unique(), text.drop_nulls().len()
    entry = {"nullable": True} if text.null_count() else {}
    if distinct <= opts.max_categories:
        return (
            "categorical",
            {"allowed": sorted(text.drop_nulls().unique().to_list()), **entry},
            f"{distinct} values seen",
        )
    if distinct <= opts.max_open_categories and distinct <= rows / 2:
        return (
            "categorical",
            entry,
            f"{distinct} values seen: no allowed list (any value passes the contract)",
        )
    return "out", f"identifier-like text ({distinct} distinct values in {rows} rows)", ""


def _columns(
    frame: pl.DataFrame, skip: set[str], opts: InferOptions, out: Inferred
) -> dict[str, dict]:
    kinds: dict[str, dict] = {"numeric": {}, "categorical": {}, "pii": {}}
    for col in frame.columns:
        if col in skip:
            continue
        kind, entry, seen = _column_entry(frame[col], opts)
        if kind == "out":
            out.left_out.append((col, str(entry)))
            continue
        kinds[kind][col] = entry
        if seen:
            out.comments[f"features.{kind}.{col}" if kind != "pii" else f"pii.{col}"] = seen
    return kinds


def _calendar(ts: pl.Series) -> list[str]:
    hours = ts.dt.hour().n_unique() > 1
    return (["hour"] if hours else []) + ["day_of_week", "is_weekend"]


def _training(days: int, opts: InferOptions, out: Inferred) -> dict:
    window = max(2, opts.window_days)
    holdout = opts.holdout_days or max(1, window // 4)
    out.comments["training.window_days"] = f"the sample spans {days} day(s)"
    return {
        "window_days": window,
        "holdout_days": min(holdout, window - 1),
        "seed": opts.seed,
        "cadence_days": 7,
    }


def infer_spec(frame: pl.DataFrame, opts: InferOptions, sources: Sequence[str] = ()) -> Inferred:
    """The spec a sample suggests, every choice commented with its evidence.

    - **types, ranges, nullability**: numeric columns keep their integer/float type and the
      sample's range widened by ``margin`` of its span (never below 0 for a column that never
      is); ``nullable`` when the sample has a null.
    - **categories**: a text column with at most ``max_categories`` values lists them as
      ``allowed``; up to ``max_open_categories`` values (and not nearly unique) it is a
      categorical with no allowed list; beyond, identifier-like, it is left out.
    - **PII** by value patterns (``PII_PATTERNS``: e-mail addresses, phone numbers, Luhn-valid
      card numbers), whatever the column is called: listed under ``pii``, never a feature.
    - **drift.exclude**: features constant within every day of the sample (and the day-level
      calendar features): each daily partition holds one value, so they would always "drift".
    - **task**: a 0/1 target is binary classification; few distinct text or integer values are
      classification with ``classes``; any other number is regression.
    - **leakage suspects are left out of the features** (``model.leakage_scan``): a column that
      alone predicts the target almost perfectly, and a few numeric columns the target is a
      linear function of.
    """
    ts_col, id_col = _roles(frame, opts)
    ts = _as_datetime(frame[ts_col])
    if ts.null_count() == ts.len():
        raise ValueError(f"timestamp column {ts_col!r} does not parse as dates and times")
    frame, days = frame.with_columns(ts.alias(ts_col)), ts.dt.date()
    task, classes, why_task = target_task(frame[opts.target])
    out = Inferred(
        spec={},
        header=[
            (
                f"Inferred by `mlops-assets spec infer` from {frame.height} rows of"
                f" {', '.join(sources) or 'a sample'}."
            ),
            (
                f"Review every line: ranges are the sample's widened by {opts.margin:.0%} of their"
                " span, categories are those seen, leakage suspects are left out (see the end)."
            ),
            (
                "Add `owners: [team:<name>, <you>@<domain>]`: they are shown on every asset and"
                " check and named in alerts."
            ),
        ],
    )
    kinds = _columns(frame, {ts_col, id_col, opts.target}, opts, out)
    features = [*kinds["numeric"], *kinds["categorical"]]
    leaks = leakage_suspects(
        frame,
        opts.target,
        features,
        seed=opts.seed,
        classes=(classes or [0, 1]) if task == "classification" else None,
    )
    out.leaks = leaks
    for leak in leaks:
        for col in leak.columns:
            kinds["numeric"].pop(col, None)
            kinds["categorical"].pop(col, None)
            out.comments.pop(f"features.numeric.{col}", None)
            out.comments.pop(f"features.categorical.{col}", None)
            out.left_out.append((col, f"leakage suspect: {leak.why}"))
    calendar = _calendar(ts.drop_nulls())
    day_level = [
        c
        for c in [*kinds["numeric"], *kinds["categorical"]]
        if _constant_within_days(frame[c], days)
    ]
    out.spec = _assemble(
        opts, ts_col, id_col, task, classes, kinds, calendar, day_level, days, frame, out
    )
    out.comments["task"] = why_task
    if day_level:
        out.comments["drift.exclude"] = (
            f"constant within every day of the sample: {', '.join(day_level)}"
        )
    return out


def _assemble(
    opts, ts_col, id_col, task, classes, kinds, calendar, day_level, days, frame, out
) -> dict:
    spec: dict[str, Any] = {"name": opts.name, "task": task}
    if classes is not None and "classes" in DatasetSpec.model_fields:
        spec["classes"] = classes
    spec.update(
        landing={
            "path": opts.landing or f"landing/{opts.name}/events",
            "formats": list(opts.formats),
        },
        timestamp=ts_col,
        id=id_col,
        target=opts.target,
    )
    target = frame[opts.target]
    if (
        task == "regression"
        and "target_min" in DatasetSpec.model_fields
        and float(target.min()) >= 0
    ):
        spec["target_min"] = 0
        lo, hi = float(target.min()), float(target.max())
        out.comments["target_min"] = (
            f"the sample's target is never negative (sample {lo:g}..{hi:g})"
        )
    spec["features"] = {
        k: v
        for k, v in (
            ("numeric", kinds["numeric"]),
            ("categorical", kinds["categorical"]),
            ("calendar", calendar),
        )
        if v
    }
    if kinds["pii"]:
        spec["pii"] = list(kinds["pii"])
        out.comments["pii"] = "; ".join(
            f"{c}: {out.comments.pop(f'pii.{c}')}" for c in kinds["pii"]
        )
    if opts.labels:
        spec["labels"] = {"path": opts.labels, "id": id_col, "delay_days": opts.label_delay}
    spec["partition_start"] = days.min()
    out.comments["partition_start"] = f"the sample's first day (last: {days.max()})"
    spec["training"] = _training(days.n_unique(), opts, out)
    spec["model"] = {"registered_name": opts.name, "estimator": "hist_gradient_boosting"}
    metric = "roc_auc" if task == "classification" else "r2"
    spec["gates"] = {"floors": {metric: DEFAULT_FLOORS[metric]}}
    out.comments["gates.floors"] = "barely better than a guess: set the floors your use needs"
    spec["drift"] = {"exclude": [*[c for c in calendar if c in DAY_LEVEL_CALENDAR], *day_level]}
    return {k: v for k, v in spec.items() if v != {}}


# ---- lint
# -------------------------------------------------------------------------------------------
def spec_lints(spec: DatasetSpec) -> list[tuple[str, str]]:
    """(field, warning) for what validates but is likely a mistake."""
    out: list[tuple[str, str]] = []
    for col, c in spec.features.numeric.items():
        if c.min is None and c.max is None:
            out.append(
                (f"features.numeric.{col}", "no min or max: the contract accepts any number")
            )
    for col, c in spec.features.categorical.items():
        if not c.allowed:
            out.append(
                (f"features.categorical.{col}", "no allowed list: any category passes the contract")
            )
    for cal in spec.features.calendar:
        if cal in DAY_LEVEL_CALENDAR and cal not in spec.drift.exclude:
            out.append(
                (
                    "drift.exclude",
                    (
                        f"{cal} is constant within a daily partition and always 'drifts': "
                        "add it to drift.exclude"
                    ),
                )
            )
    known = set(spec.model_features)
    out += [
        ("drift.exclude", f"{c!r} is not a feature") for c in spec.drift.exclude if c not in known
    ]
    if not spec.gates.floors and not spec.gates.ceilings:
        out.append(
            (
                "gates",
                "no floors or ceilings: the first candidate that trains is promoted, however poor",
            )
        )
    delay = spec.labels.delay_days if spec.labels else 0
    if delay + spec.training.holdout_days >= spec.training.window_days - 1:
        out.append(
            (
                "training.window_days",
                (
                    f"{spec.training.window_days} days leave at most one training day after "
                    f"the label delay ({delay}) and the holdout ({spec.training.holdout_days})"
                ),
            )
        )
    if set(CALENDAR_FEATURES) & known - set(spec.features.calendar):
        out.append(("features", "a column is named like a calendar feature: it would be shadowed"))
    return out
