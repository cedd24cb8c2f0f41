"""The drift modules stay cheap to import: the code location loads them at start-up."""

from __future__ import annotations

import subprocess
import sys


def test_drift_module_imports_light():
    """Importing the drift modules must not pull in scipy or evidently (code-location load)."""
    code = (
        "import sys, mlops_assets.monitoring; before = set(sys.modules); import"
        " mlops_assets.monitoring.drift.methods, mlops_assets.monitoring.drift.profile,"
        " mlops_assets.monitoring.drift.stats; print(','.join(m for m in ('scipy', 'evidently') if"
        " m in set(sys.modules) - before))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
