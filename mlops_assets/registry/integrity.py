"""Is a registered model still the one that was registered?

``lineage.model_sha256`` (``LineageTag.MODEL_SHA``) is the sha256 of ``model.skops``, the skops
file inside the logged model's artifact folder, computed from the exact bytes that were
uploaded. ``registry.model_files_sha256`` (``VersionTag.MODEL_FILES_SHA``) covers every file of
that folder (MLmodel, which holds the skops trusted-types list, requirements, input
example...). A ``model.skops`` whose sha256 differs from the recorded one is never
deserialised: skops would execute whatever the altered file asks for.

Standard library only at import time; mlflow and numpy are imported where they are used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_assets.lineage import file_sha256
from mlops_assets.vocabulary import LineageTag, VersionTag

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.registry.access import ModelRegistry

MODEL_FILE = "model.skops"  # the serialised pipeline inside the model's artifact folder

Scorer = Callable[[Any, "pd.DataFrame"], "np.ndarray"]
"""``score(model, X) -> scores``: how the caller turns a loaded model's output into scores."""


class IntegrityError(RuntimeError):
    """A registered model's stored bytes do not match the sha256 recorded at registration."""


def model_files_sha256(model_dir: str | os.PathLike[str]) -> str:
    """One sha256 over every file of a model folder: sorted ``relpath\\0sha256\\n`` lines."""
    root = Path(model_dir)
    lines = [
        f"{p.relative_to(root).as_posix()}\0{file_sha256(p)}\n"
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check_model_sha(model_dir: Path, expected: str | None, label: str) -> None:
    """Raise ``IntegrityError`` unless ``model_dir/model.skops`` hashes to ``expected``."""
    actual = file_sha256(model_dir / MODEL_FILE)
    if not expected or actual != expected:
        raise IntegrityError(
            f"{label}: {MODEL_FILE} sha256 {actual} does not match the recorded "
            f"{LineageTag.MODEL_SHA} {expected or '<missing>'}"
        )


def _empty_result() -> dict[str, Any]:
    return {
        "ok": False,
        "sha256_match": False,
        "files_match": False,
        "loads": False,
        "predictions_identical": False,
        "sha256_recorded": None,
        "sha256_stored": None,
        "detail": "",
    }


def _load_checked(
    local: Path, tags: dict[str, str], result: dict[str, Any], problems: list[str]
) -> Any | None:
    """Compare the downloaded folder with the recorded hashes; deserialise it only when
    ``model.skops`` matches. Fills ``result`` and ``problems``; None when not loaded."""
    import mlflow.sklearn

    recorded = result["sha256_recorded"]
    stored = result["sha256_stored"]
    result["sha256_match"] = bool(recorded) and stored == recorded
    result["files_match"] = model_files_sha256(local) == tags.get(VersionTag.MODEL_FILES_SHA)
    if not result["files_match"]:
        problems.append("the model folder's files differ from those registered")
    if not result["sha256_match"]:
        problems.insert(
            0,
            f"sha256 mismatch: {MODEL_FILE} is {stored}, registered "
            f"{recorded or '<missing>'}; not deserialised",
        )
        return None
    try:
        model = mlflow.sklearn.load_model(str(local))
    except Exception as err:  # noqa: BLE001 - reported, not raised
        problems.append(f"does not load: {type(err).__name__}: {err}")
        return None
    result["loads"] = True
    return model


def _compare_scores(
    model: Any,
    X_holdout: pd.DataFrame,
    expected_scores: np.ndarray,
    score: Scorer,
    result: dict[str, Any],
    problems: list[str],
) -> None:
    """Re-score ``X_holdout``; the scores must equal ``expected_scores`` exactly."""

    try:
        scores = np.asarray(score(model, X_holdout))
        expected = np.asarray(expected_scores)
        result["predictions_identical"] = bool(
            scores.shape == expected.shape and np.array_equal(scores, expected, equal_nan=True)
        )
        if not result["predictions_identical"]:
            if scores.shape != expected.shape:
                problems.append(f"score shape {scores.shape} != expected {expected.shape}")
            else:
                same = (scores == expected) | (np.isnan(scores) & np.isnan(expected))
                diff = int(np.sum(~same))
                problems.append(f"{diff} of {len(scores)} scores differ from the expected ones")
    except Exception as err:  # noqa: BLE001 - reported, not raised
        problems.append(f"cannot score: {type(err).__name__}: {err}")


def verify_integrity(
    registry: ModelRegistry,
    version: int | str,
    X_holdout: pd.DataFrame,
    expected_scores: np.ndarray,
    *,
    score: Scorer,
) -> dict[str, Any]:
    """Re-download ``version``, re-hash it, load it and re-score ``X_holdout`` with ``score``.

    Returns ``{"ok", "sha256_match", "files_match", "loads", "predictions_identical",
    "sha256_recorded", "sha256_stored", "detail"}``. ``sha256_match`` is about
    ``model.skops``; ``files_match`` about every file of the model folder. A model whose
    ``model.skops`` does not match is **not** deserialised (``loads`` False). The scores
    must equal ``expected_scores`` exactly (``np.array_equal``). Never raises: every
    problem is reported in ``detail``.
    """
    result = _empty_result()
    label = f"{registry.registered_model} v{version}"
    try:
        client = registry._client()
        tags = registry.version_tags(version)
    except Exception as err:  # noqa: BLE001 - reported, not raised
        result["detail"] = f"{label}: cannot read the registry: {err}"
        return result
    result["sha256_recorded"] = tags.get(LineageTag.MODEL_SHA)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlops_verify_") as tmp:
        try:
            local = registry._download_model_dir(client, version, tmp)
            result["sha256_stored"] = file_sha256(local / MODEL_FILE)
        except Exception as err:  # noqa: BLE001 - reported, not raised
            result["detail"] = f"{label}: cannot download {MODEL_FILE}: {err}"
            return result
        model = _load_checked(local, tags, result, problems)
    if model is None:
        result["detail"] = f"{label}: " + "; ".join(problems)
        return result
    _compare_scores(model, X_holdout, expected_scores, score, result, problems)
    result["ok"] = all(
        result[k] for k in ("sha256_match", "files_match", "loads", "predictions_identical")
    )
    result["detail"] = f"{label}: " + ("; ".join(problems) if problems else "intact")
    return result
