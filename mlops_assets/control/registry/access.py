"""``ModelRegistry``: the Dagster resource through which everything reaches MLflow.

Configuration (which store, which experiment, which registered model), aliases, version
tags, the versions themselves, run artifacts and metrics, and loading a registered model —
always verified against its registration manifest, never unpickled (``integrity``). Logging a
candidate (``candidates``), cleaning up after a dead attempt (``attempts``) and the local
serving cache (``cache``) live in their own modules; the methods here delegate to them, and
those modules use only the public protocol (``protocol.RegistryProtocol``). One MLflow client
serves a resource instance (per tracking URI).

Every public method fails fast and redacted (``failures``): MLflow's HTTP retries are bounded
(``MLFLOW_HTTP_DEFAULTS``, applied without overriding the operator's values), an unreachable
server raises ``RegistryUnavailable``, and no error text carries the tracking URI's password.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from dagster import ConfigurableResource, EnvVar
from pydantic import Field, PrivateAttr

from mlops_assets.control.registry import attempts, candidates, integrity
from mlops_assets.control.registry.cache import ModelCache
from mlops_assets.control.registry.candidates import CandidateVersion, as_version, tag_str
from mlops_assets.control.registry.failures import (
    apply_mlflow_http_defaults,
    redacted_errors,
    uri_secrets,
)
from mlops_assets.control.registry.integrity import Scorer
from mlops_assets.core.paths import Home
from mlops_assets.core.redaction import redact
from mlops_assets.core.vocabulary import Artifact, VersionTag

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

    from mlops_assets.core.spec import DatasetSpec


CACHED_RUN_ARTIFACTS = (Artifact.REFERENCE_PROFILE,)  # what serving reads besides the model

apply_mlflow_http_defaults()  # before any MLflow call of this process; see registry.failures


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


class ModelRegistry(ConfigurableResource):
    """MLflow tracking + model registry for one registered model (``model_name``).

    Production passes ``tracking_uri=EnvVar("MLFLOW_TRACKING_URI")`` (an MLflow server);
    the embedded default (empty ``tracking_uri``) is ``sqlite:///$MLOPS_HOME/mlflow/mlflow.db``
    with artifacts in ``$MLOPS_HOME/mlflow/artifacts``. ``artifact_root`` only matters when
    the experiment is first created; empty means "next to the sqlite file" for a sqlite
    store and "the server's default" for a server. Nothing is created on disk until a
    client is first needed: the sqlite folder then, the artifact root when the experiment
    is created.
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
        description="Registered model name: the spec's model.registered_name (required).",
    )
    cache_dir: str = Field(
        default="",
        description=(
            "Local verified copies of the serving versions; empty: $MLOPS_HOME/model_cache."
        ),
    )
    # (tracking URI, its client): a client holds the store's connections, so one is reused
    _kept: tuple[str, MlflowClient] | None = PrivateAttr(default=None)

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
        if not self.model_name:
            raise ValueError(
                "ModelRegistry needs model_name (the spec's model.registered_name); it is empty"
            )
        return self.model_name

    def secrets(self) -> list[str]:
        """Values no error text may carry: the tracking URI's password, MLflow's token."""
        return uri_secrets(self.resolved_tracking_uri)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets())

    def _cache(self) -> ModelCache:
        root = self._value(self.cache_dir) or str(Home.from_env().root / "model_cache")
        return ModelCache(Path(root), self.resolved_tracking_uri, self.registered_model)

    # ---- the collaborators' protocol (``protocol.RegistryProtocol``): MLflow's own errors ---
    def client(self) -> MlflowClient:
        """This resource's MLflow client, built on first use and kept for its tracking URI (a
        URI that resolves differently — another ``$MLOPS_HOME``, another environment value —
        gets a client of its own, never the stale one)."""
        from mlflow import MlflowClient

        apply_mlflow_http_defaults()
        uri = self.resolved_tracking_uri
        if self._kept is not None and self._kept[0] == uri:
            return self._kept[1]
        db = _sqlite_path(uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self._kept = (uri, client)
        return client

    def experiment_id(self) -> str:
        """The id of the experiment ``experiment``, created (with the artifact root) if absent."""
        from mlflow.exceptions import MlflowException

        client = self.client()
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

    # ---- logging a candidate, checking a stored model ----------------------------------
    @redacted_errors
    def log_candidate(
        self,
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

        ``score(model, X) -> np.ndarray`` gives a model's scores; ``trusted_types`` is the
        skops trusted-types list the model is saved (and later loaded) with. Before
        uploading, the saved model is loaded back and ``score`` of it must equal ``score``
        of the in-memory pipeline on the input example exactly, else nothing is registered.
        The spec's ``model.registered_name`` must be this registry's ``model_name``.
        """
        return candidates.log_candidate(
            self,
            spec,
            pipeline,
            input_example=input_example,
            params=params,
            metrics=metrics,
            tags=tags,
            extra_artifacts=extra_artifacts,
            score=score,
            trusted_types=trusted_types,
        )

    @redacted_errors
    def verify_integrity(
        self,
        version: int | str,
        X_holdout: pd.DataFrame,
        expected_scores: np.ndarray,
        *,
        score: Scorer,
    ) -> dict[str, Any]:
        """Re-download ``version``, re-hash it, load it and re-score ``X_holdout`` with
        ``score(model, X)``; see ``integrity.verify_integrity`` for the result."""
        return integrity.verify_integrity(self, version, X_holdout, expected_scores, score=score)

    # ---- reading models back (verified, never unpickled) ---------------------------------
    def download_model_dir(self, version: int | str, dst: str) -> Path:
        """A private copy of the version's model folder under ``dst`` (the stored bytes, not
        verified: ``integrity`` checks them)."""
        from mlflow.store.artifact.artifact_repository_registry import (
            get_artifact_repository,
        )
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        uri = self.client().get_model_version_download_uri(self.registered_model, str(version))
        repo = get_artifact_repository(uri, tracking_uri=self.resolved_tracking_uri)
        if isinstance(repo, LocalArtifactRepository):  # plain copy: no tqdm bar on stderr
            target = Path(dst) / "model"
            shutil.copytree(repo.artifact_dir, target, symlinks=True)
            return target
        return Path(repo.download_artifacts("", dst_path=dst))

    def _label(self, version: int | str) -> str:
        return f"{self.registered_model} v{version}"

    @redacted_errors
    def load_model(self, version: int | str, *, cache: bool = False) -> Pipeline:
        """The registered pipeline of ``version``, verified before anything is deserialised.

        The model folder is downloaded once and must match the version's manifest file for
        file (``IntegrityError`` names what changed, appeared or disappeared); ``model.skops``
        is then loaded with ``skops.io.load`` and the version's recorded trusted types — never
        through ``MLmodel``'s loader, never a pickle. With ``cache`` the verified folder (and
        the run artifacts serving reads) is kept in the local cache for ``load_cached_model``.
        """
        tags = self.version_tags(version)
        with tempfile.TemporaryDirectory(prefix="mlops_load_") as tmp:
            local = self.download_model_dir(version, tmp)
            model = integrity.load_verified(local, tags, self._label(version))
            if cache:
                self._store_in_cache(version, tags, local)
            return model

    def _store_in_cache(self, version: int | str, tags: dict[str, str], local: Path) -> None:
        """Keep a verified model folder and the run artifacts serving reads in the local cache
        (only the version's record is rewritten when the entry is already there)."""
        cache, label = self._cache(), self._label(version)
        if cache.refresh(version, tags):
            return
        manifest, run_id = integrity.recorded_manifest(tags, label), self.run_id(version)
        artifacts = {}
        for name in CACHED_RUN_ARTIFACTS:
            if name in manifest["run"]:
                artifacts[name] = self._read_run_artifact(run_id, name)
                integrity.verify_artifact(tags, name, artifacts[name], label)
        cache.store(version, tags, local, artifacts)

    @redacted_errors
    def cache_version(self, version: int | str) -> bool:
        """Put ``version`` (verified, not deserialised) in the local cache unless its entry is
        there already; returns whether it had to be fetched."""
        tags = self.version_tags(version)
        if self._cache().refresh(version, tags):
            return False
        with tempfile.TemporaryDirectory(prefix="mlops_cache_") as tmp:
            local = self.download_model_dir(version, tmp)
            integrity.verify_model_dir(local, tags, self._label(version))
            self._store_in_cache(version, tags, local)
        return True

    # ---- the local cache (scoring while MLflow is unreachable) ---------------------------
    @redacted_errors
    def serving_aliases(self) -> dict[str, int]:
        """``aliases()``, also remembered in the local cache as the mapping last seen."""
        aliases = self.aliases()
        self._cache().remember_aliases(aliases)
        return aliases

    def cached_aliases(self) -> tuple[dict[str, int], str]:
        """(the alias -> version mapping last seen by ``serving_aliases``, when); no MLflow call.
        ``ModelNotCached`` when none was recorded."""
        return self._cache().aliases()

    def cached_version_tags(self, version: int | str) -> dict[str, str]:
        return self._cache().version_tags(version)

    def load_cached_model(self, version: int | str) -> Pipeline:
        """The locally cached pipeline of ``version``, verified against its manifest; no MLflow
        call. ``ModelNotCached`` / ``IntegrityError`` when missing / altered."""
        return self._cache().load_model(version)

    def load_cached_artifact_json(self, version: int | str, name: str) -> Any:
        return json.loads(self._cache().artifact(version, name))

    # ---- after a dead attempt -----------------------------------------------------------
    @redacted_errors
    def fail_orphan_runs(
        self, cutoff: str, *, is_live: Callable[[str], bool], by: str
    ) -> list[dict[str, str]]:
        """Mark FAILED the RUNNING candidate runs of ``cutoff`` left by dead attempts
        (``attempts.fail_orphan_runs``)."""
        return attempts.fail_orphan_runs(self, cutoff, is_live=is_live, by=by)

    @redacted_errors
    def supersede_ungated(self, cutoff: str, keep: int) -> list[int]:
        """Tag ``cutoff``'s ungated earlier versions superseded by ``keep`` (``attempts``)."""
        return attempts.supersede_ungated(self, cutoff, keep)

    # ---- aliases ------------------------------------------------------------------------
    def _registered(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_registered_model(self.registered_model)
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    @redacted_errors
    def aliases(self) -> dict[str, int]:
        """Every alias of the registered model -> its version ({} if no model yet)."""
        model = self._registered()
        return {a: as_version(v) for a, v in (model.aliases or {}).items()} if model else {}

    @redacted_errors
    def get_alias(self, alias: str) -> int | None:
        """The version carrying ``alias``; None if the alias (or the model) does not exist."""
        return self.aliases().get(alias)

    @redacted_errors
    def set_alias(self, alias: str, version: int | str) -> None:
        """Point ``alias`` at ``version`` (moves it if it pointed elsewhere)."""
        self.client().set_registered_model_alias(self.registered_model, alias, str(version))

    @redacted_errors
    def delete_alias(self, alias: str) -> None:
        """Remove ``alias``; a no-op when it (or the model) does not exist."""
        if alias in self.aliases():
            self.client().delete_registered_model_alias(self.registered_model, alias)

    # ---- tags, versions, run data -------------------------------------------------------
    @redacted_errors
    def version_tags(self, version: int | str) -> dict[str, str]:
        return dict(self.client().get_model_version(self.registered_model, str(version)).tags)

    @redacted_errors
    def set_version_tags(self, version: int | str, tags: Mapping[str, Any]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(
                self.registered_model, str(version), str(key), tag_str(value)
            )

    @redacted_errors
    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, oldest first: ``{"version", "run_id", "model_id", "status",
        "tags", "aliases", "created_at" (ISO UTC), "created_ms"}``. [] if no model yet."""
        client = self.client()
        name = self.registered_model
        model = self._registered()
        if model is None:
            return []
        by_version: dict[int, list[str]] = {}
        for alias, v in (model.aliases or {}).items():
            by_version.setdefault(as_version(v), []).append(alias)
        escaped = name.replace("\\", "\\\\").replace("'", "\\'")
        rows: list[dict[str, Any]] = []
        token = None
        while True:
            page = client.search_model_versions(f"name = '{escaped}'", page_token=token)
            rows.extend(_version_row(mv, by_version) for mv in page)
            token = page.token
            if not token:
                break
        return sorted(rows, key=lambda r: r["version"])

    def run_id(self, version: int | str) -> str:
        """The id of the MLflow run that logged ``version`` (``LookupError`` when it has none)."""
        run_id = self.client().get_model_version(self.registered_model, str(version)).run_id
        if not run_id:
            raise LookupError(f"{self.registered_model} v{version} has no source run")
        return run_id

    def _read_run_artifact(self, run_id: str, name: str) -> bytes:
        from mlflow.store.artifact.artifact_repository_registry import (
            get_artifact_repository,
        )
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        client = self.client()
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

    @redacted_errors
    def load_artifact_json(self, version: int | str, name: str) -> Any:
        """A JSON artifact of the version's run (e.g. ``reference_profile.json``), read only
        when its bytes match the registration manifest (``IntegrityError`` otherwise);
        ``FileNotFoundError`` when the run has no such artifact."""
        return json.loads(self.load_artifact_bytes(version, name))

    @redacted_errors
    def load_artifact_bytes(self, version: int | str, name: str) -> bytes:
        """The bytes of a run artifact, verified against the registration manifest (as above)."""
        run_id = self.run_id(version)
        try:
            data = self._read_run_artifact(run_id, name)
        except ValueError:
            raise
        except Exception as err:  # OSError locally, MlflowException from a server
            raise FileNotFoundError(
                f"{self.registered_model} v{version}: no artifact {name!r} in run {run_id}: {err}"
            ) from err
        integrity.verify_artifact(self.version_tags(version), name, data, self._label(version))
        return data

    @redacted_errors
    def run_metrics(self, version: int | str) -> dict[str, float]:
        """The latest value of every metric of the version's run."""
        return dict(self.client().get_run(self.run_id(version)).data.metrics)


def _version_row(mv: Any, aliases_by_version: Mapping[int, list[str]]) -> dict[str, Any]:
    """One ``list_versions`` row of an MLflow ``ModelVersion``."""
    v = as_version(mv.version)
    created = int(mv.creation_timestamp or 0)
    return {
        "version": v,
        "run_id": mv.run_id,
        "model_id": mv.tags.get(VersionTag.MODEL_ID) or mv.model_id,
        "status": mv.status,
        "tags": dict(mv.tags),
        "aliases": sorted(aliases_by_version.get(v, [])),
        "created_ms": created,
        "created_at": dt.datetime.fromtimestamp(created / 1000, dt.UTC).isoformat(),
    }


def registry_resource(home: Home, *, model_name: str) -> ModelRegistry:
    """The registry resource: ``$MLFLOW_TRACKING_URI`` when set (resolved by Dagster at run
    time, plus ``$MLOPS_MLFLOW_ARTIFACT_ROOT`` if set), else the sqlite store under ``home``.
    Creates nothing on disk: the store's folders appear when a client is first needed."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        root_var = "MLOPS_MLFLOW_ARTIFACT_ROOT"
        artifact_root: str = EnvVar(root_var) if os.environ.get(root_var) else ""
        return ModelRegistry(
            tracking_uri=EnvVar("MLFLOW_TRACKING_URI"),
            artifact_root=artifact_root,
            model_name=model_name,
            cache_dir=str(home.root / "model_cache"),
        )
    return ModelRegistry(
        tracking_uri=default_tracking_uri(home),
        artifact_root=str(home.mlflow_artifacts),
        model_name=model_name,
        cache_dir=str(home.root / "model_cache"),
    )
