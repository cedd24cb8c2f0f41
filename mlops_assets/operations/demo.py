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

import polars as pl
import yaml

from mlops_assets.control.registry.links import mlflow_ui_base
from mlops_assets.core.paths import Home
from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
from mlops_assets.core.vocabulary import (
    CANDIDATE_MODEL,
    CHAMPION,
    DRIFT_REPORT,
    ESTIMATED_PERFORMANCE,
    ESTIMATION_RECONCILIATION,
    MULTIVARIATE_DRIFT,
    SCORES,
    SHADOW_SCORES,
    Action,
    Alias,
    Job,
    Meta,
    RunTag,
    Schedule,
    Sensor,
)
from mlops_assets.data.simulator import (
    Injection,
    simulate,
    write_label_correction,
    write_late_files,
)
from mlops_assets.model.promotion import PromotionRefused, promote_with_waiver, read_audit
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
    months of
    empty partitions in the UI) and a passing candidate waits ``shadow_days`` as challenger."""
    return {
        **base,
        "partition_start": start,
        "gates": {**base.get("gates", {}), "shadow_days": shadow_days},
    }


def write_demo_spec(home: Home, start: dt.date) -> Path:
    """``$MLOPS_HOME/demo_spec.yaml`` from ``$MLOPS_SPEC`` (else the bundled spec); ``$MLOPS_SPEC``
    then
    names it for this process, and ``make ui`` picks it up."""
    source = Path(os.environ.get("MLOPS_SPEC") or BUNDLED_SPEC)
    path = home.root / DEMO_SPEC
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# written by `mlops-assets demo`: the bundled spec with the demo's partition_start and "
        "shadow_days\n"
        + yaml.safe_dump(demo_spec(yaml.safe_load(source.read_text()), start), sort_keys=False)
    )
    os.environ["MLOPS_SPEC"] = str(path)
    return path


class Demo:
    def __init__(self, days: int, seed: int):
        # the shadow wait delays each promotion beside a champion: the window grows by it, so the
        # rest of the
        # story (the buggy model's matured labels tripping the guard) still fits before today
        self.days, self.seed = days + SHADOW_DAYS, seed
        home = Home.from_env()
        _reset(home)
        self.start = dt.date.today() - dt.timedelta(days=self.days - 1)
        self.spec_path = write_demo_spec(home, self.start)
        self.platform, self.instance, self.defs = open_platform(
            Platform.from_env(load_spec(self.spec_path))
        )
        self.cursors: dict[str, str | None] = {}
        self.story: list[str] = []  # what happened, with evidence, for the summary
        self.runs = 0
        self.scorecards = 0
        self.shadowed: list[int] = []  # versions that waited as challenger

    # ---- the outside world -----------------------------------------------------------------
    @property
    def incoming(self):
        return self.platform.home.root / "incoming"

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
        return self.note_shadow(_training_outcome(result))

    def note_shadow(self, outcome: str) -> str:
        if Action.AWAIT_SHADOW in outcome:
            self.shadowed.append(int(outcome.split()[0].lstrip("v")))
            outcome += f" (challenger: waits {SHADOW_DAYS} days of shadow scores)"
        return outcome

    # ---- the story -----------------------------------------------------------------------------
    def run(self) -> int:
        spec = self.platform.spec
        if spec.name != "card_transactions":
            _say(
                "the demo simulates the bundled card_transactions dataset; unset MLOPS_SPEC (got"
                f" {spec.name})"
            )
            return 2
        today, start = dt.date.today(), self.start
        day = lambda n: start + dt.timedelta(days=n)  # noqa: E731
        first_cutoff = spec.training.window_days
        inject = {
            "duplicate_file": day(4),
            "late_file": day(9),
            "corrupt_file": day(14),
            "label_noise": day(first_cutoff - 5),
            "covariate_drift": day(first_cutoff + 1),
            "schema_change": day(self.days - 10),
        }
        _say(f"mlops_assets demo — MLOPS_HOME={self.platform.home.root}")
        _say(
            f"   spec: {self.spec_path} (partitions from {start}; gates.shadow_days {SHADOW_DAYS})"
        )
        _say(
            f"1. simulating {self.days} days of card transactions {start} .. {today} (seed"
            f" {self.seed}) into incoming/"
        )
        for kind, when in inject.items():
            _say(f"     inject {kind} @ {when}")
        manifest = simulate(
            self.incoming,
            start,
            self.days,
            seed=self.seed,
            inject=[Injection(k, d) for k, d in inject.items()],
        )
        self.correction = write_label_correction(manifest, spec, arrival=today)
        self.drift_day = inject["covariate_drift"]
        if self.correction:
            _say(
                f"     the label team re-delivers the lost labels @ {today}"
                f" ({self.correction.name})"
            )

        _say(
            f"2. history: {first_cutoff} days land at once; the landing sensor requests one run"
            " per day"
        )
        t0 = time.perf_counter()
        for n in range(first_cutoff):
            self.deliver(day(n))
        first = self.tick(Sensor.LANDING)
        blocked = [r for r in first if not r.success]
        _say(
            f"   {len(first)} runs in {time.perf_counter() - t0:.0f}s; blocked by contracts: "
            + ", ".join(r.partition_key for r in blocked)
        )
        for r in blocked:
            fails = [
                e.event_specific_data
                for e in r.result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
                and not e.event_specific_data.passed
                and e.event_specific_data.severity.value == "ERROR"
            ]
            for f in fails:
                _say(f"      ✗ {r.partition_key} {f.check_name}: {f.description[:150]}")
                self.story.append(
                    f"quarantine: {r.partition_key} {f.check_name} — {f.description[:160]}"
                )
        labels = self.tick(Sensor.LABELS)
        _say(f"   label_sensor: {len(labels)} arrival days of labels ingested")

        _say(
            "3. the operator removes the duplicate and the corrupt file; the sensor re-processes"
            " those days only"
        )
        for bad in (inject["duplicate_file"], inject["corrupt_file"]):
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

        _say(
            f"4. a late file for {inject['late_file']} arrives; only that day (and its features) is"
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

        _say(
            f"5. first training (cutoff {day(first_cutoff)}):"
            f" {self.train(day(first_cutoff), Schedule.TRAINING, 'weekly retrain')}"
        )
        _say(f"6. live: one day at a time, {day(first_cutoff)} .. {today}")
        for n in range(first_cutoff, self.days):
            self.live_day(day(n), first_cutoff, n)
        self.scorecard()
        self.summary()
        return 0

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

    def live_day(self, d: dt.date, first_cutoff: int, n: int) -> None:
        spec = self.platform.spec
        self.deliver(d)
        notes = []
        daily = self.tick(Sensor.LANDING)
        scores, drift, shadow, estimate, mv = (
            _materialised(daily, a)
            for a in (
                SCORES,
                DRIFT_REPORT,
                SHADOW_SCORES,
                ESTIMATED_PERFORMANCE,
                MULTIVARIATE_DRIFT,
            )
        )
        if shadow:
            m = shadow[0]
            agree = (
                f", label agreement {m['label_agreement'].value:.3f}"
                if "label_agreement" in m
                else ""
            )
            notes.append(
                f"shadow: challenger v{m['challenger_version'].value} scored beside the"
                f" champion{agree}"
            )
        self.tick(Sensor.LABELS)
        perf = self.tick(Sensor.PERFORMANCE)
        for r in self.tick(Sensor.DRIFT):
            outcome = self.note_shadow(_training_outcome(r.result))
            notes.append(f"DRIFT → retrain {r.partition_key}: {outcome}")
            self.story.append(
                f"{d} drift_sensor: {r.tags[RunTag.REASON][:150]} → retrain cutoff "
                f"{r.partition_key}: {outcome}"
            )
        before = self.defs.resources["registry"].get_alias(Alias.CHAMPION)
        self.tick(Sensor.GUARD)
        after = self.defs.resources["registry"].get_alias(Alias.CHAMPION)
        if after != before:
            row = read_audit(self.defs.resources["lake"], limit=1).row(0, named=True)
            notes.append(f"GUARD → rollback v{before} → v{after}")
            self.story.append(
                f"{d} performance_guard_sensor: {row['reason'][:220]} → rollback v{before} →"
                f" v{after}"
            )
        rescored = self.tick(Sensor.RESCORE)
        if rescored:
            versions = sorted(
                {
                    m[Meta.MODEL_VERSION].value
                    for r in rescored
                    for e in r.result.all_events
                    if e.event_type_value == "ASSET_MATERIALIZATION"
                    and e.asset_key.path == [SCORES]
                    for m in [e.event_specific_data.materialization.metadata]
                }
            )
            notes.append(
                f"RESCORE {sum(len(r.partition_keys) for r in rescored)} day(s) with v{versions}"
            )
            self.story.append(
                f"{d} rescore_sensor: re-scored {', '.join(r.partitions for r in rescored)} "
                f"with v{versions}"
            )
        for r in self.tick(Sensor.SHADOW_PROMOTION):
            outcome = _champion_outcome(r.result)
            notes.append(f"SHADOW → {outcome}")
            self.story.append(
                f"{d} shadow_promotion_sensor: {r.tags[RunTag.REASON]} →"
                f" champion[{r.partition_key}]: {outcome}"
            )
        if n > first_cutoff and (n - first_cutoff) % spec.training.cadence_days == 0:
            outcome = self.train(d, Schedule.TRAINING, "weekly retrain")
            notes.append(f"weekly retrain: {outcome}")
            self.story.append(f"{d} training_schedule: {outcome}")
            if "REJECTED" in outcome and n == first_cutoff + 3 * spec.training.cadence_days:
                notes.append(self.waive(outcome.split()[0].lstrip("v"), d))
            self.scorecard()
        s = scores[0] if scores else None
        scored = f"scored by v{s['model_version'].value} ({s['mode'].value})" if s else "not scored"
        dr = drift[0] if drift else None
        drift_txt = f"drift share {dr['share_drifted'].value:.2f}" if dr else "no drift report"
        drift_txt += _estimate_text(estimate[0] if estimate else None, mv[0] if mv else None)
        _say(
            f"   {d}: {scored}, {drift_txt}, performance of"
            f" {sum(len(r.partition_keys) for r in perf)} day(s) updated"
            + (" | " + " | ".join(notes) if notes else "")
        )

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


def _materialised(runs: list, asset: str) -> list:
    """The metadata of every materialisation of ``asset`` in ``runs`` (in-process results)."""
    return [
        e.event_specific_data.materialization.metadata
        for r in runs
        for e in r.result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path == [asset]
    ]


def _estimate_text(estimate, mv) -> str:
    """`` est. roc_auc 0.85, mv 1.21/1.26`` for the day line (what is known before the labels)."""
    out = ""
    if estimate and "estimated_roc_auc" in estimate:
        out += f", est. roc_auc {estimate['estimated_roc_auc'].value:.3f}"
    if mv and mv["threshold"].value == mv["threshold"].value:  # NaN: not judged
        out += (
            f", multivariate {mv['reconstruction_error'].value:.2f}/{mv['threshold'].value:.2f}"
            + (" DRIFTED" if mv["drifted"].value else "")
        )
    return out


def estimation_story(lake, correction: Path | None, drift_day: dt.date) -> list[str]:
    """Summary lines: the estimate before the labels, how wrong it was once they came, multivariate
    drift.
    """
    recon = lake.read(ESTIMATION_RECONCILIATION)
    estimates = lake.read(ESTIMATED_PERFORMANCE)
    if estimates.is_empty():
        return ["estimated performance: none (no champion with a monitoring bundle)"]
    est = estimates.filter(pl.col("metric") == "roc_auc")
    days = est["ds"].n_unique()
    matured = (
        set(recon.filter(pl.col("metric") == "roc_auc")["ds"].to_list())
        if not recon.is_empty()
        else set()
    )
    out = [
        f"estimated performance: {days} day(s) estimated by CBPE before their labels; "
        f"{days - len(matured & set(est['ds'].to_list()))} still without matured labels"
    ]
    daily = est.sort("model_version").group_by("ds").last().sort("ds")
    before = daily.filter(pl.col("ds") < drift_day.isoformat()).tail(1)
    after = daily.filter(pl.col("ds") >= drift_day.isoformat()).head(3)
    if before.height and after.height:
        first = after.row(0, named=True)
        realised = (
            recon.filter((pl.col("ds") == first["ds"]) & (pl.col("metric") == "roc_auc"))
            if not recon.is_empty()
            else recon
        )
        out.append(
            f"before the labels: covariate drift from {drift_day}; the estimate went "
            f"{before['estimate'][0]:.3f} → "
            + " → ".join(f"{e:.3f}" for e in after["estimate"])
            + f" on {', '.join(after['ds'])}, the day it was scored; realised on {first['ds']}: "
            + (
                f"{realised['realised'][0]:.3f} once its labels matured"
                if realised.height
                else "not matured"
            )
        )
    if not recon.is_empty():
        r = recon.filter(pl.col("metric") == "roc_auc").sort("ds")
        worst = r.sort("abs_error", descending=True).row(0, named=True)
        out.append(
            f"estimator error: median |estimate - realised| roc_auc {r['abs_error'].median():.3f}"
            f" over {r.height} reconciled day(s); worst {worst['abs_error']:.3f} on {worst['ds']}"
            f" (estimate {worst['estimate']:.3f}, realised {worst['realised']:.3f})"
            + (f"; labels corrected by {correction.name}" if correction else "")
        )
    mv = (
        lake.read(MULTIVARIATE_DRIFT)
        .filter(pl.col("reconstruction_error").is_not_null())
        .sort("ds")
    )
    if mv.height:
        fired = mv.filter(pl.col("drifted"))["ds"].to_list()
        out.append(
            f"multivariate drift: {len(fired)} of {mv.height} judged day(s) drifted"
            + (f", first {fired[0]}" if fired else "")
            + " (reconstruction error "
            f"{mv['reconstruction_error'].min():.2f}..{mv['reconstruction_error'].max():.2f}, "
            f"threshold ~{mv['threshold'].median():.2f})"
        )
    return out


def _champion_outcome(result) -> str:
    """What a champion-only run (the shadow promotion) did."""
    champ = [
        e.event_specific_data.materialization.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path == [CHAMPION]
    ]
    if not champ:
        return (
            f"no promotion (run {result.run_id[:8]} {'succeeded' if result.success else 'failed'})"
        )
    return _champion_step(champ[0])


def _champion_step(meta) -> str:
    """The champion asset's metadata in words: promoted (→ champion vN) or parked (→ challenger vN)."""
    if "champion" in meta:
        return f"{meta['action'].value} → champion v{meta['champion'].value}"
    return (
        f"{meta['action'].value} → challenger v{meta['challenger'].value}: {meta['reason'].value}"
    )


def _training_outcome(result) -> str:
    """What a training run did: the champion step's action, or the gates that rejected the
    candidate.
    """
    events = result.all_events
    champ = [
        e.event_specific_data.materialization.metadata
        for e in events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path == [CHAMPION]
    ]
    cand = [
        e.event_specific_data.materialization.metadata
        for e in events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path == [CANDIDATE_MODEL]
    ]
    version = f"v{cand[0]['model_version'].value}" if cand else "?"
    if champ:
        return f"{version} {_champion_step(champ[0])}"
    failed = [
        e.event_specific_data.description
        for e in events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    if failed:
        return f"{version} REJECTED by the gates: " + "; ".join(failed)[:220]
    return f"{version}: failed before the gates (run {result.run_id[:8]})"


def run_demo(days: int = 60, seed: int = 7) -> int:
    if days < 45:
        print(
            "the demo needs at least 45 days (a 28-day training window, label delay, weekly"
            " cutoffs)",
            file=sys.stderr,
        )
        return 2
    return Demo(days, seed).run()
