"""A thin, project-owned MLflow model registry resource (``access.ModelRegistry``).

Why not dagster-mlflow: the published integration is a legacy ``@resource`` that writes the
tracking configuration into ``os.environ``, so two stores cannot coexist in one process and a
run leaks its settings into the next. Nor MLflow's fluent API: ``mlflow.set_tracking_uri`` /
``set_registry_uri`` and everything built on them (``mlflow.start_run``, ``log_model``,
``models:/`` loads, ``download_artifacts(tracking_uri=...)``) write ``MLFLOW_TRACKING_URI`` /
``MLFLOW_REGISTRY_URI`` into ``os.environ`` (MLflow 3.17.2, verified). So every call goes
through one ``MlflowClient(tracking_uri, registry_uri)`` and artifact repositories built for that
URI: two ``ModelRegistry`` objects pointing at different stores can live in one process.

The storage layer knows nothing of the ML code: callers pass how a model is scored and which
types skops may trust; each module's docstring says its part. Importing this package does not
import mlflow, scikit-learn or pandas (code-location load time).
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
