"""Landing files → typed raw rows + quarantine, under the spec's data contract: the day assembly.

``ingest_partition`` applies the contract to every landing entry of one day folder
(``landing_file.ingest_file``), keeps the first occurrence of an id across the day's files and
quarantines the rest, and returns the day's rows in file order with its quarantine and file notes;
``ingest_range`` does it for a run's days. Pure logic (polars only): no Dagster, no Delta. Every
rejected file or row becomes a quarantine record that names the partition, file, row, column, rule
and reason and carries the original record, so nothing is ever silently dropped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mlops_assets.core.tables import QUARANTINE_SCHEMA
from mlops_assets.core.vocabulary import PARTITION_COLUMN
from mlops_assets.data.contract import SOURCE_FILE, SOURCE_ROW, Contract
from mlops_assets.data.features import in_order
from mlops_assets.data.landing_file import empty_quarantine, ingest_file, record_json
from mlops_assets.data.readers import landing_files, landing_root, partition_fingerprint


@dataclass
class IngestResult:
    """One day's ingest: accepted rows, quarantine rows, a note per landing entry."""

    day: str
    accepted: pl.DataFrame
    quarantine: pl.DataFrame
    files: list[dict]
    extra_columns: list[str]
    fingerprint: str


def ingest_partition(
    landing: Path, day: str, contract: Contract, pii_key: bytes | None = None
) -> IngestResult:
    """Apply the contract to every landing entry of ``<landing>/<day>/``; only regular files
    inside the landing root are read, PII is protected with ``pii_key`` (dropped when None)
    before it leaves."""
    accepted: list[pl.DataFrame] = []
    quarantined: list[pl.DataFrame] = []
    files: list[dict] = []
    extras: list[str] = []
    root, found = landing_root(landing), landing_files(landing, day)
    for lf in found:
        info, ok, bad, extra = ingest_file(root, lf, contract, day, pii_key)
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
    order = [*contract.dtypes, *extras, SOURCE_FILE, SOURCE_ROW, PARTITION_COLUMN]
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
            PARTITION_COLUMN: [day] * dupes.height,
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
            "record": record_json(
                dupes.drop("_first_file", "_first_row", SOURCE_FILE, PARTITION_COLUMN)
            ),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return raw.filter(first), q


def summarize_quarantine(q: pl.DataFrame, limit: int = 10) -> list[dict]:
    """The first ``limit`` rejections, for check metadata and error messages."""
    return (
        q.head(limit).select(PARTITION_COLUMN, "file", "row", "column", "rule", "reason").to_dicts()
    )


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
    def rows(self) -> int:
        return sum(r.accepted.height for r in self.results.values())

    def summary_lines(self, feed: str) -> list[str]:
        """One log line per day: rows accepted and quarantined, from how many files."""
        return [
            f"{feed}[{day}]: {r.accepted.height} rows accepted, {r.quarantine.height}"
            f" quarantined from {len(r.files)} file(s)"
            for day, r in self.results.items()
        ]

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
