"""Shared fixtures: a real $MLOPS_HOME in a temp folder, a real SQLite Dagster instance."""

import contextlib
import datetime as dt

import polars as pl
import pytest
from dagster import instance_for_test

from benchmarks.common import project_env
from mlops_assets.core.platform import Platform
from mlops_assets.data.lake import DeltaLake

DAY0 = dt.date(2026, 3, 2)  # a Monday

# ---- scheduling on two workers (``-n 2 --dist loadfile``)
# -------------------------------------------------
# The files whose tests run for minutes, longest first (measured under the full suite on two cores).
# They are
# collected first, so the workers start on them and finish together on the short files; xdist by
# default
# starts with the files holding the most tests, which left these for the end, one worker busy for
# minutes
# after the other was done.
LONG_FILES = [
    "test_e2e_ui.py",
    "test_daemon.py",
    "test_benchmarks_smoke.py",
    "test_s3_production.py",
    "test_pii.py",
    "test_performance_without_labels.py",
    "test_data_assets.py",
    "test_model_plane.py",
    "test_outages.py",
    "test_ledger.py",
]
# Files that run a real ``dagster-daemon`` share one worker, one after the other: side by side, each
# daemon's queued runs starved the other's on two cores, past their timeouts.
SAME_WORKER = {"test_daemon.py": "test_e2e_ui.py"}


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(
        key=lambda item: rank.get(item.path.name, len(rank))
    )  # stable: the rest keep their order


@pytest.hookimpl(
    optionalhook=True
)  # xdist's hook: the suite still runs without it (``-p no:xdist``)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    class LongFirst(LoadFileScheduling):
        """Files as work units in collection order (no reordering by test count), with
        ``SAME_WORKER``'s
        files joined to their partner's unit."""

        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            folder, _, name = path.rpartition("/")
            return f"{folder}/{SAME_WORKER[name]}" if name in SAME_WORKER else path

    if config.getoption("dist") != "loadfile":
        return None
    config.option.loadscopereorder = False
    return LongFirst(config, log)


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "mlops_home"
    monkeypatch.setenv("MLOPS_HOME", str(root))
    monkeypatch.delenv("MLOPS_SPEC", raising=False)
    monkeypatch.delenv("MLOPS_LAKE_URI", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    (root / "dagster").mkdir(parents=True)
    return root


@pytest.fixture
def platform(home):
    return Platform.from_env()


@pytest.fixture
def instance(home):
    with instance_for_test(temp_dir=str(home / "dagster")) as inst:
        yield inst


@pytest.fixture
def defs(platform):
    from mlops_assets.location.build import build_definitions

    return build_definitions(platform)


@pytest.fixture
def lake(platform):
    return DeltaLake(root=str(platform.home.lake))


def days(start: dt.date, n: int) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]


def run_ingest(defs, instance, partition_key=None, start=None, end=None):
    job = defs.resolve_job_def("ingest")
    tags = {}
    if start:
        tags = {
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
        }
    return job.execute_in_process(
        instance=instance, partition_key=partition_key, tags=tags, raise_on_error=False
    )


def check_evaluations(result) -> dict:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def table(lake: DeltaLake, name: str, keys=None) -> pl.DataFrame:
    frame = lake.read(name, keys)
    return (
        frame.select(sorted(frame.columns)).sort(sorted(frame.columns))
        if not frame.is_empty()
        else frame
    )


def run_range(defs, instance, job: str, first: str, last: str):
    """One single-run backfill of ``job`` over the partitions ``first``..``last``."""
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )


@contextlib.contextmanager
def scored_world(root, start: dt.date, n_days: int, cutoff: dt.date, scored: list[str], inject):
    """A module's world on the bundled spec: ``n_days`` simulated from ``start`` with ``inject``,
    ingested
    (events and labels) by range runs, a champion trained at ``cutoff``, the ``scored`` days
    scored by one
    range run of the scoring job. Environment restored afterwards."""
    from mlops_assets.data.simulator import simulate
    from mlops_assets.location.build import build_definitions

    (root / "dagster").mkdir()
    with project_env(MLOPS_HOME=str(root / "home"), DAGSTER_HOME=str(root / "dagster")):
        platform = Platform.from_env()
        simulate(platform.landing.parent, start, n_days, seed=21, inject=inject)
        defs = build_definitions(platform)
        first, last = start.isoformat(), (start + dt.timedelta(days=n_days - 1)).isoformat()
        with instance_for_test(temp_dir=str(root / "dagster")) as instance:
            assert run_range(defs, instance, "ingest", first, last).success
            assert run_range(defs, instance, "ingest_labels", first, last).success
            assert (
                defs.resolve_job_def("training")
                .execute_in_process(
                    instance=instance, partition_key=cutoff.isoformat(), raise_on_error=False
                )
                .success
            )
            scoring = run_range(defs, instance, "scoring", scored[0], scored[-1])
            assert scoring.success
            yield {
                "platform": platform,
                "defs": defs,
                "instance": instance,
                "scoring": scoring,
                "lake": DeltaLake(root=str(platform.home.lake)),
                "registry": defs.resources["registry"],
            }
