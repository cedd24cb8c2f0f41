"""Landing files → typed raw rows + quarantine, under the spec's data contract.

Pure logic (polars only): no Dagster, no Delta. Every rejected file or row becomes a
quarantine record that names the partition, file, row, column, rule and reason and
carries the original record, so nothing is ever silently dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.data.features import in_order

# the landing zone's entries: listed without following links
from mlops_assets.data.readers import (
    READERS,
    FileRejected,
    LandingFile,
    admission_problem,
    landing_files,
    landing_root,
    partition_fingerprint,
    read_file,
)

SOURCE_FILE, SOURCE_ROW = "_source_file", "_source_row"
DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Contract rules, grouped by the asset check that reports them.
RULES_BY_CHECK: dict[str, tuple[str, ...]] = {
    "contract_schema": (
        "file_name",
        "not_a_file",
        "unreadable",
        "missing_column",
        "unexpected_column",
        "wrong_type",
    ),
    "contract_not_null": ("null",),
    "contract_ranges_and_categories": ("range", "category", "outside_partition"),
    "contract_unique_ids": ("duplicate_id",),
}

QUARANTINE_SCHEMA = {
    "ds": pl.String,
    "file": pl.String,
    "row": pl.Int64,
    "column": pl.String,
    "rule": pl.String,
    "reason": pl.String,
    "record": pl.String,
}


# ---------------------------------------------------------------------------------------
# Schema: what the contract says each column is
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contract:
    """What one landing feed promises: column types, required values, ranges, categories."""

    dtypes: dict[str, pl.DataType]
    required: tuple[str, ...]
    id: str
    ranges: dict[str, tuple[float | None, float | None]]
    allowed: dict[str, tuple]  # column -> allowed values (categories, or 0/1 for a binary target)
    timestamp: str | None = None  # events must fall on the partition date
    schema_evolution: str = "ignore"
    formats: tuple[str, ...] = tuple(READERS)
    pii: tuple[str, ...] = ()  # keyed-hashed or emptied before anything is written (protect_pii)
    pii_mode: str = "hash"  # hash | drop (spec.pii_mode)
    hints: tuple[
        tuple[str, str], ...
    ] = ()  # (column, what to do) appended to its wrong_type reasons

    def pii_key(self, key: bytes | None) -> bytes | None:
        """The key PII is hashed with: None (values dropped) in drop mode or when no key is
        configured.
        """
        return key if self.pii_mode == "hash" else None

    def empty_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            schema={
                **self.dtypes,
                SOURCE_FILE: pl.String(),
                SOURCE_ROW: pl.Int64(),
                "ds": pl.String(),
            }
        )


def target_dtype(spec: DatasetSpec) -> pl.DataType:
    """The target's type in the raw tables: Float64 (regression), Int64 (0/1 or integer
    ``classes``),
    String (string ``classes``)."""
    if spec.task != "classification":
        return pl.Float64()
    return pl.String() if any(isinstance(c, str) for c in spec.target_classes) else pl.Int64()


def _target_rules(
    spec: DatasetSpec, column: str
) -> tuple[dict[str, tuple], tuple[tuple[str, str], ...]]:
    """(allowed values, wrong_type hint) of the target column: a classification target takes only
    its classes; an undeclared one is binary 0/1, and its hint says how to declare other labels."""
    if spec.task != "classification":
        return {}, ()
    hint = (
        ()
        if spec.named_classes
        else (
            (
                column,
                (
                    "a classification target without `classes` is binary 0/1; "
                    "declare the labels in the spec's top-level `classes: [...]`"
                ),
            ),
        )
    )
    return {column: tuple(spec.target_classes)}, hint


def event_contract(spec: DatasetSpec) -> Contract:
    types: dict[str, pl.DataType] = {spec.id: pl.String(), spec.timestamp: pl.Datetime("us")}
    for name, col in spec.features.numeric.items():
        types[name] = pl.Int64() if col.dtype == "int" else pl.Float64()
    types.update({name: pl.String() for name in [*spec.features.categorical, *spec.pii]})
    required = [spec.id, spec.timestamp]
    required += [n for n, c in spec.features.numeric.items() if not c.nullable]
    required += [n for n, c in spec.features.categorical.items() if not c.nullable]
    allowed = {n: tuple(c.allowed) for n, c in spec.features.categorical.items() if c.allowed}
    hints: tuple[tuple[str, str], ...] = ()
    if spec.target_in_events:
        types[spec.target] = target_dtype(spec)
        required.append(spec.target)
        target_allowed, hints = _target_rules(spec, spec.target)
        allowed.update(target_allowed)
    ranges = {n: (c.min, c.max) for n, c in spec.features.numeric.items()}
    return Contract(
        types,
        tuple(required),
        spec.id,
        ranges,
        allowed,
        spec.timestamp,
        spec.schema_evolution,
        tuple(spec.landing.formats),
        tuple(spec.pii),
        spec.pii_mode,
        hints,
    )


def label_contract(spec: DatasetSpec) -> Contract:
    """The delayed label feed: id and target (extra columns are ignored)."""
    assert spec.labels is not None
    lab = spec.labels
    types = {lab.id: pl.String(), spec.label_target: target_dtype(spec)}
    allowed, hints = _target_rules(spec, spec.label_target)
    return Contract(types, (lab.id, spec.label_target), lab.id, {}, allowed, hints=hints)


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


# ---------------------------------------------------------------------------------------
# PII: never at rest in the clear
# ---------------------------------------------------------------------------------------
def pii_digest(value: str, key: bytes) -> str:
    """HMAC-SHA256 of a PII value under the deployment's key (hex): equal values give equal digests
    (counts and joins keep working), and without the key a digest cannot be matched to a value."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def protect_pii(frame: pl.DataFrame, columns: tuple[str, ...], key: bytes | None) -> pl.DataFrame:
    """``frame`` with its PII ``columns`` keyed-hashed with ``key``, or emptied (all null) when
    ``key``
    is None. The columns stay (as strings), so the stored schema does not depend on the key."""
    present = [c for c in columns if c in frame.columns]
    if key is None:
        return frame.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in present])
    return frame.with_columns([_digests(frame[c].cast(pl.String), key).alias(c) for c in present])


def _digests(values: pl.Series, key: bytes) -> pl.Series:
    """``pii_digest`` of every value, computed once per distinct value (the keyed state is set up
    once).
    """
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    distinct = values.drop_nulls().unique()

    def digest(value: str) -> str:
        h = keyed.copy()
        h.update(value.encode("utf-8"))
        return h.hexdigest()

    return values.replace_strict(
        distinct, [digest(v) for v in distinct.to_list()], default=None, return_dtype=pl.String
    )


# ---------------------------------------------------------------------------------------
# Reading one file
# ---------------------------------------------------------------------------------------
_TIME_WITH_OFFSET = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|UTC|utc|[+-]\d{2}(:?\d{2})?)$"
_OFFSET_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z")


def _timestamp_from_text(c: pl.Expr) -> pl.Expr:
    """Text timestamps as naive UTC. With an offset (``Z``, ``UTC``, ``+00:00``, ``+0200``, ``-05``;
    ``T`` or a
    space before the time) the instant is converted to UTC; without one the text is taken as UTC
    already (the
    format inferred as polars does). Both kinds may be mixed in one file; text that parses as
    neither is null."""
    text = c.str.strip_chars()
    has_offset = text.str.contains(_TIME_WITH_OFFSET)
    iso = (
        text.str.replace(r"\s*([zZ]|UTC|utc)$", "+00:00")
        .str.replace(r"\s+([+-]\d{2}(:?\d{2})?)$", "${1}")
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T")
    )
    aware = pl.coalesce(
        [iso.str.to_datetime(f, strict=False, time_unit="us") for f in _OFFSET_FORMATS]
    )
    naive = pl.when(~has_offset).then(text).str.to_datetime(strict=False, time_unit="us")
    return (
        pl.when(has_offset)
        .then(aware.dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        .otherwise(naive)
    )


def _typed(col: str, target: pl.DataType, source: pl.DataType) -> pl.Expr:
    c = pl.col(col)
    if target == pl.Datetime("us"):
        if source == pl.String:
            return _timestamp_from_text(c)
        if isinstance(source, pl.Datetime):
            return (
                c.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if source.time_zone else c
            ).cast(pl.Datetime("us"))
        return c.cast(pl.Datetime("us"), strict=False)
    if source == pl.String and target in (pl.Int64, pl.Float64):
        stripped = c.str.strip_chars()
        if target == pl.Int64:
            # accept "12" and "12.0" but not "12.5"
            as_float = stripped.cast(pl.Float64, strict=False)
            return (
                pl.when(as_float == as_float.floor())
                .then(as_float.cast(pl.Int64, strict=False))
                .otherwise(None)
            )
        return stripped.cast(pl.Float64, strict=False)
    if target == pl.String:
        return c.cast(pl.String, strict=False)
    if target == pl.Int64 and source.is_float():
        return pl.when(c == c.floor()).then(c.cast(pl.Int64, strict=False)).otherwise(None)
    return c.cast(target, strict=False)


# ---------------------------------------------------------------------------------------
# The contract over a partition
# ---------------------------------------------------------------------------------------
@dataclass
class IngestResult:
    day: str
    accepted: pl.DataFrame
    quarantine: pl.DataFrame
    files: list[dict]
    extra_columns: list[str]
    fingerprint: str


def _record_json(frame: pl.DataFrame) -> pl.Series:
    """Each row as one JSON object (the quarantine's ``record``), encoded by polars in one pass;
    times as text.
    """
    frame = frame.drop(SOURCE_ROW, strict=False)
    if frame.width == 0:
        return pl.Series([None] * frame.height, dtype=pl.String)
    cols = [
        pl.col(c).cast(pl.String) if frame.schema[c].is_temporal() else pl.col(c)
        for c in frame.columns
    ]
    return frame.select(pl.struct(cols).struct.json_encode()).to_series().cast(pl.String)


def _rejections(
    frame: pl.DataFrame,
    mask: pl.Series,
    day: str,
    file: str,
    rule: str,
    column: str,
    reason: pl.Expr | str,
):
    bad = frame.filter(mask)
    if bad.is_empty():
        return None
    reasons = (
        bad.select(reason).to_series()
        if isinstance(reason, pl.Expr)
        else pl.repeat(reason, bad.height, eager=True)
    )
    rows = pl.DataFrame(
        {"row": bad[SOURCE_ROW], "reason": reasons.cast(pl.String), "record": _record_json(bad)}
    )
    return rows.select(
        pl.lit(day, pl.String).alias("ds"),
        pl.lit(file, pl.String).alias("file"),
        pl.col("row").cast(pl.Int64),
        pl.lit(column, pl.String).alias("column"),
        pl.lit(rule, pl.String).alias("rule"),
        "reason",
        "record",
    )


def _file_rejection(day: str, file: str, err: FileRejected) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ds": [day],
            "file": [file],
            "row": [err.row],
            "column": [err.column],
            "rule": [err.rule],
            "reason": [err.reason],
            "record": [None],
        },
        schema=QUARANTINE_SCHEMA,
    )


_NULL_TEXT = ["nan", "null", "none", "na", ""]


def _cannot_fail(source: pl.DataType, target: pl.DataType) -> bool:
    """A value whose typing cannot fail: text to text, or a column already of its contract type."""
    return source == target or (target == pl.String and source == pl.String)


def _wrong_type(original: pl.DataFrame, typed: pl.DataFrame, col: str) -> pl.Series | None:
    """Rows whose value was present but did not type (None when there is none: the detailed test,
    text
    stripped and lower-cased, runs only on a column where some value became null in typing)."""
    raw = original[col]
    candidates = typed[col].is_null() & raw.is_not_null()
    if not candidates.any():
        return None
    present = candidates
    if raw.dtype == pl.String:
        text = raw.str.strip_chars()
        present = (
            present & (text != "") & ~text.str.to_lowercase().is_in(_NULL_TEXT).fill_null(False)
        )
    elif raw.dtype.is_float():
        present = present & ~raw.is_nan()
    return present if present.any() else None


def _partition_day(day: str):
    try:
        return dt.date.fromisoformat(day)
    except ValueError:
        return day


def validate_file(
    frame: pl.DataFrame, contract: Contract, day: str, file: str, pii_key: bytes | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Type and check one file's rows. Returns (accepted rows, quarantine rows, extra columns).

    Vectorised, and only what can fail is checked (text typed as text cannot be a wrong type; a
    value is
    re-examined only where typing turned it null). PII is protected first, so neither the
    accepted rows nor a
    quarantine record carries it in the clear."""
    frame = protect_pii(frame, contract.pii, contract.pii_key(pii_key))
    types = contract.dtypes
    missing = [c for c in types if c not in frame.columns]
    if missing:
        raise FileRejected(
            "missing_column", f"missing required column(s): {', '.join(missing)}", column=missing[0]
        )
    extra = [c for c in frame.columns if c not in types]
    if extra and contract.schema_evolution == "reject":
        raise FileRejected(
            "unexpected_column",
            f"unexpected column(s) {', '.join(extra)} (schema_evolution: reject)",
            column=extra[0],
        )
    keep_extra = extra if contract.schema_evolution == "merge" else []
    original = frame.with_row_index(SOURCE_ROW, offset=1).with_columns(
        pl.col(SOURCE_ROW).cast(pl.Int64)
    )
    typed = original.select(
        SOURCE_ROW,
        *[_typed(c, t, original.schema[c]).alias(c) for c, t in types.items()],
        *[pl.col(c).cast(pl.String) for c in keep_extra],
    ).with_columns(  # NaN is a null for the contract
        [pl.col(c).fill_nan(None) for c, t in types.items() if t == pl.Float64]
    )
    rejected: list[pl.DataFrame] = []
    bad_rows = pl.repeat(
        False, typed.height, dtype=pl.Boolean, eager=True
    )  # a header-only file has 0 rows

    def reject(mask: pl.Series | None, rule: str, column: str, reason):
        nonlocal bad_rows
        if mask is None or not mask.any():
            return
        mask = mask.fill_null(False) & ~bad_rows  # one reason per row: the first rule it breaks
        r = _rejections(original, mask, day, file, rule, column, reason)
        if r is not None:
            rejected.append(r)
            bad_rows = bad_rows | mask

    for col, t in types.items():
        if not _cannot_fail(original.schema[col], t):
            hint = "".join(f" ({why})" for c, why in contract.hints if c == col)
            reject(
                _wrong_type(original, typed, col),
                "wrong_type",
                col,
                pl.format(f"{col}: '{{}}' is not a valid {t}{hint}", pl.col(col).cast(pl.String)),
            )
        if col in contract.required:
            reject(
                typed[col].is_null(),
                "null",
                col,
                f"{col}: required value is missing (null/NaN/empty)",
            )
    _check_values(typed, original, contract, day, reject)
    accepted = typed.filter(~bad_rows).with_columns(
        pl.lit(file).alias(SOURCE_FILE), pl.lit(day).alias("ds")
    )
    quarantine = pl.concat(rejected) if rejected else empty_quarantine()
    return accepted, quarantine, keep_extra


def _check_values(
    typed: pl.DataFrame, original: pl.DataFrame, contract: Contract, day: str, reject
) -> None:
    """Ranges, categories and the partition date of the typed values (``reject(mask, rule, column,
    reason)``).
    """
    for col, (lo, hi) in contract.ranges.items():
        v = typed[col]
        if lo is not None:
            reject(
                v < lo,
                "range",
                col,
                pl.format(f"{col}: {{}} is below the minimum {lo:g}", pl.col(col)),
            )
        if hi is not None:
            reject(
                v > hi,
                "range",
                col,
                pl.format(f"{col}: {{}} is above the maximum {hi:g}", pl.col(col)),
            )
    for col, allowed in contract.allowed.items():
        v = typed[col]
        shown = ", ".join(str(a) for a in allowed[:20]) + (", ..." if len(allowed) > 20 else "")
        reject(
            v.is_not_null() & ~v.is_in(list(allowed)),
            "category",
            col,
            pl.concat_str(
                [
                    pl.lit(f"{col}: '"),
                    pl.col(col).cast(pl.String),
                    pl.lit(f"' is not one of the allowed values ({shown})"),
                ]
            ),
        )
    if contract.timestamp:
        ts = contract.timestamp
        on = _partition_day(day)
        event_day = (
            typed[ts].dt.date() if isinstance(on, dt.date) else typed[ts].dt.date().cast(pl.String)
        )
        reject(
            event_day.is_not_null() & (event_day != on),
            "outside_partition",
            ts,
            pl.format(
                f"{ts}: {{}} ({{}} UTC) is not on partition date {day}",
                pl.col(ts).cast(pl.String),
                _typed(ts, contract.dtypes[ts], original.schema[ts]),
            ),
        )


class IngestError(RuntimeError):
    """An unexpected failure while ingesting one landing file (a bug, not bad input): names the
    file.
    """


def _ingest_file(root: Path, lf: LandingFile, contract: Contract, day: str, pii_key: bytes | None):
    """(info, accepted rows or None, quarantine rows or None, extra columns) of one landing entry."""
    info = {
        "file": lf.name,
        "size": lf.size,
        "sha256": lf.sha256,
        "rows": 0,
        "accepted": 0,
        "status": "accepted",
    }
    if lf.kind != "file":
        info["kind"] = lf.kind
    try:
        problem = admission_problem(root, lf, contract.formats, day)
        if problem:
            raise problem
        frame = read_file(lf.path)
        info["rows"] = frame.height
        if frame.height == 0:
            info["note"] = "no data rows (header only): zero rows ingested"
        ok, bad, extra = validate_file(frame, contract, day, lf.name, pii_key)
    except FileRejected as err:
        info["status"] = f"rejected: {err.reason}"
        return info, None, _file_rejection(day, lf.name, err), []
    except Exception as err:
        raise IngestError(
            f"{day}/{lf.name}: unexpected error while ingesting ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); the other files of the day were not "
            "written"
        ) from err
    info["accepted"] = ok.height
    if not bad.is_empty():
        info["status"] = "partially_rejected"
    return info, ok, bad if not bad.is_empty() else None, extra


def ingest_partition(
    landing: Path, day: str, contract: Contract, pii_key: bytes | None = None
) -> IngestResult:
    """Apply the contract to every landing entry of ``<landing>/<day>/``; only regular files inside
    the
    landing root are read, PII is protected with ``pii_key`` (dropped when None) before it
    leaves."""
    accepted: list[pl.DataFrame] = []
    quarantined: list[pl.DataFrame] = []
    files: list[dict] = []
    extras: list[str] = []
    root, found = landing_root(landing), landing_files(landing, day)
    for lf in found:
        info, ok, bad, extra = _ingest_file(root, lf, contract, day, pii_key)
        files.append(info)
        extras += [c for c in extra if c not in extras]
        if ok is not None:
            accepted.append(ok)
        if bad is not None:
            quarantined.append(bad)
    raw = pl.concat(accepted, how="diagonal_relaxed") if accepted else contract.empty_frame()
    raw, dupes = _reject_duplicate_ids(raw, contract.id, day)
    if dupes is not None:
        quarantined.append(dupes)
        for info in files:
            info["accepted"] -= dupes.filter(pl.col("file") == info["file"]).height
    order = [*contract.dtypes, *extras, SOURCE_FILE, SOURCE_ROW, "ds"]
    raw = _in_file_order(raw.select(order))
    q = pl.concat(quarantined) if quarantined else empty_quarantine()
    return IngestResult(
        day,
        raw,
        q.sort("file", "row", nulls_last=False),
        files,
        extras,
        partition_fingerprint(found),
    )


def _in_file_order(raw: pl.DataFrame) -> pl.DataFrame:
    """Rows by (file, row): files are read in name order, so this is usually a check, not a sort."""
    return raw if in_order(raw, SOURCE_FILE, SOURCE_ROW) else raw.sort(SOURCE_FILE, SOURCE_ROW)


def _reject_duplicate_ids(raw: pl.DataFrame, id_col: str, day: str):
    """Keep the first occurrence of an id (file name order, then row); quarantine the rest."""
    if raw.is_empty():
        return raw, None
    raw = _in_file_order(raw)
    first = raw.select(pl.col(id_col).is_first_distinct()).to_series()
    if bool(first.all()):
        return raw, None
    owner = raw.filter(first).select(
        id_col, pl.col(SOURCE_FILE).alias("_first_file"), pl.col(SOURCE_ROW).alias("_first_row")
    )
    dupes = raw.filter(~first).join(owner, on=id_col, how="left", maintain_order="left")
    q = pl.DataFrame(
        {
            "ds": [day] * dupes.height,
            "file": dupes[SOURCE_FILE],
            "row": dupes[SOURCE_ROW],
            "column": [id_col] * dupes.height,
            "rule": ["duplicate_id"] * dupes.height,
            "reason": (
                dupes.select(
                    pl.format(
                        f"{id_col}: '{{}}' duplicates {{}} row {{}}",
                        pl.col(id_col),
                        pl.col("_first_file"),
                        pl.col("_first_row"),
                    )
                ).to_series()
            ),
            "record": _record_json(dupes.drop("_first_file", "_first_row", SOURCE_FILE, "ds")),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return raw.filter(first), q


def summarize_quarantine(q: pl.DataFrame, limit: int = 10) -> list[dict]:
    """The first ``limit`` rejections, for check metadata and error messages."""
    return q.head(limit).select("ds", "file", "row", "column", "rule", "reason").to_dicts()


@dataclass(frozen=True)
class IngestedRange:
    """The ingest of one run's partitions: what lands in the table, what goes to quarantine."""

    results: dict[str, IngestResult]

    @property
    def accepted(self) -> pl.DataFrame:
        return pl.concat([r.accepted for r in self.results.values()], how="diagonal_relaxed")

    def quarantine(self, feed: str, run_id: str, at: dt.datetime) -> pl.DataFrame:
        """Rejections stamped with the feed, the run and the time (rows of the append-only
        quarantine log).
        """
        return pl.concat([r.quarantine for r in self.results.values()]).with_columns(
            pl.lit(feed).alias("feed"),
            pl.lit(run_id).alias("run_id"),
            pl.lit(at).alias("quarantined_at"),
        )

    @property
    def files(self) -> list[dict]:
        return [dict(f, ds=day) for day, r in self.results.items() for f in r.files]

    @property
    def fingerprints(self) -> dict[str, str]:
        return {day: r.fingerprint for day, r in self.results.items()}

    @property
    def extra_columns(self) -> list[str]:
        return sorted({c for r in self.results.values() for c in r.extra_columns})


def ingest_range(
    landing: Path, days: list[str], contract: Contract, pii_key: bytes | None = None
) -> IngestedRange:
    return IngestedRange({day: ingest_partition(landing, day, contract, pii_key) for day in days})
