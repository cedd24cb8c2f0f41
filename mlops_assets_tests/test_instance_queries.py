"""The shared reads of the Dagster instance, on a real SQLite instance with real runs.

One module world: a tiny partitioned asset ``events`` with a blocking partitioned check
(``schema``), a warning partitioned check (``volume``) and an unpartitioned one
(``freshness``). Which check fails on which day is set per run through ``BEHAVIOUR``; the
runs are real ``materialize`` calls, so the records read back are Dagster's own.
"""

# No ``from __future__ import annotations``: Dagster inspects the asset's ``context`` annotation.
import warnings

import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    StaticPartitionsDefinition,
    asset,
    instance_for_test,
    materialize,
)

from mlops_assets.control.instance_queries import (
    UNPARTITIONED,
    CheckOutcome,
    _history,
    failed_checks,
    latest_check_outcome,
    latest_check_outcomes,
    latest_materialization_metadata,
    latest_run_by_partition,
    runs_with_tag,
)
from mlops_assets.core.vocabulary import Meta, RunTag, Sensor

warnings.filterwarnings("ignore", category=PreviewWarning)

D1, D2, D3, D4 = "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"
DAYS = StaticPartitionsDefinition([D1, D2, D3, D4])
ASSET = "events"
CHECKS = ("schema", "volume")
BEHAVIOUR: dict = {
    "fail": set(),
    "crash": False,
}  # {(check, day)} that fail in the next run; crash before results


@asset(
    name=ASSET,
    partitions_def=DAYS,
    check_specs=[
        AssetCheckSpec("schema", asset=ASSET, blocking=True, partitions_def=DAYS),
        AssetCheckSpec("volume", asset=ASSET, partitions_def=DAYS),
        AssetCheckSpec("freshness", asset=ASSET, partitions_def=None),
    ],
)
def events(context: AssetExecutionContext):
    day = context.partition_key
    if BEHAVIOUR["crash"]:
        raise RuntimeError("landing folder unreadable")
    results = [
        AssetCheckResult(
            check_name=name,
            passed=(name, day) not in BEHAVIOUR["fail"],
            severity=AssetCheckSeverity.ERROR if name == "schema" else AssetCheckSeverity.WARN,
            description=f"{name} on {day}",
        )
        for name in CHECKS
    ]
    results.append(
        AssetCheckResult(
            check_name="freshness",
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description="fresh",
        )
    )
    return MaterializeResult(
        metadata={
            Meta.LANDING_FINGERPRINT: MetadataValue.json({day: f"fp-{day}"}),
            "rows": 3,
            "note": f"day {day}",
        },
        check_results=results,
    )


def run(instance, day: str, *, fail=(), crash=False, tags=None):
    BEHAVIOUR.update(fail=set(fail), crash=crash)
    try:
        return materialize(
            [events], instance=instance, partition_key=day, raise_on_error=False, tags=tags
        )
    finally:
        BEHAVIOUR.update(fail=set(), crash=False)


def key(name: str) -> AssetCheckKey:
    return AssetCheckKey(AssetKey(ASSET), name)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with instance_for_test(temp_dir=str(tmp_path_factory.mktemp("instance_queries"))) as instance:
        runs = {
            "d1": run(instance, D1, tags={RunTag.TRIGGER: Sensor.LANDING}),
            "d2_bad": run(instance, D2, fail=[("schema", D2)]),  # blocking failure: the run fails
            "d3_warn": run(
                instance, D3, fail=[("volume", D3)], tags={RunTag.TRIGGER: Sensor.LANDING}
            ),
            "d1_crash": run(instance, D1, crash=True),  # checks planned, never evaluated
            "d2_again_bad": run(instance, D2, fail=[("schema", D2), ("volume", D2)]),
        }
        assert [r.success for r in runs.values()] == [True, False, True, False, False]
        yield {"instance": instance, "runs": runs}


def test_latest_check_outcomes_per_partition(world):
    instance, runs = world["instance"], world["runs"]
    newest_d1 = next(r for r in _history(instance, key("schema"), page=500) if r.partition == D1)
    assert newest_d1.run_id == runs["d1_crash"].run_id  # planned, never evaluated
    schema = latest_check_outcomes(instance, key("schema"))
    assert set(schema) == {D1, D2, D3}
    # D1's latest record is the crashed run's planned-only one: the evaluated pass before it wins
    assert schema[D1] == CheckOutcome(True, "ERROR", runs["d1"].run_id, f"schema on {D1}")
    assert schema[D2] == CheckOutcome(
        False, "ERROR", runs["d2_again_bad"].run_id, f"schema on {D2}"
    )
    assert schema[D3].passed and schema[D3].run_id == runs["d3_warn"].run_id
    volume = latest_check_outcomes(instance, key("volume"))
    assert {p: o.passed for p, o in volume.items()} == {D1: True, D2: False, D3: False}
    assert volume[D3].severity == "WARN" and volume[D3].description == f"volume on {D3}"
    freshness = latest_check_outcomes(instance, key("freshness"))
    assert (
        set(freshness) == {UNPARTITIONED}
        and freshness[UNPARTITIONED].run_id == runs["d2_again_bad"].run_id
    )
    assert latest_check_outcomes(instance, key("never_defined")) == {}


def test_latest_check_outcomes_reads_only_the_newest_records_up_to_limit(world):
    newest = latest_check_outcomes(world["instance"], key("schema"), limit=1)  # D2's last run only
    assert set(newest) == {D2}


def test_failed_checks_of_one_partition(world):
    instance = world["instance"]
    assert failed_checks(instance, ASSET, CHECKS, D2) == ["schema", "volume"]
    assert failed_checks(instance, ASSET, ("volume", "schema"), D2) == [
        "volume",
        "schema",
    ]  # the caller's order
    assert failed_checks(instance, ASSET, CHECKS, D3) == ["volume"]
    assert failed_checks(instance, ASSET, CHECKS, D1) == []  # a crash after a pass is no failure
    assert failed_checks(instance, ASSET, CHECKS, D4) == []  # never evaluated on that day
    assert failed_checks(instance, ASSET, (), D2) == []
    assert latest_check_outcome(instance, key("schema"), D4) is None


def test_a_later_pass_clears_a_failure(tmp_path):
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        bad = run(instance, D2, fail=[("schema", D2)])
        assert failed_checks(instance, ASSET, CHECKS, D2) == ["schema"]
        good = run(instance, D2)
        assert failed_checks(instance, ASSET, CHECKS, D2) == []
        assert latest_check_outcome(instance, key("schema"), D2).run_id == good.run_id != bad.run_id
        # many newer records of other partitions: still found by paging back through the history
        for _ in range(3):
            run(instance, D3)
        every = list(_history(instance, key("schema"), page=1))
        assert [r.id for r in every] == [r.id for r in _history(instance, key("schema"), page=500)]
        assert [r.partition for r in every][-2:] == [D2, D2] and len(every) == 5


def test_latest_run_by_partition(world):
    runs = world["runs"]
    # a failed blocking check still materialised D2; the crash materialised nothing
    assert latest_run_by_partition(world["instance"], ASSET) == {
        D1: runs["d1"].run_id,
        D2: runs["d2_again_bad"].run_id,
        D3: runs["d3_warn"].run_id,
    }
    assert latest_run_by_partition(world["instance"], "no_such_asset") == {}


def test_latest_materialization_metadata(world):
    meta = latest_materialization_metadata(world["instance"], ASSET, D3)
    assert meta == {Meta.LANDING_FINGERPRINT: {D3: f"fp-{D3}"}, "rows": 3, "note": f"day {D3}"}
    assert latest_materialization_metadata(world["instance"], ASSET, D4) == {}
    assert latest_materialization_metadata(world["instance"], "no_such_asset", D1) == {}


def test_runs_with_tag(world):
    instance, runs = world["instance"], world["runs"]
    tagged = runs_with_tag(instance, RunTag.TRIGGER, Sensor.LANDING)
    assert [r.dagster_run.run_id for r in tagged] == [
        runs["d3_warn"].run_id,
        runs["d1"].run_id,
    ]  # newest first
    assert [
        r.dagster_run.run_id
        for r in runs_with_tag(instance, RunTag.TRIGGER, Sensor.LANDING, limit=1)
    ] == [runs["d3_warn"].run_id]
    first = instance.get_run_record_by_id(runs["d1"].run_id)
    assert (
        runs_with_tag(
            instance, RunTag.TRIGGER, Sensor.LANDING, created_before=first.create_timestamp
        )
        == []
    )
    assert runs_with_tag(instance, RunTag.TRIGGER, Sensor.DRIFT) == []
