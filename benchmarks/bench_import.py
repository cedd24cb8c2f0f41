"""Code-location load: ``import mlops_assets.definitions`` in a fresh interpreter.

Every webserver/daemon reload of the code location pays this. Each sample is a fresh
``python -c`` subprocess that times only the import (interpreter start-up excluded) and
lists which heavy libraries ended up in ``sys.modules``; mlflow, evidently and sklearn must
not (they load inside the assets that use them). Baseline: ``import dagster`` alone, the
same way, interleaved with the samples above. Median of 5 (3 with --quick) after one
untimed warm-up of each (page cache, .pyc files). One more run with ``-X importtime``
names the slowest first-level imports. Goals: ≤ 1.5 s, ≤ 1.5× `import dagster`, none of the three.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from typing import Any

from benchmarks.common import ROOT, Result, Table, goal, ratio, secs, temp_dir

GOAL_S = 1.5
GOAL_RATIO = 1.5  # the code location may cost at most half of what `import dagster` costs
FORBIDDEN = ("mlflow", "evidently", "sklearn")
WATCHED = (
    *FORBIDDEN,
    "scipy",
    "pandas",
    "pyarrow",
    "deltalake",
    "dagster_pandas",
    "polars",
    "numpy",
)

SNIPPET = """\
import time, sys
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
import json
top = {{m.split('.')[0] for m in sys.modules}}
print("IMPORT " + json.dumps({{"seconds": elapsed, "modules": len(sys.modules),
                              "loaded": sorted(top & set({watched!r}))}}))
"""


def _sample(module: str, env: dict[str, str]) -> dict[str, Any]:
    code = SNIPPET.format(module=module, watched=WATCHED)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    for line in proc.stdout.splitlines():
        if line.startswith("IMPORT "):
            return json.loads(line[7:])
    raise RuntimeError(f"import {module} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def _importtime(module: str, env: dict[str, str], top: int = 6) -> list[tuple[str, float]]:
    """The slowest first-level imports (cumulative seconds) below ``module``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Post-order listing: a module's direct imports (indent 3) come right before it (indent 1).
    rows: list[tuple[str, float]] = []
    children: list[tuple[str, float]] = []
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")
    for line in proc.stderr.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        name, cumulative, indent = m.group(4), int(m.group(2)) / 1e6, len(m.group(3))
        if indent == 3:
            children.append((name, cumulative))
        elif indent == 1:
            if name == module:
                rows = children
            children = []
    return sorted(rows, key=lambda r: -r[1])[:top]


def bench(quick: bool = False) -> Result:
    repeats = 2 if quick else 5
    with temp_dir("import") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_"))}
        env.update(
            MLOPS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), PYTHONWARNINGS="ignore"
        )
        variants = {"dagster": "dagster", "definitions": "mlops_assets.definitions"}
        for module in variants.values():  # warm-up, untimed
            _sample(module, env)
        samples: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
        for _ in range(repeats):
            for key, module in variants.items():
                samples[key].append(_sample(module, env))
        slowest = _importtime(variants["definitions"], env)

    med = {k: statistics.median(s["seconds"] for s in v) for k, v in samples.items()}
    loaded = {k: sorted({m for s in v for m in s["loaded"]}) for k, v in samples.items()}
    forbidden = [m for m in loaded["definitions"] if m in FORBIDDEN]
    table = Table(
        f"code-location load in a fresh interpreter (median of {repeats})",
        ["import", "median", "min", "max", "× dagster", "modules", "heavy libraries loaded"],
    )
    for key, module in variants.items():
        secs_ = [s["seconds"] for s in samples[key]]
        table.add(
            f"import {module}" + (" (baseline)" if key == "dagster" else ""),
            secs(med[key]),
            secs(min(secs_)),
            secs(max(secs_)),
            ratio(med[key], med["dagster"]),
            samples[key][0]["modules"],
            ", ".join(loaded[key]) or "none",
        )
    table.notes += [
        (
            "mlflow / evidently / sklearn imported by the code location:"
            f" {', '.join(forbidden) or 'none'}"
        ),
        f"code location's own cost over dagster: {secs(med['definitions'] - med['dagster'])}",
        "slowest direct imports (-X importtime, cumulative, one run): "
        + ", ".join(f"{name} {secs(s)}" for name, s in slowest),
    ]
    goals = [
        goal(
            "import mlops_assets.definitions",
            f"<= {GOAL_S:g} s",
            f"{secs(med['definitions'])} ({ratio(med['definitions'], med['dagster'])} dagster)",
            med["definitions"] <= GOAL_S,
        ),
        goal(
            "definitions / import dagster",
            f"<= {GOAL_RATIO:g}x",
            ratio(med["definitions"], med["dagster"]),
            med["definitions"] <= GOAL_RATIO * med["dagster"],
        ),
        goal(
            "mlflow/evidently/sklearn imported",
            "none",
            ", ".join(forbidden) or "none",
            not forbidden,
        ),
    ]
    data = {
        "repeats": repeats,
        "median_s": med,
        "samples": samples,
        "loaded": loaded,
        "forbidden_loaded": forbidden,
        "ratio_vs_dagster": med["definitions"] / med["dagster"],
        "slowest_direct_imports_s": dict(slowest),
    }
    return Result(
        "import",
        [table],
        goals,
        data,
        {
            "load.definitions_seconds": med["definitions"],
            "load.definitions_vs_dagster": med["definitions"] / med["dagster"],
        },
    )


if __name__ == "__main__":
    for tbl in bench("--quick" in sys.argv).tables:
        print(tbl.render())
