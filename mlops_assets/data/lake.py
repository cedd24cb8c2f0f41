"""A thin, project-owned Delta Lake resource (polars in, polars out).

Why not dagster-deltalake-polars: in our trials range backfills fail and mistyped partition
columns silently overwrite a table. Here every write replaces exactly the named partitions in
ONE transaction (predicate overwrite) and stamps the commit with the Dagster run id and the
partitions it wrote. Concurrent writers on S3 (``root = s3://bucket/prefix``,
``storage_options_json`` from ``$MLOPS_LAKE_STORAGE_OPTIONS``) are safe without a lock service
(``DeltaLake._commit``). No secret leaves in an error (``_redacted``).

Maintenance (compaction, vacuum, checkpoints, log cleanup) is in ``lake_maintenance``; the
writers' lock a lake offers (``lock``: what the alias ledger's moves hold) in ``lake_lock``.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from dagster import ConfigurableResource, EnvVar
from pydantic import Field, PrivateAttr

from mlops_assets.core import redaction
from mlops_assets.core.faults import pause_point
from mlops_assets.core.paths import Home
from mlops_assets.core.redaction import error_chain, quotes_a_secret, redact, secret_values
from mlops_assets.core.vocabulary import PARTITION_COLUMN
from mlops_assets.data import lake_maintenance
from mlops_assets.data.lake_lock import LakeLock
from mlops_assets.data.lake_maintenance import TABLE_CONFIGURATION

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
_CHAIN_DEPTH = 6  # the causes shown in a redacted error's text


class LakeError(RuntimeError):
    """A Delta Lake / object-store failure whose text quoted a secret (shown masked)."""


def _rebuilt(err: Exception, text: str) -> Exception:
    """``err``'s type carrying ``text`` when that type can be built from a message, else
    ``LakeError``."""
    try:
        new = type(err)(text)
    except Exception:  # noqa: BLE001 - a type that needs other arguments
        return LakeError(text)
    return new if str(new) == text else LakeError(text)


def _redacted(err: Exception, secrets: list[str]) -> Exception | None:
    """``err`` with the text of its chain masked and joined, when any of it holds a secret.

    Every public lake method re-raises an exception whose text (or cause chain) quotes a
    storage-option secret or URI credentials (object_store quotes the endpoint URL,
    ``user:password@`` included) as this: the text ``redact()``ed, the same exception type
    where it can be rebuilt from a message, else ``LakeError``, and no chain."""
    if isinstance(err, LakeError) or not quotes_a_secret(err, secrets, _CHAIN_DEPTH):
        return None
    texts = [str(e) for e in error_chain(err, _CHAIN_DEPTH)]
    return _rebuilt(err, " <- ".join(_ANSI.sub("", redact(t, secrets)) for t in texts))


redacted_errors = redaction.redacted_errors(lambda lake: lake.secrets(), _redacted)
"""Re-raise an exception of a lake method whose text or chain holds a secret of the lake, masked."""


def _resolved(value: str) -> str:
    # an EnvVar field is resolved by Dagster at run time; outside a run (status, the CLI) it is
    # still the EnvVar, a str holding the variable's *name*: resolve it here
    return (value.get_value() or "") if isinstance(value, EnvVar) else value


class DeltaLake(ConfigurableResource):
    """Delta tables under one root URI (a local folder or ``s3://bucket/prefix``)."""

    root: str = Field(description="Root URI of the lake; each table is <root>/<name>.")
    storage_options_json: str = Field(
        default="{}",
        description=(
            "JSON object of object-store options (e.g. AWS_ENDPOINT_URL); pass secrets via EnvVar."
        ),
    )
    commit_retries: int = 8
    lock_dsn: str = Field(
        default="",
        description=(
            "PostgreSQL DSN of the writers' lock (advisory); pass EnvVar('MLOPS_LOCK_DSN'). "
            "Empty: a file lock in lock_dir."
        ),
    )
    lock_dir: str = Field(
        default="",
        description=(
            "Folder of the file lock; empty: the lake's own folder (a local lake), "
            "$MLOPS_HOME/locks (a lake on object storage)."
        ),
    )
    # table -> the DeltaTable its last commit here was written through, handed to the next load
    # of that table (brought up to date, not loaded again): a run that writes a table and then
    # reads its log (the landing asset's volume and freshness checks) loads the log once
    _written: dict[str, Any] = PrivateAttr(default_factory=dict)

    # ---- addressing -------------------------------------------------------------------
    def uri(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    @property
    def storage_options(self) -> dict[str, str] | None:
        text = _resolved(self.storage_options_json)
        try:
            opts = json.loads(text or "{}")
        except json.JSONDecodeError as err:  # its message has no part of the text; its .doc would
            raise ValueError(
                f"storage_options_json ($MLOPS_LAKE_STORAGE_OPTIONS) is not valid JSON: {err.msg} "
                f"at line {err.lineno} column {err.colno}; expected an object of strings"
            ) from None
        if not isinstance(opts, dict):
            raise ValueError(
                "storage_options_json ($MLOPS_LAKE_STORAGE_OPTIONS) must be a JSON object of"
                f" strings, got a {type(opts).__name__}"
            )
        return opts or None

    def secrets(self) -> list[str]:
        """The storage-option values that must never appear in text (keys, tokens, passwords)."""
        try:
            return secret_values(self.storage_options)
        except ValueError:
            return []

    def lock(self, name: str) -> LakeLock:
        """The lock ``name`` of this lake (``lake_lock``): every process configured alike —
        the CLI, the assets, the sensors — holds the same one."""
        directory = _resolved(self.lock_dir) or (
            self.root if "://" not in self.root else str(Home.from_env().root / "locks")
        )
        return LakeLock(name, _resolved(self.lock_dsn), Path(directory))

    def _table(self, table: str, version: int | None = None):
        from deltalake import DeltaTable

        return DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)

    @redacted_errors
    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage_options)

    @redacted_errors
    def version(self, table: str) -> int | None:
        target = self._loaded(table)
        return target.version() if target is not None else None

    @redacted_errors
    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        target = self._loaded(table)
        return target.history(limit) if target is not None else []

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
        arrow = frame.to_arrow()
        partitioned = PARTITION_COLUMN in frame.columns
        return self._commit(
            table, lambda: arrow, keys, "overwrite", run_id, metadata, merge_schema, partitioned
        )

    @redacted_errors
    def write_stream(
        self,
        table: str,
        batches: Callable[[], Iterable[pl.DataFrame]],
        schema: dict[str, pl.DataType],
        keys: Sequence[str],
        *,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """``write_partitions`` for data that never sits in memory whole: ``batches()`` yields
        frames of ``schema``, each handed to Delta as it comes (a pyarrow ``RecordBatchReader``),
        all in ONE commit replacing exactly partitions ``keys``. ``batches`` is a function: a
        retried commit calls it again."""
        arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        # what the producer raised: Delta would wrap it in its own error
        raised: list[BaseException] = []

        def reader():
            import pyarrow as pa

            # called here, before the write: deltalake pulls ``stream`` from its own runtime
            source = batches()

            def stream():
                try:
                    for batch in source:
                        self._check_partitions(table, batch, keys)
                        yield from batch.to_arrow().cast(arrow_schema).to_batches()
                except BaseException as err:
                    raised.append(err)
                    raise

            return pa.RecordBatchReader.from_batches(arrow_schema, stream())

        try:
            return self._commit(
                table,
                reader,
                keys,
                "overwrite",
                run_id,
                metadata,
                False,
                PARTITION_COLUMN in schema,
            )
        except Exception:
            if raised:
                raise raised[-1] from None
            raise

    @redacted_errors
    def append(
        self,
        table: str,
        frame: pl.DataFrame,
        *,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int | None:
        """Append rows (append-only logs: quarantine, audit). Nothing to append → no commit."""
        if frame.is_empty() and self.exists(table):
            return self.version(table)
        keys = (
            frame[PARTITION_COLUMN].unique().to_list() if PARTITION_COLUMN in frame.columns else []
        )
        arrow = frame.to_arrow()
        return self._commit(
            table,
            lambda: arrow,
            keys,
            "append",
            run_id,
            metadata,
            False,
            PARTITION_COLUMN in frame.columns,
        )

    @staticmethod
    def _check_partitions(table: str, frame: pl.DataFrame, keys: Sequence[str]) -> None:
        if PARTITION_COLUMN not in frame.columns:
            raise ValueError(f"frame for {table} has no {PARTITION_COLUMN!r} column")
        stray = set(frame[PARTITION_COLUMN].unique().to_list()) - set(keys)
        if stray:
            raise ValueError(
                f"rows for partitions {sorted(stray)} outside the write {sorted(keys)} of {table}"
            )

    def _loaded(self, table: str):
        """The table's ``DeltaTable`` at its latest version, or None when there is no table yet.
        The handle the last commit to ``table`` here was written through is used once, updated
        by the commits since."""
        from deltalake.exceptions import DeltaError, TableNotFoundError

        written = self._written.get(table)
        if written is not None:
            # replaced, never mutated
            self._written = {t: h for t, h in self._written.items() if t != table}
            try:
                written.update_incremental()
                return written
            except DeltaError:
                pass  # e.g. the commits since were dropped from the log: load it afresh
        try:
            return self._table(table)
        except TableNotFoundError:
            return None

    def _commit(self, table, data, keys, mode, run_id, metadata, merge_schema, partitioned) -> int:
        """One Delta commit of ``data()`` stamped with run id and partitions; conflicting
        concurrent commits are retried with jittered backoff. The log is loaded once per attempt
        (one ``DeltaTable``, written through and asked its version). Returns the version *this*
        commit wrote (the handle written through moves to its own commit, not to a later
        writer's).

        On S3 concurrent writers are safe without a lock service: deltalake 1.x writes each
        commit file ``_delta_log/<version>.json`` with a conditional put (``If-None-Match: *``),
        so of two writers racing for one version exactly one wins and the other re-reads the
        log, checks for conflicts and retries (a real conflict, e.g. two overwrites of one
        partition, is retried here). The store must honour conditional writes: AWS S3 (since
        2024), MinIO, R2 and moto do. deltalake 1.x offers no DynamoDB locking; a store without
        conditional puts needs ``AWS_S3_ALLOW_UNSAFE_RENAME=true`` and a single writer."""
        from deltalake import CommitProperties, Transaction, write_deltalake
        from deltalake.exceptions import CommitFailedError

        custom = {
            "partitions": ",".join(sorted(keys)),
            **({"dagster_run_id": run_id} if run_id else {}),
        }
        custom.update({k: str(v) for k, v in (metadata or {}).items()})
        partition_by = [PARTITION_COLUMN] if partitioned else None
        pause_point(f"lake.commit:{table}")
        for attempt in range(self.commit_retries + 1):
            target = self._loaded(table)
            exists = target is not None
            version_before = target.version() if exists else -1
            props = CommitProperties(
                custom_metadata=custom,
                app_transactions=[Transaction(app_id=COMMIT_APP_ID, version=version_before + 1)],
            )
            overwrite = mode == "overwrite" and exists
            try:
                write_deltalake(
                    target if exists else self.uri(table),
                    data(),
                    mode="overwrite" if overwrite else "append",
                    predicate=partition_predicate(keys) if overwrite else None,
                    partition_by=partition_by,
                    schema_mode="merge" if merge_schema and exists else None,
                    storage_options=None if exists else self.storage_options,
                    configuration=None if exists else TABLE_CONFIGURATION,
                    commit_properties=props,
                )
                pause_point(f"lake.committed:{table}")
                # a first write racing another first write may land after it: the latest is ours
                # or later
                if not exists:
                    return self._table(table).version()
                self._written = {**self._written, table: target}
                return target.version()
            except CommitFailedError:
                if attempt == self.commit_retries:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
            except Exception as err:  # first write racing another first write
                if (
                    exists
                    or "already exists" not in str(err).lower()
                    or attempt == self.commit_retries
                ):
                    raise
        raise AssertionError("unreachable")

    # ---- maintenance ------------------------------------------------------------------
    @redacted_errors
    def maintain(
        self,
        table: str,
        *,
        retention_hours: int,
        keep_versions: Sequence[int] = (),
        log_retention_hours: int = 30 * 24,
    ) -> dict[str, Any]:
        """Compact, vacuum (sparing the files ``keep_versions`` read), checkpoint and drop the
        expired log of ``table``: ``lake_maintenance.maintain``."""
        return lake_maintenance.maintain(
            self,
            table,
            retention_hours=retention_hours,
            keep_versions=keep_versions,
            log_retention_hours=log_retention_hours,
        )

    # ---- reads ------------------------------------------------------------------------
    @redacted_errors
    def iter_batches(
        self,
        table: str,
        keys: Iterable[str],
        batch_rows: int = 100_000,
        *,
        dictionary_columns: Sequence[str] = (),
    ) -> Iterator[pl.DataFrame]:
        """The rows of partitions ``keys`` (with their ``ds``), ``batch_rows`` at a time, pulled
        from the data files one batch after another: memory stays bounded by a batch (and one row
        group), not by the partition. (A polars streaming scan reads ahead of a slow consumer —
        e.g. a model — and so holds most of a large partition.) On an object store the polars
        scan is used (streamed, read-ahead).

        ``dictionary_columns`` (strings, e.g. the spec's categoricals) come from local files as
        ``pl.Categorical``, read as the Parquet dictionaries they are stored in (cheaper); from
        the object-store scan, as stored.

        The table is loaded and its files listed here, when called, not while iterating: the
        iterator may be consumed inside a Delta write (``write_stream``), where deltalake cannot
        be entered again."""
        target = self._loaded(table)
        if target is None:
            return iter(())
        keys = sorted(set(keys))
        if "://" in self.root and not self.root.startswith("file://"):
            scans = [pl.scan_delta(target).filter(pl.col(PARTITION_COLUMN) == key) for key in keys]
            return (
                b
                for lf in scans
                for b in lf.collect_batches(chunk_size=batch_rows, maintain_order=True)
            )
        files = [
            (key, uri.removeprefix("file://"))
            for key in keys
            for uri in target.file_uris(file_pruning_predicate=[(PARTITION_COLUMN, "=", key)])
        ]
        return _file_batches(files, batch_rows, dictionary_columns)

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
        """Rows per partition, from the Delta log's file statistics (no data file is read); a
        table written without statistics is counted by a scan of its partition column."""
        return self._counts(self._loaded(table))

    @redacted_errors
    def newest(self, table: str, column: str) -> Any:
        """The largest value of ``column`` in the newest partition holding rows (a
        partition-pruned read: for a column that never falls after its partition's date, e.g. an
        event time under the contract's ``outside_partition`` rule, that is the table's largest);
        None for an empty table."""
        return self.counts_and_newest(table, column)[1]

    @redacted_errors
    def counts_and_newest(self, table: str, column: str) -> tuple[dict[str, int], Any]:
        """``partition_counts`` and ``newest`` from one load of the table's log (the volume and
        freshness checks of a landing run)."""
        target = self._loaded(table)
        counts = self._counts(target)
        return counts, self._newest(target, column, counts)

    def _counts(self, target) -> dict[str, int]:
        if target is None:
            return {}
        files = pl.DataFrame(target.get_add_actions(flatten=True))
        column = f"partition.{PARTITION_COLUMN}"
        if files.is_empty():
            return {}
        if (
            column not in files.columns
            or "num_records" not in files.columns
            or files["num_records"].null_count()
        ):
            counts = pl.scan_delta(target).group_by(PARTITION_COLUMN).len().collect()
            return dict(
                zip(counts[PARTITION_COLUMN].to_list(), counts["len"].to_list(), strict=True)
            )
        # a plain loop: a polars group_by costs more than it saves on a log's rows
        counts: dict[str, int] = {}
        for day, rows in zip(files[column].to_list(), files["num_records"].to_list(), strict=True):
            counts[day] = counts.get(day, 0) + rows
        return {day: rows for day, rows in counts.items() if rows > 0}

    def _newest(self, target, column: str, counts: dict[str, int]) -> Any:
        """Read only the newest partition's data files (the log's current files of it)."""
        days = [d for d, n in counts.items() if n and d is not None]
        if target is None or not days:
            return None
        files = target.file_uris(file_pruning_predicate=[(PARTITION_COLUMN, "=", max(days))])
        return (
            pl.scan_parquet(files, storage_options=self.storage_options)
            .select(pl.col(column).max())
            .collect()
            .item()
        )


def _file_batches(
    files: list[tuple[str, str]], batch_rows: int, dictionaries: Sequence[str] = ()
) -> Iterator[pl.DataFrame]:
    """Batches of each (partition key, local Parquet file), pulled one at a time (pyarrow
    ``iter_batches``); the string columns among ``dictionaries`` read as Parquet dictionaries
    (``pl.Categorical``)."""
    import pyarrow.parquet as pq

    for key, path in files:
        meta = pq.read_metadata(path)
        strings = [
            f.name
            for f in meta.schema.to_arrow_schema()
            if str(f.type) in ("string", "large_string")
        ]
        reader = pq.ParquetFile(
            path, metadata=meta, read_dictionary=[c for c in strings if c in dictionaries] or None
        )
        for batch in reader.iter_batches(batch_size=batch_rows):
            yield pl.from_arrow(batch).with_columns(pl.lit(key, pl.String).alias(PARTITION_COLUMN))
