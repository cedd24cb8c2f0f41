"""A thin, project-owned Delta Lake resource (polars in, polars out).

Why not dagster-deltalake-polars: in our trials (range backfills fail, mistyped
partition columns silently overwrite a table). Here every write replaces exactly the
named partitions in ONE transaction (predicate overwrite) and stamps the commit with
the Dagster run id and the partitions it wrote.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl
from dagster import ConfigurableResource
from pydantic import Field

PARTITION_COLUMN = "ds"
COMMIT_APP_ID = "mlops_assets"


def partition_predicate(keys: Iterable[str], column: str = PARTITION_COLUMN) -> str:
    keys = sorted(set(keys))
    for key in keys:  # keys are ISO dates; refuse anything that could break the SQL predicate
        if not key or any(c in key for c in "'\\\n;"):
            raise ValueError(f"invalid partition key {key!r}")
    if len(keys) == 1:
        return f"{column} = '{keys[0]}'"
    return f"{column} IN ({', '.join(repr(k) for k in keys)})"


class DeltaLake(ConfigurableResource):
    """Delta tables under one root URI (a local folder or ``s3://bucket/prefix``)."""

    root: str = Field(description="Root URI of the lake; each table is <root>/<name>.")
    storage_options_json: str = Field(
        default="{}",
        description="JSON object of object-store options (e.g. AWS_ENDPOINT_URL); pass secrets via EnvVar.",
    )
    commit_retries: int = 8

    # ---- addressing -------------------------------------------------------------------
    def uri(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    @property
    def storage_options(self) -> dict[str, str] | None:
        opts = json.loads(self.storage_options_json or "{}")
        return opts or None

    def _table(self, table: str, version: int | None = None):
        from deltalake import DeltaTable

        return DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)

    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage_options)

    def version(self, table: str) -> int | None:
        return self._table(table).version() if self.exists(table) else None

    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        return self._table(table).history(limit) if self.exists(table) else []

    # ---- writes -----------------------------------------------------------------------
    def write_partitions(
        self,
        table: str,
        frame: pl.DataFrame,
        keys: Sequence[str],
        *,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        merge_schema: bool = False,
    ) -> int:
        """Replace exactly partitions ``keys`` of ``table`` with ``frame`` in one commit.

        Rows of ``frame`` must all belong to ``keys`` (Delta refuses the write otherwise).
        A key with no rows in ``frame`` is emptied. Returns the table version written.
        """
        self._check_partitions(table, frame, keys)
        return self._commit(table, frame, keys, "overwrite", run_id, metadata, merge_schema)

    def append(
        self, table: str, frame: pl.DataFrame, *, run_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> int | None:
        """Append rows (append-only logs: quarantine, audit). Nothing to append → no commit."""
        if frame.is_empty() and self.exists(table):
            return self.version(table)
        keys = frame[PARTITION_COLUMN].unique().to_list() if PARTITION_COLUMN in frame.columns else []
        return self._commit(table, frame, keys, "append", run_id, metadata, False)

    @staticmethod
    def _check_partitions(table: str, frame: pl.DataFrame, keys: Sequence[str]) -> None:
        if PARTITION_COLUMN not in frame.columns:
            raise ValueError(f"frame for {table} has no {PARTITION_COLUMN!r} column")
        stray = set(frame[PARTITION_COLUMN].unique().to_list()) - set(keys)
        if stray:
            raise ValueError(f"rows for partitions {sorted(stray)} outside the write {sorted(keys)} of {table}")

    def _commit(self, table, frame, keys, mode, run_id, metadata, merge_schema) -> int:
        """One Delta commit stamped with run id and partitions; conflicting concurrent
        commits are retried with jittered backoff."""
        from deltalake import CommitProperties, Transaction, write_deltalake
        from deltalake.exceptions import CommitFailedError

        custom = {"partitions": ",".join(sorted(keys)), **({"dagster_run_id": run_id} if run_id else {})}
        custom.update({k: str(v) for k, v in (metadata or {}).items()})
        arrow = frame.to_arrow()
        partition_by = [PARTITION_COLUMN] if PARTITION_COLUMN in frame.columns else None
        for attempt in range(self.commit_retries + 1):
            exists = self.exists(table)
            version_before = self.version(table) if exists else -1
            props = CommitProperties(
                custom_metadata=custom,
                app_transactions=[Transaction(app_id=COMMIT_APP_ID, version=version_before + 1)],
            )
            overwrite = mode == "overwrite" and exists
            try:
                write_deltalake(
                    self.uri(table),
                    arrow,
                    mode="overwrite" if overwrite else "append",
                    predicate=partition_predicate(keys) if overwrite else None,
                    partition_by=partition_by,
                    schema_mode="merge" if merge_schema and exists else None,
                    storage_options=self.storage_options,
                    commit_properties=props,
                )
                return self._table(table).version()
            except CommitFailedError:
                if attempt == self.commit_retries:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
            except Exception as err:  # first write racing another first write
                if exists or "already exists" not in str(err).lower() or attempt == self.commit_retries:
                    raise
        raise AssertionError("unreachable")

    # ---- maintenance ------------------------------------------------------------------
    def maintain(self, table: str, *, retention_hours: int, keep_versions: Sequence[int] = ()) -> dict[str, Any]:
        """Compact small files, then vacuum files unreferenced for ``retention_hours`` — except
        every file that a version in ``keep_versions`` still reads (time travel keeps working)."""
        before = len(self._table(table).file_uris())
        compaction = self._table(table).optimize.compact()
        removed = self._table(table).vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False,
            keep_versions=sorted(set(keep_versions)) or None,
        )
        return {
            "files_before": before,
            "files_after": len(self._table(table).file_uris()),
            "compacted_added": int(compaction.get("numFilesAdded", 0)),
            "compacted_removed": int(compaction.get("numFilesRemoved", 0)),
            "vacuumed_files": len(removed),
            "kept_versions": sorted(set(keep_versions)),
            "version": self.version(table),
        }

    # ---- reads ------------------------------------------------------------------------
    def scan(self, table: str, version: int | None = None) -> pl.LazyFrame:
        return pl.scan_delta(self.uri(table), version=version, storage_options=self.storage_options)

    def read(
        self,
        table: str,
        keys: Iterable[str] | None = None,
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Rows of ``keys`` (all when None); an empty frame when the table does not exist."""
        if not self.exists(table):
            return pl.DataFrame()
        lf = self.scan(table, version)
        if keys is not None:
            lf = lf.filter(pl.col(PARTITION_COLUMN).is_in(sorted(set(keys))))
        if columns is not None:
            lf = lf.select(columns)
        return lf.collect()

    def partition_counts(self, table: str) -> dict[str, int]:
        if not self.exists(table):
            return {}
        counts = self.scan(table).group_by(PARTITION_COLUMN).len().collect()
        return dict(zip(counts[PARTITION_COLUMN].to_list(), counts["len"].to_list(), strict=True))
