"""The package's layers (DESIGN.md "Layers"), read from the code itself:
imports only point down, and no function outgrows one screen.

    cli -> flows -> dataplane -> schemas
    cli -> retrieval -> dataplane;   cli -> sample -> dataplane
    trainer -> schemas only (it runs in its own process, see test_process_boundary.py)

Every import counts, also those inside functions (a lazy import is still a
dependency). Inside the data plane, `build` is the top: nothing below it
imports it, and `storage` (the IO facade) imports no other data-plane module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "unibed"
MAX_FUNCTION_LINES = 80

# layer -> the unibed layers it may import (besides itself and the package root)
ALLOWED = {
    "schemas": set(),
    "dataplane": {"schemas"},
    "trainer": {"schemas"},
    "flows": {"dataplane", "schemas"},
    "sample": {"dataplane", "schemas"},
    "retrieval": {"dataplane", "schemas"},
    "cli": {"flows", "dataplane", "schemas", "sample", "retrieval"},
}
# third-party packages a layer must never import
FORBIDDEN = {
    "schemas": {"apache_beam", "google", "prefect", "tensorflow", "keras", "keras_hub", "requests"},
    "dataplane": {"prefect", "tensorflow", "keras", "keras_hub", "fastapi"},
    "trainer": {"apache_beam", "prefect", "fastapi"},
    "flows": {"tensorflow", "keras", "keras_hub", "fastapi"},
    "sample": {"prefect", "tensorflow", "keras", "keras_hub"},
    "retrieval": {"prefect", "keras_hub"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, module: str, is_package: bool) -> set[str]:
    """Every module `source` imports, relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from unibed.dataplane import storage`
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "unibed" and len(parts) > 1 else None


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What is wrong with the imports of `module` (source text given)."""
    layer, problems = _layer(module), []
    for imported in sorted(_imports(source, module, is_package)):
        target = _layer(imported)
        if imported.split(".")[0] == "unibed":
            if target and target != layer and target in ALLOWED and target not in ALLOWED.get(layer, set()):
                problems.append(f"{module} imports {imported}: {layer} may not import {target}")
            problems += _dataplane_problems(module, imported)
        elif imported.split(".")[0] in FORBIDDEN.get(layer, ()):
            problems.append(f"{module} imports {imported}: {layer} never imports {imported.split('.')[0]}")
    return problems


def _dataplane_problems(module: str, imported: str) -> list[str]:
    if not module.startswith("unibed.dataplane.") or not imported.startswith("unibed.dataplane."):
        return []
    if imported.startswith("unibed.dataplane.build") and not module.startswith("unibed.dataplane.build"):
        return [f"{module} imports {imported}: only the build sits above the rest of the data plane"]
    if module == "unibed.dataplane.storage":
        return [f"{module} imports {imported}: storage is the bottom of the data plane"]
    return []


def _sources() -> list[tuple[Path, str]]:
    return [(p, _module_name(p)) for p in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_belongs_to_a_layer():
    stray = [m for _, m in _sources() if m != "unibed" and _layer(m) not in ALLOWED]
    assert stray == []


def test_imports_only_point_down():
    problems = [v for path, module in _sources()
                for v in violations(path.read_text(), module, path.name == "__init__.py")]
    assert problems == []


@pytest.mark.parametrize(("module", "source"), [
    ("unibed.schemas.recipe", "from unibed.dataplane import storage"),
    ("unibed.dataplane.sources.common", "def f():\n    from unibed.flows.stages import stage"),
    ("unibed.dataplane.images.preprocess", "from unibed.dataplane.build import shards"),
    ("unibed.dataplane.storage", "from unibed.dataplane.records import framing"),
    ("unibed.trainer.data", "import unibed.dataplane.storage"),
    ("unibed.flows.train", "from unibed.cli.train import cmd_train"),
    ("unibed.retrieval.gallery", "from ..flows import stages"),
    ("unibed.dataplane.build.pipeline", "import tensorflow as tf"),
    ("unibed.schemas.manifest", "from apache_beam.io.filesystems import FileSystems"),
])
def test_an_upward_import_is_caught(module, source):
    assert violations(source, module) != []


def test_downward_imports_pass():
    assert violations("from unibed.schemas import features\nfrom . import storage",
                      "unibed.dataplane.recipes") == []
    assert violations("from unibed.flows.build_dataset import build_dataset_flow", "unibed.cli.build") == []


def _long_functions(source: str, where: str) -> list[str]:
    return [f"{where}:{node.lineno} {node.name} has {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_no_function_is_longer_than_a_screen():
    paths = [p for folder in ("unibed", "benchmarks", "infra") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert [long for p in paths for long in _long_functions(p.read_text(), str(p.relative_to(ROOT)))] == []


def test_a_long_function_is_caught():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert _long_functions(f"def f():\n{body}\n", "x.py") != []
