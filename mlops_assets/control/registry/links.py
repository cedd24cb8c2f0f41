"""Links from Dagster metadata into the MLflow UI, and Evidently reports stored as run artifacts.

The UI's address comes from ``$MLOPS_MLFLOW_UI_URL``; else a ``http(s)``
``$MLFLOW_TRACKING_URI`` (the server is its own UI); else the local ``mlflow ui`` default,
``http://127.0.0.1:5000`` (what ``make ui`` starts). Credentials never reach a link: user info,
query and fragment are stripped from the base.
Routes are the MLflow 3 UI's (its router: ``/experiments/:experimentId/runs/:runUuid``,
``.../runs/:runUuid/artifactPath/*``, ``/models/:modelName/versions/:version``).

The URL builders are pure; ``version_links`` and ``log_report`` read/write MLflow through the
registry's client (a lookup failure yields no links, never a failed asset).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from mlops_assets.control.registry.protocol import RegistryProtocol

log = logging.getLogger("mlops_assets.control.registry.links")

UI_URL_ENV = "MLOPS_MLFLOW_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:5000"
# run artifacts: reports/<kind>/<file>.html (not in the integrity manifest)
REPORTS_ARTIFACT_DIR = "reports"


def without_credentials(url: str) -> str:
    """``url`` with no user info, query or fragment (where tokens hide); no trailing slash."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def mlflow_ui_base(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    tracking = env.get("MLFLOW_TRACKING_URI", "")
    raw = (
        env.get(UI_URL_ENV)
        or (tracking if tracking.startswith(("http://", "https://")) else "")
        or DEFAULT_UI_URL
    )
    return without_credentials(raw)


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return (
        f"{base}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(run_id, safe='')}"
    )


def version_url(base: str, model_name: str, version: int | str) -> str:
    return f"{base}/#/models/{quote(model_name, safe='')}/versions/{quote(str(version), safe='')}"


def artifact_url(base: str, experiment_id: str, run_id: str, artifact_path: str) -> str:
    """The run page opened on one artifact (the UI previews HTML in place)."""
    return f"{run_url(base, experiment_id, run_id)}/artifactPath/{quote(artifact_path, safe='/')}"


def report_artifact_path(kind: str, path: Path) -> str:
    return f"{REPORTS_ARTIFACT_DIR}/{kind}/{path.name}"


def _run_of(registry: RegistryProtocol, version: int | str) -> tuple[str, str]:
    """(experiment id, run id) of the version's source run."""
    run_id = registry.run_id(version)
    return registry.client().get_run(run_id).info.experiment_id, run_id


def version_links(
    registry: RegistryProtocol,
    version: int | str | None,
    *,
    prefix: str = "",
    base: str | None = None,
) -> dict[str, str]:
    """``{prefix}mlflow_run`` and ``{prefix}mlflow_model_version`` URLs of ``version`` ({} when
    there is no version or MLflow cannot say: links are a convenience, never a reason to fail)."""
    if version is None or int(version) < 1:  # no version, or the constant baseline
        return {}
    base = base or mlflow_ui_base()
    links = {f"{prefix}mlflow_model_version": version_url(base, registry.registered_model, version)}
    try:
        experiment_id, run_id = _run_of(registry, version)
    except Exception as err:  # noqa: BLE001 - an outage costs the run link only
        log.warning(
            "no MLflow run link for v%s: %s",
            version,
            registry.redact(f"{type(err).__name__}: {err}"),
        )
        return links
    return {f"{prefix}mlflow_run": run_url(base, experiment_id, run_id), **links}


def log_report(
    registry: RegistryProtocol, version: int | str, path: Path, kind: str, base: str | None = None
) -> str | None:
    """Store the HTML report at ``path`` as an artifact of ``version``'s run (``reports/<kind>/``)
    and return its MLflow UI link; None when MLflow refused (the local file stays the fallback)."""
    try:
        experiment_id, run_id = _run_of(registry, version)
        artifact = report_artifact_path(kind, path)
        registry.client().log_artifact(run_id, str(path), artifact.rpartition("/")[0])
    except Exception as err:  # noqa: BLE001 - the report exists locally; the link is what is lost
        log.warning(
            "report %s not stored in MLflow: %s",
            path.name,
            registry.redact(f"{type(err).__name__}: {err}"),
        )
        return None
    return artifact_url(base or mlflow_ui_base(), experiment_id, run_id, artifact)
