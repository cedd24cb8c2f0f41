"""``mlops-assets demo``: the lifecycle on embedded defaults, through the real Dagster instance.

Story (data plane): ~30 simulated days land; the landing sensor requests one run per
day; a duplicate file and a corrupt file are quarantined and block their day; the
operator removes the bad files and the sensor re-processes exactly those days; a late
file for an old day arrives and only that day (and its features) is re-processed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from collections import Counter

from mlops_assets.paths import Home
from mlops_assets.platform import Platform

LANDING_SENSOR = "landing_sensor"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _reset(home: Home) -> None:
    """The demo owns its home: start from an empty one so every run tells the same story."""
    for sub in ("landing", "lake", "dagster", "mlflow", "reports", "alerts"):
        shutil.rmtree(home.root / sub, ignore_errors=True)


class Demo:
    def __init__(self, days: int, seed: int):
        from mlops_assets.operations import open_platform

        self.days, self.seed = days, seed
        home = Home.from_env()
        _reset(home)
        self.platform, self.instance, self.defs = open_platform(Platform.from_env())
        self.cursors: dict[str, str | None] = {}
        self.events: list[str] = []
        self.failed_runs: list[str] = []

    # -- one sensor tick, with progress lines -----------------------------------------------
    def tick(self, label: str, sensor: str = LANDING_SENSOR, quiet: bool = False) -> list:
        from mlops_assets.operations import tick

        t0 = time.perf_counter()
        launched, self.cursors[sensor], skip = tick(self.instance, self.defs, sensor, self.cursors.get(sensor))
        if quiet:
            bad = [r.partition_key for r in launched if not r.success]
            _say(f"  [{label}] {sensor}: {len(launched)} run(s), {len(bad)} blocked, {time.perf_counter() - t0:.1f}s")
            return launched
        if not launched:
            _say(f"  [{label}] {sensor}: nothing to do ({skip or 'no new run requests'})")
        for run in launched:
            reason = run.tags.get("mlops/reason", "?")
            verdict = "ok" if run.success else "BLOCKED by a contract check"
            fails = [e.event_specific_data for e in run.result.all_events
                     if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
                     and e.event_specific_data.severity.value == "ERROR"]
            _say(f"  [{label}] {run.partition_key} ({reason}) run {run.run_id[:8]}: {verdict}")
            for f in fails:
                _say(f"      ✗ {f.check_name}: {f.description[:160]}")
            if not run.success:
                self.failed_runs.append(run.partition_key)
        _say(f"  [{label}] {len(launched)} run(s) in {time.perf_counter() - t0:.1f}s")
        return launched

    def run(self) -> int:
        from mlops_assets.simulator import Injection, simulate, write_late_files

        spec, landing = self.platform.spec, self.platform.landing
        if spec.name != "card_transactions":
            _say(f"the demo simulates the bundled card_transactions dataset; unset MLOPS_SPEC (got {spec.name})")
            return 2
        today = dt.date.today()
        start = today - dt.timedelta(days=self.days - 1)
        day = lambda n: start + dt.timedelta(days=n)  # noqa: E731
        dup_day, late_day, corrupt_day, schema_day = day(4), day(9), day(14), day(self.days - 8)
        concept_day = day(36)
        injections = [Injection("duplicate_file", dup_day), Injection("late_file", late_day),
                      Injection("corrupt_file", corrupt_day), Injection("schema_change", schema_day),
                      Injection("concept_drift", concept_day)]
        _say(f"mlops_assets demo — MLOPS_HOME={self.platform.home.root}")
        _say(f"1. simulating {self.days} days of card transactions {start} .. {today} (seed {self.seed})")
        for inj in injections:
            _say(f"     inject {inj.kind} @ {inj.date}")
        manifest = simulate(landing.parent, start, self.days, seed=self.seed, inject=injections)

        _say("2. landing sensor: first tick processes every day that landed")
        first = self.tick("tick 1")
        _say("3. a second tick with nothing new requests nothing (cursor + run_key)")
        self.tick("tick 2")

        _say("4. operator removes the duplicate and the corrupt file; the sensor re-processes those days only")
        removed = []
        for bad in (dup_day, corrupt_day):
            folder = landing / bad.isoformat()
            for f in sorted(folder.iterdir()):
                if f.stem.endswith(("-copy", "-part2")):
                    f.unlink()
                    removed.append(f"{bad}/{f.name}")
        _say(f"     removed {', '.join(removed)}")
        repaired = self.tick("tick 3")

        _say(f"5. a late file for {late_day} arrives; only that day is re-processed")
        write_late_files(manifest)
        late = self.tick("tick 4")
        _say("6. the same late file again (touched, unchanged) launches nothing")
        for f in (landing / late_day.isoformat()).iterdir():
            f.touch()
        self.tick("tick 5")

        _say("7. label sensor: delayed labels (partition = arrival date) are ingested")
        self.tick("labels", sensor="label_sensor", quiet=True)

        _say(f"8. weekly training (cutoffs every {spec.training.cadence_days} days; window {spec.training.window_days} "
             f"days; concept drift injected at {concept_day})")
        self.trainings = self.train(start, today)
        self.summary(first, repaired, late)
        return 0

    def train(self, start: dt.date, today: dt.date) -> list[tuple[str, bool, str]]:
        spec = self.platform.spec
        first = start + dt.timedelta(days=spec.training.window_days)
        cutoffs = []
        c = first
        while c <= today:
            cutoffs.append(c.isoformat())
            c += dt.timedelta(days=spec.training.cadence_days)
        job = self.defs.resolve_job_def("training")
        out = []
        for cutoff in cutoffs:
            t0 = time.perf_counter()
            result = job.execute_in_process(instance=self.instance, partition_key=cutoff, raise_on_error=False,
                                            tags={"mlops/trigger": "training_schedule", "mlops/reason": "weekly retrain"})
            evals = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
            champ = [e.event_specific_data.materialization.metadata for e in result.all_events
                     if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path == ["champion"]]
            failed = [e.description for e in evals if not e.passed]
            if champ:
                meta = champ[0]
                what = f"{meta['action'].value}: champion = v{meta['champion'].value}"
            elif failed:
                what = "REJECTED: " + "; ".join(failed)[:200]
            else:
                what = "failed before the gates (see the run in the UI)"
            _say(f"  cutoff {cutoff}: {what}  ({time.perf_counter() - t0:.1f}s)")
            out.append((cutoff, result.success, what))
        return out

    def summary(self, first, repaired, late) -> None:
        from mlops_assets.status import collect_status

        status = collect_status(self.platform, self.instance, self.defs)
        parts = status["partitions"]
        _say("\n=== summary ===")
        for key in ("raw_events", "features"):
            _say(f"partitions materialised: {key} {len(parts.get(key, []))}")
        passed = failed = 0
        failing = []
        for name, c in status["checks"].items():
            for part, r in c["partitions"].items():
                passed += r["passed"]
                failed += not r["passed"]
            failing += [f"{name}[{p}]" for p in c["failed"]]
        _say(f"checks (latest per partition): {passed} passed, {failed} failing")
        for f in failing[:8]:
            _say(f"  still failing: {f}")
        q = status["quarantine"]
        h = q["history"]
        _say(f"quarantine: {h['rows']} row(s) and {h['files']} file(s) rejected during the demo; "
             f"{q['rows']} row(s), {q['files']} file(s) still rejected now")
        reasons = Counter()
        for entry in h["by_file"]:
            reasons[f"{entry['ds']} {entry['file']}: {entry['rule']} — {entry['example'][:90]}"] += entry["rows"]
        for what, n in reasons.most_common(6):
            _say(f"  {n:>5} × {what}")
        _say(f"initial runs: {len(first)} ({sum(not r.success for r in first)} blocked by contracts)")
        _say("re-processed after repair: " + (", ".join(f"{r.partition_key} ({'ok' if r.success else 'blocked'})"
                                                      for r in repaired) or "none"))
        _say("late partitions re-processed: " + (", ".join(f"{r.partition_key} ({'ok' if r.success else 'blocked'})"
                                                          for r in late) or "none"))
        _say("training:")
        for cutoff, ok, what in self.trainings:
            _say(f"  {cutoff}: {what}")
        champ = status.get("champion")
        if champ:
            _say(f"champion: version {champ['version']} (cutoff {champ['cutoff']}) — {champ['why']}; "
                 f"{sum(g['passed'] for g in champ['gates'])}/{len(champ['gates'])} gates passed")
        else:
            _say("champion: none (no candidate passed every gate)")
        _say(f"\nexplore: `make ui` (Dagster UI on the same instance), `mlops-assets status`, "
             f"MLflow UI: `.venv/bin/mlflow ui --backend-store-uri sqlite:///{self.platform.home.mlflow_db}`")


def run_demo(days: int = 60, seed: int = 7) -> int:
    if days < 45:
        print("the demo needs at least 45 days (a 28-day training window, label delay, a few weekly cutoffs)",
              file=sys.stderr)
        return 2
    return Demo(days, seed).run()
