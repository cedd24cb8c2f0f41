"""A thin, project-owned MLflow model registry resource.

Why not dagster-mlflow: see FIELD_NOTES (legacy ``@resource``, mutates ``os.environ``).
Why not MLflow's fluent API either: ``mlflow.set_tracking_uri`` / ``set_registry_uri``
(and everything built on them: ``mlflow.start_run``, ``mlflow.sklearn.log_model``,
``models:/`` loads, ``mlflow.artifacts.download_artifacts(tracking_uri=...)``) write
``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` into ``os.environ`` (MLflow 3.17.2, verified).
So every call here goes through one ``MlflowClient(tracking_uri, registry_uri)`` and artifact
repositories built for that URI; no global MLflow state is read or written, and two
``ModelRegistry`` objects pointing at different stores can live in one process.

``log_candidate`` therefore does explicitly what ``mlflow.sklearn.log_model`` does inside a
run: create the run, create a LoggedModel, ``mlflow.sklearn.save_model`` (skops format,
signature, input example) into a temp dir, upload it as the LoggedModel's artifacts,
finalise it, link it to the run, and register ``models:/<model_id>`` as a new version.
The result in MLflow (UI, ``models:/name/version`` loads) is the same.

Integrity: ``lineage.model_sha256`` is the sha256 of **``model.skops``**, the skops file
inside the logged model's artifact folder (``<artifact root>/models/<model_id>/artifacts/
model.skops`` for the embedded store), computed from the exact bytes that were uploaded.
``registry.model_files_sha256`` additionally covers every file of that folder (MLmodel,
which holds the skops trusted-types list, requirements, input example...). ``load_model``
re-downloads the folder and refuses to deserialise a ``model.skops`` whose sha256 differs.

Importing this module does not import mlflow, scikit-learn or pandas (code-location load
time): they are imported inside the methods.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from mlops_assets.lineage import TAG_PREFIX, file_sha256
from mlops_assets.paths import Home

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

    from mlops_assets.spec import DatasetSpec

CHAMPION = "champion"
CHALLENGER = "challenger"
LAST_KNOWN_GOOD = "last_known_good"

MODEL_ARTIFACT_NAME = "model"  # the LoggedModel's name (MLflow's ``name="model"``)
MODEL_FILE = "model.skops"  # the serialized pipeline inside the model's artifact folder
MODEL_SHA_TAG = TAG_PREFIX + "model_sha256"
MODEL_FILES_SHA_TAG = "registry.model_files_sha256"
MODEL_ID_TAG = "registry.model_id"
INPUT_EXAMPLE_ROWS = 5
# Packages the logged model needs to load and predict (mlflow itself is added by MLflow).
# Pinned explicitly: MLflow's inference would spawn a subprocess and record whatever the
# logging process happened to import (pytest, polars, rich ...).
MODEL_PIP_PACKAGES = ("scikit-learn", "skops", "numpy", "pandas", "scipy")

_DB_SCHEMES = frozenset({"sqlite", "postgresql", "postgres", "mysql", "mssql"})
_MAX_BATCH = 100  # MLflow's limit of params/tags per log_batch call


class IntegrityError(RuntimeError):
    """A registered model's stored bytes do not match the sha256 recorded at registration."""


@dataclass(frozen=True)
class CandidateVersion:
    version: int
    run_id: str
    model_uri: str  # models:/<registered name>/<version>
    artifact_sha256: str  # sha256 of model.skops
    model_id: str = ""  # the MLflow LoggedModel id (m-...)


def default_tracking_uri(home: Home) -> str:
    return f"sqlite:///{home.mlflow_db}"


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, None for other schemes or in-memory."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = unquote(uri[len(prefix) :].split("?", 1)[0])
    if not path or path == ":memory:":
        return None
    return Path(path)  # "sqlite:////abs" leaves "/abs"; "sqlite:///rel" leaves "rel"


def _as_version(value: Any) -> int:
    return int(value)


def _tag_str(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _param_str(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _chunks(items: list[Any], size: int = _MAX_BATCH) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def model_files_sha256(model_dir: str | os.PathLike[str]) -> str:
    """One sha256 over every file of a model folder: sorted ``relpath\\0sha256\\n`` lines."""
    root = Path(model_dir)
    lines = [
        f"{p.relative_to(root).as_posix()}\0{file_sha256(p)}\n"
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in MODEL_PIP_PACKAGES:
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            reqs.append(pkg)
    return reqs


def _task_of(model: Any) -> str:
    from sklearn.base import is_classifier

    return "classification" if is_classifier(model) else "regression"


class ModelRegistry(ConfigurableResource):
    """MLflow tracking + model registry for the spec's registered model.

    Production passes ``tracking_uri=EnvVar("MLFLOW_TRACKING_URI")`` (an MLflow server);
    the embedded default (empty fields) is ``sqlite:///$MLOPS_HOME/mlflow/mlflow.db`` with
    artifacts in ``$MLOPS_HOME/mlflow/artifacts``. ``artifact_root`` only matters when the
    experiment is first created; empty means "next to the sqlite file" for a sqlite store
    and "the server's default" for a server.
    """

    tracking_uri: str = Field(
        default="",
        description="MLflow tracking/registry URI; empty: sqlite:///$MLOPS_HOME/mlflow/mlflow.db.",
    )
    artifact_root: str = Field(
        default="",
        description=(
            "Artifact location of a newly created experiment; empty: <sqlite dir>/artifacts "
            "for a sqlite store, the server's default otherwise."
        ),
    )
    experiment: str = Field(default="mlops_assets", description="MLflow experiment name.")
    model_name: str = Field(
        default="",
        description="Registered model name; empty: the spec's model.registered_name.",
    )

    # ---- configuration ------------------------------------------------------------------
    @staticmethod
    def _value(value: str) -> str:
        # An EnvVar field is resolved by Dagster at run time; outside Dagster it is still
        # the EnvVar (a str holding the variable's *name*), so resolve it here.
        return (value.get_value() or "") if isinstance(value, EnvVar) else value

    @property
    def resolved_tracking_uri(self) -> str:
        return self._value(self.tracking_uri) or default_tracking_uri(Home.from_env())

    @property
    def resolved_artifact_root(self) -> str | None:
        root = self._value(self.artifact_root)
        if root:
            return root
        db = _sqlite_path(self.resolved_tracking_uri)
        return str(db.parent / "artifacts") if db is not None else None

    @property
    def registered_model(self) -> str:
        if self.model_name:
            return self.model_name
        from mlops_assets.spec import load_spec

        return load_spec().model.registered_name

    def _client(self) -> MlflowClient:
        from mlflow import MlflowClient

        uri = self.resolved_tracking_uri
        db = _sqlite_path(uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def _experiment_id(self, client: MlflowClient) -> str:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        root = self.resolved_artifact_root
        if root and "://" not in root:
            Path(root).mkdir(parents=True, exist_ok=True)
        try:
            return client.create_experiment(self.experiment, artifact_location=root)
        except MlflowException:  # created concurrently by another process
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return exp.experiment_id

    def _version_source(self, logged: Any) -> str:
        # A server resolves "models:/<model_id>" itself (what mlflow.sklearn.log_model sends).
        # A database store used directly (sqlite/postgresql/...) resolves it through the
        # *global* tracking URI (MLflow 3.17.2 SqlAlchemyStore.create_model_version, marked
        # TODO upstream): a fresh ./mlflow.db in the cwd, "model not found". So give such a
        # store the LoggedModel's artifact location, which is what it would resolve to.
        scheme = self.resolved_tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
        if scheme in _DB_SCHEMES:
            return logged.artifact_location
        return f"models:/{logged.model_id}"

    def _ensure_registered_model(self, client: MlflowClient, name: str) -> None:
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

    # ---- logging a candidate ------------------------------------------------------------
    def log_candidate(
        self,
        spec: DatasetSpec,
        pipeline: Pipeline,
        *,
        input_example: pd.DataFrame,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, Any],
        extra_artifacts: Mapping[str, dict | list | str] | None = None,
    ) -> CandidateVersion:
        """Log one MLflow run holding the fitted ``pipeline`` and register it as a new version.

        ``input_example``: a ``to_model_frame`` frame; its first ``INPUT_EXAMPLE_ROWS`` rows
        are stored as the input example and give the signature (inputs; outputs are what the
        pyfunc flavour returns: ``predict_proba``'s two columns for classification, the
        prediction for regression). ``params`` and ``metrics`` go on the run (metrics are
        also linked to the LoggedModel). ``tags`` (e.g. ``lineage_tags(...)``) go on the run,
        the LoggedModel and the model version, together with ``lineage.model_sha256``
        (sha256 of ``model.skops``, overriding any value passed in),
        ``registry.model_files_sha256`` and ``registry.model_id``. ``extra_artifacts`` maps
        run artifact names to content: dict/list -> JSON, str -> the text as is (e.g.
        ``{"reference_profile.json": profile}``).

        Before uploading, the saved model is loaded back and must reproduce the in-memory
        pipeline's scores on the input example exactly, else nothing is registered.
        """
        import mlflow.sklearn
        import numpy as np
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Param, RunTag
        from mlflow.models import Model, infer_signature

        from mlops_assets.ml.training import SKOPS_TRUSTED_TYPES, predict_scores

        name = spec.model.registered_name
        if self.model_name and self.model_name != name:
            raise ValueError(
                f"this registry is configured for model {self.model_name!r} but the spec "
                f"registers {name!r}"
            )
        for artifact_name in extra_artifacts or {}:
            parts = Path(artifact_name).parts
            if not parts or Path(artifact_name).is_absolute() or ".." in parts:
                raise ValueError(f"invalid artifact name {artifact_name!r}")

        classification = spec.task == "classification"
        predict_fn = "predict_proba" if classification else "predict"
        example = input_example.head(INPUT_EXAMPLE_ROWS)
        signature = infer_signature(example, getattr(pipeline, predict_fn)(example))
        example_scores = predict_scores(pipeline, example, spec.task)

        client = self._client()
        experiment_id = self._experiment_id(client)
        run = client.create_run(
            experiment_id,
            run_name=f"{name}-candidate",
            tags={"mlops.spec": spec.name, "mlops.task": spec.task},
        )
        run_id = run.info.run_id
        status = "FAILED"
        try:
            param_list = [Param(str(k), _param_str(v)) for k, v in params.items()]
            for chunk in _chunks(param_list):
                client.log_batch(run_id, params=chunk)

            logged = client.create_logged_model(
                experiment_id,
                name=MODEL_ARTIFACT_NAME,
                source_run_id=run_id,
                params={p.key: p.value for p in param_list},
                model_type=spec.task,
            )
            try:
                with tempfile.TemporaryDirectory(prefix="mlops_model_") as tmp:
                    local = Path(tmp) / "model"
                    mlflow.sklearn.save_model(
                        pipeline,
                        str(local),
                        mlflow_model=Model(
                            artifact_path=logged.artifact_location,
                            model_uuid=logged.model_id,
                            run_id=run_id,
                            model_id=logged.model_id,
                        ),
                        signature=signature,
                        input_example=example,
                        serialization_format="skops",
                        skops_trusted_types=SKOPS_TRUSTED_TYPES,
                        pyfunc_predict_fn=predict_fn,
                        pip_requirements=_pip_requirements(),
                    )
                    sha = file_sha256(local / MODEL_FILE)
                    files_sha = model_files_sha256(local)
                    reloaded = mlflow.sklearn.load_model(str(local))
                    reloaded_scores = predict_scores(reloaded, example, spec.task)
                    if not np.array_equal(reloaded_scores, example_scores):
                        raise RuntimeError(
                            "the saved model does not reproduce the fitted pipeline's scores on "
                            "the input example; refusing to register it"
                        )
                    client.log_model_artifacts(logged.model_id, str(local))
            except BaseException:
                client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
                raise
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

            now = int(time.time() * 1000)
            metric_list = [
                Metric(str(k), float(v), now, 0, model_id=logged.model_id, run_id=run_id)
                for k, v in metrics.items()
            ]
            for chunk in _chunks(metric_list, 1000):
                client.log_batch(run_id, metrics=chunk)

            for artifact_name, content in (extra_artifacts or {}).items():
                if isinstance(content, str):
                    client.log_text(run_id, content, artifact_name)
                else:
                    client.log_dict(run_id, content, artifact_name)

            all_tags = {str(k): _tag_str(v) for k, v in tags.items()}
            all_tags.update(
                {MODEL_SHA_TAG: sha, MODEL_FILES_SHA_TAG: files_sha, MODEL_ID_TAG: logged.model_id}
            )
            for chunk in _chunks([RunTag(k, v) for k, v in all_tags.items()]):
                client.log_batch(run_id, tags=chunk)
            client.set_logged_model_tags(logged.model_id, all_tags)

            self._ensure_registered_model(client, name)
            mv = client.create_model_version(
                name,
                source=self._version_source(logged),
                run_id=run_id,
                tags=all_tags,
                model_id=logged.model_id,
            )
            status = "FINISHED"
        finally:
            client.set_terminated(run_id, status)
        version = _as_version(mv.version)
        return CandidateVersion(
            version=version,
            run_id=run_id,
            model_uri=f"models:/{name}/{version}",
            artifact_sha256=sha,
            model_id=logged.model_id,
        )

    # ---- reading models back ------------------------------------------------------------
    def _download_model_dir(self, client: MlflowClient, version: int | str, dst: str) -> Path:
        """A private copy of the version's model folder under ``dst`` (the stored bytes)."""
        import shutil

        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        uri = client.get_model_version_download_uri(self.registered_model, str(version))
        repo = get_artifact_repository(uri, tracking_uri=self.resolved_tracking_uri)
        if isinstance(repo, LocalArtifactRepository):  # plain copy: no tqdm bar on stderr
            target = Path(dst) / "model"
            shutil.copytree(repo.artifact_dir, target)
            return target
        return Path(repo.download_artifacts("", dst_path=dst))

    def load_model(self, version: int | str, *, verify: bool = True) -> Pipeline:
        """The registered pipeline of ``version`` (``models:/<name>/<version>``).

        The model folder is downloaded once; with ``verify`` (default) ``model.skops`` must
        hash to the version's ``lineage.model_sha256`` or ``IntegrityError`` is raised
        before anything is deserialised. Loads with ``mlflow.sklearn.load_model`` (skops).
        """
        import mlflow.sklearn

        client = self._client()
        expected = self.version_tags(version).get(MODEL_SHA_TAG) if verify else None
        with tempfile.TemporaryDirectory(prefix="mlops_load_") as tmp:
            local = self._download_model_dir(client, version, tmp)
            if verify:
                actual = file_sha256(local / MODEL_FILE)
                if not expected or actual != expected:
                    raise IntegrityError(
                        f"{self.registered_model} v{version}: {MODEL_FILE} sha256 {actual} does "
                        f"not match the recorded {MODEL_SHA_TAG} {expected or '<missing>'}"
                    )
            return mlflow.sklearn.load_model(str(local))

    def verify_integrity(
        self, version: int | str, X_holdout: pd.DataFrame, expected_scores: np.ndarray
    ) -> dict[str, Any]:
        """Re-download ``version``, re-hash it, load it and re-score ``X_holdout``.

        Returns ``{"ok", "sha256_match", "files_match", "loads", "predictions_identical",
        "sha256_recorded", "sha256_stored", "detail"}``. ``sha256_match`` is about
        ``model.skops``; ``files_match`` about every file of the model folder. A model whose
        ``model.skops`` does not match is **not** deserialised (``loads`` False). Scores
        (``predict_scores``) must equal ``expected_scores`` exactly (``np.array_equal``).
        """
        import mlflow.sklearn
        import numpy as np

        from mlops_assets.ml.training import predict_scores

        result: dict[str, Any] = {
            "ok": False,
            "sha256_match": False,
            "files_match": False,
            "loads": False,
            "predictions_identical": False,
            "sha256_recorded": None,
            "sha256_stored": None,
            "detail": "",
        }
        label = f"{self.registered_model} v{version}"
        try:
            client = self._client()
            tags = self.version_tags(version)
        except Exception as err:  # noqa: BLE001 - reported, not raised
            result["detail"] = f"{label}: cannot read the registry: {err}"
            return result
        recorded = tags.get(MODEL_SHA_TAG)
        result["sha256_recorded"] = recorded
        problems: list[str] = []
        with tempfile.TemporaryDirectory(prefix="mlops_verify_") as tmp:
            try:
                local = self._download_model_dir(client, version, tmp)
                stored = file_sha256(local / MODEL_FILE)
            except Exception as err:  # noqa: BLE001
                result["detail"] = f"{label}: cannot download {MODEL_FILE}: {err}"
                return result
            result["sha256_stored"] = stored
            result["sha256_match"] = bool(recorded) and stored == recorded
            result["files_match"] = model_files_sha256(local) == tags.get(MODEL_FILES_SHA_TAG)
            if not result["files_match"]:
                problems.append("the model folder's files differ from those registered")
            if not result["sha256_match"]:
                problems.insert(
                    0,
                    f"sha256 mismatch: {MODEL_FILE} is {stored}, registered "
                    f"{recorded or '<missing>'}; not deserialised",
                )
                result["detail"] = f"{label}: " + "; ".join(problems)
                return result
            try:
                model = mlflow.sklearn.load_model(str(local))
                result["loads"] = True
            except Exception as err:  # noqa: BLE001
                problems.append(f"does not load: {type(err).__name__}: {err}")
                result["detail"] = f"{label}: " + "; ".join(problems)
                return result
        try:
            scores = predict_scores(model, X_holdout, _task_of(model))
            expected = np.asarray(expected_scores)
            result["predictions_identical"] = bool(
                scores.shape == expected.shape and np.array_equal(scores, expected, equal_nan=True)
            )
            if not result["predictions_identical"]:
                if scores.shape != expected.shape:
                    problems.append(f"score shape {scores.shape} != expected {expected.shape}")
                else:
                    same = (scores == expected) | (np.isnan(scores) & np.isnan(expected))
                    diff = int(np.sum(~same))
                    problems.append(f"{diff} of {len(scores)} scores differ from the expected ones")
        except Exception as err:  # noqa: BLE001
            problems.append(f"cannot score: {type(err).__name__}: {err}")
        result["ok"] = all(
            result[k] for k in ("sha256_match", "files_match", "loads", "predictions_identical")
        )
        result["detail"] = f"{label}: " + ("; ".join(problems) if problems else "intact")
        return result

    # ---- aliases ------------------------------------------------------------------------
    def _registered(self, client: MlflowClient) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return client.get_registered_model(self.registered_model)
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def aliases(self) -> dict[str, int]:
        """Every alias of the registered model -> its version ({} if no model yet)."""
        model = self._registered(self._client())
        return {a: _as_version(v) for a, v in (model.aliases or {}).items()} if model else {}

    def get_alias(self, alias: str) -> int | None:
        """The version carrying ``alias``; None if the alias (or the model) does not exist."""
        return self.aliases().get(alias)

    def set_alias(self, alias: str, version: int | str) -> None:
        """Point ``alias`` at ``version`` (moves it if it pointed elsewhere)."""
        self._client().set_registered_model_alias(self.registered_model, alias, str(version))

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias``; a no-op when it (or the model) does not exist."""
        if alias in self.aliases():
            self._client().delete_registered_model_alias(self.registered_model, alias)

    # ---- tags, versions, run data -------------------------------------------------------
    def version_tags(self, version: int | str) -> dict[str, str]:
        return dict(self._client().get_model_version(self.registered_model, str(version)).tags)

    def set_version_tags(self, version: int | str, tags: Mapping[str, Any]) -> None:
        client = self._client()
        for key, value in tags.items():
            client.set_model_version_tag(
                self.registered_model, str(version), str(key), _tag_str(value)
            )

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, oldest first: ``{"version", "run_id", "model_id", "status",
        "tags", "aliases", "created_at" (ISO UTC), "created_ms"}``. [] if no model yet."""
        import datetime as dt

        client = self._client()
        name = self.registered_model
        model = self._registered(client)
        if model is None:
            return []
        by_version: dict[int, list[str]] = {}
        for alias, v in (model.aliases or {}).items():
            by_version.setdefault(_as_version(v), []).append(alias)
        escaped = name.replace("\\", "\\\\").replace("'", "\\'")
        rows: list[dict[str, Any]] = []
        token = None
        while True:
            page = client.search_model_versions(f"name = '{escaped}'", page_token=token)
            for mv in page:
                v = _as_version(mv.version)
                created = int(mv.creation_timestamp or 0)
                rows.append(
                    {
                        "version": v,
                        "run_id": mv.run_id,
                        "model_id": mv.tags.get(MODEL_ID_TAG) or mv.model_id,
                        "status": mv.status,
                        "tags": dict(mv.tags),
                        "aliases": sorted(by_version.get(v, [])),
                        "created_ms": created,
                        "created_at": dt.datetime.fromtimestamp(created / 1000, dt.UTC).isoformat(),
                    }
                )
            token = page.token
            if not token:
                break
        return sorted(rows, key=lambda r: r["version"])

    def _run_id(self, client: MlflowClient, version: int | str) -> str:
        run_id = client.get_model_version(self.registered_model, str(version)).run_id
        if not run_id:
            raise LookupError(f"{self.registered_model} v{version} has no source run")
        return run_id

    def _read_run_artifact(self, client: MlflowClient, run_id: str, name: str) -> bytes:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        repo = get_artifact_repository(
            client.get_run(run_id).info.artifact_uri, tracking_uri=self.resolved_tracking_uri
        )
        if isinstance(repo, LocalArtifactRepository):  # read in place: no tqdm bar on stderr
            root = Path(repo.artifact_dir).resolve()
            path = (root / name).resolve()
            if not path.is_relative_to(root):
                raise ValueError(f"invalid artifact name {name!r}")
            return path.read_bytes()
        with tempfile.TemporaryDirectory(prefix="mlops_artifact_") as tmp:
            return Path(client.download_artifacts(run_id, name, tmp)).read_bytes()

    def load_artifact_json(self, version: int | str, name: str) -> Any:
        """A JSON artifact of the version's run (e.g. ``reference_profile.json``);
        ``FileNotFoundError`` when the run has no such artifact."""
        client = self._client()
        run_id = self._run_id(client, version)
        try:
            data = self._read_run_artifact(client, run_id, name)
        except ValueError:
            raise
        except Exception as err:  # OSError locally, MlflowException from a server
            raise FileNotFoundError(
                f"{self.registered_model} v{version}: no artifact {name!r} in run {run_id}: {err}"
            ) from err
        return json.loads(data)

    def run_metrics(self, version: int | str) -> dict[str, float]:
        """The latest value of every metric of the version's run."""
        client = self._client()
        return dict(client.get_run(self._run_id(client, version)).data.metrics)


def registry_resource(home: Home, *, model_name: str = "") -> ModelRegistry:
    """The registry resource: ``$MLFLOW_TRACKING_URI`` when set (resolved by Dagster at run
    time, plus ``$MLOPS_MLFLOW_ARTIFACT_ROOT`` if set), else the sqlite store under ``home``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        root_var = "MLOPS_MLFLOW_ARTIFACT_ROOT"
        artifact_root: str = EnvVar(root_var) if os.environ.get(root_var) else ""
        return ModelRegistry(
            tracking_uri=EnvVar("MLFLOW_TRACKING_URI"),
            artifact_root=artifact_root,
            model_name=model_name,
        )
    home.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    return ModelRegistry(
        tracking_uri=default_tracking_uri(home),
        artifact_root=str(home.mlflow_artifacts),
        model_name=model_name,
    )
