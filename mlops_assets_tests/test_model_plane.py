"""The model plane end to end, on the real stack: simulated landing files → Delta tables →
training_set[C] → candidate_model[C] (MLflow, lineage) → evaluation_report[C] (gates = blocking
checks) → champion[C]; waivers, approval, rollback, reproduce and status through the CLI.

One module-scoped world (45 simulated days, ingested with single-run range backfills) and one
MLflow store carry a story told in layers; each layer is a module fixture that does its steps
and records what it saw (aliases, audit rows, version tags, run results) right after each step:

    world → trained (C1, C2) → rejected (C1 again, C3) → operated (CLI) → approved (C4) →
    tampered → relineage

Tests assert on those records, so they hold in any order and on any pytest-xdist worker (a
worker builds the layers it needs, in order, once). Cutoffs move forward in time like a real
schedule: a champion is never scored on rows it was trained on.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import AssetKey

from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
from mlops_assets.core.vocabulary import Artifact
from mlops_assets.data.lake import DeltaLake
from mlops_assets.model.gates import gate_check_name, gate_names
from mlops_assets.model.lineage import REQUIRED_LINEAGE_KEYS, lineage_completeness, lock_hash

from .conftest import World, build_world, check_evaluations, materialized, step_failures, world_home

START = dt.date(2026, 3, 2)  # a Monday; 45 days: events 03-02 .. 04-15, labels arrive until 04-22
DAYS = 45
SEED = 11
C1, C2 = "2026-03-30", "2026-04-13"  # pass every gate of the base spec
C3 = "2026-04-15"  # trained and judged with the "strict" spec: fails five gates on purpose
C4 = "2026-04-16"  # the "approval" spec: passes, waits as challenger
C5, C6 = "2026-04-09", "2026-04-10"  # the relineage layer's training sets
FUTURE = (dt.date.today() + dt.timedelta(days=30)).isoformat()
STRICT_FAILS = {"floor:roc_auc", "ceiling:brier", "no_regression", "slice_floor", "calibration"}


# ---- helpers ------------------------------------------------------------------------------------


@dataclass
class PlaneWorld(World):
    """The ingested world and its spec variants (each layer notes what it saw in ``records``)."""

    specs: dict[str, Path] = field(default_factory=dict)
    versions_after_ingest: dict[str, int] = field(default_factory=dict)

    def variant(self, name: str):
        from mlops_assets.location.build import build_definitions

        return build_definitions(Platform(load_spec(self.specs[name]), self.platform.home))

    def state(self) -> dict:
        from mlops_assets.model.promotion import read_audit

        audit = read_audit(self.lake)
        return {
            "aliases": self.registry.aliases(),
            "audit": audit.sort("at").to_dicts() if audit.height else [],
            "tags": {v["version"]: v["tags"] for v in self.registry.list_versions()},
        }


def record(result) -> dict:
    return {
        "success": result.success,
        "run_id": result.run_id,
        "checks": check_evaluations(result),
        "assets": materialized(result),
        "failures": step_failures(result),
    }


def cli(*argv: str) -> tuple[int, str, str]:
    """``mlops-assets ARGV`` in process: (exit code, stdout, stderr)."""
    from mlops_assets.operations.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse refusals
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def new_audit(before: dict, after: dict) -> list[dict]:
    return after["audit"][len(before["audit"]) :]


def evaluations(lake: DeltaLake, version: int) -> dict[str, dict]:
    """The latest evaluation's gate rows of ``version``, by gate name."""
    ev = lake.read("evaluations").filter(pl.col("version") == version)
    latest = ev.filter(pl.col("evaluated_at") == ev["evaluated_at"].max())
    return {r["gate"]: r for r in latest.to_dicts()}


def model_file(world: PlaneWorld, version: int) -> Path:
    model_id = world.state()["tags"][version]["registry.model_id"]
    path = world.platform.home.mlflow_artifacts / "models" / model_id / "artifacts" / "model.skops"
    assert path.is_file(), path
    return path


def holdout_inputs(world: PlaneWorld, version: int, cutoff: str):
    """The holdout's model frame and the scores recorded at training time (what integrity
    compares)."""
    from mlops_assets.model.training import to_model_frame

    spec = world.platform.spec
    holdout = (
        world.lake.read("training_set", [cutoff]).filter(pl.col("split") == "holdout").sort(spec.id)
    )
    recorded = world.registry.load_artifact_json(version, Artifact.HOLDOUT_SCORES)
    scores = dict(zip(recorded["ids"], recorded["scores"], strict=True))
    return holdout, to_model_frame(holdout, spec), [scores[i] for i in holdout[spec.id]]


# ---- the layers ---------------------------------------------------------------------------------


def spec_variants() -> dict[str, dict]:
    """base: the bundled card spec with the settings this story relies on pinned (so tuning the
    bundled gates does not rewrite it); strict: impossible floors/ceilings and a deliberately weak
    model (2 boosting rounds, so no_regression fails too); approval: base + require_approval."""
    base = yaml.safe_load(BUNDLED_SPEC.read_text())
    base["training"].update(window_days=28, holdout_days=7, seed=7)
    base["labels"]["delay_days"] = 5
    base["model"].update(
        estimator="hist_gradient_boosting",
        require_approval=False,
        params={"max_iter": 150, "learning_rate": 0.08, "max_leaf_nodes": 31},
    )
    base["gates"] = {
        "floors": {"roc_auc": 0.80, "pr_auc": 0.10},
        "ceilings": {"brier": 0.05},
        "max_regression": 0.02,
        "primary_metric": "roc_auc",
        "slice_floor": 0.50,
        "min_slice_rows": 300,
        "max_calibration_error": 0.05,
        "shadow_days": 0,
    }
    strict = copy.deepcopy(base)
    strict["gates"].update(
        floors={"roc_auc": 0.99},
        ceilings={"brier": 0.001},
        max_regression=0.0,
        slice_floor=0.99,
        max_calibration_error=0.0001,
    )
    strict["model"]["params"] = {**base["model"]["params"], "max_iter": 2}
    approval = copy.deepcopy(base)
    approval["model"]["require_approval"] = True
    return {"base": base, "strict": strict, "approval": approval}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """45 days simulated once, events and labels ingested with one range run each."""
    root = tmp_path_factory.mktemp("model_plane")
    specs = {}
    for name, data in spec_variants().items():
        specs[name] = root / f"{name}.yaml"
        specs[name].write_text(yaml.safe_dump(data, sort_keys=False))
    # MLOPS_SPEC: the base spec, which the CLI (reproduce, status) reads too
    with world_home(root, spec=specs["base"], one_thread=True) as (platform, instance):
        assert platform.spec == load_spec(specs["base"])
        assert platform.home.root == (root / "home").resolve()
        w = build_world(
            platform,
            instance,
            start=START,
            n_days=DAYS,
            seed=SEED,
            labels="arrivals",
            cls=PlaneWorld,
            specs=specs,
        )
        w.versions_after_ingest = {t: w.lake.version(t) for t in ("features", "raw_labels")}
        yield w


@pytest.fixture(scope="module")
def trained(world):
    """C1 → version 1 (first champion); C2 → version 2 (champion), version 1 last_known_good."""
    r = world.records
    r["C1"] = record(world.train(C1))
    r["C1_state"] = world.state()
    r["C1_training_set_version"] = world.lake.version("training_set")
    r["C2"] = record(world.train(C2))
    r["C2_state"] = world.state()
    return world


@pytest.fixture(scope="module")
def rejected(trained):
    """champion[C1] again (version 1 passed its gates, but C1 is older than champion v2's C2:
    refused);
    C3 with the strict spec → version 3 rejected; then a champion-only run for C3 (lenient spec)."""
    w, r = trained, trained.records
    r["C1_champion_again"] = record(w.train(C1, assets=["champion"]))
    r["C1_champion_again_state"] = w.state()
    r["C3"] = record(w.train(C3, defs=w.variant("strict")))
    r["C3_state"] = w.state()
    r["C3_champion_only"] = record(w.train(C3, assets=["champion"]))
    r["C3_champion_only_state"] = w.state()
    return w


@pytest.fixture(scope="module")
def operated(rejected):
    """The operator's CLI on version 3 (rejected): refusals, a waiver, status, rollback,
    reproduce."""
    w, r = rejected, rejected.records
    before = w.state()
    r["refusals"] = {
        "rollback_to_rejected": cli("rollback", "--to", "3", "--reason", "try the new one"),
        "approve_rejected": cli("approve", "3", "--by", "alice", "--reason", "looks fine to me"),
        "expired_waiver": cli(
            "promote",
            "3",
            "--waiver-owner",
            "bob",
            "--waiver-reason",
            "known drift",
            "--waiver-expires",
            "2020-01-01",
        ),
        "blank_owner": cli(
            "promote",
            "3",
            "--waiver-owner",
            "  ",
            "--waiver-reason",
            "known drift",
            "--waiver-expires",
            FUTURE,
        ),
        "missing_reason": cli("promote", "3", "--waiver-owner", "bob", "--waiver-expires", FUTURE),
        "unknown_version": cli(
            "promote",
            "99",
            "--waiver-owner",
            "bob",
            "--waiver-reason",
            "x",
            "--waiver-expires",
            FUTURE,
        ),
    }
    r["before_refusals"], r["after_refusals"] = before, w.state()
    r["waiver"] = cli(
        "promote",
        "3",
        "--waiver-owner",
        "bob",
        "--waiver-reason",
        "fraud spike, accepted by risk",
        "--waiver-expires",
        FUTURE,
    )
    r["waiver_state"] = w.state()
    r["status_json"] = cli("status", "--json")
    r["status_text"] = cli("status")
    r["rollback"] = cli("rollback", "--reason", "waived model misbehaves in production")
    r["rollback_state"] = w.state()
    r["reproduce_v1"] = cli("reproduce", "1", "--json")
    r["reproduce_v3"] = cli("reproduce", "3", "--json")  # v3 was trained under another spec
    return w


@pytest.fixture(scope="module")
def approved(operated):
    """C4 with require_approval: challenger; approved by alice; rolled back; a later champion
    run."""
    w, r = operated, operated.records
    r["C4_before"] = w.state()
    r["C4"] = record(w.train(C4, defs=w.variant("approval")))
    r["C4_state"] = w.state()
    r["approve"] = cli("approve", "4", "--by", "alice", "--reason", "ok")
    r["approve_state"] = w.state()
    r["rollback_v4"] = cli("rollback", "--reason", "live precision dropped")
    r["rollback_v4_state"] = w.state()
    r["C4_champion_only"] = record(w.train(C4, assets=["champion"]))
    r["C4_champion_only_state"] = w.state()
    return w


@pytest.fixture(scope="module")
def tampered(approved):
    """Version 1's stored model.skops altered in the artifact root; restored afterwards."""
    w, r = approved, approved.records
    _, X, expected = holdout_inputs(w, 1, C1)
    from mlops_assets.model.training import predict_scores

    score = lambda m, frame: predict_scores(m, frame, w.platform.spec.task)  # noqa: E731
    r["integrity_before"] = w.registry.verify_integrity(1, X, expected, score=score)
    path = model_file(w, 1)
    original = path.read_bytes()
    r["tamper_before"] = w.state()
    try:
        path.write_bytes(
            original[: len(original) // 2]
            + bytes([original[len(original) // 2] ^ 0xFF])
            + original[len(original) // 2 + 1 :]
        )
        r["integrity_tampered"] = w.registry.verify_integrity(1, X, expected, score=score)
        r["C1_reevaluated"] = record(w.train(C1, assets=["evaluation_report"]))
        r["tamper_after"] = w.state()
    finally:
        path.write_bytes(original)
    r["integrity_restored"] = w.registry.verify_integrity(1, X, expected, score=score)
    return w


@pytest.fixture(scope="module")
def relineage(tampered):
    """training_set[C5]; new labels; training_set[C6]; then candidate_model[C5] alone: its lineage
    must name what training_set[C5] read, not the newest commit of the table."""
    w, r = tampered, tampered.records
    assert w.train(C5, assets=["training_set"]).success
    r["C5_commit"] = w.lake.history("training_set", 1)[0]
    arrival = (START + dt.timedelta(days=DAYS)).isoformat()
    assert (
        w.defs.resolve_job_def("ingest_labels")
        .execute_in_process(instance=w.instance, partition_key=arrival, raise_on_error=False)
        .success
    )
    r["labels_version_after"] = w.lake.version("raw_labels")
    assert w.train(C6, assets=["training_set"]).success
    r["C6_commit"] = w.lake.history("training_set", 1)[0]
    r["C5_candidate"] = record(w.train(C5, assets=["candidate_model"]))
    r["C5_state"] = w.state()
    return w


# ---- declaration (no runs) ----------------------------------------------------------------------


def test_every_spec_gate_is_a_blocking_check_of_evaluation_report(defs, platform):
    graph = defs.resolve_asset_graph()
    declared = {
        k.name: graph.get_check_spec(k)
        for k in graph.asset_check_keys
        if k.asset_key == AssetKey("evaluation_report")
    }
    assert set(declared) == {gate_check_name(g) for g in gate_names(platform.spec)}
    assert {"gate_no_regression", "gate_integrity"} <= set(declared) and all(
        s.blocking for s in declared.values()
    )
    job = defs.resolve_job_def("training")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "training_set",
        "candidate_model",
        "evaluation_report",
        "champion",
    }


# ---- training_set: point in time, through the asset ---------------------------------------------


def test_training_set_asset_only_holds_what_was_known_at_the_cutoff(trained):
    w, run = trained, trained.records["C1"]
    spec, cutoff = w.platform.spec, dt.date.fromisoformat(C1)
    ts = w.lake.read("training_set", [C1])
    assert ts.height == run["assets"]["training_set"]["rows"] > 50_000
    assert (ts["event_ds"] < C1).all() and (ts["label_arrived"] < C1).all()
    horizon = (cutoff - dt.timedelta(days=spec.labels.delay_days)).isoformat()
    first = (cutoff - dt.timedelta(days=spec.training.window_days)).isoformat()
    assert ts["event_ds"].min() == first and ts["event_ds"].max() < horizon
    assert ts[spec.id].n_unique() == ts.height

    # Exactly the knowable rows: window features whose label arrived before C and matured.
    features = w.lake.read("features").filter(
        pl.col("ds").is_between(pl.lit(first), pl.lit(C1), closed="left")
    )
    labels = w.lake.read("raw_labels")
    known = labels.filter(pl.col("ds") < C1)
    expected = features.filter(pl.col("ds") < horizon).join(
        known.select(spec.id), on=spec.id, how="semi"
    )
    assert sorted(ts[spec.id]) == sorted(expected[spec.id])
    # Non-vacuous: many window events had their label arrive on/after C; none of them is in.
    late = labels.filter(pl.col("ds") >= C1).join(features.select(spec.id), on=spec.id, how="semi")
    assert late.height > 1000
    assert ts.join(late.select(spec.id), on=spec.id, how="semi").is_empty()
    # Labels are the ones that arrived (values, not just ids).
    joined = ts.select(spec.id, spec.target).join(
        known.select(spec.id, spec.target), on=spec.id, suffix="_feed"
    )
    assert (
        joined.height == ts.height and (joined[spec.target] == joined[f"{spec.target}_feed"]).all()
    )

    holdout, train = ts.filter(pl.col("split") == "holdout"), ts.filter(pl.col("split") == "train")
    assert train["event_ds"].max() < holdout["event_ds"].min()  # by time, not at random
    assert (
        holdout["event_ds"].min()
        == (
            cutoff - dt.timedelta(days=spec.labels.delay_days + spec.training.holdout_days)
        ).isoformat()
    )
    meta = run["assets"]["training_set"]
    assert meta["missing_feature_partitions"] == [] and meta["holdout_rows"] == holdout.height


# ---- C1: the first candidate ---------------------------------------------------------------------


def test_first_cutoff_registers_version_1_with_full_lineage(trained):
    w, run, state = trained, trained.records["C1"], trained.records["C1_state"]
    assert run["success"], run["failures"]
    spec = w.platform.spec
    tags = state["tags"][1]
    assert list(state["tags"]) == [1]
    assert lineage_completeness(tags) == 1.0 and all(k in tags for k in REQUIRED_LINEAGE_KEYS)
    sha = tags["lineage.git_sha"]
    assert (
        len(sha) == 40
        and subprocess.run(
            ["git", "-C", str(Path(__file__).parents[1]), "cat-file", "-e", f"{sha}^{{commit}}"]
        ).returncode
        == 0
    )
    assert tags["lineage.git_dirty"] in ("true", "false")
    assert tags["lineage.lock_sha256"] == lock_hash() != "unknown"
    assert tags["lineage.spec_sha256"] == spec.digest
    assert json.loads(tags["lineage.delta_versions"]) == {
        **w.versions_after_ingest,
        "training_set": w.records["C1_training_set_version"],
    }
    assert (tags["lineage.partition_start"], tags["lineage.partition_end"]) == (
        "2026-03-02",
        "2026-03-24",
    )
    assert tags["lineage.dagster_run_id"] == run["run_id"]
    assert tags["lineage.seed"] == str(spec.training.seed)
    from mlops_assets.model.lineage import file_sha256

    assert (
        tags["lineage.model_sha256"]
        == file_sha256(model_file(w, 1))
        == run["assets"]["candidate_model"]["model_sha256"]
    )
    assert tags["mlops.cutoff"] == C1
    meta = run["assets"]["candidate_model"]
    assert meta["model_version"] == 1 and meta["lineage"]["lineage.dagster_run_id"] == run["run_id"]


def test_first_cutoff_evaluation_report_gates_and_promotion(trained):
    w, run, state = trained, trained.records["C1"], trained.records["C1_state"]
    spec = w.platform.spec
    report = run["assets"]["evaluation_report"]
    assert report["candidate_version"] == 1 and report["champion_version"] == -1
    assert (
        report["candidate_roc_auc"] >= spec.gates.floors["roc_auc"]
        and 0 < report["candidate_brier"] < 0.05
    )
    assert report["holdout_rows"] == run["assets"]["training_set"]["holdout_rows"]
    html = Path(report["evidently_report"])
    assert (
        html.is_file()
        and html.is_relative_to(w.platform.home.reports)
        and html.stat().st_size > 10_000
    )
    assert "ROC AUC" in html.read_text(
        errors="ignore"
    )  # Evidently's classification quality section
    # every gate ran as a passing blocking check, and the evaluations table says the same
    assert {n: c.passed for n, c in run["checks"].items()} == {
        gate_check_name(g): True for g in gate_names(spec)
    }
    rows = evaluations(w.lake, 1)
    assert set(rows) == set(gate_names(spec)) and all(r["passed"] for r in rows.values())
    assert rows["floor:roc_auc"]["value"] == pytest.approx(report["candidate_roc_auc"])
    assert (
        state["tags"][1]["mlops.gates"] == "passed"
        and state["tags"][1]["mlops.status"] == "champion"
    )
    # promotion
    assert state["aliases"] == {"champion": 1}
    assert run["assets"]["champion"]["action"] == "promote"
    (row,) = state["audit"]
    assert (row["action"], row["alias"], row["from_version"], row["to_version"]) == (
        "promote",
        "champion",
        None,
        1,
    )
    assert row["run_id"] == run["run_id"] and row["actor"].startswith("dagster:")
    gates = json.loads(row["gate_results"])
    assert {g["gate"] for g in gates} == set(gate_names(spec)) and all(g["passed"] for g in gates)


# ---- C2: a better-informed candidate replaces the champion -------------------------------------


def test_second_cutoff_promotes_version_2_and_keeps_1_as_last_known_good(trained):
    from mlops_assets.model.evaluation import task_metrics
    from mlops_assets.model.training import predict_scores

    w, run, state = trained, trained.records["C2"], trained.records["C2_state"]
    assert run["success"], run["failures"]
    assert all(c.passed for c in run["checks"].values()) and len(run["checks"]) == 9
    assert state["aliases"] == {"champion": 2, "last_known_good": 1}
    assert (
        state["tags"][1]["mlops.status"] == "retired"
        and state["tags"][2]["mlops.status"] == "champion"
    )
    assert state["tags"][2]["mlops.cutoff"] == C2
    promote = new_audit(w.records["C1_state"], state)
    assert [(a["action"], a["from_version"], a["to_version"]) for a in promote] == [
        ("promote", 1, 2)
    ]
    # The champion was scored on the candidate's own holdout (what no_regression compares).
    report = run["assets"]["evaluation_report"]
    assert report["champion_version"] == 1
    holdout, X, _ = holdout_inputs(w, 2, C2)
    champion = task_metrics(
        "classification",
        holdout["is_fraud"].to_numpy(),
        predict_scores(w.registry.load_model(1), X, "classification"),
    )
    assert report["champion_roc_auc"] == pytest.approx(champion["roc_auc"], abs=1e-12)
    no_reg = run["checks"]["gate_no_regression"]
    assert f"champion {champion['roc_auc']:.3f}" in no_reg.description
    assert no_reg.metadata["threshold"].value == pytest.approx(
        champion["roc_auc"] - w.platform.spec.gates.max_regression
    )


def test_an_older_cutoff_is_never_promoted_over_a_newer_champion(rejected):
    r = rejected.records
    run = r["C1_champion_again"]
    assert not run["success"] and set(run["assets"]) == set()
    assert f"cutoff {C1}, older than the serving champion v2's cutoff {C2}" in run["failures"], run[
        "failures"
    ]
    assert "--waiver-owner" in run["failures"]
    assert r["C1_champion_again_state"] == r["C2_state"]  # aliases, audit and tags untouched


def test_the_new_evidence_gates_pass_an_honest_candidate(trained):
    run = trained.records["C2"]
    report = run["assets"]["evaluation_report"]
    baseline = run["checks"]["gate_beats_baseline"]
    assert baseline.passed and baseline.metadata["value"].value > 0.5, baseline.description
    assert report["baseline_roc_auc"] == pytest.approx(0.5)  # the training prior ranks nothing
    leak = run["checks"]["gate_leakage"]
    assert leak.passed and report["candidate_roc_auc"] < 0.99, leak.description
    skill = report["feature_skill"]
    assert set(skill["univariate"]) == set(trained.platform.spec.model_features)
    assert max(skill["univariate"].values()) < 0.95 and set(skill["importance"]) == set(
        skill["univariate"]
    )
    evidence = report["holdout_evidence"]
    assert evidence["rows"] == report["holdout_rows"] and evidence["classes"]["1"] >= 20


# ---- C3: failing gates block, reject, and keep blocking ----------------------------------------


def test_failing_gates_fail_the_run_and_reject_the_version(rejected):
    w, run, state = rejected, rejected.records["C3"], rejected.records["C3_state"]
    strict = load_spec(w.specs["strict"])
    assert not run["success"]
    assert "champion" not in run["assets"] and "evaluation_report" in run["assets"]
    failed = {n for n, c in run["checks"].items() if not c.passed}
    assert failed == {gate_check_name(g) for g in STRICT_FAILS}
    assert run["checks"]["gate_integrity"].passed
    rows = evaluations(w.lake, 3)
    for gate in STRICT_FAILS:
        check, row = run["checks"][gate_check_name(gate)], rows[gate]
        value, threshold = check.metadata["value"].value, check.metadata["threshold"].value
        assert (
            check.description.startswith(f"{gate} failed") and f"{value:.3f}" in check.description
        ), check.description
        assert check.metadata["candidate_version"].value == 3
        assert (value, threshold) == pytest.approx((row["value"], row["threshold"])) and not row[
            "passed"
        ]
        assert f"{threshold:.3f}" in check.description or f"{threshold:.4f}" in check.description, (
            check.description
        )
        higher_is_better = gate.startswith("floor") or gate in ("no_regression", "slice_floor")
        assert (value < threshold) if higher_is_better else (value > threshold), (
            gate,
            value,
            threshold,
        )
    assert (
        run["checks"]["gate_floor_roc_auc"].metadata["threshold"].value
        == strict.gates.floors["roc_auc"]
    )
    # the champion did not move; the version carries its rejection
    assert state["aliases"] == {"champion": 2, "last_known_good": 1}
    tags = state["tags"][3]
    assert (tags["mlops.status"], tags["mlops.gates"]) == ("rejected", "failed")
    assert all(g in tags["mlops.rejected_reasons"] for g in STRICT_FAILS)
    (reject,) = new_audit(w.records["C2_state"], state)
    assert (reject["action"], reject["from_version"], reject["to_version"]) == ("reject", 2, 3)
    assert {
        g["name"] for g in json.loads(reject["gate_results"]) if not g["passed"]
    } == STRICT_FAILS
    assert lineage_completeness(tags) == 1.0 and tags["lineage.spec_sha256"] == strict.digest


def test_a_rejected_candidate_is_refused_by_a_later_champion_run(rejected):
    r = rejected.records
    later = r["C3_champion_only"]
    assert not later["success"] and set(later["assets"]) == set()
    assert (
        "version 3 failed its gates" in later["failures"] and "floor:roc_auc" in later["failures"]
    )
    assert r["C3_champion_only_state"] == r["C3_state"]  # aliases, audit and tags untouched


# ---- the operator: waivers, approval, rollback, status, reproduce ----------------------------


def test_refused_operator_actions_change_nothing(operated):
    r = operated.records
    refusals = r["refusals"]
    assert {k: code for k, (code, _, _) in refusals.items()} == dict.fromkeys(refusals, 2)
    assert (
        "expired" in refusals["expired_waiver"][2] and "2020-01-01" in refusals["expired_waiver"][2]
    )
    assert (
        "--waiver-owner" in refusals["blank_owner"][2]
        and "incomplete waiver" in refusals["blank_owner"][2]
    )
    assert "--waiver-reason" in refusals["missing_reason"][2]
    assert (
        "approval is refused" in refusals["approve_rejected"][2]
        and "floor:roc_auc" in refusals["approve_rejected"][2]
    )
    assert "version 3" in refusals["rollback_to_rejected"][2]
    assert all(out == "" for _, out, _ in refusals.values())
    assert r["after_refusals"] == r["before_refusals"]
    assert r["after_refusals"]["aliases"] == {"champion": 2, "last_known_good": 1}


def test_a_valid_waiver_promotes_the_rejected_version_on_record(operated):
    r = operated.records
    code, out, err = r["waiver"]
    assert code == 0, err
    assert json.loads(out)["action"] == "waiver_promote"
    state = r["waiver_state"]
    assert state["aliases"] == {"champion": 3, "last_known_good": 2}
    (row,) = new_audit(r["after_refusals"], state)
    assert (row["action"], row["from_version"], row["to_version"]) == ("waiver_promote", 2, 3)
    assert (row["actor"], row["waiver_owner"], row["waiver_expires"]) == ("bob", "bob", FUTURE)
    assert "fraud spike, accepted by risk" in row["reason"] and "floor:roc_auc" in row["reason"]
    assert json.loads(state["tags"][3]["mlops.waiver"]) == {
        "owner": "bob",
        "reason": "fraud spike, accepted by risk",
        "expires": FUTURE,
    }


def test_status_says_what_serves_and_why(operated):
    r = operated.records
    code, out, err = r["status_json"]
    assert code == 0, err
    status = json.loads(out)
    assert {"champion", "last_known_good", "lineage", "audit"} <= set(status)
    champ = status["champion"]
    assert (champ["version"], champ["cutoff"], champ["by"]) == (3, C3, "bob")
    assert "fraud spike" in champ["why"]
    assert {g["gate"] for g in champ["gates"]} == set(
        gate_names(load_spec(operated.specs["strict"]))
    )
    assert {g["gate"] for g in champ["gates"] if not g["passed"]} == STRICT_FAILS
    assert status["last_known_good"]["version"] == 2 and status["last_known_good"]["cutoff"] == C2
    assert status["lineage"]["completeness"] == 1.0
    assert (
        status["lineage"]["lineage.model_sha256"]
        == r["waiver_state"]["tags"][3]["lineage.model_sha256"]
    )
    assert [a["action"] for a in status["audit"]] == [
        "waiver_promote",
        "reject",
        "promote",
        "promote",
    ]
    assert status["partitions"]["training_set"] == [C1, C2, C3]
    code, text, err = r["status_text"]
    assert code == 0, err
    assert "champion = version 3" in text and "fraud spike" in text and "by bob" in text
    assert "last_known_good = version 2" in text and "waived: " in text


def test_rollback_returns_to_last_known_good(operated):
    r = operated.records
    code, out, err = r["rollback"]
    assert code == 0, err
    # the safety net stays: the newest earlier champion never rolled back is last_known_good now
    assert json.loads(out) == {"action": "rollback", "from": 3, "champion": 2, "last_known_good": 1}
    state = r["rollback_state"]
    assert state["aliases"]["champion"] == 2
    assert (
        state["tags"][3]["mlops.status"] == "rolled_back"
        and state["tags"][2]["mlops.status"] == "champion"
    )
    assert "misbehaves" in state["tags"][3]["mlops.rolled_back_reason"]
    (row,) = new_audit(r["waiver_state"], state)
    assert (row["action"], row["from_version"], row["to_version"]) == ("rollback", 3, 2)
    assert row["reason"] == "waived model misbehaves in production"


def test_reproduce_retrains_a_version_from_its_lineage(operated):
    r = operated.records
    code, out, err = r["reproduce_v1"]
    assert code == 0, err
    rep = json.loads(out)
    assert rep["agrees"] and rep["spec_matches"] and rep["max_abs_prediction_diff"] <= 1e-9
    assert rep["cutoff"] == C1 and rep["training_set_version"] == r["C1_training_set_version"]
    assert "max |Δprediction|" in rep["detail"] and "agrees within 1e-09" in rep["detail"]
    assert all(d <= 1e-9 for d in rep["metric_diffs"].values()) and "roc_auc" in rep["metric_diffs"]
    # Negative control: v3 was trained under the strict spec (2 boosting rounds); retraining it with
    # today's spec cannot agree, and reproduce says so.
    code, out, _ = r["reproduce_v3"]
    rep3 = json.loads(out)
    assert (
        code == 1
        and not rep3["agrees"]
        and not rep3["spec_matches"]
        and rep3["max_abs_prediction_diff"] > 1e-3
    )


def test_require_approval_parks_a_challenger_until_approved(approved):
    r = approved.records
    run, state = r["C4"], r["C4_state"]
    assert run["success"], run["failures"]
    assert run["assets"]["champion"]["action"] == "await_approval"
    assert state["aliases"] == {
        "champion": 2,
        "challenger": 4,
        "last_known_good": 1,
    }  # kept since the rollback
    assert state["tags"][4]["mlops.status"] == "challenger"
    assert [
        (a["action"], a["alias"], a["to_version"]) for a in new_audit(r["C4_before"], state)
    ] == [("await_approval", "challenger", 4)]
    code, out, err = r["approve"]
    assert code == 0, err
    assert json.loads(out)["action"] == "approve"
    state2 = r["approve_state"]
    assert state2["aliases"] == {"champion": 4, "last_known_good": 2}
    (row,) = new_audit(state, state2)
    assert (row["action"], row["actor"], row["reason"], row["from_version"], row["to_version"]) == (
        "approve",
        "alice",
        "ok",
        2,
        4,
    )
    assert all(g["passed"] for g in json.loads(row["gate_results"]))


def test_a_rolled_back_version_is_never_auto_promoted_again(approved):
    r = approved.records
    assert r["rollback_v4"][0] == 0 and r["rollback_v4_state"]["aliases"]["champion"] == 2
    assert r["rollback_v4_state"]["tags"][4]["mlops.status"] == "rolled_back"
    later = r["C4_champion_only"]  # the lenient spec; v4 passed every gate
    assert not later["success"] and "rolled back" in later["failures"]
    assert r["C4_champion_only_state"] == r["rollback_v4_state"]


# ---- integrity
# ------------------------------------------------------------------------------------


def test_a_tampered_artifact_fails_integrity_and_the_gate(tampered):
    r = tampered.records
    assert r["integrity_before"]["ok"], r["integrity_before"]["detail"]
    bad = r["integrity_tampered"]
    assert not bad["ok"] and not bad["sha256_match"] and not bad["loads"]
    assert "sha256 mismatch" in bad["detail"]
    run = r["C1_reevaluated"]
    assert not run["success"]
    gate = run["checks"]["gate_integrity"]
    assert not gate.passed and "sha256_match=False" in gate.description
    assert (gate.metadata["value"].value, gate.metadata["threshold"].value) == (0.0, 3.0)
    after = r["tamper_after"]
    assert (
        after["tags"][1]["mlops.status"] == "rejected"
        and "integrity" in after["tags"][1]["mlops.rejected_reasons"]
    )
    rows = new_audit(r["tamper_before"], after)
    assert [(a["action"], a["to_version"]) for a in rows] == [("reject", 1)]
    assert after["aliases"] == r["tamper_before"]["aliases"]
    assert r["integrity_restored"]["ok"]


# ---- lineage names the training set commit of its own cutoff
# --------------------------------------


def test_candidate_lineage_names_its_own_training_set_commit(relineage):
    r = relineage.records
    run = r["C5_candidate"]
    assert run["success"], run["failures"]
    version = run["assets"]["candidate_model"]["model_version"]
    tags = r["C5_state"]["tags"][version]
    recorded = json.loads(tags["lineage.delta_versions"])
    c5, c6 = r["C5_commit"], r["C6_commit"]
    assert c5["partitions"] == C5 and c6["partitions"] == C6
    assert json.loads(c5["input_versions"]) != json.loads(
        c6["input_versions"]
    )  # labels moved in between
    assert recorded == {**json.loads(c5["input_versions"]), "training_set": c5["version"]}
    assert recorded["raw_labels"] < r["labels_version_after"]
