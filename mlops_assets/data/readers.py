"""Landing-file readers: a registry from file format to the function that reads it, and the
landing zone's entries (listed with ``lstat``: a link is never followed, only a regular file
inside the landing root is ever opened).

Every reader returns a polars frame (CSV: every column as text, typed later by the data
contract) or raises ``FileRejected`` with the rule and a reason that names the row when it
can. The spec's ``landing.formats`` and the safe-file-name rule both derive from
``READERS``, so adding a format is one entry plus its test.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    pass


class FileRejected(Exception):
    def __init__(self, rule: str, reason: str, row: int | None = None, column: str | None = None):
        super().__init__(reason)
        self.rule, self.reason, self.row, self.column = rule, reason, row, column


CSV_DELIMITER = ","
OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def wrong_delimiter(header: list[str]) -> FileRejected | None:
    """A header that parsed as ONE column holding another delimiter: the file is not
    comma-separated.
    """
    if len(header) != 1:
        return None
    found = [(d, name) for d, name in OTHER_DELIMITERS.items() if d in header[0]]
    if not found:
        return None
    d, name = max(found, key=lambda f: header[0].count(f[0]))
    shown = header[0] if len(header[0]) <= 80 else header[0][:77] + "..."
    return FileRejected(
        "unreadable",
        f"wrong delimiter: the header parsed as one column {shown!r} containing "
        f"{name} ({d!r}) separators; landing CSV files must be separated by {CSV_DELIMITER!r}",
    )


def _csv_structure_error(path: Path) -> FileRejected | None:
    """Locate a wrong delimiter, a ragged row or broken quoting with the csv module (polars' message
    has no row).
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None:
                return FileRejected("unreadable", "empty file: no header row")
            if problem := wrong_delimiter(header):
                return problem
            for i, record in enumerate(reader, start=1):
                if len(record) != len(header):
                    return FileRejected(
                        "unreadable",
                        f"malformed CSV: row {i} has {len(record)} fields, header has"
                        f" {len(header)}",
                        row=i,
                    )
    except csv.Error as err:
        return FileRejected(
            "unreadable",
            f"malformed CSV near line {reader.line_num}: {err}",
            row=reader.line_num - 1,
        )
    except UnicodeDecodeError as err:
        return FileRejected("unreadable", f"not UTF-8 text: {err.reason} at byte {err.start}")
    return None


_QUOTE, _COMMA, _NEWLINE, _CR = (ord(c) for c in '"' + CSV_DELIMITER + "\n\r")


def _ragged(data: bytes, fields: int, chunk: int = 1 << 23) -> bool:
    """Whether a record of ``data`` may have a field count other than ``fields`` — vectorised, numpy
    over ``chunk`` bytes at a time. A delimiter or line break counts only outside quotes (an even
    number of quote characters before it, which also handles ``""`` escapes); a blank line has 0
    fields; quoting still open at the end answers True. True sends the file to the exact pass, which
    decides and names the row (polars itself pads short rows silently)."""
    import numpy as np

    parity, carried, carried_content = (
        0,
        0,
        False,
    )  # quote state; separators / content of the open record
    for start in range(0, len(data), chunk):
        block = np.frombuffer(
            data, dtype=np.uint8, count=min(chunk, len(data) - start), offset=start
        )
        inside = ((np.cumsum(block == _QUOTE, dtype=np.uint8) + parity) & 1).astype(bool)
        parity = int(inside[-1])
        ends = np.flatnonzero((block == _NEWLINE) & ~inside)
        seps = np.flatnonzero((block == _COMMA) & ~inside)
        if len(ends):
            per_record = np.diff(np.searchsorted(seps, ends), prepend=0)
            per_record[0] += carried
            lengths = np.diff(ends, prepend=-1) - 1
            starts = ends - lengths
            content = (lengths > 1) | (
                (lengths == 1) & (block[np.minimum(starts, len(block) - 1)] != _CR)
            )
            content[0] |= carried_content
            counts = np.where(content, per_record + 1, 0)
            if (counts != fields).any():
                return True
            tail = block[ends[-1] + 1 :]
            carried = len(seps) - int(np.searchsorted(seps, ends[-1]))
            carried_content = bool(((tail != _NEWLINE) & (tail != _CR)).any())
        else:
            carried += len(seps)
            carried_content = carried_content or bool(((block != _NEWLINE) & (block != _CR)).any())
    return bool(parity) or (carried_content and carried + 1 != fields)


def _field_counts_differ(path: Path, fields: int) -> bool:
    """Whether a record of the file may not have ``fields`` fields. Without a quote character in the
    file a record is a line and polars counts its delimiters; with one, ``_ragged`` follows the
    quoting. Any doubt (a line polars cannot split) answers True: the exact pass decides."""
    lines = pl.scan_csv(
        path,
        has_header=False,
        separator="\x1f",
        quote_char=None,
        infer_schema=False,
        new_columns=["line"],
        raise_if_empty=False,
    )
    line = pl.col("line").str.strip_chars_end("\r")
    count = (
        pl.when(line.is_null() | (line == ""))
        .then(0)
        .otherwise(line.str.count_matches(CSV_DELIMITER, literal=True) + 1)
    )
    try:
        quoted, ragged = (
            lines.select(
                pl.col("line").str.contains('"', literal=True).any(), (count != fields).any()
            )
            .collect()
            .row(0)
        )
    # e.g. a line holding the probe separator: let the exact pass decide
    except Exception:
        return True
    return _ragged(path.read_bytes(), fields) if quoted else bool(ragged)


def read_csv(path: Path) -> pl.DataFrame:
    """The file as text columns. Vectorised: polars reads it and a numpy pass counts every record's
    fields; only when either fails does the exact row-by-row pass (``csv``) run, to name the row and
    the reason."""
    try:
        frame = pl.read_csv(path, infer_schema=False, raise_if_empty=False)
    except Exception as err:  # noqa: BLE001 - any parser error is a file-level rejection
        problem = _csv_structure_error(path)  # … naming the row when the exact pass can
        raise (
            problem or FileRejected("unreadable", f"malformed CSV: {str(err).splitlines()[0]}")
        ) from None
    suspect = frame.width == 0 or (frame.width == 1 and wrong_delimiter(frame.columns) is not None)
    if suspect or _field_counts_differ(path, frame.width):
        problem = _csv_structure_error(path)
        if problem:
            raise problem
    return frame


def read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as err:  # noqa: BLE001
        raise FileRejected(
            "unreadable", f"unreadable Parquet ({type(err).__name__}): {str(err).splitlines()[0]}"
        ) from None


READERS: dict[str, Callable[[Path], pl.DataFrame]] = {"csv": read_csv, "parquet": read_parquet}
"""File format (the file suffix without the dot) → its reader."""

SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # no hidden files, no path tricks, no spaces


def is_safe_file_name(name: str) -> bool:
    """A plain name with the suffix of a readable format."""
    return bool(re.match(SAFE_NAME, name)) and "." in name and file_format(Path(name)) in READERS


def file_format(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def read_file(path: Path) -> pl.DataFrame:
    """Read a landing file with the reader of its format; ``FileRejected`` when unreadable or
    unknown.
    """
    reader = READERS.get(file_format(path))
    if reader is None:
        expected = " or ".join(f".{f}" for f in READERS)
        raise FileRejected(
            "file_name", f"unsupported file type {path.suffix or '(none)'}: expected {expected}"
        )
    return reader(path)


# ---------------------------------------------------------------------------------------
# The landing zone's entries
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LandingFile:
    """One entry of a day folder. Only a ``kind == "file"`` entry (a regular file whose real path is
    inside the landing root) is hashed and ever read; any other kind is rejected without opening
    it."""

    path: Path
    size: int
    sha256: str
    kind: str = "file"  # file | symlink | outside_root | directory | fifo | socket | device
    detail: str = ""  # a symlink's target, or the real path outside the root

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def token(self) -> str:
        """What the fingerprint records: the content hash of a file, the kind (and target) of
        anything else.
        """
        return self.sha256 if self.kind == "file" else f"{self.kind}:{self.detail}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # a day folder of the landing zone: YYYY-MM-DD


def day_dir(landing: Path, day: str) -> Path:
    return landing / day


def landing_root(landing: Path) -> Path:
    """The real path of the landing root: every path read must resolve under it."""
    return Path(os.path.realpath(landing))


def entry_kind(root: Path, path: Path) -> tuple[str, str]:
    """(kind, detail) of a landing path, from ``lstat`` (a link is never followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing", ""
    if stat.S_ISLNK(st.st_mode):
        return "symlink", os.readlink(path)
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        return "outside_root", str(real)
    kinds = (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
    )
    return next((kind for test, kind in kinds if test(st.st_mode)), "device"), ""


def landing_files(landing: Path, day: str) -> list[LandingFile]:
    """Every entry of ``<landing>/<day>/``, sorted by name (the processing order); no link is
    followed.

    A day folder that is a symlink (or not a directory, or outside the root) is ONE entry named
    after the day, of that kind: nothing under it is listed or read."""
    root, folder = landing_root(landing), day_dir(landing, day)
    kind, detail = entry_kind(root, folder)
    if kind == "missing":
        return []
    if kind != "directory":
        return [LandingFile(folder, 0, "", kind, detail)]
    out = []
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        p = Path(entry.path)
        kind, detail = entry_kind(root, p)
        if kind == "missing":  # removed while listing
            continue
        size = os.lstat(p).st_size if kind != "file" else os.stat(p).st_size
        out.append(LandingFile(p, size, sha256_file(p) if kind == "file" else "", kind, detail))
    return out


def partition_fingerprint(files: list[LandingFile]) -> str:
    """Content fingerprint of a partition's landing entries (names and sha256, or kind for a
    non-file).
    """
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name}\0{f.token}\n".encode())
    return h.hexdigest()


def admission_problem(
    root: Path, lf: LandingFile, formats: tuple[str, ...], day: str
) -> FileRejected | None:
    """Why a landing entry may not be read (checked again just before reading), or None."""
    inner = lf.path.parent.name == day
    what = repr(lf.name) if inner else f"day folder {day}"
    kind, detail = entry_kind(
        root, lf.path
    )  # again: the entry may have changed since it was listed
    if kind == "symlink":
        return FileRejected(
            "file_name",
            f"{what} is a symbolic link (to {detail}): links are never followed in "
            "the landing zone; copy the files themselves into a real folder",
        )
    if kind == "outside_root":
        return FileRejected(
            "file_name", f"{what} resolves to {detail}, outside the landing root {root}"
        )
    if not inner:
        return FileRejected(
            "not_a_file", f"{what} is a {kind}, not a folder of landing files: nothing was read"
        )
    if kind == "missing":
        return FileRejected("unreadable", f"{what} disappeared before it could be read")
    if kind != "file":
        return FileRejected(
            "not_a_file", f"{what} is a {kind}, not a regular file: only regular files are read"
        )
    if not is_safe_file_name(lf.name):
        return FileRejected(
            "file_name",
            f"unsafe or unsupported file name {lf.name!r}: "
            f"expected a plain name ending in {', '.join('.' + f for f in READERS)}",
        )
    if file_format(lf.path) not in formats:
        return FileRejected(
            "file_name",
            f"{lf.path.suffix} files are not accepted here (landing.formats: {', '.join(formats)})",
        )
    return None
