"""Shared fixtures and helpers: a real $MLOPS_HOME in a temp folder and a real SQLite Dagster
instance per test; runs and what they recorded (``run_range``, ``materialized``, …); the one
world builder every module's simulate → ingest → train → score setup goes through (``World``,
``build_world``, ``world_home``, ``built_world``); the schedule of the files on two workers."""

import contextlib
import datetime as dt
import functools
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dagster import AssetKey, instance_for_test
from threadpoolctl import threadpool_limits

from benchmarks.common import PROJECT_ENV
from mlops_assets.core.paths import Home
from mlops_assets.core.platform import Platform
from mlops_assets.core.vocabulary import RunTag
from mlops_assets.data.lake import DeltaLake

DAY0 = dt.date(2026, 3, 2)  # a Monday

# ---- scheduling on two workers (``-n 2 --dist loadfile``) ------------------------------------
# The files whose tests run for minutes, longest first (measured one file at a time, and under the
# full suite on two cores). They are collected first, so the workers start on them and finish
# together on the short files; xdist by default starts with the files holding the most tests,
# which left these for the end, one worker busy for minutes after the other was done.
LONG_FILES = [
    "test_e2e_ui.py",  # ~3 min alone, twice that beside the other worker; test_daemon.py follows
    "test_daemon.py",  # ~75 s
    "test_ledger.py",  # ~80 s: CLI races and kill -9 in subprocesses
    "test_outages.py",  # ~70 s: a real MLflow server stopped and restarted
    "test_data_assets.py",  # ~45 s alone, ~85 s in the suite: 30 one-partition runs
    "test_s3_production.py",  # ~60 s
    "test_benchmarks_smoke.py",  # ~50 s
    "test_model_plane.py",  # ~45 s
    "test_monitoring.py",  # ~40 s
    "test_multiclass.py",  # ~27 s
    "test_estimation.py",  # ~23 s
    "test_operator_cli.py",  # ~23 s
    "test_performance_without_labels.py",  # ~21 s
    "test_crash_points.py",  # ~20 s
]
# Files that run a real ``dagster-daemon`` share one worker, one after the other: side by side, each
# daemon's queued runs starved the other's on two cores, past their timeouts.
SAME_WORKER = {"test_daemon.py": "test_e2e_ui.py"}


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config):
    """Workers share the cores (``-n 2`` on two): each gets its share of BLAS/OpenMP threads, and
    so does every process it starts (daemons, their run workers, CLIs); the environment is read
    when those libraries load, so it is set here, before the workers start. More threads than
    cores and small fits spend their time waiting on each other (measured on the two scored
    worlds side by side: a quarter more CPU, a fifth more time). ``setdefault``: a value set by
    hand wins."""
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 1:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for var in THREAD_VARS:
            os.environ.setdefault(var, share)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    # a stable sort: the other files keep their order
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# xdist's hook, optional: the suite still runs without xdist (``-p no:xdist``)
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    class LongFirst(LoadFileScheduling):
        """Files as work units in collection order (no reordering by test count), with
        ``SAME_WORKER``'s files joined to their partner's unit."""

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


# ---- runs and what they recorded ---------------------------------------------------------------
def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one single-run backfill over the partitions ``first``..``last``."""
    return {RunTag.RANGE_START: first, RunTag.RANGE_END: last}


def run_range(defs, instance, job: str, first: str, last: str):
    """One single-run backfill of ``job`` over the partitions ``first``..``last``."""
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, tags=range_tags(first, last)
    )


def run_ingest(defs, instance, partition_key=None, start=None, end=None):
    """``ingest`` for one partition, or (``start``/``end``) as one single-run backfill."""
    if start:
        return run_range(defs, instance, "ingest", start, end)
    return defs.resolve_job_def("ingest").execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False
    )


def materialized(result) -> dict[str, dict]:
    """asset name -> {metadata key: plain value} of its last materialisation in the run."""
    return {
        e.asset_key.path[-1]: {
            k: v.value for k, v in e.event_specific_data.materialization.metadata.items()
        }
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }


def step_failures(result) -> str:
    """Every failed step's error message with its causes' (no stack frames: a test that looks
    for a phrase finds it only in what was said, never in the source of a frame)."""
    messages = []
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            error = e.event_specific_data.error
            while error is not None:
                messages.append(error.message.strip())
                error = error.cause or error.context
    return " | ".join(messages)


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


# ---- one world builder: simulate → ingest → train → score --------------------------------------
# What a world sets for its block and restores afterwards (the rest of the environment is left as
# it is): the project's variables, MLflow's and the PII key, so no world sees another's.
WORLD_ENV = (
    *PROJECT_ENV,
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLOPS_MLFLOW_ARTIFACT_ROOT",
    "MLOPS_PII_KEY",
)


@contextlib.contextmanager
def world_env(**values: str) -> Iterator[None]:
    """``values`` set, every other ``WORLD_ENV`` variable unset, for the block; then restored."""
    saved = {k: os.environ.get(k) for k in WORLD_ENV}
    try:
        for k in WORLD_ENV:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class World:
    """A platform, its definitions and an open Dagster instance; the building steps below record
    each run they make (by step name) and assert it succeeded."""

    platform: Platform
    instance: Any
    defs: Any
    manifest: Any = None  # the simulator's SimulationManifest
    results: dict[str, Any] = field(default_factory=dict)  # step name -> its run's result
    records: dict[str, Any] = field(default_factory=dict)  # what a test module noted on the way

    @property
    def lake(self) -> DeltaLake:
        return self.defs.resources["lake"]

    @property
    def registry(self):
        return self.defs.resources["registry"]

    def run(self, job: str, partition: str | None = None, *, defs=None, assets=None, tags=None):
        """One run of ``job`` (of ``defs``, by default the world's); never raises on failure."""
        t0 = time.monotonic()
        result = (
            (defs or self.defs)
            .resolve_job_def(job)
            .execute_in_process(
                instance=self.instance,
                partition_key=partition,
                raise_on_error=False,
                asset_selection=[AssetKey(a) for a in assets] if assets else None,
                tags=tags,
            )
        )
        result.elapsed = time.monotonic() - t0  # seconds, for tests that bound a run's time
        return result

    def train(self, cutoff: str, *, defs=None, assets=None):
        return self.run("training", cutoff, defs=defs, assets=assets)

    def run_range(self, job: str, first: str, last: str):
        return run_range(self.defs, self.instance, job, first, last)

    # -- building steps
    def step(self, name: str, result):
        """Record a building run under ``name``: the world stands only on runs that succeeded."""
        assert result.success, (name, step_failures(result))
        self.results[name] = result
        return result

    def simulate(
        self,
        start: dt.date,
        n_days: int,
        *,
        seed=21,
        inject=(),
        simulator=None,
        spec=None,
        landing: Path | None = None,
    ):
        """``n_days`` from ``start`` written by ``simulator`` (default the card one) for ``spec``
        (default its bundled one) into ``landing`` (default ``$MLOPS_HOME/landing``)."""
        from mlops_assets.data.simulator import simulate

        self.manifest = (simulator or simulate)(
            landing or self.platform.landing.parent,
            start,
            n_days,
            seed=seed,
            inject=inject,
            spec=spec,
        )
        return self.manifest

    def ingest(self, first: str, last: str):
        return self.step("ingest", self.run_range("ingest", first, last))

    def ingest_labels(self, first: str | None = None, last: str | None = None):
        """One range run over ``first``..``last``, by default the manifest's label arrival days."""
        if first is None:
            arrivals = sorted({f.date for f in self.manifest.files if f.kind == "labels"})
            first, last = arrivals[0], arrivals[-1]
        return self.step("ingest_labels", self.run_range("ingest_labels", first, last))

    def score(self, first: str, last: str):
        return self.step("scoring", self.run_range("scoring", first, last))


def build_world(
    platform: Platform,
    instance,
    *,
    start: dt.date,
    n_days: int,
    seed: int = 21,
    inject=(),
    simulator=None,
    sim_spec=None,
    labels: str | None = "days",
    cutoffs: Sequence[str] = (),
    scored: Sequence[str] = (),
    cls: type[World] = World,
    **fields,
) -> World:
    """The usual world: ``n_days`` simulated from ``start`` (``World.simulate``) and ingested by
    one range run; the labels (``labels``: ``"days"`` over the simulated days, ``"arrivals"`` over
    the manifest's arrival days, None for no label feed) by another; one training run per cutoff,
    in order (steps ``training``, ``training_2``, …); the ``scored`` days by one range run of the
    scoring job. ``cls``/``fields``: a test module's own kind of ``World``."""
    from mlops_assets.location.build import build_definitions

    world = cls(platform, instance, build_definitions(platform), **fields)
    world.simulate(start, n_days, seed=seed, inject=inject, simulator=simulator, spec=sim_spec)
    keys = days(start, n_days)
    world.ingest(keys[0], keys[-1])
    if labels == "days":
        world.ingest_labels(keys[0], keys[-1])
    elif labels == "arrivals":
        world.ingest_labels()
    for i, cutoff in enumerate(cutoffs):
        world.step("training" if i == 0 else f"training_{i + 1}", world.train(str(cutoff)))
    if scored:
        world.score(scored[0], scored[-1])
    return world


@functools.cache
def migrated_mlflow_store() -> bytes:
    """An empty MLflow sqlite store, migrated once per worker: a fresh store's schema migrations
    take a second or more, and every world trains."""
    from mlflow import MlflowClient

    db = Path(tempfile.mkdtemp(prefix="mlflow_template_")) / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db.read_bytes()


@contextlib.contextmanager
def world_home(root: Path, *, spec: Path | None = None, one_thread: bool = False, **env: str):
    """``$MLOPS_HOME`` at ``root/home`` (``DAGSTER_HOME`` inside it) on ``spec`` (default: the
    bundled one), ``env`` set too, and an open SQLite instance there: yields (platform, instance).
    ``one_thread``: BLAS/OpenMP pools at one thread (small fits are faster so beside the other
    worker). The environment is restored afterwards."""
    home = root / "home"
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    store = Home(home).mlflow_db
    if not store.exists():  # the embedded MLflow store starts migrated (see migrated_mlflow_store)
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_bytes(migrated_mlflow_store())
    values = {"MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **env}
    if spec is not None:
        values["MLOPS_SPEC"] = str(spec)
    with (
        world_env(**values),
        threadpool_limits(limits=1) if one_thread else contextlib.nullcontext(),
        instance_for_test(temp_dir=str(home / "dagster")) as instance,
    ):
        yield Platform.from_env(), instance


@contextlib.contextmanager
def built_world(root: Path, *, spec=None, one_thread=False, **build):
    """``build_world`` (its options in ``build``) in a ``world_home`` at ``root``."""
    with world_home(root, spec=spec, one_thread=one_thread) as (platform, instance):
        yield build_world(platform, instance, **build)
