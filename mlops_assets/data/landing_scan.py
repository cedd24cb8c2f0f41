"""Incremental scan of the landing zone for the landing sensor (pure, no Dagster).

The cursor keeps, per date folder, a cheap *stat signature* (names, sizes, mtimes) and
the *content fingerprint* (names + sha256) last requested. A tick stats every file but
hashes only the folders whose stat signature moved, so a steady-state tick over
10,000 files costs a directory walk. A folder whose content fingerprint is unchanged
(a touched file, a copy back in place) requests nothing.

Nothing is followed out of the landing root: a day folder that is a symbolic link is fingerprinted
by its link target (never listed or read through), and its run quarantines it; a directory, fifo or
link inside a day folder is listed by kind and quarantined by its run. Each is also reported in the
tick's notes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets.data.readers import DATE_DIR, LandingFile, landing_files, partition_fingerprint


@dataclass
class LandingCursor:
    stat: dict[str, str] = field(default_factory=dict)  # day -> stat signature
    content: dict[str, str] = field(
        default_factory=dict
    )  # day -> content fingerprint last requested
    names: dict[str, list[str]] = field(default_factory=dict)  # day -> file names last requested
    revisions: dict[str, int] = field(
        default_factory=dict
    )  # day -> how many changes were requested

    @classmethod
    def parse(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            data.get("stat", {}),
            data.get("content", {}),
            data.get("names", {}),
            data.get("revisions", {}),
        )

    def dumps(self) -> str:
        return json.dumps(
            {
                "stat": self.stat,
                "content": self.content,
                "names": self.names,
                "revisions": self.revisions,
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class PartitionChange:
    day: str
    fingerprint: str
    reason: str  # new_partition | late_file | changed_file | removed_file
    files: tuple[str, ...]
    previous: str | None = None  # the fingerprint this change replaces (None: the day is new)
    revision: int = 1  # the how-many-th change of this day the sensor requests

    @property
    def run_key(self) -> str:
        """Unique per change, not per content: restoring a day's files to an earlier content
        (A → bad B → A) is a new change and re-runs the day (a key of day + content alone would
        say "already done" and leave the day broken)."""
        return (
            f"{self.day}:{(self.previous or 'new')[:12]}>{self.fingerprint[:24]}:r{self.revision}"
        )


def _stat_signature(folder: str) -> tuple[str, list[str]]:
    h = hashlib.sha1()
    names = []
    if os.path.islink(folder) or not os.path.isdir(
        folder
    ):  # never listed through: the entry is the signature
        st = os.lstat(folder)
        what = os.readlink(folder) if os.path.islink(folder) else stat.filemode(st.st_mode)
        h.update(f"{what}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest(), [os.path.basename(folder)]
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        st = e.stat(follow_symlinks=False)
        h.update(f"{e.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        names.append(e.name)
    return h.hexdigest(), names


def scan_landing(
    landing: Path,
    cursor: LandingCursor,
    *,
    first_day: dt.date,
    last_day: dt.date,
    materialized_fingerprint: Callable[[str], str | None] = lambda day: None,
) -> tuple[list[PartitionChange], LandingCursor, list[str]]:
    """Return (changes to request, the new cursor, notes: folders ignored and entries that will be
    quarantined, each with why)."""
    changes: list[PartitionChange] = []
    ignored: list[str] = []
    new = LandingCursor(
        dict(cursor.stat),
        dict(cursor.content),
        {k: list(v) for k, v in cursor.names.items()},
        dict(cursor.revisions),
    )
    if not landing.is_dir():
        return changes, new, [f"{landing}: landing folder does not exist"]
    with os.scandir(landing) as it:
        days = sorted(e.name for e in it)  # links and non-folders too: their runs quarantine them
    for day in days:
        if not DATE_DIR.match(day):
            ignored.append(f"{day}: not a YYYY-MM-DD folder")
            continue
        try:
            date = dt.date.fromisoformat(day)
        except ValueError:
            ignored.append(f"{day}: not a valid date")
            continue
        if not first_day <= date <= last_day:
            ignored.append(f"{day}: outside the partitions {first_day}..{last_day}")
            continue
        signature, names = _stat_signature(str(landing / day))
        if cursor.stat.get(day) == signature:
            continue
        new.stat[day] = signature
        listed = landing_files(landing, day)
        ignored += unreadable_entries(day, listed)
        fingerprint = partition_fingerprint(listed)
        previous = cursor.content.get(day) or materialized_fingerprint(day)
        if previous == fingerprint:
            new.content[day] = fingerprint
            continue
        old_names = set(cursor.names.get(day, []))
        if day not in cursor.content and previous is None:
            reason = "new_partition"
        elif set(names) - old_names:
            reason = "late_file"
        elif old_names - set(names):
            reason = "removed_file"
        else:
            reason = "changed_file"
        changed = tuple(sorted(set(names) ^ old_names)) or tuple(names)
        new.revisions[day] = cursor.revisions.get(day, 0) + 1
        changes.append(
            PartitionChange(day, fingerprint, reason, changed, previous, new.revisions[day])
        )
        new.content[day] = fingerprint
        new.names[day] = names
    return changes, new, ignored


def unreadable_entries(day: str, listed: list[LandingFile]) -> list[str]:
    """Notes for the entries of a day that are not regular files inside the root: never read,
    quarantined.
    """
    notes = []
    for f in listed:
        if f.kind == "file":
            continue
        what = f"a {f.kind.replace('_', ' ')}" + (f" ({f.detail})" if f.detail else "")
        if f.path.parent.name == day:
            notes.append(
                f"{day}/{f.name}: {what}, not a regular file inside the landing root: not read; "
                "its run quarantines it"
            )
        else:
            notes.append(f"{day}: the day folder is {what}: not followed; its run quarantines it")
    return notes
