"""The shape of the code, checked: layers point one way, wiring stays thin, imports stay visible.

These are the invariants ``docs/architecture.md`` promises a newcomer. They read the source
with ``ast`` (nothing is imported), except the last test, which loads the code location in a
fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlops_assets"

# Lower layers never import higher ones. A folder is a concern (data, model, scoring, monitoring,
# control,
# operations, location); inside it each module has a layer. A module not listed here fails the test:
# say where
# it goes. Entries name a module or a whole folder (relative to the package).
LAYERS: dict[int, tuple[str, ...]] = {
    0: (
        "core.vocabulary",
        "core.paths",
        "core.faults",
        "core.redaction",
        "core.clock",
        "core.tables",
        "core.spec_sections",
        "core.spec",
        "core.platform",
        "core.metrics_catalog",
        "data.readers",
        "model.estimators",
    ),
    1: (
        "core.spec_docs",
        "data.features",
        "data.ingest",
        "data.contract",
        "data.landing_file",
        "data.contract_checks",
        "data.landing_scan",
        "data.simulator",
        "data.spec_infer",
        "model.gates",
        "model.lineage",
        "model.training",
        "model.evaluation",
        "model.candidate",
        "model.datasets",
        "model.bounds",
        "model.encoded_input",
        "model.leakage_scan",
        "scoring.rows",
        "monitoring.rules",
        "monitoring.performance",
        "monitoring.reports",
        "monitoring.drift",
        "monitoring.estimation.methods",
        "monitoring.estimation.rules",
        "monitoring.estimation.bundle",
        "operations.scorecard",
    ),
    2: (
        "data.lake",
        "data.lake_lock",
        "data.lake_maintenance",
        "control.registry",
        "control.alerts",
        "control.resources",
    ),
    3: (
        "control.ledger",
        "control.instance_queries",
        "model.promotion",
        "model.services",
        "model.reproduce",
        "scoring.serving",
        "monitoring.estimation.service",
        "operations.scorecard_sources",
    ),
    4: (
        "location",
        "data.assets",
        "data.sensors",
        "model.assets",
        "scoring.assets",
        "monitoring.assets",
        "monitoring.sensors",
        "monitoring.estimation.assets",
        "operations.assets",
        "definitions",
    ),
    5: (
        "operations.runs",
        "operations.status",
        "operations.demo",
        "operations.demo_readout",
        "operations.cli",
        "operations.commands_common",
        "operations.commands_control",
        "operations.commands_files",
        "operations.commands_runs",
    ),
}
LAYER_NAMES = {
    0: "spec and shared facts",
    1: "pure rules and ML",
    2: "resources",
    3: "services over resources",
    4: "Dagster wiring",
    5: "operator tools",
}
HEAVY_LIBRARIES = (
    "mlflow",
    "sklearn",
    "evidently",
    "skops",
    "pandas",
    "scipy",
    "deltalake",
    "pyarrow",
    "dagster_pandas",
    "psycopg2",
    "numpy",  # 80 ms of a 430 ms `import dagster`: rules that compute with it import it inside
    "requests",  # MLflow's transport, 30 ms: loaded with MLflow, never at code-location load
)
WIRING_DECORATORS = {
    "asset",
    "multi_asset",
    "asset_check",
    "sensor",
    "schedule",
    "run_failure_sensor",
}
MAX_WIRING_BODY, MAX_FUNCTION, MAX_MODULE = 40, 80, 600  # counted on formatted code (ruff format)
LONG_MODULES_ALLOWED = {"mlops_assets.data.simulator"}  # the simulator is a world, not a rule


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()
# Folders whose ``__init__`` is empty only group modules: importing a module through them is no
# dependency on the folder.
FOLDERS = {
    name
    for name, path in MODULES.items()
    if path.name == "__init__.py" and not path.read_text().strip()
}
TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    """The layer of the longest ``LAYERS`` entry that is ``module`` or a folder holding it."""
    relative = module.removeprefix("mlops_assets.")
    best = max(
        (
            (entry, layer)
            for layer, entries in LAYERS.items()
            for entry in entries
            if relative == entry or relative.startswith(entry + ".")
        ),
        key=lambda e: len(e[0]),
        default=None,
    )
    if best is None:
        raise AssertionError(
            f"{module} is in no layer: add it to LAYERS in {Path(__file__).name} and "
            "to the layer table in docs/architecture.md"
        )
    return best[1]


def _resolve(target: str) -> str | None:
    """The project module an import names (``mlops_assets.x.y``: a module or a name in one)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _imports(tree: ast.AST):
    """(import node, imported dotted names, enclosing function or None) for every runtime import."""

    def walk(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                continue  # annotations only: no runtime dependency
            inner = (
                child.name
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                else function
            )
            if isinstance(child, ast.Import):
                yield child, [a.name for a in child.names], function
            elif isinstance(child, ast.ImportFrom) and child.module:
                yield (
                    child,
                    [child.module] + [f"{child.module}.{a.name}" for a in child.names],
                    function,
                )
            yield from walk(child, inner)

    yield from walk(tree, None)


def _project_imports(module: str, *, top_level: bool | None = None) -> set[str]:
    found = set()
    for _, names, function in _imports(TREES[module]):
        if top_level is not None and (function is None) != top_level:
            continue
        for name in names:
            if name.startswith("mlops_assets"):
                resolved = _resolve(name)
                if (
                    resolved
                    and resolved not in FOLDERS
                    and resolved != module
                    and not module.startswith(resolved + ".")
                ):
                    found.add(resolved)
    return found


def _heavy_modules() -> set[str]:
    """Project modules that import a heavy library at module top, directly or through another."""
    heavy = set()
    for module in MODULES:
        for _, names, function in _imports(TREES[module]):
            if function is None and any(n.split(".")[0] in HEAVY_LIBRARIES for n in names):
                heavy.add(module)
    changed = True
    while changed:
        changed = False
        for module in MODULES:
            if module not in heavy and _project_imports(module, top_level=True) & heavy:
                heavy.add(module)
                changed = True
    return heavy


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_layers():
    upward = []
    for module in MODULES:
        if module in FOLDERS:
            continue
        for target in _project_imports(module):
            if _layer(target) > _layer(module):
                upward.append(
                    f"{module} ({LAYER_NAMES[_layer(module)]}) imports {target} "
                    f"({LAYER_NAMES[_layer(target)]})"
                )
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = {m: _project_imports(m) for m in MODULES}
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_dagster_api():
    private = [
        f"{m}: {n}"
        for m in MODULES
        for _, names, _ in _imports(TREES[m])
        for n in names
        if n.startswith("dagster._")
    ]
    assert not private, private


def test_function_local_imports_only_for_heavy_libraries():
    heavy = _heavy_modules()
    hidden = []
    for module in MODULES:
        for node, names, function in _imports(TREES[module]):
            if function is None:
                continue
            is_heavy = any(
                n.split(".")[0] in HEAVY_LIBRARIES
                or (n.startswith("mlops_assets") and _resolve(n) in heavy)
                for n in names
            )
            if not is_heavy:
                hidden.append(f"{module}:{node.lineno} in {function}(): {names[0]}")
    assert not hidden, (
        "function-local imports of light modules (move them to the top):\n" + "\n".join(hidden)
    )


def _decorator_names(fn: ast.FunctionDef) -> set[str]:
    names = set()
    for d in fn.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        names.add(d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", ""))
    return names


def _own_lines(fn: ast.FunctionDef) -> int:
    """Lines of ``fn`` itself, nested function definitions (a factory's wiring) left out."""
    nested = sum(
        n.end_lineno - min([n.lineno] + [d.lineno for d in n.decorator_list]) + 1
        for n in ast.walk(fn)
        if n is not fn
        and isinstance(n, ast.FunctionDef)
        and not any(
            n in ast.walk(m)
            for m in ast.walk(fn)
            if m is not fn and m is not n and isinstance(m, ast.FunctionDef)
        )
    )
    return fn.end_lineno - fn.lineno + 1 - nested


def _functions():
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield module, node


def test_wiring_bodies_are_thin():
    fat = [
        f"{m}:{fn.lineno} {fn.name}: {fn.end_lineno - fn.body[0].lineno + 1} lines"
        for m, fn in _functions()
        if _decorator_names(fn) & WIRING_DECORATORS
        and fn.end_lineno - fn.body[0].lineno + 1 > MAX_WIRING_BODY
    ]
    assert not fat, (
        f"asset/check/sensor/schedule bodies over {MAX_WIRING_BODY} lines:\n" + "\n".join(fat)
    )


def test_functions_and_modules_stay_readable():
    long_functions = [
        f"{m}:{fn.lineno} {fn.name}: {_own_lines(fn)} lines"
        for m, fn in _functions()
        if m not in LONG_MODULES_ALLOWED and _own_lines(fn) > MAX_FUNCTION
    ]
    long_modules = [
        f"{m}: {len(p.read_text().splitlines())} lines"
        for m, p in MODULES.items()
        if m not in LONG_MODULES_ALLOWED and len(p.read_text().splitlines()) > MAX_MODULE
    ]
    assert not long_functions, f"functions over {MAX_FUNCTION} lines:\n" + "\n".join(long_functions)
    assert not long_modules, f"modules over {MAX_MODULE} lines:\n" + "\n".join(long_modules)


def test_no_reference_to_documents_outside_the_repository():
    outside = ("FIELD_NOTES", "DESIGN.md")
    files = [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "docs").rglob("*.md"),
        ROOT / "README.md",
        *(ROOT / "benchmarks").rglob("*.py"),
        *(ROOT / "deploy").rglob("*"),
    ]
    cited = [
        str(f.relative_to(ROOT))
        for f in files
        if f.is_file() and any(o in f.read_text(errors="ignore") for o in outside)
    ]
    assert not cited, cited


def test_loading_the_code_location_is_cheap_and_creates_nothing(tmp_path):
    home = tmp_path / "home"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "DAGSTER_"))
    }
    env["MLOPS_HOME"] = str(home)
    probe = (
        "import sys, json, mlops_assets.definitions as d; "
        f"print(json.dumps(sorted(m for m in {list(HEAVY_LIBRARIES)!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [], "heavy libraries imported at load"
    assert not home.exists(), f"loading created {sorted(p.name for p in home.rglob('*'))}"


@pytest.mark.parametrize(
    "module",
    [
        "mlops_assets.operations.scorecard",
        "mlops_assets.model.gates",
        "mlops_assets.monitoring.rules",
    ],
)
def test_rule_modules_import_no_heavy_library(module):
    heavy = _heavy_modules()
    assert module not in heavy


def test_only_the_registry_module_touches_the_registrys_private_members():
    """The registry's collaborators (and every other module, test and benchmark) use its public
    protocol (``control/registry/protocol.py``): ``registry._x`` / ``self.registry._x`` /
    ``model_registry._x`` outside ``control/registry/access.py`` is a private member reached
    from outside (dunders excepted)."""
    owner = PACKAGE / "control" / "registry" / "access.py"
    files = [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "mlops_assets_tests").rglob("*.py"),
        *(ROOT / "benchmarks").rglob("*.py"),
    ]

    def names_a_registry(node: ast.expr) -> bool:
        name = getattr(node, "id", None) or getattr(node, "attr", None) or ""
        return name == "reg" or name.lower().endswith("registry")

    reached = [
        f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}"
        for path in files
        if path != owner
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and names_a_registry(node.value)
    ]
    assert not reached, "private members of ModelRegistry used outside access.py:\n" + "\n".join(
        reached
    )


MAX_MODULE_DOCSTRING = 15  # lines: what a reader needs first; detail lives with its function


def test_module_docstrings_are_short():
    long_docstrings = [
        f"{m}: {doc.end_lineno - doc.lineno + 1} lines"
        for m, tree in TREES.items()
        if tree.body
        and isinstance(doc := tree.body[0], ast.Expr)
        and isinstance(doc.value, ast.Constant)
        and isinstance(doc.value.value, str)
        and doc.end_lineno - doc.lineno + 1 > MAX_MODULE_DOCSTRING
    ]
    assert not long_docstrings, (
        f"module docstrings over {MAX_MODULE_DOCSTRING} lines:\n" + "\n".join(long_docstrings)
    )
