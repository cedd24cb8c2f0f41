"""Small resources of the control plane, each configured from the environment through ``EnvVar``
(Dagster records a variable's name, never its value).

- ``PiiKey``: the key the spec's ``pii`` columns are hashed with before anything is written.
"""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar, Failure
from pydantic import Field

PII_KEY_ENV = "MLOPS_PII_KEY"
MIN_PII_KEY_BYTES = 16


class PiiKey(ConfigurableResource):
    """The key the spec's ``pii`` columns are HMAC-SHA256-hashed with before anything is written.

    Set from ``EnvVar("MLOPS_PII_KEY")`` (Dagster records the variable's name, never its value);
    never logged nor put in metadata. Empty: PII values are dropped instead of stored."""

    key: str = Field(
        default="", description="HMAC-SHA256 key for PII columns; pass EnvVar('MLOPS_PII_KEY')."
    )

    def key_bytes(self) -> bytes | None:
        if not self.key:
            return None
        raw = self.key.encode("utf-8")
        if len(raw) < MIN_PII_KEY_BYTES:  # a short key makes the digests guessable: refuse it
            raise Failure(  # without quoting it
                f"${PII_KEY_ENV} is set but shorter than {MIN_PII_KEY_BYTES} bytes: use a random"
                " key (e.g. `openssl rand -hex 32`), or unset it to drop PII values instead"
            )
        return raw


def pii_resource() -> PiiKey:
    return PiiKey(key=EnvVar(PII_KEY_ENV)) if os.environ.get(PII_KEY_ENV) else PiiKey()
