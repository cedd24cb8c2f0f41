"""Where everything lives: one place for the layout of ``$MLOPS_HOME``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".mlops_home"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> Home:
        return cls(Path(os.environ.get("MLOPS_HOME", DEFAULT_HOME)).expanduser().resolve())

    @property
    def dagster(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.root / "dagster")

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts"

    def table(self, name: str) -> Path:
        return self.lake / name
