"""The operational scorecard on purpose-built REAL inputs.

One module world: a real SQLite Dagster instance with six real in-process runs (two
successes, a blocking contract check failing on raw_events, a blocking gate failing on
evaluation_report, a crashing asset, and a drift-sensor-tagged retrain), real Delta tables
(raw_events, features, scores, the audit written with ``promotion.append_audit``) and a real
MLflow sqlite registry with four versions. Every measure is asserted against the value the
case was built to produce; an empty world gives None everywhere and does not crash.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys

import polars as pl
import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    Definitions,
    MaterializeResult,
    asset,
    define_asset_job,
    instance_for_test,
    materialize,
)

from mlops_assets.control.registry import ModelRegistry
from mlops_assets.core.paths import Home
from mlops_assets.core.platform import Platform
from mlops_assets.core.spec import load_spec
from mlops_assets.core.vocabulary import (
    SCORECARD,
    Action,
    Alias,
    Job,
    LineageTag,
    Meta,
    RunTag,
    Schedule,
    Sensor,
    VersionTag,
)
from mlops_assets.data.lake import DeltaLake
from mlops_assets.model.lineage import REQUIRED_LINEAGE_KEYS
from mlops_assets.model.promotion import append_audit
from mlops_assets.operations.assets import (
    build_scorecard,
    build_scorecard_asset,
    scorecard_metadata,
)
from mlops_assets.operations.scorecard import (
    COUNT_MEASURES,
    MEASURES,
    STUCK,
    VALUE_MEASURES,
    DriftRetrain,
    RunOutcome,
    classify_failure,
    drift_detection_measures,
    freshness_measures,
    pipeline_measures,
    promotion_measures,
    scoring_deadline,
    scoring_measures,
    utc_naive,
)
from mlops_assets.operations.scorecard_sources import compute_scorecard

MODEL = "card_fraud"
DRIFT_TAGS = {
    RunTag.TRIGGER: Sensor.DRIFT,
    RunTag.DRIFT_PARTITIONS: None,
}  # partitions filled per world


# ---- tiny real jobs ---------------------------------------------------------------------------
@asset(name="ok")
def ok_asset():
    return MaterializeResult()


@asset(
    name="raw_events",
    check_specs=[AssetCheckSpec("contract_schema", asset="raw_events", blocking=True)],
)
def contract_breaking_raw_events():
    return MaterializeResult(
        check_results=[
            AssetCheckResult(
                check_name="contract_schema",
                passed=False,
                description="file x.csv lacks column amount",
            )
        ]
    )


@asset(
    name="evaluation_report",
    check_specs=[AssetCheckSpec("gate_floor_roc_auc", asset="evaluation_report", blocking=True)],
)
def gate_failing_evaluation():
    return MaterializeResult(
        check_results=[
            AssetCheckResult(
                check_name="gate_floor_roc_auc", passed=False, description="roc_auc 0.61 < 0.80"
            )
        ]
    )


@asset(name="boom")
def crashing_asset():
    raise RuntimeError("disk full")


JOBS = Definitions(
    assets=[ok_asset, contract_breaking_raw_events, gate_failing_evaluation, crashing_asset],
    jobs=[
        define_asset_job(n, selection=[n])
        for n in ("ok", "raw_events", "evaluation_report", "boom")
    ],
)


def run(instance, job: str, tags: dict | None = None):
    return JOBS.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, tags=tags
    )


# ---- the world --------------------------------------------------------------------------------
def seed_registry(registry: ModelRegistry, tmp) -> None:
    """Four real registered versions (MLflow's own client on the registry's sqlite store):
    v1..v3 with every lineage fact, v4 with an unknown git sha."""
    from mlflow import MlflowClient

    client = MlflowClient(
        tracking_uri=registry.resolved_tracking_uri, registry_uri=registry.resolved_tracking_uri
    )
    client.create_registered_model(MODEL)
    source = tmp / "model_src"
    source.mkdir()
    complete = dict.fromkeys(REQUIRED_LINEAGE_KEYS, "x")
    for version, cutoff in enumerate(
        ("2026-03-01", "2026-03-08", "2026-03-15", "2026-03-22"), start=1
    ):
        tags = {**complete, VersionTag.CUTOFF: cutoff}
        if version == 4:
            tags[LineageTag.GIT_SHA] = "unknown"
        mv = client.create_model_version(MODEL, source=str(source), tags=tags)
        assert int(mv.version) == version


AT = dt.datetime  # audit timestamps are naive UTC


def seed_audit(lake: DeltaLake, registered: dict[int, dt.datetime]) -> None:
    """3 promotions (lead times from registration 30 h, 10 h, 50 h), the last one rolled back after
    20 h.
    """
    h = lambda v, hours: registered[v] + dt.timedelta(hours=hours)  # noqa: E731
    rows = [
        {
            "at": h(1, 30),
            "action": Action.PROMOTE,
            "alias": Alias.CHAMPION,
            "from_version": None,
            "to_version": 1,
        },
        {
            "at": h(2, 10),
            "action": Action.PROMOTE,
            "alias": Alias.CHAMPION,
            "from_version": 1,
            "to_version": 2,
        },
        {
            "at": h(3, 20),
            "action": Action.AWAIT_APPROVAL,
            "alias": Alias.CHALLENGER,
            "from_version": None,
            "to_version": 3,
        },
        {
            "at": h(3, 50),
            "action": Action.APPROVE,
            "alias": Alias.CHAMPION,
            "from_version": 2,
            "to_version": 3,
        },
        {
            "at": h(3, 70),
            "action": Action.ROLLBACK,
            "alias": Alias.CHAMPION,
            "from_version": 3,
            "to_version": 2,
        },
        {
            "at": h(4, 80),
            "action": Action.REJECT,
            "alias": None,
            "from_version": None,
            "to_version": 4,
        },
    ]
    for r in sorted(rows, key=lambda r: r["at"]):
        append_audit(lake, actor="tester", reason=f"{r['action']} for the scorecard test", **r)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scorecard")
    today = dt.datetime.now(dt.UTC).date()
    first_drifted = today - dt.timedelta(days=2)
    (tmp / "dagster").mkdir()
    drift_tags = {
        **DRIFT_TAGS,
        RunTag.DRIFT_PARTITIONS: f"{first_drifted}..{today - dt.timedelta(days=1)}",
        RunTag.PARTITION: str(today),
    }  # the retrain's cutoff: the day after the episode
    registry = ModelRegistry(
        tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        artifact_root=str(tmp / "artifacts"),
        model_name=MODEL,
    )
    with instance_for_test(temp_dir=str(tmp / "dagster")) as instance:
        outcomes = {
            "ok1": run(instance, "ok"),
            "ok2": run(instance, "ok"),
            "contract": run(instance, "raw_events"),
            "gate": run(instance, "evaluation_report"),
            "other": run(instance, "boom"),
            "drift": run(instance, "ok", drift_tags),
        }
        assert [r.success for r in outcomes.values()] == [True, True, False, False, False, True]
        now = utc_naive(None)  # after every run was created
        today = now.date()
        lake = DeltaLake(root=str(tmp / "lake"))
        seed_registry(
            registry, tmp
        )  # (not in a thread: Dagster and MLflow share alembic's global state)
        seed_audit(
            lake,
            {
                v["version"]: dt.datetime.fromisoformat(v["created_at"]).replace(tzinfo=None)
                for v in registry.list_versions()
            },
        )
        spec = load_spec()

        # raw_events: the newest event exactly 5 hours before `now`
        events = pl.DataFrame(
            {
                "ds": [str(today)] * 2,
                spec.id: ["a", "b"],
                spec.timestamp: [now - dt.timedelta(hours=30), now - dt.timedelta(hours=5)],
            }
        )
        lake.write_partitions("raw_events", events, [str(today)])
        # features on days today-9 .. today-1; the due ones (deadline passed) are today-9 .. today-2
        feature_days = [str(today - dt.timedelta(days=i)) for i in range(9, 0, -1)]
        lake.write_partitions(
            "features", pl.DataFrame({"ds": feature_days, spec.id: feature_days}), feature_days
        )
        # scores: today-8..today-4 on time (noon of the day after), today-3 missing, today-2 late,
        # today-1 not due
        on_time = [str(today - dt.timedelta(days=i)) for i in range(8, 3, -1)]
        late, not_due = str(today - dt.timedelta(days=2)), str(today - dt.timedelta(days=1))
        scored_at = {
            d: dt.datetime.fromisoformat(d) + dt.timedelta(days=1, hours=12) for d in on_time
        }
        scored_at[late] = now
        scored_at[not_due] = now
        scores = pl.DataFrame(
            {
                "ds": list(scored_at),
                spec.id: list(scored_at),
                "model_version": [2] * len(scored_at),
                "mode": ["normal"] * len(scored_at),
                "scored_at": list(scored_at.values()),
            },
            schema_overrides={"scored_at": pl.Datetime("us")},
        )
        lake.write_partitions("scores", scores, list(scored_at))
        yield {
            "tmp": tmp,
            "instance": instance,
            "lake": lake,
            "registry": registry,
            "spec": spec,
            "now": now,
            "outcomes": outcomes,
            "first_drifted": first_drifted,
            "feature_days": feature_days,
        }


@pytest.fixture(scope="module")
def card(world):
    return compute_scorecard(
        world["instance"], world["lake"], world["registry"], world["spec"], now=world["now"]
    )


# ---- each measure on its purpose-built case -----------------------------------------------------
def test_pipeline_success_rate_and_failure_classes(world, card):
    m = card["measures"]
    assert (m["pipeline_runs"], m["pipeline_runs_succeeded"], m["pipeline_runs_failed"]) == (
        6,
        3,
        3,
    )
    assert m["pipeline_runs_stuck"] == 0  # every world run finished in this process
    assert m["pipeline_success_rate"] == 0.5 and m["pipeline_runs_canceled"] == 0
    assert (
        m["pipeline_failures_contract"],
        m["pipeline_failures_gate"],
        m["pipeline_failures_other"],
    ) == (1, 1, 1)
    by_run = {f["run_id"]: f["class"] for f in card["pipeline"]["failures"]}
    o = world["outcomes"]
    assert by_run == {
        o["contract"].run_id: "contract",
        o["gate"].run_id: "gate",
        o["other"].run_id: "other",
    }


def test_runs_outside_the_window_are_not_counted(world):
    later = compute_scorecard(
        world["instance"],
        world["lake"],
        world["registry"],
        world["spec"],
        now=world["now"] + dt.timedelta(days=8),
    )
    assert (
        later["measures"]["pipeline_runs"] == 0
        and later["measures"]["pipeline_success_rate"] is None
    )
    before = compute_scorecard(
        world["instance"],
        world["lake"],
        world["registry"],
        world["spec"],
        now=world["now"] - dt.timedelta(hours=1),
    )
    assert before["measures"]["pipeline_runs"] == 0  # runs created after `now` do not exist yet


def test_runs_that_died_count_against_the_success_rate():
    at = AT(2026, 3, 2)
    runs = [
        RunOutcome("s1", "daily", "SUCCESS", at),
        RunOutcome("s2", "daily", "SUCCESS", at),
        RunOutcome("s3", "daily", "SUCCESS", at),
        RunOutcome(
            "dead", "training", STUCK, at + dt.timedelta(hours=1), "its run worker process is gone"
        ),
    ]
    out = pipeline_measures(runs)
    assert out["success_rate"] == pytest.approx(3 / 4) and out["stuck"] == 1 and out["runs"] == 4
    assert out["failed"] == 0 and out["failure_classes"] == {"contract": 0, "gate": 0, "other": 0}
    assert out["failures"] == [
        {
            "run_id": "dead",
            "job": "training",
            "created_at": "2026-03-02T01:00:00",
            "class": "stuck",
            "message": "its run worker process is gone",
        }
    ]
    assert pipeline_measures(runs[:3])["success_rate"] == 1.0  # only when nothing failed or died
    assert "pipeline_runs_stuck" in COUNT_MEASURES


def test_failure_classification_reads_the_blocking_check_lines():
    msg = (
        "dagster._core.errors.DagsterAssetCheckFailedError: 2 blocking asset checks failed with"
        " ERROR severity:\n"
    )
    assert classify_failure(msg + "raw_labels: contract_not_null") == "contract"
    assert classify_failure(msg + "evaluation_report: gate_floor_roc_auc,gate_integrity") == "gate"
    assert (
        classify_failure(msg + "evaluation_report: gate_x\nraw_events: contract_schema")
        == "contract"
    )
    assert classify_failure(msg + "features: some_check") == "other"
    # naming raw_events outside a blocking-check list is no contract failure
    assert classify_failure("RuntimeError: could not read raw_events: disk full") == "other"
    assert classify_failure("") == "other"


def test_data_freshness_lag(card):
    assert card["measures"]["data_freshness_lag_hours"] == pytest.approx(5.0, abs=1e-6)
    assert card["freshness"]["ahead_of_clock_hours"] == 0.0


def test_events_stamped_ahead_of_the_clock_give_no_negative_lag():
    now = AT(2026, 3, 10, 9)
    ahead = freshness_measures(
        AT(2026, 3, 10, 23, 30), now
    )  # a simulated day, or a source clock running fast
    assert ahead["lag_hours"] == 0.0 and ahead["ahead_of_clock_hours"] == pytest.approx(14.5)
    assert freshness_measures(None, now)["lag_hours"] is None


def test_scoring_completion_and_on_time_against_the_sla(world, card):
    today = world["now"].date()
    judged = [p["ds"] for p in card["scoring"]["partitions"]]
    assert judged == [
        str(today - dt.timedelta(days=i)) for i in range(8, 1, -1)
    ]  # the latest 7 due days
    assert card["measures"]["scoring_completion"] == pytest.approx(6 / 7)
    assert card["measures"]["scoring_on_time"] == pytest.approx(5 / 7)
    missing = [p["ds"] for p in card["scoring"]["partitions"] if not p["scored"]]
    assert missing == [str(today - dt.timedelta(days=3))]


def test_scoring_first_scored_is_the_earliest_commit_or_row():
    now = dt.datetime(2026, 3, 20, 9)
    assert scoring_deadline("2026-03-10") == dt.datetime(2026, 3, 12)
    first = {
        "2026-03-10": dt.datetime(2026, 3, 11, 23, 59),
        "2026-03-11": dt.datetime(2026, 3, 13, 0, 1),
    }
    out = scoring_measures(
        ["2026-03-10", "2026-03-11", "2026-03-18", "2026-03-19"], first, now, partitions=7
    )
    assert [p["ds"] for p in out["partitions"]] == ["2026-03-10", "2026-03-11", "2026-03-18"]
    assert out["completion"] == pytest.approx(2 / 3) and out["on_time"] == pytest.approx(1 / 3)
    assert scoring_measures([], {}, now)["completion"] is None


def test_lead_time_change_failure_rate_and_time_to_restore(card):
    m = card["measures"]
    assert m["promotions"] == 3 and m["rollbacks"] == 1
    assert m["lead_time_hours_median"] == pytest.approx(30.0) and m[
        "lead_time_hours_last"
    ] == pytest.approx(50.0)
    assert m["change_failure_rate"] == pytest.approx(1 / 3)
    assert (
        m["time_to_restore_hours_median"] == pytest.approx(20.0)
        and m["time_to_restore_hours_last"] == 20.0
    )
    rolled = [p["version"] for p in card["promotions"]["promotions"] if p["rolled_back_at"]]
    assert rolled == [3]


def test_a_version_reapproved_after_its_rollback_is_judged_afresh():
    audit = pl.DataFrame(
        [
            {"at": AT(2026, 3, 1), "action": Action.PROMOTE, "from_version": None, "to_version": 1},
            {"at": AT(2026, 3, 2), "action": Action.PROMOTE, "from_version": 1, "to_version": 2},
            {
                "at": AT(2026, 3, 2, 6),
                "action": Action.ROLLBACK,
                "from_version": 2,
                "to_version": 1,
            },
            {
                "at": AT(2026, 3, 5),
                "action": Action.WAIVER_PROMOTE,
                "from_version": 1,
                "to_version": 2,
            },
        ]
    )
    out = promotion_measures(audit, {1: AT(2026, 2, 28), 2: None})
    assert out["change_failure_rate"] == pytest.approx(1 / 3)
    assert [p["rolled_back_at"] is not None for p in out["promotions"]] == [False, True, False]
    assert out["time_to_restore_hours_last"] == pytest.approx(6.0)
    assert (
        out["lead_time_hours_median"] == pytest.approx(24.0)
        and out["promotions_without_registration"] == 2
    )


def test_drift_detection_delay(world, card):
    # event time: the retrain's cutoff (today) minus the end of the first drifted day (today - 2)
    assert card["measures"]["drift_retrains"] == 1
    assert card["measures"]["drift_detection_delay_hours_last"] == pytest.approx(24.0)
    assert card["measures"]["drift_detection_delay_hours_median"] == pytest.approx(24.0)
    # a replay of old days acts with the same event-time delay, whenever it runs
    replay = drift_detection_measures(
        [DriftRetrain("r", AT(2030, 1, 1), "2026-03-03..2026-03-04", cutoff="2026-03-05")]
    )
    assert replay["delay_hours_last"] == pytest.approx(24.0)
    # a run without a parsable tag is not measurable; the median is over the rest
    runs = [
        DriftRetrain("a", AT(2026, 3, 5, 6), "2026-03-03..2026-03-04"),
        DriftRetrain("b", AT(2026, 3, 20), "2026-03-18..2026-03-19"),
        DriftRetrain("c", AT(2026, 3, 21), ""),
    ]
    out = drift_detection_measures(runs)
    assert (
        out["delay_hours_median"] == pytest.approx((30 + 24) / 2)
        and out["delay_hours_last"] == 24.0
    )


def test_provenance_completeness(card):
    assert card["measures"]["registered_versions"] == 4
    assert card["measures"]["provenance_completeness"] == pytest.approx(0.75)
    assert card["provenance"]["incomplete_versions"] == [4]


def test_scorecard_is_json_for_status(card):
    assert set(card["measures"]) == set(MEASURES)
    again = json.loads(json.dumps(card))
    assert again["measures"] == card["measures"]


# ---- empty inputs -------------------------------------------------------------------------------
def test_empty_world_gives_none_and_never_crashes(world, tmp_path):
    (tmp_path / "dagster").mkdir()
    lake = DeltaLake(root=str(tmp_path / "lake"))  # no table at all
    # the world's real MLflow store, but a model nothing was ever registered under (one store
    # migration per module instead of two)
    registry = ModelRegistry(
        tracking_uri=world["registry"].tracking_uri,
        artifact_root=world["registry"].artifact_root,
        model_name="never_registered",
    )
    assert registry.list_versions() == []
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        card = compute_scorecard(instance, lake, registry, load_spec())
        assert all(card["measures"][k] is None for k in VALUE_MEASURES), card["measures"]
        assert all(card["measures"][k] == 0 for k in COUNT_MEASURES)
        meta = scorecard_metadata(card)  # what the asset records: NaN for "nothing to measure"
        assert (
            all(math.isnan(meta[k].value) for k in VALUE_MEASURES)
            and meta["pipeline_runs"].value == 0
        )
        # tables that exist but hold nothing measurable: a challenger move only, features not yet
        # due
        append_audit(
            lake,
            at=AT(2026, 3, 1),
            actor="t",
            action=Action.AWAIT_APPROVAL,
            alias=Alias.CHALLENGER,
            to_version=1,
        )
        today = str(dt.datetime.now(dt.UTC).date())
        lake.write_partitions("features", pl.DataFrame({"ds": [today], "id": ["x"]}), [today])
        card = compute_scorecard(instance, lake, registry, load_spec())
        assert all(card["measures"][k] is None for k in VALUE_MEASURES)
        assert scoring_measures([today], {}, utc_naive(None))["partitions"] == []
    out = promotion_measures(pl.DataFrame(), {})
    assert out["change_failure_rate"] is None and out["lead_time_hours_median"] is None
    assert drift_detection_measures([])["delay_hours_last"] is None
    assert classify_failure(RunOutcome("r", "j", "FAILURE", AT(2026, 1, 1)).failure_text) == "other"


# ---- the asset ----------------------------------------------------------------------------------
def test_scorecard_asset_materialises_every_measure_as_numeric_metadata(world, card):
    """On the world's instance (``card`` was computed before: the asset's run adds a success)."""
    from dagster import AssetKey, FloatMetadataValue, IntMetadataValue

    platform = Platform(world["spec"], Home(world["tmp"] / "home"))
    scorecard = build_scorecard_asset(platform)
    assert scorecard.key == AssetKey(SCORECARD) and scorecard.partitions_def is None
    assert scorecard.group_names_by_key[AssetKey(SCORECARD)] == "operations"
    assert {"lake", "registry"} <= scorecard.required_resource_keys  # (+ the default io_manager)
    result = materialize(
        [scorecard],
        instance=world["instance"],
        resources={"lake": world["lake"], "registry": world["registry"]},
    )
    assert result.success
    meta = result.asset_materializations_for_node(SCORECARD)[0].metadata
    for name in VALUE_MEASURES:
        assert isinstance(meta[name], FloatMetadataValue), name
    for name in COUNT_MEASURES:
        assert isinstance(meta[name], IntMetadataValue), name
    # its own run is still in progress while it computes: the six finished runs only
    assert meta["pipeline_success_rate"].value == 0.5 and meta["pipeline_runs"].value == 6
    assert (
        meta["data_freshness_lag_hours"].value > 5.0
    )  # `now` is the run's time, later than the world's
    assert meta["change_failure_rate"].value == pytest.approx(1 / 3)
    assert meta["provenance_completeness"].value == pytest.approx(0.75)
    assert meta["scoring_completion"].value == pytest.approx(6 / 7)
    breakdown = meta[Meta.SCORECARD_BREAKDOWN].value
    assert set(breakdown["measures"]) == set(MEASURES)
    assert breakdown["promotions"]["rollbacks"][0]["version"] == 3


def test_scorecard_job_and_schedule(world):
    asset_def, job, schedule = build_scorecard(Platform(world["spec"], Home(world["tmp"] / "home")))
    assert asset_def.key.to_user_string() == SCORECARD
    assert job.name == Job.SCORECARD and schedule.name == Schedule.SCORECARD
    assert schedule.job_name == Job.SCORECARD and schedule.cron_schedule == "0 * * * *"


def test_the_measures_module_does_not_import_dagster():
    code = (
        "import sys, mlops_assets.operations.scorecard; assert 'dagster' not in sys.modules,"
        " 'dagster imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
