"""Test-only crash points: a process stops at a named step boundary so a test can ``kill -9`` it.

``pause_point(name)`` does nothing unless ``$MLOPS_TEST_PAUSE_AT`` names that point; then it
writes the name to ``$MLOPS_TEST_PAUSE_FILE`` and sleeps, and the test kills the process
there. The production code paths are the same with or without it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT_ENV, PAUSE_FILE_ENV = "MLOPS_TEST_PAUSE_AT", "MLOPS_TEST_PAUSE_FILE"


def pause_point(name: str) -> None:
    if os.environ.get(PAUSE_AT_ENV) == name:
        Path(os.environ[PAUSE_FILE_ENV]).write_text(name)
        time.sleep(120)
