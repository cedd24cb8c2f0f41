"""Tests for mlops_assets.control.registry and mlops_assets.model.lineage.

A real MLflow sqlite store and artifact root in a temp folder, real scikit-learn fits on
small synthetic data shaped like the bundled specs (built as polars feature frames and
converted with ``to_model_frame``, exactly as training does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from threadpoolctl import threadpool_limits

from mlops_assets.control.registry import (
    MODEL_FILE,
    IntegrityError,
    ModelRegistry,
    registry_resource,
)
from mlops_assets.core.paths import Home
from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
from mlops_assets.core.vocabulary import Alias, LineageTag
from mlops_assets.model.lineage import (
    REQUIRED_LINEAGE_KEYS,
    UNKNOWN,
    code_version,
    file_sha256,
    lineage_completeness,
    lineage_tags,
    lock_hash,
)
from mlops_assets.model.training import (
    SKOPS_TRUSTED_TYPES,
    fit,
    predict_scores,
    reference_profile,
    to_model_frame,
)

CHAMPION, CHALLENGER, LAST_KNOWN_GOOD = Alias.CHAMPION, Alias.CHALLENGER, Alias.LAST_KNOWN_GOOD

REPO = Path(__file__).resolve().parents[1]
REGRESSION_SPEC = BUNDLED_SPEC.parent / "bike_rentals.yaml"
TIMINGS: dict[str, float] = {}
REGISTRY_CALL_S = 60  # generous: the suite shares two cores with other work


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def synthetic_features(spec, n: int, seed: int) -> pl.DataFrame:
    """A polars features frame: the spec's model features plus its target."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for name, col in spec.features.numeric.items():
        lo = col.min if col.min is not None else 0.0
        hi = min(col.max if col.max is not None else lo + 100.0, lo + 100.0)
        values = rng.uniform(lo, hi, n)
        cols[name] = np.round(values).astype(np.int64) if col.dtype == "int" else values
    calendar = {
        "hour": (0, 24),
        "day_of_week": (0, 7),
        "is_weekend": (0, 2),
        "day_of_month": (1, 29),
        "month": (1, 13),
    }
    for name in spec.calendar_features:
        cols[name] = rng.integers(*calendar[name], n)
    for name, col in spec.features.categorical.items():
        cols[name] = rng.choice(col.allowed or ["a", "b", "c"], n)
    frame = pl.DataFrame(cols)
    first = spec.numeric_features[0]
    signal = frame[first].cast(pl.Float64).to_numpy()
    signal = (signal - signal.mean()) / signal.std() + rng.normal(0, 0.7, n)
    if spec.task == "classification":
        target = (signal > 1.0).astype(np.int64)
    else:
        target = 10.0 + 3.0 * signal
    return frame.with_columns(pl.Series(spec.target, target))


def scorer(spec):
    """The ``score`` callable the registry takes: the ML layer's scores for the spec's task."""
    return lambda model, X: predict_scores(model, X, spec.task)


def train(spec, seed: int):
    features = synthetic_features(spec, 1200, seed)
    X = to_model_frame(features, spec)
    pipeline = fit(spec, X, features[spec.target])
    return features, X, pipeline


@pytest.fixture(scope="module")
def spec():
    return load_spec(BUNDLED_SPEC)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    return root


@pytest.fixture(scope="module")
def registry(store, spec):
    return ModelRegistry(
        tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
        artifact_root=str(store / "artifacts"),
        model_name=spec.model.registered_name,
    )


@pytest.fixture(scope="module")
def logged(registry, spec):
    """Two candidates of the bundled spec, logged and registered (versions 1 and 2)."""
    env_before = dict(os.environ)
    cwd_before = set(os.listdir(os.getcwd()))
    out = []
    for i, seed in enumerate((1, 2)):
        features, X, pipeline = train(spec, seed)
        tags = lineage_tags(
            spec,
            delta_versions={"features": 10 + i, "raw_labels": 4},
            partition_range=("2026-01-01", "2026-01-28"),
            run_id=f"dagster-run-{i}",
            seed=spec.training.seed,
        )
        scores = predict_scores(pipeline, X, spec.task)
        profile = reference_profile(features, spec, prediction=scores)
        metrics = {"roc_auc": 0.9 + i / 100, "brier": 0.04}
        t0 = time.perf_counter()
        cand = registry.log_candidate(
            spec,
            pipeline,
            input_example=X,
            params={"estimator": spec.model.estimator, **spec.model.params, "window": [1, 28]},
            metrics=metrics,
            tags=tags,
            extra_artifacts={"reference_profile.json": profile, "notes.txt": "candidate"},
            score=scorer(spec),
            trusted_types=SKOPS_TRUSTED_TYPES,
        )
        TIMINGS[f"log_candidate #{i + 1}"] = time.perf_counter() - t0
        out.append(
            {
                "cand": cand,
                "X": X,
                "pipeline": pipeline,
                "tags": tags,
                "profile": profile,
                "metrics": metrics,
                "scores": scores,
            }
        )
    assert dict(os.environ) == env_before, "the registry must never mutate os.environ"
    assert set(os.listdir(os.getcwd())) == cwd_before, "nothing may be written to the cwd"
    return out


def stored_model_file(store: Path, model_id: str) -> Path:
    return store / "artifacts" / "models" / model_id / "artifacts" / MODEL_FILE


# ---- import cost ---------------------------------------------------------------------------


def test_importing_registry_does_not_import_mlflow():
    code = (
        "import mlops_assets.control.registry, mlops_assets.model.lineage, sys; "
        "heavy = [m for m in ('mlflow', 'sklearn', 'skops') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---- lineage -------------------------------------------------------------------------------


def test_code_version_in_this_checkout():
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    cv = code_version(REPO)
    assert cv["git_sha"] == head
    assert cv["git_dirty"] in ("true", "false")


def test_code_version_outside_git_is_unknown(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_GIT_SHA", raising=False)
    monkeypatch.delenv("MLOPS_GIT_DIRTY", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert code_version(tmp_path) == {"git_sha": UNKNOWN, "git_dirty": UNKNOWN}
    monkeypatch.setenv("MLOPS_GIT_SHA", "abc123")
    monkeypatch.setenv("MLOPS_GIT_DIRTY", "false")
    assert code_version(tmp_path) == {"git_sha": "abc123", "git_dirty": "false"}


def test_lineage_tags_and_completeness(spec, tmp_path, monkeypatch):
    tags = lineage_tags(
        spec,
        delta_versions={"features": 3},
        partition_range=("2026-01-01", "2026-01-07"),
        run_id="r",
        seed=7,
    )
    assert set(tags) == set(REQUIRED_LINEAGE_KEYS)
    assert all(k.startswith("lineage.") for k in tags)
    assert tags["lineage.spec_sha256"] == spec.digest
    assert tags["lineage.lock_sha256"] == file_sha256(REPO / "requirements.lock") == lock_hash()
    assert json.loads(tags["lineage.delta_versions"]) == {"features": 3}
    assert tags["lineage.model_sha256"] == UNKNOWN
    assert lineage_completeness(tags) == pytest.approx(0.9)
    assert lineage_completeness({**tags, "lineage.model_sha256": "ab" * 32}) == 1.0
    assert lineage_completeness({}) == 0.0
    assert lineage_completeness({**tags, "lineage.delta_versions": "{}"}) == pytest.approx(0.8)
    assert lock_hash(tmp_path / "absent.lock") == UNKNOWN
    monkeypatch.delenv("MLOPS_GIT_SHA", raising=False)
    monkeypatch.delenv("MLOPS_GIT_DIRTY", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    outside = lineage_tags(
        spec,
        delta_versions={"features": 3},
        partition_range=("a", "b"),
        run_id="",
        seed=0,
        repo_root=tmp_path,
    )
    assert outside["lineage.git_sha"] == outside["lineage.dagster_run_id"] == UNKNOWN
    assert lineage_completeness(outside) == pytest.approx(0.6)


# ---- logging and registering ---------------------------------------------------------------


def test_log_twice_registers_versions_1_and_2(logged, registry, store, spec):
    c1, c2 = (entry["cand"] for entry in logged)
    assert (c1.version, c2.version) == (1, 2)
    assert c1.model_uri == f"models:/{spec.model.registered_name}/1"
    assert c1.run_id != c2.run_id and c1.artifact_sha256 != c2.artifact_sha256
    versions = registry.list_versions()
    assert [v["version"] for v in versions] == [1, 2]
    assert [v["run_id"] for v in versions] == [c1.run_id, c2.run_id]
    assert all(v["status"] == "READY" and v["created_at"] for v in versions)
    # The recorded sha256 is the skops file in the logged model's artifact folder.
    for cand in (c1, c2):
        assert file_sha256(stored_model_file(store, cand.model_id)) == cand.artifact_sha256


def test_lineage_tags_on_version_and_run(logged, registry):
    from mlflow import MlflowClient

    entry = logged[1]
    cand = entry["cand"]
    tags = registry.version_tags(cand.version)
    for key in REQUIRED_LINEAGE_KEYS:
        assert key in tags, key
    expected = {**entry["tags"], LineageTag.MODEL_SHA: cand.artifact_sha256}
    assert {k: tags[k] for k in REQUIRED_LINEAGE_KEYS} == expected
    assert lineage_completeness(tags) == 1.0  # this is a git checkout with a lock file
    run = MlflowClient(tracking_uri=registry.resolved_tracking_uri).get_run(cand.run_id)
    assert run.info.status == "FINISHED"
    assert {k: run.data.tags[k] for k in REQUIRED_LINEAGE_KEYS} == expected
    assert run.data.params["window"] == "[1, 28]"
    registry.set_version_tags(cand.version, {"review": "ok", "scores": {"auc": 0.9}})
    tags = registry.version_tags(cand.version)
    assert tags["review"] == "ok" and json.loads(tags["scores"]) == {"auc": 0.9}


def test_artifact_json_and_metrics_round_trip(logged, registry):
    entry = logged[0]
    version = entry["cand"].version
    assert registry.load_artifact_json(version, "reference_profile.json") == json.loads(
        json.dumps(entry["profile"])
    )
    assert registry.run_metrics(version) == pytest.approx(entry["metrics"])
    with pytest.raises(FileNotFoundError, match="no_such.json"):
        registry.load_artifact_json(version, "no_such.json")


def test_aliases_move(logged, registry):
    env_before = dict(os.environ)
    assert registry.get_alias(CHAMPION) is None
    registry.set_alias(CHAMPION, 1)
    registry.set_alias(LAST_KNOWN_GOOD, 1)
    assert registry.get_alias(CHAMPION) == 1
    registry.set_alias(CHAMPION, 2)
    registry.set_alias(CHALLENGER, "1")
    assert registry.get_alias(CHAMPION) == 2
    assert registry.aliases() == {CHAMPION: 2, CHALLENGER: 1, LAST_KNOWN_GOOD: 1}
    rows = {v["version"]: v["aliases"] for v in registry.list_versions()}
    assert rows == {1: [CHALLENGER, LAST_KNOWN_GOOD], 2: [CHAMPION]}
    registry.delete_alias(CHALLENGER)
    registry.delete_alias(CHALLENGER)  # idempotent
    assert registry.get_alias(CHALLENGER) is None
    assert dict(os.environ) == env_before


def test_load_model_reproduces_scores(logged, registry, spec):
    entry = logged[0]
    t0 = time.perf_counter()
    model = registry.load_model(entry["cand"].version)
    TIMINGS["load_model"] = time.perf_counter() - t0
    assert np.array_equal(predict_scores(model, entry["X"], spec.task), entry["scores"])


def test_integrity_passes_then_fails_when_the_artifact_is_tampered_with(
    logged, registry, store, spec
):
    env_before = dict(os.environ)
    score = scorer(spec)
    entry = logged[0]
    cand = entry["cand"]
    t0 = time.perf_counter()
    ok = registry.verify_integrity(cand.version, entry["X"], entry["scores"], score=score)
    TIMINGS["verify_integrity"] = time.perf_counter() - t0
    assert ok["ok"] and ok["sha256_match"] and ok["loads"] and ok["predictions_identical"], ok
    assert ok["sha256_stored"] == ok["sha256_recorded"] == cand.artifact_sha256

    # Right bytes, wrong expectations: the comparison really is exact.
    off = registry.verify_integrity(cand.version, entry["X"], entry["scores"] + 1e-12, score=score)
    assert off["sha256_match"] and off["loads"] and not off["predictions_identical"]
    assert not off["ok"] and "scores differ" in off["detail"]

    path = stored_model_file(store, cand.model_id)
    original = path.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    path.write_bytes(bytes(tampered))
    try:
        bad = registry.verify_integrity(cand.version, entry["X"], entry["scores"], score=score)
        assert not bad["ok"] and not bad["sha256_match"]
        assert not bad["loads"] and not bad["predictions_identical"]  # never deserialised
        assert "sha256 mismatch" in bad["detail"] and MODEL_FILE in bad["detail"]
        assert bad["sha256_stored"] == file_sha256(path) != cand.artifact_sha256
        with pytest.raises(IntegrityError, match="sha256"):
            registry.load_model(cand.version)
    finally:
        path.write_bytes(original)
    assert registry.verify_integrity(cand.version, entry["X"], entry["scores"], score=score)["ok"]
    # The other version was never affected.
    other = logged[1]
    again = registry.verify_integrity(
        other["cand"].version, other["X"], other["scores"], score=score
    )
    assert again["ok"], again
    assert dict(os.environ) == env_before


def test_regression_model_round_trip(tmp_path):
    spec = load_spec(REGRESSION_SPEC)
    features, X, pipeline = train(spec, 3)
    reg = ModelRegistry(
        tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
        artifact_root=str(tmp_path / "a"),
        model_name=spec.model.registered_name,
    )
    tags = lineage_tags(
        spec,
        delta_versions={"features": 1},
        partition_range=("2026-01-01", "2026-01-21"),
        run_id="r",
        seed=spec.training.seed,
    )
    cand = reg.log_candidate(
        spec,
        pipeline,
        input_example=X,
        params={},
        metrics={"r2": 0.8},
        tags=tags,
        extra_artifacts={},
        score=scorer(spec),
        trusted_types=SKOPS_TRUSTED_TYPES,
    )
    assert cand.version == 1
    reg = ModelRegistry(tracking_uri=reg.tracking_uri, model_name=spec.model.registered_name)
    scores = predict_scores(pipeline, X, spec.task)
    assert reg.verify_integrity(1, X, scores, score=scorer(spec))["ok"]
    assert np.array_equal(reg.load_model(1).predict(X), scores)
    with pytest.raises(ValueError, match="configured for model"):
        ModelRegistry(tracking_uri=reg.tracking_uri, model_name="other").log_candidate(
            spec,
            pipeline,
            input_example=X,
            params={},
            metrics={},
            tags={},
            score=scorer(spec),
            trusted_types=SKOPS_TRUSTED_TYPES,
        )


# ---- the resource --------------------------------------------------------------------------


def test_registry_resource_embedded_and_env(home, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLOPS_MLFLOW_ARTIFACT_ROOT", raising=False)
    h = Home.from_env()
    res = registry_resource(h, model_name="m")
    assert res.resolved_tracking_uri == f"sqlite:///{h.mlflow_db}"
    assert res.resolved_artifact_root == str(h.mlflow_artifacts)
    assert res.registered_model == "m"
    # Empty fields: the same embedded defaults, derived from $MLOPS_HOME at use time.
    bare = ModelRegistry(model_name="m")
    assert bare.resolved_tracking_uri == res.resolved_tracking_uri
    assert bare.resolved_artifact_root == res.resolved_artifact_root
    assert bare.get_alias(CHAMPION) is None and bare.list_versions() == []
    # The registered model's name is configured, never looked up from a spec.
    with pytest.raises(ValueError, match="needs model_name"):
        _ = ModelRegistry().registered_model

    other = home / "elsewhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    env_res = registry_resource(h, model_name="m")
    assert env_res.tracking_uri == "MLFLOW_TRACKING_URI"  # an EnvVar: resolved at run time
    assert env_res.resolved_tracking_uri == f"sqlite:///{other}"
    assert env_res.resolved_artifact_root == str(other.parent / "artifacts")

    from dagster import Definitions, asset, materialize

    seen = {}

    @asset
    def probe(registry: ModelRegistry) -> None:
        seen["uri"] = registry.tracking_uri

    result = materialize([probe], resources={"registry": env_res})
    assert result.success and seen["uri"] == f"sqlite:///{other}"
    Definitions(assets=[probe], resources={"registry": env_res})


def test_registry_resource_creates_nothing_until_first_used(tmp_path, monkeypatch, spec):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLOPS_MLFLOW_ARTIFACT_ROOT", raising=False)
    root = tmp_path / "fresh_home"
    root.mkdir()
    home = Home(root)
    registry_resource(home, model_name="m")
    res = registry_resource(home, model_name=spec.model.registered_name)
    assert list(root.iterdir()) == [], "building the resource must not touch the disk"
    assert not home.mlflow_db.parent.exists()
    features, X, pipeline = train(spec, 4)
    cand = res.log_candidate(
        spec,
        pipeline,
        input_example=X,
        params={},
        metrics={},
        tags={},
        score=scorer(spec),
        trusted_types=SKOPS_TRUSTED_TYPES,
    )
    assert cand.version == 1
    assert home.mlflow_db.is_file() and home.mlflow_artifacts.is_dir()
    stored = stored_model_file(home.mlflow_artifacts.parent, cand.model_id)
    assert file_sha256(stored) == cand.artifact_sha256


def test_a_candidate_run_carries_its_cutoff_and_dagster_run_from_the_start(logged, registry):
    """What lets the next attempt find a dead attempt's run: tags set when the run is created."""
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=registry.resolved_tracking_uri).get_run(
        logged[0]["cand"].run_id
    )
    assert run.data.tags[LineageTag.DAGSTER_RUN_ID] == "dagster-run-0"
    assert run.info.run_name == f"{registry.registered_model}-candidate"


def test_ungated_versions_is_the_rule_for_superseding():
    from mlops_assets.control.registry.attempts import ungated_versions
    from mlops_assets.core.vocabulary import Status, VersionTag

    def row(v, cutoff="c", aliases=(), **tags):
        return {"version": v, "aliases": list(aliases), "tags": {VersionTag.CUTOFF: cutoff, **tags}}

    rows = [
        row(1, **{VersionTag.STATUS: Status.CANDIDATE}),  # ungated: superseded
        row(2, **{VersionTag.STATUS: Status.CANDIDATE, VersionTag.GATES: "failed"}),  # gated
        row(3, cutoff="other", **{VersionTag.STATUS: Status.CANDIDATE}),  # another cutoff
        row(
            4, aliases=["challenger"], **{VersionTag.STATUS: Status.CANDIDATE}
        ),  # serving something
        row(5),  # no status tag: a candidate
        row(6, **{VersionTag.STATUS: Status.CANDIDATE}),  # the new one
        row(7, **{VersionTag.STATUS: Status.CANDIDATE}),
    ]  # newer than the one kept
    assert ungated_versions(rows, "c", keep=6) == [1, 5]


def test_registry_errors_keep_their_type_and_lose_the_password(tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    from mlops_assets.control.registry.failures import is_unavailable, redacted_errors

    class Probe:
        def secrets(self):
            return ["hunter22"]

        @redacted_errors
        def missing(self):
            raise MlflowException(
                "model at http://bob:hunter22@mlflow:5000 not found",
                error_code=RESOURCE_DOES_NOT_EXIST,
            )

        @redacted_errors
        def wrapped(self):
            try:
                self.missing()
            except MlflowException as err:
                raise FileNotFoundError(f"no artifact: {err} (token hunter22)") from err

    with pytest.raises(MlflowException) as caught:
        Probe().missing()
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST" and "hunter22" not in str(
        caught.value
    )
    assert not is_unavailable(caught.value)
    with pytest.raises(FileNotFoundError) as caught:
        Probe().wrapped()
    assert "hunter22" not in str(caught.value) and caught.value.__cause__ is None
    assert is_unavailable(MlflowException("API request to http://h/api failed with exception boom"))


def test_registry_calls_on_a_local_store_take_seconds(logged, registry, spec):
    """Logging a candidate, loading it and verifying it on a local store: each in seconds, not
    the minutes of a retry loop or a hung lock (the timings are printed for the curious)."""
    entry = logged[0]
    t0 = time.perf_counter()
    model = registry.load_model(entry["cand"].version)
    TIMINGS["load_model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = registry.verify_integrity(
        entry["cand"].version, entry["X"], entry["scores"], score=scorer(spec)
    )
    TIMINGS["verify_integrity"] = time.perf_counter() - t0
    assert model is not None and report["ok"], report
    print("\nregistry timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in TIMINGS.items()))
    assert {"log_candidate #1", "log_candidate #2", "load_model", "verify_integrity"} <= set(
        TIMINGS
    )
    slow = {k: round(v, 1) for k, v in TIMINGS.items() if v > REGISTRY_CALL_S}
    assert not slow, f"registry calls slower than {REGISTRY_CALL_S}s: {slow}"
