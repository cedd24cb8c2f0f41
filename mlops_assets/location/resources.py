"""Resources configured from the environment (EnvVar), with embedded defaults under $MLOPS_HOME."""

from __future__ import annotations

import os

from dagster import EnvVar

from mlops_assets.control.alerts import alert_resource
from mlops_assets.control.registry import registry_resource
from mlops_assets.control.resources import pii_resource
from mlops_assets.core.platform import Platform
from mlops_assets.data.lake import DeltaLake

LOCK_DSN_ENV = "MLOPS_LOCK_DSN"  # PostgreSQL holding the lake's writers' lock (the alias moves)


def lake_resource(platform: Platform) -> DeltaLake:
    root = os.environ.get("MLOPS_LAKE_URI") or str(platform.home.lake)
    # Object-store credentials and the lock's DSN stay in the environment; Dagster resolves EnvVar
    # at run time. A lake on object storage keeps its file lock under $MLOPS_HOME.
    lock = {"lock_dsn": EnvVar(LOCK_DSN_ENV)} if os.environ.get(LOCK_DSN_ENV) else {}
    if "://" in root:
        lock["lock_dir"] = str(platform.home.root / "locks")
    if os.environ.get("MLOPS_LAKE_STORAGE_OPTIONS"):
        return DeltaLake(
            root=root, storage_options_json=EnvVar("MLOPS_LAKE_STORAGE_OPTIONS"), **lock
        )
    return DeltaLake(root=root, **lock)


def build_resources(platform: Platform) -> dict:
    return {
        "lake": lake_resource(platform),
        "registry": registry_resource(
            platform.home, model_name=platform.spec.model.registered_name
        ),
        "alerts": alert_resource(platform.home.alerts, owners=platform.spec.owners),
        "pii": pii_resource(),
    }
