"""Shared pieces of the benchmark suite: results, tables, timers, peak-memory probes.

Rule of the project: speed and memory are measured here, never in timed tests, and every
number is printed next to a *baseline* run side by side in the same process (or, for peak
memory, in sibling subprocesses started the same way), as a ratio.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the project root (has mlops_assets/)
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Environment variables that point the code location somewhere; benchmarks run isolated.
PROJECT_ENV = (
    "MLOPS_HOME",
    "MLOPS_SPEC",
    "MLOPS_LAKE_URI",
    "MLOPS_LAKE_STORAGE_OPTIONS",
    "DAGSTER_HOME",
    "MLOPS_KILL_SWITCH",
)

# Dagster's console logger prints every event of a run at DEBUG: quiet it (same for all modes).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
@dataclass
class Goal:
    name: str  # what is checked, e.g. "steady tick"
    target: str  # e.g. "< 1 s"
    measured: str  # e.g. "0.081 s"
    passed: bool | None  # None: informational (no goal set)


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def render(self) -> str:
        cells = [[_cell(c) for c in row] for row in [self.header, *self.rows]]
        widths = [
            max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(len(self.header))
        ]
        lines = [self.title]
        for n, row in enumerate(cells):
            row = row + [""] * (len(widths) - len(row))
            first = row[0].ljust(widths[0])
            rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  " + "  ".join([first, *rest]).rstrip())
            if n == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        lines += [f"  * {note}" for note in self.notes]
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


@dataclass
class Result:
    name: str
    tables: list[Table]
    goals: list[Goal]
    data: dict[str, Any]  # the raw numbers, written to results/latest.json
    # the headline ratios ("scoring.asset_vs_floor": 1.02)
    keys: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "goals": [asdict(g) for g in self.goals],
            "data": self.data,
            "tables": [asdict(t) for t in self.tables],
        }


def goal(name: str, target: str, measured: str, passed: bool | None) -> Goal:
    return Goal(name, target, measured, None if passed is None else bool(passed))


# ---------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------
def secs(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 0.01:
        return f"{s * 1000:.2f} ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.2f} s"


def ratio(value: float | None, baseline: float | None, *, floor: float = 0.0) -> str:
    """``value / baseline`` as ``12.3x``; '—' when the baseline is (near) zero."""
    if value is None or baseline is None or baseline <= floor:
        return "—"
    r = value / baseline
    if r >= 100:
        return f"{r:.0f}x"
    return f"{r:.1f}x" if r >= 0.95 or r == 0 else f"{r:.2f}x"


def mb(n: float | None) -> str:
    return "—" if n is None else f"{n:,.1f} MB"


# ---------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------
@dataclass
class Timing:
    samples: list[float]

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {"best_s": self.best, "median_s": self.median, "samples_s": self.samples}


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def interleaved(
    variants: dict[str, Callable[[], Any]], repeats: int, warmup: bool = True
) -> dict[str, Timing]:
    """Time every variant ``repeats`` times, round-robin (A B C A B C …), so background load
    on a shared machine hits all variants alike. One untimed warm-up call each first."""
    if warmup:
        for fn in variants.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            elapsed, out = time_once(fn)
            del out
            samples[name].append(elapsed)
    return {k: Timing(v) for k, v in samples.items()}


# ---------------------------------------------------------------------------------------
# Peak memory: resident set size high-water mark of a fresh subprocess
# ---------------------------------------------------------------------------------------
def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRSS:
    """Peak RSS growth over a block, in MB.

    Linux: the kernel's high-water mark (``VmHWM``) is reset by writing ``5`` to
    ``/proc/self/clear_refs`` on entry and read on exit: exact, no sampling. Elsewhere: a
    psutil thread samples RSS every millisecond (may miss spikes shorter than that).
    ``method`` says which one was used.
    """

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.method = "VmHWM reset via /proc/self/clear_refs"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.base_kb = _status_kb("VmRSS")
            if self.base_kb is None or _status_kb("VmHWM") is None:
                raise OSError("no /proc/self/status")
            self._sampler = None
        except OSError:
            import psutil

            self.method = "psutil RSS sampling every 1 ms"
            proc = psutil.Process()
            self.base_kb = proc.memory_info().rss // 1024
            self._peak_kb = self.base_kb
            self._stop = threading.Event()

            def sample() -> None:
                while not self._stop.is_set():
                    self._peak_kb = max(self._peak_kb, proc.memory_info().rss // 1024)
                    time.sleep(0.001)

            self._sampler = threading.Thread(target=sample, daemon=True)
            self._sampler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._sampler is None:
            peak_kb = _status_kb("VmHWM") or self.base_kb
        else:
            self._stop.set()
            self._sampler.join()
            peak_kb = self._peak_kb
        self.base_mb = self.base_kb / 1024
        self.peak_mb = peak_kb / 1024
        self.delta_mb = max(0.0, (peak_kb - self.base_kb) / 1024)


def probe_main(variants: dict[str, Callable[[], Callable[[], Any]]], argv: Sequence[str]) -> None:
    """Child side of :func:`run_probe`: ``--probe NAME``. ``variants[NAME]()`` prepares the
    inputs (not measured) and returns the call to measure; prints one JSON line."""
    name = argv[argv.index("--probe") + 1]
    call = variants[name]()
    with PeakRSS() as mem:
        t = time.perf_counter()
        out = call()  # the result stays alive until the peak is read: its memory counts
        elapsed = time.perf_counter() - t
    del out
    print(
        "PROBE "
        + json.dumps(
            {
                "variant": name,
                "seconds": elapsed,
                "delta_mb": mem.delta_mb,
                "base_mb": mem.base_mb,
                "peak_mb": mem.peak_mb,
                "method": mem.method,
            }
        )
    )


def run_probe(
    module: str, variant: str, env: dict[str, str] | None = None, timeout: float = 300
) -> dict[str, Any]:
    """Run ``python -m <module> --probe <variant>`` in a fresh interpreter; parse its result."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--probe", variant],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("PROBE "):
            return json.loads(line[6:])
    raise RuntimeError(
        f"probe {module} {variant} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    )


# ---------------------------------------------------------------------------------------
# Isolation helpers
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def project_env(**values: str) -> Iterator[None]:
    """Set the project's environment variables for a block (others unset), then restore."""
    saved = {k: os.environ.get(k) for k in PROJECT_ENV}
    try:
        for k in PROJECT_ENV:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"mlops_bench_{prefix}_") as d:
        yield Path(d)


def machine_info() -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError):  # no load average on this platform
        info["load_avg_1m"] = os.getloadavg()[0]
    try:
        info["git_commit"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        info["git_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    return info
