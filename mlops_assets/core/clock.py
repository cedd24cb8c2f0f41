"""The platform's one reading of the wall clock: now, as naive UTC.

Every timestamp the platform stores (Delta tables, the ledger, quarantine and score rows) is naive
UTC, so the comparison of two of them never depends on the host's time zone. Rules take the time as
an argument; the wiring and the services that supply it call ``utc_now``.
"""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The current time in UTC, without a time zone (microseconds kept)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
