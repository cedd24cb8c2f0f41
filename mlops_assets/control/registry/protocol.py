"""What the registry's collaborators may ask of ``ModelRegistry``: its public protocol.

``candidates``, ``attempts``, ``integrity`` and ``links`` are handed the registry and use only
these members, so they depend on this protocol, not on ``access`` (which imports them): no
module but ``access`` touches a private member of the registry (``test_architecture`` checks).
The low-level members (``client``, ``experiment_id``, ``run_id``, ``download_model_dir``) raise
MLflow's own errors: their callers are redacting registry methods, or redact what they report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlflow import MlflowClient


class RegistryProtocol(Protocol):
    """One registered model in one MLflow store, as its collaborators see it."""

    experiment: str  # the MLflow experiment's name

    @property
    def registered_model(self) -> str: ...

    @property
    def resolved_tracking_uri(self) -> str: ...

    def redact(self, text: str) -> str: ...

    # ---- MLflow itself: the client and the ids its calls take ------------------------------
    def client(self) -> MlflowClient: ...

    def experiment_id(self) -> str: ...

    def run_id(self, version: int | str) -> str: ...

    # ---- versions, tags and artifacts ------------------------------------------------------
    def list_versions(self) -> list[dict[str, Any]]: ...

    def version_tags(self, version: int | str) -> dict[str, str]: ...

    def set_version_tags(self, version: int | str, tags: Mapping[str, Any]) -> None: ...

    def download_model_dir(self, version: int | str, dst: str) -> Path: ...

    def load_artifact_bytes(self, version: int | str, name: str) -> bytes: ...
