"""Logging a fitted pipeline as a candidate: one MLflow run, one LoggedModel, one new version.

This does explicitly what ``mlflow.sklearn.log_model`` does inside a run, but through one
``MlflowClient`` instead of MLflow's process-global fluent state: create the run (already
tagged with the caller's cutoff and Dagster run, so a dead attempt's run can be found), create
a LoggedModel, ``mlflow.sklearn.save_model`` (skops format, signature, input example) into a
temp dir, load it back (``skops.io.load`` with exactly the trusted types) and check it
reproduces the fitted pipeline's scores, upload it as the LoggedModel's artifacts, finalise
it, link it to the run, log metrics, artifacts and tags — among them the manifest of every
uploaded file (``integrity``) — and register the model as a new version. The result in MLflow
(UI, ``models:/name/version`` loads) is the same.

What a score is and which types skops may trust are the caller's knowledge (the ML layer):
both are passed in, so this module imports nothing of it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.control.registry.attempts import candidate_run_name
from mlops_assets.control.registry.integrity import (
    MODEL_FILE,
    Scorer,
    bytes_sha256,
    file_manifest,
    load_skops,
    model_files_sha256,
)
from mlops_assets.core.vocabulary import LineageTag, VersionTag
from mlops_assets.model.lineage import file_sha256

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

    from mlops_assets.control.registry.protocol import RegistryProtocol
    from mlops_assets.core.spec import DatasetSpec

log = logging.getLogger("mlops_assets.control.registry")

MODEL_ARTIFACT_NAME = "model"  # the LoggedModel's name (MLflow's ``name="model"``)
INPUT_EXAMPLE_ROWS = 5
# Packages the logged model needs to load and predict (mlflow itself is added by MLflow).
# Pinned explicitly: MLflow's inference would spawn a subprocess and record whatever the
# logging process happened to import (pytest, polars, rich ...).
MODEL_PIP_PACKAGES = ("scikit-learn", "skops", "numpy", "pandas", "scipy")

_DB_SCHEMES = frozenset({"sqlite", "postgresql", "postgres", "mysql", "mssql"})
_MAX_BATCH = 100  # MLflow's limit of params/tags per log_batch call


@dataclass(frozen=True)
class CandidateVersion:
    version: int
    run_id: str
    model_uri: str  # models:/<registered name>/<version>
    artifact_sha256: str  # sha256 of model.skops
    model_id: str = ""  # the MLflow LoggedModel id (m-...)


@dataclass(frozen=True)
class _Example:
    """The input example and what the saved model must reproduce on it."""

    frame: pd.DataFrame
    signature: Any
    predict_fn: str  # the pyfunc flavour's method: predict_proba or predict
    scores: Any  # score(pipeline, frame) of the in-memory pipeline


@dataclass(frozen=True)
class _SavedModel:
    model_id: str
    artifact_location: str
    sha256: str  # of model.skops
    files_sha256: str  # of every file of the model folder
    files: dict[str, str]  # path -> sha256 of every file of the model folder


# ---- values as MLflow stores them -----------------------------------------------------------
def as_version(value: Any) -> int:
    return int(value)


def tag_str(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _param_str(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _chunks(items: list[Any], size: int = _MAX_BATCH) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _pip_requirements() -> list[str]:
    reqs = []
    for pkg in MODEL_PIP_PACKAGES:
        try:
            reqs.append(f"{pkg}=={package_version(pkg)}")
        except PackageNotFoundError:
            reqs.append(pkg)
    return reqs


# ---- the steps ------------------------------------------------------------------------------
def _check_request(
    registry: RegistryProtocol, spec: DatasetSpec, extra_artifacts: Mapping[str, Any]
) -> str:
    """The registered model name, after checking the spec and the artifact names."""
    name = registry.registered_model
    if spec.model.registered_name != name:
        raise ValueError(
            f"this registry is configured for model {name!r} but the spec "
            f"registers {spec.model.registered_name!r}"
        )
    for artifact_name in extra_artifacts:
        parts = Path(artifact_name).parts
        if not parts or Path(artifact_name).is_absolute() or ".." in parts:
            raise ValueError(f"invalid artifact name {artifact_name!r}")
    return name


def _prepare_example(
    spec: DatasetSpec, pipeline: Pipeline, input_example: pd.DataFrame, score: Scorer
) -> _Example:
    from mlflow.models import infer_signature

    predict_fn = "predict_proba" if spec.task == "classification" else "predict"
    frame = input_example.head(INPUT_EXAMPLE_ROWS)
    signature = infer_signature(frame, getattr(pipeline, predict_fn)(frame))
    return _Example(frame, signature, predict_fn, score(pipeline, frame))


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    from mlflow.entities import Param

    param_list = [Param(str(k), _param_str(v)) for k, v in params.items()]
    for chunk in _chunks(param_list):
        client.log_batch(run_id, params=chunk)
    return {p.key: p.value for p in param_list}


def _save_checked(
    pipeline: Pipeline,
    local: Path,
    logged: Any,
    run_id: str,
    example: _Example,
    score: Scorer,
    trusted_types: Sequence[str],
) -> tuple[str, str, dict[str, str]]:
    """``mlflow.sklearn.save_model`` into ``local``; the saved model, loaded back, must
    reproduce the in-memory pipeline's scores on the input example exactly. Returns the
    sha256 of ``model.skops``, of the whole folder and of each file, hashed before the reload."""
    import mlflow.sklearn
    import numpy as np
    from mlflow.models import Model

    mlflow.sklearn.save_model(
        pipeline,
        str(local),
        mlflow_model=Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
        ),
        signature=example.signature,
        input_example=example.frame,
        serialization_format="skops",
        skops_trusted_types=list(trusted_types),
        pyfunc_predict_fn=example.predict_fn,
        pip_requirements=_pip_requirements(),
    )
    hashes = file_sha256(local / MODEL_FILE), model_files_sha256(local), file_manifest(local)
    reloaded = load_skops(local / MODEL_FILE, trusted_types, "the saved candidate")
    if not np.array_equal(score(reloaded, example.frame), example.scores):
        raise RuntimeError(
            "the saved model does not reproduce the fitted pipeline's scores on "
            "the input example; refusing to register it"
        )
    return hashes


def _log_model(
    client: MlflowClient,
    experiment_id: str,
    run_id: str,
    spec: DatasetSpec,
    pipeline: Pipeline,
    example: _Example,
    params: dict[str, str],
    score: Scorer,
    trusted_types: Sequence[str],
) -> _SavedModel:
    """A READY LoggedModel holding the saved pipeline, linked to the run as its output."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    logged = client.create_logged_model(
        experiment_id,
        name=MODEL_ARTIFACT_NAME,
        source_run_id=run_id,
        params=params,
        model_type=spec.task,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="mlops_model_") as tmp:
            local = Path(tmp) / "model"
            sha, files_sha, files = _save_checked(
                pipeline, local, logged, run_id, example, score, trusted_types
            )
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return _SavedModel(logged.model_id, logged.artifact_location, sha, files_sha, files)


def _log_metrics(
    client: MlflowClient, run_id: str, model_id: str, metrics: Mapping[str, float]
) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metric_list = [
        Metric(str(k), float(v), now, 0, model_id=model_id, run_id=run_id)
        for k, v in metrics.items()
    ]
    for chunk in _chunks(metric_list, 1000):
        client.log_batch(run_id, metrics=chunk)


def artifact_bytes(content: dict | list | str | bytes) -> bytes:
    """What a run artifact's file holds: dict/list -> indented JSON, str -> the text as is, bytes as
    they are (e.g. a skops file: read back only through ``integrity.load_artifact_skops``)."""
    if isinstance(content, bytes):
        return content
    return (content if isinstance(content, str) else json.dumps(content, indent=2)).encode("utf-8")


def _log_artifacts(
    client: MlflowClient, run_id: str, artifacts: Mapping[str, Any]
) -> dict[str, str]:
    """Upload each artifact from a local file; returns ``{name: sha256 of the uploaded bytes}``."""
    hashes = {}
    with tempfile.TemporaryDirectory(prefix="mlops_artifacts_") as tmp:
        for artifact_name, content in artifacts.items():
            data = artifact_bytes(content)
            path = Path(tmp) / artifact_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            parent = Path(artifact_name).parent.as_posix()
            client.log_artifact(run_id, str(path), None if parent == "." else parent)
            hashes[artifact_name] = bytes_sha256(data)
    return hashes


def _log_tags(
    client: MlflowClient,
    run_id: str,
    saved: _SavedModel,
    tags: Mapping[str, Any],
    run_files: Mapping[str, str],
    trusted_types: Sequence[str],
) -> dict[str, str]:
    """The caller's tags plus the model's hashes, manifest, trusted types and id, on the run
    and the LoggedModel."""
    from mlflow.entities import RunTag

    all_tags = {str(k): tag_str(v) for k, v in tags.items()}
    all_tags.update(
        {
            LineageTag.MODEL_SHA: saved.sha256,
            VersionTag.MODEL_FILES_SHA: saved.files_sha256,
            VersionTag.MODEL_ID: saved.model_id,
            VersionTag.MANIFEST: json.dumps(
                {"model": saved.files, "run": dict(run_files)}, sort_keys=True
            ),
            VersionTag.TRUSTED_TYPES: json.dumps(sorted(trusted_types)),
        }
    )
    for chunk in _chunks([RunTag(k, v) for k, v in all_tags.items()]):
        client.log_batch(run_id, tags=chunk)
    client.set_logged_model_tags(saved.model_id, all_tags)
    return all_tags


def _version_source(tracking_uri: str, saved: _SavedModel) -> str:
    # A server resolves "models:/<model_id>" itself (what mlflow.sklearn.log_model sends).
    # A database store used directly (sqlite/postgresql/...) resolves it through the
    # *global* tracking URI (MLflow 3.17.2 SqlAlchemyStore.create_model_version, marked
    # TODO upstream): a fresh ./mlflow.db in the cwd, "model not found". So give such a
    # store the LoggedModel's artifact location, which is what it would resolve to.
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in _DB_SCHEMES:
        return saved.artifact_location
    return f"models:/{saved.model_id}"


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name)
        except MlflowException as err2:
            if err2.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def _register_version(
    client: MlflowClient,
    tracking_uri: str,
    name: str,
    run_id: str,
    saved: _SavedModel,
    tags: dict[str, str],
) -> int:
    _ensure_registered_model(client, name)
    mv = client.create_model_version(
        name,
        source=_version_source(tracking_uri, saved),
        run_id=run_id,
        tags=tags,
        model_id=saved.model_id,
    )
    return as_version(mv.version)


def _end_run(client: MlflowClient, run_id: str, status: str) -> None:
    """End the run; when MLflow is unreachable too, leave it RUNNING for the next attempt's
    ``attempts.fail_orphan_runs`` rather than hide the error that got us here."""
    try:
        client.set_terminated(run_id, status)
    except Exception as err:  # noqa: BLE001 - the original error is the one to raise
        log.warning(
            "could not mark MLflow run %s %s (%s); the next attempt will",
            run_id,
            status,
            type(err).__name__,
        )


# ---- the whole ------------------------------------------------------------------------------
def log_candidate(
    registry: RegistryProtocol,
    spec: DatasetSpec,
    pipeline: Pipeline,
    *,
    input_example: pd.DataFrame,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, Any],
    extra_artifacts: Mapping[str, dict | list | str | bytes] | None = None,
    score: Scorer,
    trusted_types: Sequence[str],
) -> CandidateVersion:
    """Log one MLflow run holding the fitted ``pipeline`` and register it as a new version
    of ``registry.registered_model`` (which must be the spec's ``model.registered_name``).

    See ``ModelRegistry.log_candidate`` for the arguments. The run ends FINISHED only when
    the version is registered, FAILED otherwise (and the LoggedModel is marked FAILED when
    saving, checking or uploading it fails).
    """
    artifacts = dict(extra_artifacts or {})
    name = _check_request(registry, spec, artifacts)
    example = _prepare_example(spec, pipeline, input_example, score)

    client = registry.client()
    experiment_id = registry.experiment_id()
    run = (
        client.create_run(  # the caller's tags (cutoff, Dagster run) identify a dead attempt's run
            experiment_id,
            run_name=candidate_run_name(name),
            tags={
                **{str(k): tag_str(v) for k, v in tags.items()},
                VersionTag.SPEC: spec.name,
                VersionTag.TASK: spec.task,
            },
        )
    )
    run_id = run.info.run_id
    try:
        logged_params = _log_params(client, run_id, params)
        saved = _log_model(
            client,
            experiment_id,
            run_id,
            spec,
            pipeline,
            example,
            logged_params,
            score,
            trusted_types,
        )
        _log_metrics(client, run_id, saved.model_id, metrics)
        run_files = _log_artifacts(client, run_id, artifacts)
        all_tags = _log_tags(client, run_id, saved, tags, run_files, trusted_types)
        version = _register_version(
            client, registry.resolved_tracking_uri, name, run_id, saved, all_tags
        )
    except BaseException:
        _end_run(client, run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return CandidateVersion(
        version=version,
        run_id=run_id,
        model_uri=f"models:/{name}/{version}",
        artifact_sha256=saved.sha256,
        model_id=saved.model_id,
    )
