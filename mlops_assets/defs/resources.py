"""Resources configured from the environment (EnvVar), with embedded defaults under $MLOPS_HOME."""

from __future__ import annotations

import os

from dagster import EnvVar

from mlops_assets.alerts import alert_resource
from mlops_assets.lake import DeltaLake
from mlops_assets.platform import Platform
from mlops_assets.registry import registry_resource


def lake_resource(platform: Platform) -> DeltaLake:
    root = os.environ.get("MLOPS_LAKE_URI") or str(platform.home.lake)
    # Object-store credentials stay in the environment; Dagster resolves EnvVar at run time.
    if os.environ.get("MLOPS_LAKE_STORAGE_OPTIONS"):
        return DeltaLake(root=root, storage_options_json=EnvVar("MLOPS_LAKE_STORAGE_OPTIONS"))
    return DeltaLake(root=root)


def build_resources(platform: Platform) -> dict:
    return {
        "lake": lake_resource(platform),
        "registry": registry_resource(platform.home, model_name=platform.spec.model.registered_name),
        "alerts": alert_resource(platform.home.alerts),
    }
