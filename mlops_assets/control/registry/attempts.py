"""What a dead training attempt leaves behind, and how the next attempt cleans it up.

A run worker killed mid-training (kill -9, OOM, a lost node) never reaches the ``finally``
that ends its MLflow run: the run stays RUNNING, and a version it already registered stays
``candidate`` with no gate ever run. The next attempt at the same cutoff calls:

- ``fail_orphan_runs`` first: every RUNNING candidate run of this registered model and cutoff
  whose Dagster run is no longer alive is marked FAILED (tag ``mlops.failed_reason``);
- ``supersede_ungated`` after registering its own version: every earlier version of the cutoff
  that is still an ungated ``candidate`` is tagged ``mlops.status=superseded`` and
  ``mlops.superseded_by=<new>``; the new version gets ``mlops.supersedes=[...]``. A
  superseded version has no gate results, so promotion refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mlops_assets.core.vocabulary import LineageTag, Status, VersionTag

if TYPE_CHECKING:
    from mlops_assets.control.registry.protocol import RegistryProtocol


def candidate_run_name(model_name: str) -> str:
    return f"{model_name}-candidate"


def ungated_versions(rows: Iterable[Mapping[str, Any]], cutoff: str, keep: int) -> list[int]:
    """Versions of ``cutoff`` older than ``keep`` that are still ungated candidates, unaliased."""
    return sorted(
        int(r["version"])
        for r in rows
        if int(r["version"]) < keep
        and not r.get("aliases")
        and r["tags"].get(VersionTag.CUTOFF) == cutoff
        and r["tags"].get(VersionTag.STATUS, Status.CANDIDATE) == Status.CANDIDATE
        and VersionTag.GATES not in r["tags"]
    )


def fail_orphan_runs(
    registry: RegistryProtocol, cutoff: str, *, is_live: Callable[[str], bool], by: str
) -> list[dict[str, str]]:
    """Mark FAILED every RUNNING candidate run of ``cutoff`` whose Dagster run is not alive
    (``is_live(dagster_run_id)``); returns ``[{"run_id", "dagster_run_id"}]`` of those."""
    from mlflow.entities import LoggedModelStatus

    client = registry.client()
    experiment = client.get_experiment_by_name(registry.experiment)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"attributes.status = 'RUNNING' and tags.`{VersionTag.CUTOFF}` = '{cutoff}' "
            f"and attributes.run_name = '{candidate_run_name(registry.registered_model)}'"
        ),
    )
    failed = []
    for run in runs:
        owner = run.data.tags.get(LineageTag.DAGSTER_RUN_ID, "")
        if owner and is_live(owner):
            continue
        reason = f"orphan of dead attempt (Dagster run {owner or 'unknown'}); marked FAILED by {by}"
        client.set_tag(run.info.run_id, VersionTag.FAILED_REASON, reason)
        for model in client.search_logged_models(
            [experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        ):
            if model.status == LoggedModelStatus.PENDING:
                client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        client.set_terminated(run.info.run_id, "FAILED")
        failed.append({"run_id": run.info.run_id, "dagster_run_id": owner})
    return failed


def supersede_ungated(registry: RegistryProtocol, cutoff: str, keep: int) -> list[int]:
    """Tag the ungated earlier versions of ``cutoff`` as superseded by ``keep``; returns them."""
    stale = ungated_versions(registry.list_versions(), cutoff, keep)
    for version in stale:
        registry.set_version_tags(
            version, {VersionTag.STATUS: Status.SUPERSEDED, VersionTag.SUPERSEDED_BY: keep}
        )
    if stale:
        registry.set_version_tags(keep, {VersionTag.SUPERSEDES: json.dumps(stale)})
    return stale
