"""Integrity on every load: the registration manifest, checked before anything is deserialised.

A real MLflow sqlite store and artifact root in a temp folder, two real candidates of the bundled
spec. Each test alters the *stored* artifacts the way an attacker (or a broken sync) would —
``MLmodel`` pointed at a planted pickle, a file added, ``requirements.txt`` changed, a file
removed, a run artifact edited, the trusted-types tag widened — and checks the registry refuses
with the file named, and that the planted pickle's payload never ran (it would create a marker
file). The store is restored after each test.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from threadpoolctl import threadpool_limits

from mlops_assets.control.registry import IntegrityError, ModelRegistry
from mlops_assets.core.spec import BUNDLED_SPEC, load_spec
from mlops_assets.core.vocabulary import Alias, Artifact, VersionTag
from mlops_assets.model.lineage import file_sha256, lineage_tags
from mlops_assets.model.training import (
    SKOPS_TRUSTED_TYPES,
    predict_scores,
    reference_profile,
)
from mlops_assets.scoring.rows import BASELINE_VERSION, DEGRADED, NORMAL
from mlops_assets.scoring.serving import choose_serving_model

from .test_registry import scorer, train


class Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): proof that a pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def spec():
    return load_spec(BUNDLED_SPEC)


@pytest.fixture(scope="module")
def world(tmp_path_factory, spec):
    """Versions 1 and 2 of the bundled spec; v2 champion, v1 last_known_good."""
    root = tmp_path_factory.mktemp("integrity")
    registry = ModelRegistry(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=str(root / "artifacts"),
        model_name=spec.model.registered_name,
        cache_dir=str(root / "cache"),
    )
    entries = []
    with threadpool_limits(limits=1):
        for seed in (1, 2):
            features, X, pipeline = train(spec, seed)
            scores = predict_scores(pipeline, X, spec.task)
            cand = registry.log_candidate(
                spec,
                pipeline,
                input_example=X,
                params={},
                metrics={},
                score=scorer(spec),
                trusted_types=SKOPS_TRUSTED_TYPES,
                tags=lineage_tags(
                    spec,
                    delta_versions={"features": 1},
                    partition_range=("a", "b"),
                    run_id="r",
                    seed=1,
                ),
                extra_artifacts={
                    Artifact.REFERENCE_PROFILE: reference_profile(
                        features, spec, prediction=scores
                    ),
                    Artifact.HOLDOUT_SCORES: {"ids": list(range(5)), "scores": scores[:5].tolist()},
                },
            )
            entries.append({"cand": cand, "X": X, "scores": scores})
    registry.set_alias(Alias.LAST_KNOWN_GOOD, 1)
    registry.set_alias(Alias.CHAMPION, 2)
    return {"root": root, "registry": registry, "entries": entries}


def model_dir(world, version: int) -> Path:
    model_id = world["entries"][version - 1]["cand"].model_id
    return world["root"] / "artifacts" / "models" / model_id / "artifacts"


def run_artifact(world, version: int, name: str) -> Path:
    run_id = world["entries"][version - 1]["cand"].run_id
    return next((world["root"] / "artifacts").rglob(f"{run_id}/artifacts/{name}"))


@contextlib.contextmanager
def restored(*folders: Path):
    """Put the folders back byte for byte afterwards."""
    saved = {f: f.with_name(f.name + ".orig") for f in folders}
    for f, copy in saved.items():
        shutil.copytree(f, copy)
    try:
        yield
    finally:
        for f, copy in saved.items():
            shutil.rmtree(f)
            copy.rename(f)


def plant_pickle(folder: Path, marker: Path) -> None:
    """A pickle beside the skops file and ``MLmodel`` pointed at it (the issue's attack)."""
    (folder / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"].update(serialization_format="pickle", pickled_model="model.pkl")
    mlmodel["flavors"]["python_function"]["model_path"] = "model.pkl"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def test_the_manifest_names_every_file_of_the_model_and_the_run_artifacts(world):
    tags = world["registry"].version_tags(1)
    manifest = json.loads(tags[VersionTag.MANIFEST])
    folder = model_dir(world, 1)
    assert manifest["model"] == {p.name: file_sha256(p) for p in folder.iterdir()}
    assert {
        "MLmodel",
        "requirements.txt",
        "conda.yaml",
        "python_env.yaml",
        "model.skops",
        "input_example.json",
    } <= set(manifest["model"])
    assert manifest["run"] == {
        name: file_sha256(run_artifact(world, 1, name))
        for name in (Artifact.REFERENCE_PROFILE, Artifact.HOLDOUT_SCORES)
    }
    assert json.loads(tags[VersionTag.TRUSTED_TYPES]) == sorted(SKOPS_TRUSTED_TYPES)
    entry = world["entries"][0]
    assert np.array_equal(
        predict_scores(world["registry"].load_model(1), entry["X"], "classification"),
        entry["scores"],
    )


def test_mlmodel_pointing_at_a_planted_pickle_is_refused_and_the_pickle_never_runs(
    world, spec, tmp_path
):
    registry, marker = world["registry"], tmp_path / "payload_ran"
    pickle.loads(pickle.dumps(Payload(marker)))  # the payload works: unpickling creates the marker
    assert marker.exists()
    marker.unlink()
    with restored(model_dir(world, 2)):
        plant_pickle(model_dir(world, 2), marker)
        with pytest.raises(IntegrityError, match="MLmodel changed") as refused:
            registry.load_model(2)
        assert "model.pkl added" in str(refused.value)
        # scoring falls back as documented: champion v2 refused → last_known_good v1, degraded
        serving = choose_serving_model(spec, registry)
        assert (serving.version, serving.alias, serving.mode) == (
            1,
            Alias.LAST_KNOWN_GOOD,
            DEGRADED,
        )
        assert len(serving.refused) == 1 and "model.pkl added" in serving.refused[0]
        report = registry.verify_integrity(
            2, world["entries"][1]["X"], world["entries"][1]["scores"], score=scorer(spec)
        )
        assert not report["ok"] and not report["files_match"] and not report["loads"]
        assert {"model.pkl added"} <= {p.split(" (")[0] for p in report["manifest_problems"]}
        assert not marker.exists(), "the planted pickle was deserialised"
    assert choose_serving_model(spec, registry).mode == NORMAL  # restored: v2 serves again


def test_a_planted_pickle_is_refused_even_with_the_manifest_rewritten_to_match(world, tmp_path):
    """Whoever can also rewrite the tag still gets no unpickling: the flavour must be skops."""
    registry, marker = world["registry"], tmp_path / "payload_ran"
    client = registry.client()
    saved_tag = registry.version_tags(2)[VersionTag.MANIFEST]
    with restored(model_dir(world, 2)):
        plant_pickle(model_dir(world, 2), marker)
        from mlops_assets.control.registry.integrity import file_manifest

        forged = {**json.loads(saved_tag), "model": file_manifest(model_dir(world, 2))}
        registry.set_version_tags(2, {VersionTag.MANIFEST: json.dumps(forged)})
        try:
            with pytest.raises(IntegrityError, match="does not declare the skops file"):
                registry.load_model(2)
        finally:
            client.set_model_version_tag(
                registry.registered_model, "2", VersionTag.MANIFEST, saved_tag
            )
    assert not marker.exists()


@pytest.mark.parametrize(
    "tamper, named",
    [
        (lambda d: (d / "notes.txt").write_text("hello"), "notes.txt added"),
        (
            lambda d: (d / "requirements.txt").write_text("scikit-learn\nevil-package==6.6.6\n"),
            "requirements.txt changed",
        ),
        (lambda d: (d / "input_example.json").unlink(), "input_example.json removed"),
        (
            lambda d: (d / "sub").mkdir() or (d / "sub" / "model.skops").write_bytes(b"x"),
            "sub/model.skops added",
        ),
        (lambda d: (d / "extra").symlink_to(d.parent), "extra added"),  # a link, never followed
        (
            lambda d: (d / "conda.yaml").unlink() or (d / "conda.yaml").symlink_to(d / "MLmodel"),
            "conda.yaml changed",
        ),
    ],
)
def test_a_changed_added_or_removed_file_is_refused_with_its_name(
    world, spec, tamper, named, tmp_path
):
    registry = world["registry"]
    fresh_cache = ModelRegistry(
        tracking_uri=registry.tracking_uri,
        model_name=registry.model_name,
        cache_dir=str(tmp_path / "cache"),
    )
    with restored(model_dir(world, 1)):
        tamper(model_dir(world, 1))
        with pytest.raises(IntegrityError, match=named):
            registry.load_model(1)
        with pytest.raises(IntegrityError, match=named):  # nothing unverified enters the cache
            fresh_cache.cache_version(1)
        assert not (tmp_path / "cache").exists()
    assert registry.load_model(1) is not None


def test_a_tampered_run_artifact_is_not_read(world):
    registry = world["registry"]
    for name in (Artifact.REFERENCE_PROFILE, Artifact.HOLDOUT_SCORES):
        path = run_artifact(world, 1, name)
        original = path.read_bytes()
        try:
            path.write_text(json.dumps({"ids": [], "scores": [], "prediction": {"mean": 0.9}}))
            with pytest.raises(IntegrityError, match=f"{name} changed since registration"):
                registry.load_artifact_json(1, name)
        finally:
            path.write_bytes(original)
        assert registry.load_artifact_json(1, name)
    planted = run_artifact(world, 1, Artifact.HOLDOUT_SCORES).with_name("planted.json")
    planted.write_text("{}")
    try:
        with pytest.raises(
            IntegrityError, match="planted.json is not in the registration manifest"
        ):
            registry.load_artifact_json(1, "planted.json")
    finally:
        planted.unlink()


def test_the_trusted_types_are_the_recorded_ones_not_the_models_own(world):
    """The allow-list comes from the version's tag; MLmodel's own list is never consulted."""
    registry = world["registry"]
    client = registry.client()
    saved = registry.version_tags(1)[VersionTag.TRUSTED_TYPES]
    registry.set_version_tags(1, {VersionTag.TRUSTED_TYPES: json.dumps([])})
    try:
        with pytest.raises(IntegrityError, match="needs types not recorded as trusted"):
            registry.load_model(1)
    finally:
        client.set_model_version_tag(
            registry.registered_model, "1", VersionTag.TRUSTED_TYPES, saved
        )
    assert registry.load_model(1) is not None


def test_a_version_without_a_manifest_is_refused(world, spec):
    registry = world["registry"]
    client = registry.client()
    saved = registry.version_tags(2)[VersionTag.MANIFEST]
    client.delete_model_version_tag(registry.registered_model, "2", VersionTag.MANIFEST)
    try:
        with pytest.raises(IntegrityError, match="no readable registry.manifest"):
            registry.load_model(2)
        with pytest.raises(IntegrityError, match="no readable registry.manifest"):
            registry.load_artifact_json(2, Artifact.REFERENCE_PROFILE)
        assert choose_serving_model(spec, registry).version == 1
    finally:
        client.set_model_version_tag(registry.registered_model, "2", VersionTag.MANIFEST, saved)


def test_both_versions_refused_serve_the_baseline_from_a_verified_profile(world, spec, tmp_path):
    registry = world["registry"]
    with restored(model_dir(world, 1), model_dir(world, 2)):
        for v in (1, 2):
            (model_dir(world, v) / "extra.bin").write_bytes(b"\0")
        serving = choose_serving_model(spec, registry)
        assert (serving.version, serving.mode) == (BASELINE_VERSION, DEGRADED)
        assert len(serving.refused) == 2 and all("extra.bin added" in r for r in serving.refused)
        profile = registry.load_artifact_json(2, Artifact.REFERENCE_PROFILE)
        assert serving.model.value == pytest.approx(profile["prediction"]["mean"])


def test_the_local_cache_holds_verified_copies_and_is_verified_by_the_same_manifest(
    world, spec, tmp_path
):
    registry = world["registry"]
    cached = ModelRegistry(
        tracking_uri=registry.tracking_uri,
        model_name=registry.model_name,
        cache_dir=str(tmp_path / "cache"),
    )
    serving = choose_serving_model(
        spec, cached
    )  # from MLflow: champion v2, and v1 kept for a fallback
    assert (serving.version, serving.source) == (2, "registry")
    assert cached.cached_aliases()[0] == {Alias.CHAMPION: 2, Alias.LAST_KNOWN_GOOD: 1}
    manifest = json.loads(registry.version_tags(2)[VersionTag.MANIFEST])
    from mlops_assets.control.registry.integrity import manifest_sha256

    entry = tmp_path / "cache" / manifest_sha256(manifest)
    assert {p.name: file_sha256(p) for p in (entry / "model").iterdir()} == manifest["model"]
    assert (entry / "run" / Artifact.REFERENCE_PROFILE).is_file()
    entry2 = world["entries"][1]
    assert np.array_equal(
        predict_scores(cached.load_cached_model(2), entry2["X"], spec.task), entry2["scores"]
    )
    assert cached.load_cached_artifact_json(
        2, Artifact.REFERENCE_PROFILE
    ) == registry.load_artifact_json(2, Artifact.REFERENCE_PROFILE)
    marker = tmp_path / "payload_ran"
    plant_pickle(entry / "model", marker)
    with pytest.raises(IntegrityError, match="model.pkl added"):
        cached.load_cached_model(2)
    (entry / "run" / Artifact.REFERENCE_PROFILE).write_text("{}")
    with pytest.raises(IntegrityError, match="changed since registration"):
        cached.load_cached_artifact_json(2, Artifact.REFERENCE_PROFILE)
    assert not marker.exists()
