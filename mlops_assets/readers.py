"""Landing-file readers: a registry from file format to the function that reads it.

Every reader returns a polars frame (CSV: every column as text, typed later by the data
contract) or raises ``FileRejected`` with the rule and a reason that names the row when it
can. The spec's ``landing.formats`` and the safe-file-name rule both derive from
``READERS``, so adding a format is one entry plus its test.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl


class FileRejected(Exception):
    def __init__(self, rule: str, reason: str, row: int | None = None, column: str | None = None):
        super().__init__(reason)
        self.rule, self.reason, self.row, self.column = rule, reason, row, column


def _csv_structure_error(path: Path) -> FileRejected | None:
    """Locate a ragged row or broken quoting with the csv module (polars' message has no row)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None:
                return FileRejected("unreadable", "empty file: no header row")
            for i, record in enumerate(reader, start=1):
                if len(record) != len(header):
                    return FileRejected(
                        "unreadable", f"malformed CSV: row {i} has {len(record)} fields, header has {len(header)}", row=i
                    )
    except csv.Error as err:
        return FileRejected("unreadable", f"malformed CSV near line {reader.line_num}: {err}", row=reader.line_num - 1)
    except UnicodeDecodeError as err:
        return FileRejected("unreadable", f"not UTF-8 text: {err.reason} at byte {err.start}")
    return None


def read_csv(path: Path) -> pl.DataFrame:
    problem = _csv_structure_error(path)
    if problem:
        raise problem
    try:
        return pl.read_csv(path, infer_schema=False, raise_if_empty=False)
    except Exception as err:  # noqa: BLE001 - any parser error is a file-level rejection
        raise FileRejected("unreadable", f"malformed CSV: {str(err).splitlines()[0]}") from None


def read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as err:  # noqa: BLE001
        raise FileRejected("unreadable", f"unreadable Parquet ({type(err).__name__}): {str(err).splitlines()[0]}") from None


READERS: dict[str, Callable[[Path], pl.DataFrame]] = {"csv": read_csv, "parquet": read_parquet}
"""File format (the file suffix without the dot) → its reader."""

SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # no hidden files, no path tricks, no spaces


def is_safe_file_name(name: str) -> bool:
    """A plain name with the suffix of a readable format."""
    return bool(re.match(SAFE_NAME, name)) and "." in name and file_format(Path(name)) in READERS


def file_format(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def read_file(path: Path) -> pl.DataFrame:
    """Read a landing file with the reader of its format; ``FileRejected`` when unreadable or unknown."""
    reader = READERS.get(file_format(path))
    if reader is None:
        expected = " or ".join(f".{f}" for f in READERS)
        raise FileRejected("file_name", f"unsupported file type {path.suffix or '(none)'}: expected {expected}")
    return reader(path)
