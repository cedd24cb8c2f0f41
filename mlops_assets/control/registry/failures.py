"""How the registry fails: fast, classified, and without secrets in the text.

**Bounded HTTP.** MLflow's defaults (7 retries, backoff factor 2, 120 s per attempt) turn an
unreachable server into minutes of waiting per call; ``apply_mlflow_http_defaults`` is the one
place that sets this platform's bounds, ``MLFLOW_HTTP_DEFAULTS``.

**Classified.** ``RegistryUnavailable`` (a ``ConnectionError``) is MLflow not answering: a
refused or timed-out connection, or a 502/503/504 from a proxy in front of it. Scoring treats
it as "serve from the local cache"; everything else fails fast with it.

**Redacted.** A tracking URI may carry ``user:password@``, and MLflow quotes the URL in its
errors; Dagster records an exception's message *and its cause chain* in the event log.
``redacted_errors`` wraps every public registry method: an error whose text (or chain) holds a
secret is re-raised, same type where possible, with ``redact(...)``ed text and no chain.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import MutableMapping
from urllib.parse import unquote, urlsplit

from mlops_assets.core import redaction
from mlops_assets.core.redaction import error_chain, quotes_a_secret, redact

MLFLOW_HTTP_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",  # seconds per attempt, connect and read (MLflow: 120)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",  # retries after the first attempt (MLflow: 7)
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # sleeps 0 s, then 2 s (MLflow: 2 → ~4 min in all)
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",  # seconds of random jitter (MLflow: 1.0)
}
_UNAVAILABLE_STATUS = re.compile(r"\b(?:error code|status code|HTTP) (?:502|503|504)\b")
_UNAVAILABLE_CODES = frozenset({"TEMPORARILY_UNAVAILABLE"})


class RegistryUnavailable(ConnectionError):
    """MLflow did not answer (refused, timed out, or a gateway error); the text is redacted."""


def apply_mlflow_http_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set every ``MLFLOW_HTTP_DEFAULTS`` entry that is not already set; return the values in
    effect. Never overwrites a value the operator set (even an empty one): the process is shared
    by the webserver, the daemon and runs, which all import this package.

    MLflow's REST client reads its retry policy from the environment on every request (MLflow
    3.17.2: ``mlflow.utils.rest_utils.http_request`` calls ``MLFLOW_HTTP_REQUEST_TIMEOUT.get()``,
    ``..._MAX_RETRIES.get()``, ``..._BACKOFF_FACTOR.get()`` and ``..._BACKOFF_JITTER.get()``;
    ``http_artifact_repo`` reads the same two retry variables). With these bounds an unreachable
    server fails a call in about 2 s (connection refused: 3 attempts, backoff 0 s then ~2 s); a
    server that accepts but never answers in about 3 × 10 s."""
    env = os.environ if environ is None else environ
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        env.setdefault(key, value)
    return {key: env[key] for key in MLFLOW_HTTP_DEFAULTS}


def uri_secrets(uri: str) -> list[str]:
    """The password of a URI (as written and percent-decoded) and MLflow's credential variables."""
    out = [os.environ.get(k, "") for k in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")]
    try:
        password = urlsplit(uri).password or ""
    except ValueError:
        password = ""
    out += [password, unquote(password)]
    return [s for s in out if s]


def _transport_errors() -> tuple[type[BaseException], ...]:
    """requests' connection and timeout errors: an error of theirs implies requests is loaded, so
    looking it up in ``sys.modules`` keeps the import out of code-location load."""
    requests = sys.modules.get("requests")
    return (requests.exceptions.ConnectionError, requests.exceptions.Timeout) if requests else ()


def is_unavailable(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) says MLflow did not answer."""
    for e in error_chain(err):
        if isinstance(e, (RegistryUnavailable, *_transport_errors())):
            return True
        if type(e).__name__ in ("MlflowException", "RestException"):
            if getattr(e, "error_code", None) in _UNAVAILABLE_CODES or _UNAVAILABLE_STATUS.search(
                str(e)
            ):
                return True
            if "API request to" in str(e) and "failed with" in str(e) and "exception" in str(e):
                return True  # rest_utils wraps every transport error in this text
    return False


def _clean(err: BaseException, secrets: list[str]) -> BaseException | None:
    """A redacted replacement for ``err``, or None when ``err`` may be re-raised as it is."""
    text = str(err)
    red = redact(text, secrets)
    dirty = quotes_a_secret(err, secrets)
    if isinstance(err, RegistryUnavailable) and not dirty:
        return None
    if is_unavailable(err):
        return RegistryUnavailable(f"MLflow unreachable: {red}")
    if not dirty:
        return None
    if type(err).__name__ == "MlflowException":
        from mlflow.protos.databricks_pb2 import ErrorCode

        return type(err)(
            red, error_code=ErrorCode.Value(getattr(err, "error_code", "INTERNAL_ERROR"))
        )
    try:
        return type(err)(red)
    except Exception:  # noqa: BLE001 - a type that takes other arguments
        return RuntimeError(f"{type(err).__name__}: {red}")


redacted_errors = redaction.redacted_errors(lambda registry: registry.secrets(), _clean)
"""Re-raise what a registry method raises classified (``RegistryUnavailable``) and redacted."""
