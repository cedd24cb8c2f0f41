"""``mlops-assets demo``: ~60 simulated days of the whole lifecycle, through the real Dagster
instance.

The simulator writes every day into ``$MLOPS_HOME/incoming`` (the outside world); the
demo delivers one day at a time into the landing zone and lets the sensors and the
weekly schedule react, exactly as they would in production — except that sensor ticks
and their runs execute in this process (`operations.tick`) instead of in the daemon.

The story: history lands (a duplicate and a corrupt file are quarantined, then fixed;
a late file re-processes its old day), the first model is trained and promoted; then
day by day: covariate drift → drift sensor → retrain → gates → promotion; a labelling
bug → candidates rejected by the gates, then a worse model that the gates cannot see
→ its matured performance trips the guard → automatic rollback → re-scoring.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

from mlops_assets.control.registry.links import mlflow_ui_base
from mlops_assets.core.paths import Home
from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
from mlops_assets.core.vocabulary import (
    SHADOW_SCORES,
    Action,
    Alias,
    Job,
    RunTag,
    Schedule,
    Sensor,
)
from mlops_assets.data.simulator import (
    Injection,
    SimulationManifest,
    simulate,
    write_label_correction,
    write_late_files,
)
from mlops_assets.model.promotion import PromotionRefused, promote_with_waiver, read_audit
from mlops_assets.operations.demo_readout import (
    blocking_failures,
    champion_outcome,
    day_text,
    estimation_story,
    materialised,
    rescored_versions,
    shadow_note,
    training_outcome,
)
from mlops_assets.operations.runs import QUIET, open_platform, tick
from mlops_assets.operations.status import collect_status


def _say(msg: str) -> None:
    print(msg, flush=True)


SHADOW_DAYS = (
    2  # demo only: a passing candidate beside a champion waits this many days of shadow scores
)
DEMO_SPEC = (  # under $MLOPS_HOME: what the demo's instance (and `make ui`) is built from
    "demo_spec.yaml"
)
WAIVER_WEEK = 3  # the weekly retrain whose rejected candidate the operator ships under a waiver


def _reset(home: Home) -> None:
    """The demo owns its home: start from an empty one so every run tells the same story."""
    for sub in (
        "incoming",
        "landing",
        "lake",
        "dagster",
        "mlflow",
        "reports",
        "alerts",
        "model_cache",
    ):
        shutil.rmtree(home.root / sub, ignore_errors=True)


def demo_spec(base: dict, start: dt.date, shadow_days: int = SHADOW_DAYS) -> dict:
    """The bundled spec as the demo runs it: partitions start on the simulation's first day (no
    months of empty partitions in the UI) and a passing candidate waits ``shadow_days`` as
    challenger."""
    return {
        **base,
        "partition_start": start,
        "gates": {**base.get("gates", {}), "shadow_days": shadow_days},
    }


def write_demo_spec(home: Home, start: dt.date, source: Path | None = None) -> Path:
    """``$MLOPS_HOME/demo_spec.yaml`` from ``source`` (default ``$MLOPS_SPEC``, else the bundled
    spec). The demo loads it by path; ``make ui`` finds it in ``$MLOPS_HOME``."""
    source = Path(source or os.environ.get("MLOPS_SPEC") or BUNDLED_SPEC)
    path = home.root / DEMO_SPEC
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# written by `mlops-assets demo`: the bundled spec with the demo's partition_start and "
        "shadow_days\n"
        + yaml.safe_dump(demo_spec(yaml.safe_load(source.read_text()), start), sort_keys=False)
    )
    return path


class Demo:
    def __init__(self, days: int, seed: int):
        # the shadow wait delays each promotion beside a champion: the window grows by it, so the
        # rest of the story (the buggy model's matured labels tripping the guard) still fits
        # before today
        self.days, self.seed = days + SHADOW_DAYS, seed
        home = Home.from_env()
        _reset(home)
        self.today = dt.date.today()
        self.start = self.today - dt.timedelta(days=self.days - 1)
        self.spec_path = write_demo_spec(home, self.start)
        self.platform, self.instance, self.defs = open_platform(
            Platform(load_spec(self.spec_path), home)
        )
        self.cursors: dict[str, str | None] = {}
        self.story: list[str] = []  # what happened, with evidence, for the summary
        self.runs = 0
        self.scorecards = 0
        self.shadowed: list[int] = []  # versions that waited as challenger
        self.correction: Path | None = None  # the label team's re-delivery, when simulated
        self.drift_day = self.start

    # ---- the outside world -----------------------------------------------------------------
    @property
    def incoming(self):
        return self.platform.home.root / "incoming"

    def day(self, n: int) -> dt.date:
        return self.start + dt.timedelta(days=n)

    def deliver(self, day: dt.date) -> None:
        """Events of ``day`` and the labels that arrive on ``day`` reach the landing zone."""
        for feed, target in (
            ("events", self.platform.landing),
            ("labels", self.platform.label_landing),
        ):
            src = self.incoming / feed / day.isoformat()
            if src.is_dir():
                dst = target / day.isoformat()
                dst.mkdir(parents=True, exist_ok=True)
                for f in sorted(src.iterdir()):
                    shutil.copy2(f, dst / f.name)

    # ---- sensors and runs --------------------------------------------------------------------
    def tick(self, sensor: str) -> list:
        launched, self.cursors[sensor], _ = tick(
            self.instance, self.defs, sensor, self.cursors.get(sensor), quiet=True
        )
        self.runs += len(launched)
        return launched

    def train(self, cutoff: dt.date, trigger: str, reason: str) -> str:
        result = self.defs.resolve_job_def(Job.TRAINING).execute_in_process(
            instance=self.instance,
            partition_key=cutoff.isoformat(),
            raise_on_error=False,
            run_config=QUIET,
            tags={RunTag.TRIGGER: trigger, RunTag.REASON: reason},
        )
        self.runs += 1
        return self.note_shadow(training_outcome(result))

    def note_shadow(self, outcome: str) -> str:
        if Action.AWAIT_SHADOW in outcome:
            self.shadowed.append(int(outcome.split()[0].lstrip("v")))
            outcome += f" (challenger: waits {SHADOW_DAYS} days of shadow scores)"
        return outcome

    def scorecard(self) -> None:
        """A point of every scorecard measure (the hourly schedule's job, run now)."""
        result = self.defs.resolve_job_def(Job.SCORECARD).execute_in_process(
            instance=self.instance,
            raise_on_error=False,
            run_config=QUIET,
            tags={RunTag.TRIGGER: Schedule.SCORECARD, RunTag.REASON: "demo"},
        )
        self.runs += 1
        self.scorecards += result.success

    # ---- the story -----------------------------------------------------------------------------
    def run(self) -> int:
        spec = self.platform.spec
        if spec.name != "card_transactions":
            _say(
                "the demo simulates the bundled card_transactions dataset; unset MLOPS_SPEC (got"
                f" {spec.name})"
            )
            return 2
        first_cutoff = spec.training.window_days
        inject = self.injections(first_cutoff)
        manifest = self.simulate_world(inject)
        self.land_history(first_cutoff)
        self.repair(inject["duplicate_file"], inject["corrupt_file"])
        self.late_file(manifest, inject["late_file"])
        cutoff = self.day(first_cutoff)
        _say(
            f"5. first training (cutoff {cutoff}):"
            f" {self.train(cutoff, Schedule.TRAINING, 'weekly retrain')}"
        )
        _say(f"6. live: one day at a time, {cutoff} .. {self.today}")
        for n in range(first_cutoff, self.days):
            self.live_day(self.day(n), first_cutoff, n)
        self.scorecard()
        self.summary()
        return 0

    def injections(self, first_cutoff: int) -> dict[str, dt.date]:
        """What goes wrong in the simulated world, and when (relative to the first cutoff)."""
        return {
            "duplicate_file": self.day(4),
            "late_file": self.day(9),
            "corrupt_file": self.day(14),
            "label_noise": self.day(first_cutoff - 5),
            "covariate_drift": self.day(first_cutoff + 1),
            "schema_change": self.day(self.days - 10),
        }

    def simulate_world(self, inject: dict[str, dt.date]) -> SimulationManifest:
        """1. the whole simulated period into incoming/, and the late label correction."""
        spec = self.platform.spec
        _say(f"mlops_assets demo — MLOPS_HOME={self.platform.home.root}")
        _say(
            f"   spec: {self.spec_path} (partitions from {self.start}; gates.shadow_days"
            f" {SHADOW_DAYS})"
        )
        _say(
            f"1. simulating {self.days} days of card transactions {self.start} .. {self.today}"
            f" (seed {self.seed}) into incoming/"
        )
        for kind, when in inject.items():
            _say(f"     inject {kind} @ {when}")
        manifest = simulate(
            self.incoming,
            self.start,
            self.days,
            seed=self.seed,
            inject=[Injection(k, d) for k, d in inject.items()],
        )
        self.correction = write_label_correction(manifest, spec, arrival=self.today)
        self.drift_day = inject["covariate_drift"]
        if self.correction:
            _say(
                f"     the label team re-delivers the lost labels @ {self.today}"
                f" ({self.correction.name})"
            )
        return manifest

    def land_history(self, first_cutoff: int) -> None:
        """2. the history before the first cutoff lands at once; contracts block the bad days."""
        _say(
            f"2. history: {first_cutoff} days land at once; the landing sensor requests one run"
            " per day"
        )
        t0 = time.perf_counter()
        for n in range(first_cutoff):
            self.deliver(self.day(n))
        first = self.tick(Sensor.LANDING)
        blocked = [r for r in first if not r.success]
        _say(
            f"   {len(first)} runs in {time.perf_counter() - t0:.0f}s; blocked by contracts: "
            + ", ".join(r.partition_key for r in blocked)
        )
        for r in blocked:
            for f in blocking_failures(r.result):
                _say(f"      ✗ {r.partition_key} {f.check_name}: {f.description[:150]}")
                self.story.append(
                    f"quarantine: {r.partition_key} {f.check_name} — {f.description[:160]}"
                )
        labels = self.tick(Sensor.LABELS)
        _say(f"   label_sensor: {len(labels)} arrival days of labels ingested")

    def repair(self, *bad_days: dt.date) -> None:
        """3. the operator removes the offending files; only those days are re-processed."""
        _say(
            "3. the operator removes the duplicate and the corrupt file; the sensor re-processes"
            " those days only"
        )
        for bad in bad_days:
            for f in sorted((self.platform.landing / bad.isoformat()).iterdir()):
                if f.stem.endswith(("-copy", "-part2")):
                    f.unlink()
                    _say(f"     removed {bad}/{f.name}")
        fixed = self.tick(Sensor.LANDING)
        _say(
            "   re-processed: "
            + ", ".join(
                f"{r.partition_key} ({r.tags[RunTag.REASON]}, {'ok' if r.success else 'blocked'})"
                for r in fixed
            )
        )
        self.story.append(
            "repair: "
            + ", ".join(
                f"{r.partition_key} re-processed after the bad file was removed "
                f"({'ok' if r.success else 'still blocked'})"
                for r in fixed
            )
        )

    def late_file(self, manifest: SimulationManifest, late_day: dt.date) -> None:
        """4. a late file re-processes its old day once; seen again, it launches nothing."""
        _say(
            f"4. a late file for {late_day} arrives; only that day (and its features) is"
            " re-processed"
        )
        for rec in write_late_files(manifest):
            src = self.incoming / rec.path
            shutil.copy2(src, self.platform.landing / rec.date / src.name)
        late = self.tick(Sensor.LANDING)
        _say(
            "   "
            + ", ".join(
                f"{r.partition_key} ({r.tags[RunTag.REASON]}): {'ok' if r.success else 'blocked'}"
                for r in late
            )
        )
        again = self.tick(Sensor.LANDING)
        _say(f"   the same file seen again: {len(again)} run(s)")
        self.story.append(
            f"late data: {', '.join(r.partition_key for r in late)} re-processed once "
            f"({len(again)} run on a second tick)"
        )

    # ---- one live day ----------------------------------------------------------------------
    def live_day(self, d: dt.date, first_cutoff: int, n: int) -> None:
        """6. day ``d`` lands; every sensor reacts once; one line says what happened."""
        cadence = self.platform.spec.training.cadence_days
        self.deliver(d)
        daily = self.tick(Sensor.LANDING)
        notes = [shadow_note(m) for m in materialised(daily, SHADOW_SCORES)[:1]]
        self.tick(Sensor.LABELS)
        perf = self.tick(Sensor.PERFORMANCE)
        notes += self.drift_retrains(d)
        notes += self.guard(d)
        notes += self.rescore(d)
        notes += self.shadow_promotions(d)
        if n > first_cutoff and (n - first_cutoff) % cadence == 0:
            notes += self.weekly_retrain(d, waiver_day=n == first_cutoff + WAIVER_WEEK * cadence)
        _say(
            f"   {d}: {day_text(daily)}, performance of"
            f" {sum(len(r.partition_keys) for r in perf)} day(s) updated"
            + (" | " + " | ".join(notes) if notes else "")
        )

    def drift_retrains(self, d: dt.date) -> list[str]:
        notes = []
        for r in self.tick(Sensor.DRIFT):
            outcome = self.note_shadow(training_outcome(r.result))
            notes.append(f"DRIFT → retrain {r.partition_key}: {outcome}")
            self.story.append(
                f"{d} drift_sensor: {r.tags[RunTag.REASON][:150]} → retrain cutoff "
                f"{r.partition_key}: {outcome}"
            )
        return notes

    def guard(self, d: dt.date) -> list[str]:
        registry = self.defs.resources["registry"]
        before = registry.get_alias(Alias.CHAMPION)
        self.tick(Sensor.GUARD)
        after = registry.get_alias(Alias.CHAMPION)
        if after == before:
            return []
        row = read_audit(self.defs.resources["lake"], limit=1).row(0, named=True)
        self.story.append(
            f"{d} performance_guard_sensor: {row['reason'][:220]} → rollback v{before} → v{after}"
        )
        return [f"GUARD → rollback v{before} → v{after}"]

    def rescore(self, d: dt.date) -> list[str]:
        rescored = self.tick(Sensor.RESCORE)
        if not rescored:
            return []
        versions = rescored_versions(rescored)
        self.story.append(
            f"{d} rescore_sensor: re-scored {', '.join(r.partitions for r in rescored)} "
            f"with v{versions}"
        )
        return [f"RESCORE {sum(len(r.partition_keys) for r in rescored)} day(s) with v{versions}"]

    def shadow_promotions(self, d: dt.date) -> list[str]:
        notes = []
        for r in self.tick(Sensor.SHADOW_PROMOTION):
            outcome = champion_outcome(r.result)
            notes.append(f"SHADOW → {outcome}")
            self.story.append(
                f"{d} shadow_promotion_sensor: {r.tags[RunTag.REASON]} →"
                f" champion[{r.partition_key}]: {outcome}"
            )
        return notes

    def weekly_retrain(self, d: dt.date, *, waiver_day: bool) -> list[str]:
        """The weekly schedule's training run, then a scorecard point; on ``waiver_day`` a
        rejected candidate is shipped anyway."""
        outcome = self.train(d, Schedule.TRAINING, "weekly retrain")
        notes = [f"weekly retrain: {outcome}"]
        self.story.append(f"{d} training_schedule: {outcome}")
        if "REJECTED" in outcome and waiver_day:
            notes.append(self.waive(outcome.split()[0].lstrip("v"), d))
        self.scorecard()
        return notes

    def waive(self, version: str, d: dt.date) -> str:
        """An operator overrides the gates with a waiver — the mistake the guard exists for."""
        try:
            promote_with_waiver(
                self.defs.resources["lake"],
                self.defs.resources["registry"],
                int(version),
                owner="demo-operator",
                reason="business override: ship the newest model",
                expires=(d + dt.timedelta(days=14)).isoformat(),
            )
            code = 0
        except PromotionRefused:
            code = 2
        self.story.append(
            f"{d} operator: `mlops-assets promote {version} --waiver-…` (exit {code}) — "
            f"v{version} becomes champion despite failed gates"
        )
        return f"WAIVER → champion v{version}"

    # ---- the summary -------------------------------------------------------------------------
    def summary(self) -> None:
        status = collect_status(self.platform, self.instance, self.defs)
        _say("\n=== summary ===")
        parts = status["partitions"]
        _say(
            "partitions: "
            + ", ".join(f"{k} {len(v)}" for k, v in sorted(parts.items()))
            + f"; {self.runs} runs"
        )
        failing = sum(len(c["failed"]) for c in status["checks"].values())
        _say(
            f"checks: {len(status['checks'])} with results; {failing} partition(s) with a failing"
            " latest result"
        )
        q = status["quarantine"]["history"]
        _say(f"quarantine: {q['rows']} row(s) and {q['files']} file(s) rejected during the demo")
        _say("what happened, with evidence:")
        for line in self.story:
            _say(f"  - {line}")
        self.model_summary(status)
        for line in estimation_story(self.defs.resources["lake"], self.correction, self.drift_day):
            _say(line)
        sc = status["scorecard"]
        _say(
            f"scorecard: materialised {self.scorecards} time(s) (status reads the latest,"
            f" {sc.get('materialized_at')}): pipeline success"
            f" {sc['measures'].get('pipeline_success_rate')}"
        )
        _say(
            "\nexplore: `make ui` (Dagster UI http://127.0.0.1:3000 and MLflow UI"
            f" {mlflow_ui_base()} on this home), `MLOPS_SPEC={self.spec_path}"
            " .venv/bin/mlops-assets status`"
        )

    def model_summary(self, status: dict) -> None:
        """Champion, fallback, registered and rejected models, alerts, shadow waits."""
        champ = status.get("champion")
        if champ:
            _say(
                f"champion now: v{champ['version']} (cutoff {champ['cutoff']}) —"
                f" {champ['why'][:160]}"
            )
        lkg = status.get("last_known_good")
        _say(f"last_known_good: {'v' + str(lkg['version']) if lkg else 'none'}")
        rejected = [m for m in status["models"] if m["status"] == "rejected"]
        _say(f"models: {len(status['models'])} registered, {len(rejected)} rejected by the gates")
        _say(
            f"alerts: {len(status.get('alerts', []))} (JSON lines under"
            f" {self.platform.home.alerts})"
        )
        waited = {m["version"]: m["status"] for m in status["models"]}
        shadowed = ", ".join(f"v{v} (now {waited.get(v)})" for v in self.shadowed) or "no candidate"
        _say(
            f"shadow: {shadowed} waited as challenger for {SHADOW_DAYS} shadow day(s);"
            f" shadow_scores partitions: {len(status['partitions'].get(SHADOW_SCORES, []))}"
        )


def run_demo(days: int = 60, seed: int = 7) -> int:
    if days < 45:
        print(
            "the demo needs at least 45 days (a 28-day training window, label delay, weekly"
            " cutoffs)",
            file=sys.stderr,
        )
        return 2
    return Demo(days, seed).run()
