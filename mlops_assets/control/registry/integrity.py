"""Is a registered model still the one that was registered? Checked before every load.

At registration the registry records on the model version a manifest of sha256 hashes of the
exact bytes uploaded (``recorded_manifest``), the skops allow-list the model was saved with
(``VersionTag.TRUSTED_TYPES``), ``lineage.model_sha256`` (of ``model.skops``) and
``registry.model_files_sha256`` (one sha256 over the folder).

Before anything is deserialised, the downloaded folder must match the manifest exactly: a
changed, added or removed file is refused with ``IntegrityError`` naming it. A run artifact is
read only when its bytes match its manifest entry. The model is then loaded **without MLflow's
loader**: ``skops.io.load(model.skops, trusted=<the recorded trusted types>)`` — never a
pickle, whatever ``MLmodel`` says, and never an allow-list read from the model itself. A
version registered without a manifest is refused too. Standard library only at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlops_assets.core.vocabulary import LineageTag, VersionTag
from mlops_assets.model.lineage import file_sha256

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_assets.control.registry.protocol import RegistryProtocol

MODEL_FILE = "model.skops"  # the serialised pipeline inside the model's artifact folder
MLMODEL_FILE = "MLmodel"

Scorer = Callable[[Any, "pd.DataFrame"], "np.ndarray"]
"""``score(model, X) -> scores``: how the caller turns a loaded model's output into scores."""


class IntegrityError(RuntimeError):
    """A registered model's stored bytes do not match what was recorded at registration."""


# ---- manifests ------------------------------------------------------------------------------
def file_manifest(root: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``root``. A symbolic link is an
    entry of its own (``symlink:<target>``, never followed), so a planted link is "added"."""
    base, out = Path(root), {}
    for folder, dirs, files in os.walk(base, followlinks=False):
        for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            path = Path(folder) / name
            out[path.relative_to(base).as_posix()] = (
                f"symlink:{os.readlink(path)}" if path.is_symlink() else file_sha256(path)
            )
    return dict(sorted(out.items()))


def model_files_sha256(model_dir: str | os.PathLike[str]) -> str:
    """One sha256 over every file of a model folder: sorted ``relpath\\0sha256\\n`` lines."""
    lines = [f"{path}\0{sha}\n" for path, sha in sorted(file_manifest(model_dir).items())]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """The digest a manifest is known by (the local cache's key)."""
    return bytes_sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())


def recorded_manifest(tags: Mapping[str, str], label: str) -> dict[str, dict[str, str]]:
    """The version's manifest; ``IntegrityError`` when none (or an unreadable one) was recorded.

    ``registry.manifest`` (``VersionTag.MANIFEST``) holds JSON ``{"model": {path: sha256},
    "run": {artifact: sha256}}``: every file of the logged model's folder (``MLmodel``,
    ``requirements.txt``, ``conda.yaml``, ``python_env.yaml``, ``model.skops``, the input
    examples...) and every run artifact logged with it (``holdout_scores.json``,
    ``reference_profile.json``...). Without one, the version must be re-registered
    (re-materialise ``candidate_model`` for its cutoff)."""
    try:
        manifest = json.loads(tags[VersionTag.MANIFEST])
        readable = isinstance(manifest.get("model"), dict) and isinstance(manifest.get("run"), dict)
    except (KeyError, ValueError, AttributeError):
        readable = False
    if not readable:
        raise IntegrityError(
            f"{label}: no readable {VersionTag.MANIFEST} tag: registered without a file manifest,"
            " so nothing of it can be verified; re-register it (materialise candidate_model for"
            " its cutoff)"
        )
    return manifest


def manifest_problems(recorded: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """What differs between two ``{path: sha256}`` maps, one entry per file, named."""
    changed = [
        f"{p} changed (sha256 {actual[p][:12]}…, registered {recorded[p][:12]}…)"
        for p in sorted(set(recorded) & set(actual))
        if recorded[p] != actual[p]
    ]
    added = [f"{p} added" for p in sorted(set(actual) - set(recorded))]
    removed = [f"{p} removed" for p in sorted(set(recorded) - set(actual))]
    return changed + added + removed


def verify_model_dir(local: Path, tags: Mapping[str, str], label: str) -> dict[str, dict[str, str]]:
    """Raise ``IntegrityError`` unless ``local`` holds exactly the recorded files, ``model.skops``
    is the one ``lineage.model_sha256`` names, and ``MLmodel`` declares a skops model."""
    manifest = recorded_manifest(tags, label)
    problems = manifest_problems(manifest["model"], file_manifest(local))
    if problems:
        raise IntegrityError(
            f"{label}: the model folder differs from its registration manifest: "
            f"{'; '.join(problems)}; refusing to load it"
        )
    if manifest["model"].get(MODEL_FILE) != tags.get(LineageTag.MODEL_SHA):
        raise IntegrityError(
            f"{label}: {MODEL_FILE} in the manifest does not match {LineageTag.MODEL_SHA}"
        )
    check_skops_flavor(local, label)
    return manifest


def check_skops_flavor(local: Path, label: str) -> None:
    """The flavour must say skops in ``model.skops``: a registered pickle is refused, not loaded."""
    try:
        flavors = yaml.safe_load((local / MLMODEL_FILE).read_text()).get("flavors") or {}
    except (OSError, yaml.YAMLError, AttributeError) as err:
        raise IntegrityError(f"{label}: {MLMODEL_FILE} unreadable ({type(err).__name__})") from None
    sk, py = flavors.get("sklearn") or {}, flavors.get("python_function") or {}
    if (sk.get("serialization_format"), sk.get("pickled_model"), py.get("model_path")) != (
        "skops",
        MODEL_FILE,
        MODEL_FILE,
    ):
        raise IntegrityError(
            f"{label}: {MLMODEL_FILE} does not declare the skops file {MODEL_FILE} "
            f"(format {sk.get('serialization_format')!r}, file {py.get('model_path')!r}); "
            "refusing to load it"
        )


def verify_artifact(tags: Mapping[str, str], name: str, data: bytes, label: str) -> None:
    """Raise ``IntegrityError`` unless ``data`` is run artifact ``name`` as registered."""
    recorded = recorded_manifest(tags, label)["run"].get(name)
    if recorded is None:
        raise IntegrityError(
            f"{label}: run artifact {name} is not in the registration manifest; not read"
        )
    if bytes_sha256(data) != recorded:
        raise IntegrityError(
            f"{label}: run artifact {name} changed since registration "
            f"(sha256 {bytes_sha256(data)}, registered {recorded}); not read"
        )


# ---- loading --------------------------------------------------------------------------------
def trusted_types(tags: Mapping[str, str], label: str) -> list[str]:
    try:
        types = json.loads(tags[VersionTag.TRUSTED_TYPES])
    except (KeyError, ValueError):
        types = None
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise IntegrityError(
            f"{label}: no readable {VersionTag.TRUSTED_TYPES} tag; refusing to load"
        )
    return types


def load_skops(path: Path, trusted: Sequence[str], label: str) -> Any:
    """``skops.io.load`` with exactly ``trusted``; a file needing any other type is refused."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(path, trusted=list(trusted))
    except UntrustedTypesFoundException as err:
        raise IntegrityError(
            f"{label}: {MODEL_FILE} needs types not recorded as trusted: {err}"
        ) from None


def load_artifact_skops(
    registry: RegistryProtocol,
    version: int | str,
    name: str,
    allowed: Sequence[str],
    types_tag: str = VersionTag.MONITOR_TRUSTED_TYPES,
) -> Any | None:
    """A skops run artifact of ``version`` (e.g. the monitoring bundle), or None when the version
    was registered without it. Its bytes must match the registration manifest, it is loaded with
    exactly the types recorded under ``types_tag``, and those must lie within ``allowed`` (the
    caller's known list): anything else is an ``IntegrityError``, never a load."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    label = f"{registry.registered_model} v{version}"
    tags = registry.version_tags(version)
    if name not in recorded_manifest(tags, label)["run"]:
        return None
    try:
        trusted = json.loads(tags[types_tag])
    except (KeyError, ValueError):
        trusted = None
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise IntegrityError(
            f"{label}: no readable {types_tag} tag for {name}; refusing to load it"
        )
    if set(trusted) - set(allowed):
        raise IntegrityError(
            f"{label}: {name} records trusted types outside the known list: "
            f"{sorted(set(trusted) - set(allowed))}; refusing to load it"
        )
    data = registry.load_artifact_bytes(version, name)  # verified against the manifest
    try:
        return skops.io.loads(data, trusted=list(trusted))
    except UntrustedTypesFoundException as err:
        raise IntegrityError(
            f"{label}: {name} needs types not recorded as trusted: {err}"
        ) from None


def load_verified(local: Path, tags: Mapping[str, str], label: str) -> Any:
    """Verify ``local`` against the version's manifest, then load its skops file."""
    verify_model_dir(local, tags, label)
    return load_skops(local / MODEL_FILE, trusted_types(tags, label), label)


# ---- the integrity gate ---------------------------------------------------------------------
def _empty_result() -> dict[str, Any]:
    return {
        "ok": False,
        "sha256_match": False,
        "files_match": False,
        "loads": False,
        "predictions_identical": False,
        "sha256_recorded": None,
        "sha256_stored": None,
        "manifest_problems": [],
        "detail": "",
    }


def _load_checked(
    local: Path, tags: dict[str, str], result: dict[str, Any], problems: list[str]
) -> Any | None:
    """Compare the downloaded folder with the manifest; deserialise it only when every file
    matches. Fills ``result`` and ``problems``; None when not loaded."""
    recorded, stored = result["sha256_recorded"], result["sha256_stored"]
    result["sha256_match"] = bool(recorded) and stored == recorded
    if not result["sha256_match"]:
        problems.append(
            f"sha256 mismatch: {MODEL_FILE} is {stored}, registered {recorded or '<missing>'}"
        )
    try:
        manifest = recorded_manifest(tags, "")
        result["manifest_problems"] = manifest_problems(manifest["model"], file_manifest(local))
    except IntegrityError as err:
        result["manifest_problems"] = [str(err).lstrip(": ")]
    result["files_match"] = not result["manifest_problems"]
    if not result["files_match"]:
        problems.append(
            "the model folder's files differ from those registered: "
            + "; ".join(result["manifest_problems"])
        )
    if problems:
        problems.append("not deserialised")
        return None
    try:
        model = load_verified(local, tags, "")
    except Exception as err:  # noqa: BLE001 - reported, not raised
        problems.append(f"does not load: {type(err).__name__}: {str(err).lstrip(': ')}")
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
    import numpy as np

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
                problems.append(
                    f"{int(np.sum(~same))} of {len(scores)} scores differ from the expected ones"
                )
    except Exception as err:  # noqa: BLE001 - reported, not raised
        problems.append(f"cannot score: {type(err).__name__}: {err}")


def verify_integrity(
    registry: RegistryProtocol,
    version: int | str,
    X_holdout: pd.DataFrame,
    expected_scores: np.ndarray,
    *,
    score: Scorer,
) -> dict[str, Any]:
    """Re-download ``version``, check it against its manifest, load it and re-score ``X_holdout``.

    Returns ``{"ok", "sha256_match", "files_match", "loads", "predictions_identical",
    "sha256_recorded", "sha256_stored", "manifest_problems", "detail"}``. ``sha256_match`` is
    about ``model.skops``; ``files_match`` about every file of the model folder (each
    difference named in ``manifest_problems``). A folder that differs in any file is **not**
    deserialised (``loads`` False). The scores must equal ``expected_scores`` exactly
    (``np.array_equal``). Never raises: every problem is reported in ``detail`` (redacted).
    """
    result = _empty_result()
    label = f"{registry.registered_model} v{version}"
    try:
        tags = registry.version_tags(version)
    except Exception as err:  # noqa: BLE001 - reported, not raised
        result["detail"] = registry.redact(f"{label}: cannot read the registry: {err}")
        return result
    result["sha256_recorded"] = tags.get(LineageTag.MODEL_SHA)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlops_verify_") as tmp:
        try:
            local = registry.download_model_dir(version, tmp)
            result["sha256_stored"] = (
                file_sha256(local / MODEL_FILE) if (local / MODEL_FILE).is_file() else None
            )
        except Exception as err:  # noqa: BLE001 - reported, not raised
            result["detail"] = registry.redact(f"{label}: cannot download the model folder: {err}")
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
