"""A local, verified copy of the serving versions, for scoring while MLflow is unreachable.

Layout under the cache root (``$MLOPS_HOME/model_cache`` by default)::

    <manifest sha256>/model/...          the model folder, exactly as registered
    <manifest sha256>/run/<artifact>     run artifacts serving reads (reference_profile.json)
    stores/<store key>/<model>/aliases.json     the alias -> version mapping last seen, and when
    stores/<store key>/<model>/v<N>.json        version N's tags (manifest, trusted types, guard...)

An entry is content-addressed by the sha256 of the version's manifest and checked against
that manifest on every use (``integrity.load_verified``), exactly like a download from MLflow;
a missing entry raises ``ModelNotCached``. Writes are atomic (a temporary folder renamed into
place), so a reader never sees half an entry. The store key is a digest of the tracking URI
with credentials removed, so two stores in one ``$MLOPS_HOME`` never share a mapping.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_assets.control.registry.integrity import (
    bytes_sha256,
    load_verified,
    manifest_sha256,
    recorded_manifest,
    verify_artifact,
)
from mlops_assets.core.redaction import redact_uri

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ModelNotCached(LookupError):
    """The local cache holds no (or no complete) copy of what was asked for."""


def _write_json_atomic(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(content, fh, sort_keys=True)
    os.replace(tmp, path)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelNotCached(f"the local model cache has no {what}") from None


class ModelCache:
    def __init__(self, root: Path, tracking_uri: str, model_name: str):
        self.root = Path(root)
        store = bytes_sha256(redact_uri(tracking_uri).encode())[:16]
        self.versions_dir = self.root / "stores" / store / _UNSAFE.sub("_", model_name)
        self.model_name = model_name

    def _label(self, version: int | str) -> str:
        return f"{self.model_name} v{version} (local cache)"

    # ---- the alias mapping --------------------------------------------------------------
    def remember_aliases(self, aliases: Mapping[str, int]) -> None:
        _write_json_atomic(
            self.versions_dir / "aliases.json",
            {
                "aliases": {a: int(v) for a, v in aliases.items()},
                "seen_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            },
        )

    def aliases(self) -> tuple[dict[str, int], str]:
        """(alias -> version last seen, when it was seen)."""
        record = _read_json(self.versions_dir / "aliases.json", "alias mapping")
        return {a: int(v) for a, v in record["aliases"].items()}, str(record.get("seen_at", ""))

    # ---- versions -----------------------------------------------------------------------
    def entry(self, tags: Mapping[str, str], label: str) -> Path:
        return self.root / manifest_sha256(recorded_manifest(tags, label))

    def refresh(self, version: int | str, tags: Mapping[str, str]) -> bool:
        """When the entry for these tags' manifest is in place, record ``tags`` as the version's
        (a guard tag may have changed) and return True; False when the entry must be fetched."""
        if not self.entry(tags, self._label(version)).is_dir():
            return False
        _write_json_atomic(
            self.versions_dir / f"v{int(version)}.json",
            {"version": int(version), "tags": dict(tags)},
        )
        return True

    def store(
        self,
        version: int | str,
        tags: Mapping[str, str],
        model_dir: Path,
        run_artifacts: Mapping[str, bytes],
    ) -> Path:
        """Keep a copy of a **verified** model folder and run artifacts; record the version tags."""
        target = self.entry(tags, self._label(version))
        if not target.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
            try:
                shutil.copytree(model_dir, tmp / "model")
                (tmp / "run").mkdir()
                for name, data in run_artifacts.items():
                    (tmp / "run" / name).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / "run" / name).write_bytes(data)
                os.rename(tmp, target)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not target.is_dir():  # not a concurrent writer winning the rename
                    raise
        _write_json_atomic(
            self.versions_dir / f"v{int(version)}.json",
            {"version": int(version), "tags": dict(tags)},
        )
        return target

    def version_tags(self, version: int | str) -> dict[str, str]:
        record = _read_json(
            self.versions_dir / f"v{int(version)}.json", f"record of version {version}"
        )
        return {str(k): str(v) for k, v in record["tags"].items()}

    def load_model(self, version: int | str) -> Any:
        """The cached pipeline of ``version``, verified against its manifest first."""
        label = self._label(version)
        tags = self.version_tags(version)
        folder = self.entry(tags, label) / "model"
        if not folder.is_dir():
            raise ModelNotCached(f"{label}: no cached model folder")
        return load_verified(folder, tags, label)

    def artifact(self, version: int | str, name: str) -> bytes:
        label = self._label(version)
        tags = self.version_tags(version)
        path = self.entry(tags, label) / "run" / name
        if not path.is_file():
            raise ModelNotCached(f"{label}: run artifact {name} is not cached")
        data = path.read_bytes()
        verify_artifact(tags, name, data, label)
        return data
