"""Resources configured from the environment (EnvVar), with embedded defaults under $MLOPS_HOME."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar, Failure
from pydantic import Field

from mlops_assets.control.alerts import alert_resource
from mlops_assets.control.registry import registry_resource
from mlops_assets.core.platform import Platform
from mlops_assets.data.lake import DeltaLake


def lake_resource(platform: Platform) -> DeltaLake:
    root = os.environ.get("MLOPS_LAKE_URI") or str(platform.home.lake)
    # Object-store credentials stay in the environment; Dagster resolves EnvVar at run time.
    if os.environ.get("MLOPS_LAKE_STORAGE_OPTIONS"):
        return DeltaLake(root=root, storage_options_json=EnvVar("MLOPS_LAKE_STORAGE_OPTIONS"))
    return DeltaLake(root=root)


PII_KEY_ENV = "MLOPS_PII_KEY"
MIN_PII_KEY_BYTES = 16


class PiiKey(ConfigurableResource):
    """The key the spec's ``pii`` columns are HMAC-SHA256-hashed with before anything is written.

    Set from ``EnvVar("MLOPS_PII_KEY")`` (Dagster records the variable's name, never its value);
    never
    logged nor put in metadata. Empty: PII values are dropped instead of stored."""

    key: str = Field(
        default="", description="HMAC-SHA256 key for PII columns; pass EnvVar('MLOPS_PII_KEY')."
    )

    def key_bytes(self) -> bytes | None:
        if not self.key:
            return None
        raw = self.key.encode("utf-8")
        if (
            len(raw) < MIN_PII_KEY_BYTES
        ):  # a short key makes the digests guessable: refuse, without quoting it
            raise Failure(
                f"${PII_KEY_ENV} is set but shorter than {MIN_PII_KEY_BYTES} bytes: use a random"
                " key (e.g. `openssl rand -hex 32`), or unset it to drop PII values instead"
            )
        return raw


def pii_resource() -> PiiKey:
    return PiiKey(key=EnvVar(PII_KEY_ENV)) if os.environ.get(PII_KEY_ENV) else PiiKey()


def build_resources(platform: Platform) -> dict:
    return {
        "lake": lake_resource(platform),
        "registry": registry_resource(
            platform.home, model_name=platform.spec.model.registered_name
        ),
        "alerts": alert_resource(platform.home.alerts, owners=platform.spec.owners),
        "pii": pii_resource(),
    }
