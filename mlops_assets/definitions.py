"""The code location: ``dagster dev -m mlops_assets.definitions`` (the spec from ``$MLOPS_SPEC``).

Loading allocates some hundred thousand objects that live as long as the process (modules, pydantic
models, asset definitions); the cyclic collector would scan them again and again and find nothing
to free (a sixth of the load), so it pauses while the definitions are built.
"""

import gc

_collecting = gc.isenabled()
gc.disable()
try:
    from mlops_assets.location.build import build_definitions

    defs = build_definitions()
finally:
    if _collecting:
        gc.enable()
