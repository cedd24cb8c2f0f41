"""A thin, project-owned Delta Lake resource (polars in, polars out).

Why not dagster-deltalake-polars: in our trials (range backfills fail, mistyped
partition columns silently overwrite a table). Here every write replaces exactly the
named partitions in ONE transaction (predicate overwrite) and stamps the commit with
the Dagster run id and the partitions it wrote.

On S3 (``root = s3://bucket/prefix``, ``storage_options_json`` from ``$MLOPS_LAKE_STORAGE_OPTIONS``)
concurrent writers are safe without a lock service: deltalake 1.x writes each commit file
``_delta_log/<version>.json`` with a conditional put (``If-None-Match: *``), so of two writers
racing for one version exactly one wins and the other re-reads the log, checks for conflicts
and retries (``_commit`` retries a real conflict, e.g. two overwrites of one partition). The
store must honour conditional writes: AWS S3 (since 2024), MinIO, R2 and moto do. deltalake 1.x
has no DynamoDB locking any more; a store without conditional puts needs
``AWS_S3_ALLOW_UNSAFE_RENAME=true`` and a single writer.

No secret leaves in an error: every public method re-raises an exception whose text (or
cause chain) quotes a storage-option secret or URI credentials (object_store quotes the
endpoint URL, ``user:password@`` included) with that text ``redact()``ed, same exception type
where it can be rebuilt from a message, else ``LakeError``, and no chain.
"""

from __future__ import annotations

import functools
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import polars as pl
from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from mlops_assets.faults import pause_point
from mlops_assets.redaction import redact, secret_values

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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # object_store colours its error chains
F = TypeVar("F", bound=Callable[..., Any])


class LakeError(RuntimeError):
    """A Delta Lake / object-store failure whose text quoted a secret (shown masked)."""


def _chain(err: BaseException, depth: int = 6) -> list[BaseException]:
    out: list[BaseException] = []
    while err is not None and len(out) < depth:
        out.append(err)
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    return out


def _rebuilt(err: Exception, text: str) -> Exception:
    """``err``'s type carrying ``text`` when that type can be built from a message, else ``LakeError``."""
    try:
        new = type(err)(text)
    except Exception:  # noqa: BLE001 - a type that needs other arguments
        return LakeError(text)
    return new if str(new) == text else LakeError(text)


def redacted_errors(method: F) -> F:
    """Re-raise an exception of ``method`` whose text or chain holds a secret of the lake, masked."""

    @functools.wraps(method)
    def wrapper(self: DeltaLake, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except LakeError:
            raise
        except Exception as err:
            secrets = self.secrets()
            texts = [str(e) for e in _chain(err)]
            if all(redact(t, secrets) == t for t in texts):
                raise
            clean = " <- ".join(_ANSI.sub("", redact(t, secrets)) for t in texts)
            raise _rebuilt(err, clean) from None

    return wrapper  # type: ignore[return-value]


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
        text = self.storage_options_json
        # an EnvVar field is resolved by Dagster at run time; outside a run (status, the CLI) it is
        # still the EnvVar, a str holding the variable's *name*: resolve it here
        text = (text.get_value() or "") if isinstance(text, EnvVar) else text
        try:
            opts = json.loads(text or "{}")
        except json.JSONDecodeError as err:  # its message has no part of the text; its .doc would
            raise ValueError(f"storage_options_json ($MLOPS_LAKE_STORAGE_OPTIONS) is not valid JSON: {err.msg} "
                             f"at line {err.lineno} column {err.colno}; expected an object of strings") from None
        if not isinstance(opts, dict):
            raise ValueError("storage_options_json ($MLOPS_LAKE_STORAGE_OPTIONS) must be a JSON object of strings, "
                             f"got a {type(opts).__name__}")
        return opts or None

    def secrets(self) -> list[str]:
        """The storage-option values that must never appear in text (keys, tokens, passwords)."""
        try:
            return secret_values(self.storage_options)
        except ValueError:
            return []

    def _table(self, table: str, version: int | None = None):
        from deltalake import DeltaTable

        return DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)

    @redacted_errors
    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage_options)

    @redacted_errors
    def version(self, table: str) -> int | None:
        return self._table(table).version() if self.exists(table) else None

    @redacted_errors
    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        return self._table(table).history(limit) if self.exists(table) else []

    # ---- writes -----------------------------------------------------------------------
    @redacted_errors
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

    @redacted_errors
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
        commits are retried with jittered backoff. Returns the version *this* commit wrote (the
        handle written through moves to its own commit, not to a later writer's)."""
        from deltalake import CommitProperties, Transaction, write_deltalake
        from deltalake.exceptions import CommitFailedError

        custom = {"partitions": ",".join(sorted(keys)), **({"dagster_run_id": run_id} if run_id else {})}
        custom.update({k: str(v) for k, v in (metadata or {}).items()})
        arrow = frame.to_arrow()
        partition_by = [PARTITION_COLUMN] if PARTITION_COLUMN in frame.columns else None
        pause_point(f"lake.commit:{table}")
        for attempt in range(self.commit_retries + 1):
            exists = self.exists(table)
            target = self._table(table) if exists else None
            version_before = target.version() if target is not None else -1
            props = CommitProperties(
                custom_metadata=custom,
                app_transactions=[Transaction(app_id=COMMIT_APP_ID, version=version_before + 1)],
            )
            overwrite = mode == "overwrite" and exists
            try:
                write_deltalake(
                    target if target is not None else self.uri(table),
                    arrow,
                    mode="overwrite" if overwrite else "append",
                    predicate=partition_predicate(keys) if overwrite else None,
                    partition_by=partition_by,
                    schema_mode="merge" if merge_schema and exists else None,
                    storage_options=None if target is not None else self.storage_options,
                    commit_properties=props,
                )
                pause_point(f"lake.committed:{table}")
                # a first write racing another first write may land after it: then the latest is ours or later
                return target.version() if target is not None else self._table(table).version()
            except CommitFailedError:
                if attempt == self.commit_retries:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
            except Exception as err:  # first write racing another first write
                if exists or "already exists" not in str(err).lower() or attempt == self.commit_retries:
                    raise
        raise AssertionError("unreachable")

    # ---- maintenance ------------------------------------------------------------------
    @redacted_errors
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
    @redacted_errors
    def scan(self, table: str, version: int | None = None) -> pl.LazyFrame:
        return pl.scan_delta(self.uri(table), version=version, storage_options=self.storage_options)

    @redacted_errors
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

    @redacted_errors
    def partition_counts(self, table: str) -> dict[str, int]:
        if not self.exists(table):
            return {}
        counts = self.scan(table).group_by(PARTITION_COLUMN).len().collect()
        return dict(zip(counts[PARTITION_COLUMN].to_list(), counts["len"].to_list(), strict=True))
