"""One landing file under its contract: read, typed, checked; every rejection a quarantine row.

``ingest_file`` admits a landing entry (``readers.admission_problem``), reads it and hands it to
``validate_file``, which types each column (text timestamps with or without an offset become naive
UTC; "12.0" is a valid int, "12.5" is not) and rejects each bad row for the first rule it breaks,
with a record of the original values. A file that cannot be read at all is one rejection row. Pure
logic (polars and the readers); the day's files are put together by ``data.ingest``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from mlops_assets.core.tables import QUARANTINE_SCHEMA
from mlops_assets.core.vocabulary import PARTITION_COLUMN
from mlops_assets.data.contract import SOURCE_FILE, SOURCE_ROW, Contract, protect_pii
from mlops_assets.data.readers import FileRejected, LandingFile, admission_problem, read_file


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


# ---------------------------------------------------------------------------------------
# Typing: a landing value as the contract's type
# ---------------------------------------------------------------------------------------
_TIME_WITH_OFFSET = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|UTC|utc|[+-]\d{2}(:?\d{2})?)$"
_OFFSET_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z")


def _timestamp_from_text(c: pl.Expr) -> pl.Expr:
    """Text timestamps as naive UTC. With an offset (``Z``, ``UTC``, ``+00:00``, ``+0200``,
    ``-05``; ``T`` or a space before the time) the instant is converted to UTC; without one the
    text is taken as UTC already (the format inferred as polars does). Both kinds may be mixed in
    one file; text that parses as neither is null."""
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
# The contract over one file: every rejection a quarantine row
# ---------------------------------------------------------------------------------------
def record_json(frame: pl.DataFrame) -> pl.Series:
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
        {"row": bad[SOURCE_ROW], "reason": reasons.cast(pl.String), "record": record_json(bad)}
    )
    return rows.select(
        pl.lit(day, pl.String).alias(PARTITION_COLUMN),
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
            PARTITION_COLUMN: [day],
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
    """Rows whose value was present but did not type (None when there is none: the detailed
    test, text stripped and lower-cased, runs only on a column where some value became null in
    typing)."""
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
    value is re-examined only where typing turned it null). PII is protected first, so neither
    the accepted rows nor a quarantine record carries it in the clear."""
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
    keep_extra = extra if contract.merges_schema else []
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
        pl.lit(file).alias(SOURCE_FILE), pl.lit(day).alias(PARTITION_COLUMN)
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


def ingest_file(root: Path, lf: LandingFile, contract: Contract, day: str, pii_key: bytes | None):
    """(info, accepted rows or None, quarantine rows or None, extra columns) of one landing
    entry."""
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
