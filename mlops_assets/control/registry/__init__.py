"""A thin, project-owned MLflow model registry resource.

Why not dagster-mlflow: the published integration is a legacy ``@resource`` that writes the
tracking configuration into ``os.environ``, so two stores cannot coexist in one process and
a run leaks its settings into the next. Why not MLflow's fluent API either:
``mlflow.set_tracking_uri`` / ``set_registry_uri`` (and everything built on them:
``mlflow.start_run``, ``mlflow.sklearn.log_model``, ``models:/`` loads,
``mlflow.artifacts.download_artifacts(tracking_uri=...)``) write ``MLFLOW_TRACKING_URI`` /
``MLFLOW_REGISTRY_URI`` into ``os.environ`` (MLflow 3.17.2, verified). So every call here goes
through one ``MlflowClient(tracking_uri, registry_uri)`` and artifact repositories built for
that URI; no global MLflow state is read or written, and two ``ModelRegistry`` objects
pointing at different stores can live in one process.

- ``access``: the ``ModelRegistry`` resource (configuration, aliases, tags, versions, run
  artifacts, ``load_model``) and ``registry_resource``.
- ``protocol``: ``RegistryProtocol``, the public members the modules below use (one MLflow
  client per resource, the experiment and run ids, tags, versions, artifacts); none of them
  imports ``access``.
- ``candidates``: logging a fitted pipeline as a new registered version (with its manifest).
- ``integrity``: the manifest recorded at registration, its check before every load and
  artifact read (``IntegrityError``), the skops-only loader, and ``verify_integrity``.
- ``cache``: verified local copies of the serving versions and the alias mapping last seen
  (``$MLOPS_HOME/model_cache``), for scoring while MLflow is unreachable.
- ``attempts``: marking a dead training attempt's run FAILED and its ungated version superseded.
- ``failures``: bounded MLflow HTTP retries (``MLFLOW_HTTP_DEFAULTS``, set at import without
  overriding the environment), ``RegistryUnavailable``, redacted error text.

The storage layer knows nothing of the ML code: callers pass how a model is scored and which
types skops may trust. Tag, alias and artifact names come from ``mlops_assets.core.vocabulary``.
Importing this package does not import mlflow, scikit-learn or pandas (code-location load
time): they are imported inside the functions that use them.
"""

from mlops_assets.control.registry.access import (
    ModelRegistry,
    default_tracking_uri,
    registry_resource,
)
from mlops_assets.control.registry.cache import ModelNotCached
from mlops_assets.control.registry.candidates import CandidateVersion
from mlops_assets.control.registry.failures import (
    MLFLOW_HTTP_DEFAULTS,
    RegistryUnavailable,
    apply_mlflow_http_defaults,
)
from mlops_assets.control.registry.integrity import (
    MODEL_FILE,
    IntegrityError,
    model_files_sha256,
)

__all__ = [
    "MLFLOW_HTTP_DEFAULTS",
    "MODEL_FILE",
    "CandidateVersion",
    "IntegrityError",
    "ModelNotCached",
    "ModelRegistry",
    "RegistryUnavailable",
    "apply_mlflow_http_defaults",
    "default_tracking_uri",
    "model_files_sha256",
    "registry_resource",
]
