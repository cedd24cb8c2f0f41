"""Shared fixtures: a real $MLOPS_HOME in a temp folder, a real SQLite Dagster instance."""

import contextlib
import datetime as dt

import polars as pl
import pytest
from dagster import instance_for_test

from benchmarks.common import project_env
from mlops_assets.lake import DeltaLake
from mlops_assets.platform import Platform

DAY0 = dt.date(2026, 3, 2)  # a Monday


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
    from mlops_assets.defs.build import build_definitions

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
        tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    return job.execute_in_process(instance=instance, partition_key=partition_key, tags=tags, raise_on_error=False)


def check_evaluations(result) -> dict:
    return {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def table(lake: DeltaLake, name: str, keys=None) -> pl.DataFrame:
    frame = lake.read(name, keys)
    return frame.select(sorted(frame.columns)).sort(sorted(frame.columns)) if not frame.is_empty() else frame


def run_range(defs, instance, job: str, first: str, last: str):
    """One single-run backfill of ``job`` over the partitions ``first``..``last``."""
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})


@contextlib.contextmanager
def scored_world(root, start: dt.date, n_days: int, cutoff: dt.date, scored: list[str], inject):
    """A module's world on the bundled spec: ``n_days`` simulated from ``start`` with ``inject``, ingested
    (events and labels) by range runs, a champion trained at ``cutoff``, the ``scored`` days scored by one
    range run of the scoring job. Environment restored afterwards."""
    from mlops_assets.defs.build import build_definitions
    from mlops_assets.simulator import simulate

    (root / "dagster").mkdir()
    with project_env(MLOPS_HOME=str(root / "home"), DAGSTER_HOME=str(root / "dagster")):
        platform = Platform.from_env()
        simulate(platform.landing.parent, start, n_days, seed=21, inject=inject)
        defs = build_definitions(platform)
        first, last = start.isoformat(), (start + dt.timedelta(days=n_days - 1)).isoformat()
        with instance_for_test(temp_dir=str(root / "dagster")) as instance:
            assert run_range(defs, instance, "ingest", first, last).success
            assert run_range(defs, instance, "ingest_labels", first, last).success
            assert defs.resolve_job_def("training").execute_in_process(
                instance=instance, partition_key=cutoff.isoformat(), raise_on_error=False).success
            scoring = run_range(defs, instance, "scoring", scored[0], scored[-1])
            assert scoring.success
            yield {"platform": platform, "defs": defs, "instance": instance, "scoring": scoring,
                   "lake": DeltaLake(root=str(platform.home.lake)), "registry": defs.resources["registry"]}
