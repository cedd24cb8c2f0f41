"""Keeping a Delta table cheap to load: compaction, vacuum, checkpoints, and log cleanup.

``maintain`` is what ``DeltaLake.maintain`` runs (the maintenance schedule calls it per table):
compact small files, vacuum the files no retained version reads, checkpoint the current version,
then drop the log entries no retained version needs. ``TABLE_CONFIGURATION`` is set on every
table the lake creates (and here on a table that lacks it).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_assets.data.lake import DeltaLake

# Set on every table the lake creates (and by ``maintain`` on a table that lacks it):
# - a checkpoint every 20 commits (deltalake's default is 100), so loading a table replays at most
#   a checkpoint and 20 commit files; the maintenance schedule adds one daily and drops expired
#   log entries;
# - no per-column min/max statistics: every read here selects by the ``ds`` partition, and
#   per-column statistics of every file would be most of what loading a table's log parses
#   (row counts are kept — the volume check reads them);
# - log cleanup only by ``maintain`` (deltalake's own, after a commit, would drop the log a kept
#   version needs).
TABLE_CONFIGURATION = {
    "delta.checkpointInterval": "20",
    "delta.dataSkippingNumIndexedCols": "0",
    "delta.enableExpiredLogCleanup": "false",
}
_LOG_ENTRY = re.compile(r"^(\d{20})\.(json|crc|checkpoint\.parquet|checkpoint\.\d+\.\d+\.parquet)$")


def _delta_table(lake: DeltaLake, table: str, version: int | None = None):
    from deltalake import DeltaTable

    return DeltaTable(lake.uri(table), version=version, storage_options=lake.storage_options)


def maintain(
    lake: DeltaLake,
    table: str,
    *,
    retention_hours: int,
    keep_versions: Sequence[int] = (),
    log_retention_hours: int = 30 * 24,
) -> dict[str, Any]:
    """Compact small files, vacuum files unreferenced for ``retention_hours`` — except every file
    that a version in ``keep_versions`` still reads —, checkpoint the current version, then drop
    the log entries older than ``log_retention_hours``: loading the table lists and replays a
    short log however long its history; each kept version keeps its time travel (one no longer
    loadable: ``lost``)."""
    # first (before any commit of this maintenance), each kept version gets a checkpoint of its
    # own while it can still be loaded: the log cleanup keeps it, and loading that version
    # reads it alone
    loadable = {v: _checkpoint_version(lake, table, v) for v in sorted(set(keep_versions))}
    lost = [v for v, ok in loadable.items() if not ok]
    kept = [v for v, ok in loadable.items() if ok]
    dt_ = _delta_table(lake, table)
    missing = {
        k: v for k, v in TABLE_CONFIGURATION.items() if dt_.metadata().configuration.get(k) != v
    }
    if missing:  # a table created without these settings gets them for its next commits
        dt_.alter.set_table_properties(missing)
    before = len(dt_.file_uris())
    compaction = dt_.optimize.compact()
    removed = dt_.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=False,
        keep_versions=kept or None,
    )
    dt_ = _delta_table(lake, table)
    dt_.create_checkpoint()
    log = _drop_expired_log(lake, table, kept, log_retention_hours)
    return {
        "files_before": before,
        "files_after": len(dt_.file_uris()),
        "compacted_added": int(compaction.get("numFilesAdded", 0)),
        "compacted_removed": int(compaction.get("numFilesRemoved", 0)),
        "vacuumed_files": len(removed),
        "kept_versions": kept,
        "lost": lost,
        "version": dt_.version(),
        "checkpoint_version": dt_.version(),
        "properties_set": sorted(missing),
        **log,
    }


def _drop_expired_log(
    lake: DeltaLake, table: str, kept: Sequence[int], retention_hours: int
) -> dict[str, int]:
    """Delete the log entries older than ``retention_hours`` that no retained version needs.

    Every version committed within the retention stays loadable: entries are dropped only below
    the newest checkpoint at or before the oldest such version. The checkpoints of ``kept``
    versions (each must have one) are never dropped. deltalake's ``cleanup_metadata`` cannot do
    this: it keeps all of the log after the oldest recent checkpoint (an old kept version would
    keep the whole log after it), and once that checkpoint expires drops the kept version's."""
    from deltalake.fs import DeltaStorageHandler
    from pyarrow.fs import FileSelector

    kept, store = set(kept), DeltaStorageHandler(lake.uri(table), lake.storage_options)
    entries = [
        (int(m.group(1)), m.group(2), info)
        for info in store.get_file_info_selector(FileSelector("_delta_log"))
        if (m := _LOG_ENTRY.match(info.base_name))
    ]
    cutoff = time.time() - retention_hours * 3600
    head = max(v for v, _, _ in entries)
    recent = min(
        (v for v, kind, info in entries if kind == "json" and info.mtime.timestamp() > cutoff),
        default=head,
    )
    checkpoints = [v for v, kind, _ in entries if kind.startswith("checkpoint") and v <= recent]
    boundary = max(checkpoints, default=0)
    doomed = [
        info
        for v, kind, info in entries
        if v < boundary
        and info.mtime.timestamp() <= cutoff
        and not (v in kept and kind.startswith("checkpoint"))
    ]
    for info in doomed:
        with contextlib.suppress(FileNotFoundError):  # another maintenance run got there first
            store.delete_file(info.path)
    return {"log_entries_dropped": len(doomed), "log_entries_left": len(entries) - len(doomed)}


def _checkpoint_version(lake: DeltaLake, table: str, version: int) -> bool:
    """Write a checkpoint of ``version``; False only when the log no longer holds that version
    (any other failure raises: a kept version must never be taken for lost, its files would be
    vacuumed)."""
    from deltalake.exceptions import DeltaError

    try:
        _delta_table(lake, table, version).create_checkpoint()
    except DeltaError as err:
        if "log segment" not in str(err).lower().replace("logsegment", "log segment"):
            raise
        return False
    return True
