"""The code location: ``dagster dev -m mlops_assets.definitions`` (the spec from ``$MLOPS_SPEC``)."""

from mlops_assets.location.build import build_definitions

defs = build_definitions()
