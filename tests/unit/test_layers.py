"""Imports point downward only (DESIGN.md): core < storage < services < interfaces."""

from __future__ import annotations

import ast
from pathlib import Path

import loopline

PACKAGE = Path(loopline.__file__).parent
INTERFACES = {
    "cli",
    "server",
    "client",
    "ui",
    "_sdk",
    "_pipelines",
    "__init__",
    "demo",
    "datasets",
    "progress",
}
STORAGE = {"store", "artifacts"}
SERVICES = {
    "tracking", "data", "models", "registry", "lineage", "serving", "monitoring", "pipelines", "automation",
    "governance",
}  # fmt: skip
ALLOWED = {
    "core": {"core"},
    "store": {"core", "store"},
    "artifacts": {"core", "artifacts"},
}


def _layer_of(module: str) -> str:
    return module.split(".")[0]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("loopline."):
            found.add(_layer_of(node.module.removeprefix("loopline.")))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("loopline."):
                    found.add(_layer_of(alias.name.removeprefix("loopline.")))
    return found


def test_lower_layers_never_import_upper_ones() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        layer = _layer_of(path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", "."))
        imported = _imports(path)
        if layer in ALLOWED:
            bad = imported - ALLOWED[layer]
        elif layer in SERVICES:
            bad = imported & (INTERFACES | {"backends", "settings"})
        else:
            continue
        violations += [f"{path.relative_to(PACKAGE)} imports loopline.{b}" for b in sorted(bad)]
    assert violations == []


def test_core_uses_the_standard_library_only() -> None:
    import sys

    for path in (PACKAGE / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ("loopline", "__future__"), (path, name)
