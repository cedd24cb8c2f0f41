"""Lineage facts every model version carries: which code, which locked environment, which
spec, which input table versions and partitions, which Dagster run, which seed, which bytes.

Pure and fast to import (standard library, the vocabulary and the spec type only; no
MLflow, no Dagster). The tag names are ``vocabulary.LineageTag``'s. All values are strings,
ready to be MLflow run / model-version tags. A fact that cannot be established is recorded
as ``"unknown"`` rather than guessed; ``lineage_completeness`` measures how many of the
required facts are really known.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.core.vocabulary import TRAINING_SET, LineageTag, Status, VersionTag

if TYPE_CHECKING:
    from mlops_assets.core.spec import DatasetSpec

UNKNOWN = "unknown"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = PROJECT_ROOT / "requirements.lock"

# Used only when the code does not run from a git checkout (e.g. an installed wheel in a
# container image): the build can stamp the commit it was built from.
GIT_SHA_ENV, GIT_DIRTY_ENV = "MLOPS_GIT_SHA", "MLOPS_GIT_DIRTY"

REQUIRED_LINEAGE_KEYS: tuple[str, ...] = LineageTag.REQUIRED
"""Every key ``lineage_tags`` writes; all of them must be known for completeness 1.0."""

# Values that mean "not known" for completeness purposes ("{}": no input table recorded).
_MISSING_VALUES = frozenset({"", UNKNOWN, "{}", "null", "None"})


def _git(repo_root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo_root), *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git binary, timeout, bad cwd
        return None
    return out.stdout if out.returncode == 0 else None


def code_version(repo_root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``{"git_sha", "git_dirty"}`` of the checkout holding ``repo_root`` (default: this project).

    ``git_dirty`` is ``"true"`` when tracked files differ from HEAD **or** untracked,
    non-ignored files exist (both mean the sha alone does not describe the code), else
    ``"false"``. Outside a git checkout (or without git) both fall back to the
    ``MLOPS_GIT_SHA`` / ``MLOPS_GIT_DIRTY`` environment variables, else ``"unknown"``.
    """
    root = Path(repo_root) if repo_root is not None else PROJECT_ROOT
    sha = _git(root, "rev-parse", "--verify", "HEAD")
    if sha is None or not sha.strip():
        return {
            "git_sha": os.environ.get(GIT_SHA_ENV) or UNKNOWN,
            "git_dirty": os.environ.get(GIT_DIRTY_ENV) or UNKNOWN,
        }
    status = _git(root, "status", "--porcelain", "--untracked-files=normal")
    dirty = UNKNOWN if status is None else ("true" if status.strip() else "false")
    return {"git_sha": sha.strip(), "git_dirty": dirty}


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (streamed; raises ``OSError`` if unreadable)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def lock_hash(lock_file: str | os.PathLike[str] | None = None) -> str:
    """sha256 of the project's ``requirements.lock`` (next to the package), else ``"unknown"``."""
    path = Path(lock_file) if lock_file is not None else LOCK_FILE
    try:
        return file_sha256(path)
    except OSError:
        return UNKNOWN


def lineage_tags(
    spec: DatasetSpec,
    *,
    delta_versions: Mapping[str, int],
    partition_range: tuple[str, str],
    run_id: str,
    seed: int,
    artifact_sha256: str | None = None,
    repo_root: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """The ``lineage.*`` tags of one model version (every key of ``REQUIRED_LINEAGE_KEYS``).

    ``delta_versions``: Delta table name -> the table version read (stored as sorted JSON).
    ``partition_range``: first and last partition key of the training data (inclusive).
    ``artifact_sha256``: sha256 of the serialized model; usually left ``None`` here and
    filled in by ``ModelRegistry.log_candidate``, which computes it from the logged bytes.
    """
    start, end = partition_range
    code = code_version(repo_root)
    return {
        LineageTag.GIT_SHA: code["git_sha"],
        LineageTag.GIT_DIRTY: code["git_dirty"],
        LineageTag.LOCK_SHA: lock_hash(),
        LineageTag.SPEC_SHA: spec.digest,
        LineageTag.DELTA_VERSIONS: json.dumps(
            {str(k): int(v) for k, v in delta_versions.items()},
            sort_keys=True,
            separators=(",", ":"),
        ),
        LineageTag.PARTITION_START: str(start),
        LineageTag.PARTITION_END: str(end),
        LineageTag.DAGSTER_RUN_ID: str(run_id) if run_id else UNKNOWN,
        LineageTag.SEED: str(int(seed)),
        LineageTag.MODEL_SHA: artifact_sha256 or UNKNOWN,
    }


def training_delta_versions(commit: Mapping[str, str]) -> dict[str, int]:
    """The table versions a model trained on a training set's Delta ``commit`` read: the input
    versions the commit recorded, and the training set's own version."""
    return {
        **json.loads(commit.get("input_versions", "{}")),
        TRAINING_SET: int(commit["version"]),
    }


def candidate_tags(
    spec: DatasetSpec,
    *,
    cutoff: str,
    commit: Mapping[str, str],
    partition_range: tuple[str, str],
    run_id: str,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """Every tag of a new candidate version of ``cutoff``: its lineage (from the training set's
    ``commit``), its cutoff and ``candidate`` status, and ``extra`` (the monitoring bundle's)."""
    lineage = lineage_tags(
        spec,
        delta_versions=training_delta_versions(commit),
        partition_range=partition_range,
        run_id=run_id,
        seed=spec.training.seed,
    )
    return {**lineage, VersionTag.CUTOFF: cutoff, VersionTag.STATUS: Status.CANDIDATE, **extra}


def lineage_completeness(tags: Mapping[str, str]) -> float:
    """Share of ``REQUIRED_LINEAGE_KEYS`` present in ``tags`` with a known value.

    Missing, empty, ``"unknown"`` and ``"{}"`` (no input table versions) count as not known;
    ``git_dirty == "true"`` is known (and honest), so it counts.
    """
    known = sum(
        1 for key in REQUIRED_LINEAGE_KEYS if str(tags.get(key, "")).strip() not in _MISSING_VALUES
    )
    return known / len(REQUIRED_LINEAGE_KEYS)
