"""What one landing feed promises, and how its personal data is kept out of the clear.

``Contract`` is built from the dataset spec (``event_contract``, ``label_contract``): column types,
required values, ranges, allowed values, the event timestamp's partition date, the PII columns.
``RULES_BY_CHECK`` groups the rules a rejection can break by the asset check that reports them.
PII columns are keyed-hashed (HMAC-SHA256) or emptied before a row is written anywhere. Pure logic
(polars and the standard library).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import polars as pl

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.vocabulary import PARTITION_COLUMN
from mlops_assets.data.readers import READERS

SOURCE_FILE, SOURCE_ROW = "_source_file", "_source_row"  # a raw row's landing file and line

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
    # (column, what to do) appended to its wrong_type reasons
    hints: tuple[tuple[str, str], ...] = ()

    @property
    def merges_schema(self) -> bool:
        """Extra columns are kept (and added to the table) rather than ignored or rejected."""
        return self.schema_evolution == "merge"

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
                PARTITION_COLUMN: pl.String(),
            }
        )


def target_dtype(spec: DatasetSpec) -> pl.DataType:
    """The target's type in the raw tables: Float64 (regression), Int64 (0/1 or integer
    ``classes``), String (string ``classes``)."""
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


# ---------------------------------------------------------------------------------------
# PII: never at rest in the clear
# ---------------------------------------------------------------------------------------
def pii_digest(value: str, key: bytes) -> str:
    """HMAC-SHA256 of a PII value under the deployment's key (hex): equal values give equal digests
    (counts and joins keep working), and without the key a digest cannot be matched to a value."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def protect_pii(frame: pl.DataFrame, columns: tuple[str, ...], key: bytes | None) -> pl.DataFrame:
    """``frame`` with its PII ``columns`` keyed-hashed with ``key``, or emptied (all null) when
    ``key`` is None. The columns stay (as strings), so the stored schema does not depend on the
    key."""
    present = [c for c in columns if c in frame.columns]
    if key is None:
        return frame.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in present])
    return frame.with_columns([_digests(frame[c].cast(pl.String), key).alias(c) for c in present])


def _digests(values: pl.Series, key: bytes) -> pl.Series:
    """``pii_digest`` of every value, computed once per distinct value (the keyed state is set
    up once)."""
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    distinct = values.drop_nulls().unique()

    def digest(value: str) -> str:
        h = keyed.copy()
        h.update(value.encode("utf-8"))
        return h.hexdigest()

    return values.replace_strict(
        distinct, [digest(v) for v in distinct.to_list()], default=None, return_dtype=pl.String
    )
