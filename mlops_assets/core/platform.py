"""The facts every part of the code location shares: the spec, ``$MLOPS_HOME`` and the daily
partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dagster import DailyPartitionsDefinition

from mlops_assets.core.paths import Home
from mlops_assets.core.spec import DatasetSpec, load_spec


@dataclass(frozen=True)
class Platform:
    spec: DatasetSpec
    home: Home

    @classmethod
    def from_env(cls, spec: DatasetSpec | None = None) -> Platform:
        return cls(spec or load_spec(), Home.from_env())

    @property
    def landing(self) -> Path:
        return self.spec.resolve(self.spec.landing.path, self.home.root)

    @property
    def label_landing(self) -> Path | None:
        return (
            self.spec.resolve(self.spec.labels.path, self.home.root) if self.spec.labels else None
        )

    @cached_property
    def daily(self) -> DailyPartitionsDefinition:
        # end_offset=1: today's partition exists, so files landing today are processed today.
        return DailyPartitionsDefinition(
            start_date=self.spec.partition_start.isoformat(), end_offset=1
        )
