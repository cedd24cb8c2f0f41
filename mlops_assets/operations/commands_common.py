"""What every ``mlops-assets`` command group shares: argument types and the stderr channel."""

from __future__ import annotations

import argparse
import datetime as dt
import sys


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parse_timestamp(text: str) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a timestamp (YYYY-MM-DD[THH:MM[:SS]]): {text!r}"
        ) from None
    return (
        at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo else at
    )  # the ledger keeps naive UTC


def print_err(line: str) -> None:
    """Progress and warnings: stderr, so stdout carries only the outcome."""
    print(line, file=sys.stderr, flush=True)
