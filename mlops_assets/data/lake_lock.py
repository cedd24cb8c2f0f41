"""A named exclusive lock of one lake, for writers that must take turns (the alias ledger's moves).

Two kinds, decided by the lake's configuration (``DeltaLake.lock_dsn``, from
``$MLOPS_LOCK_DSN``), never by the environment at the point of use: a PostgreSQL advisory lock
when a DSN is configured (a lake on object storage written from several hosts), else an
``flock``-ed file ``_<name>.lock`` in a local folder (beside a local lake, so every process
writing it shares the file).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class LockTimeout(TimeoutError):
    """The file lock stayed held by another writer for longer than the caller waits."""


@dataclass(frozen=True)
class LakeLock:
    name: str
    # libpq DSN of the PostgreSQL holding the advisory lock (empty: the file lock); a secret
    dsn: str = field(repr=False)
    directory: Path  # folder of the file lock

    @contextlib.contextmanager
    def hold(self, timeout_s: float) -> Iterator[None]:
        """Hold the lock for the ``with`` block, waiting at most ``timeout_s`` for it
        (``LockTimeout`` for the file lock; PostgreSQL's ``lock_timeout`` error for the other)."""
        holder = self._advisory if self.dsn else self._file
        with holder(timeout_s):
            yield

    def advisory_key(self) -> int:
        """The 60-bit advisory lock key of ``name`` (the same in every process)."""
        return int(hashlib.sha256(f"mlops_assets.{self.name}".encode()).hexdigest()[:15], 16)

    @contextlib.contextmanager
    def _file(self, timeout_s: float) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"_{self.name}.lock", "a+") as fh:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(
                            f"another writer holds the {self.name} lock for over {timeout_s:.0f} s"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _advisory(self, timeout_s: float) -> Iterator[None]:
        import psycopg2  # the production lock only

        key = self.advisory_key()
        conn = psycopg2.connect(self.dsn, connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = %s", (f"{int(timeout_s * 1000)}ms",))
                cur.execute("SELECT pg_advisory_lock(%s)", (key,))
            yield
        finally:
            with contextlib.suppress(Exception), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
            conn.close()
