"""The layers of DESIGN.md, enforced on the import graph of `src/loopline`.

Every top-level package (or module) of loopline sits in one layer. An import may point to
its own layer or one below, never above; the graph of top-level packages has no cycle; and
nothing below the interfaces imports the `loopline` facade itself. Imports under
`if TYPE_CHECKING:` count too: a type is a dependency.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import loopline

PACKAGE = Path(loopline.__file__).parent
FACADE = "__init__"
SERVICES = {"governance", "lineage", "tracking", "data", "feature_store", "registry", "serving", "monitoring"}
SERVICES |= {"pipelines", "automation", "client", "imports"}  # the client: the service interfaces over HTTP
SERVICES |= {"lifecycle"}
INTERFACES = {FACADE, "__main__", "_sdk", "_pipelines", "datasets", "progress", "cli", "server", "ui", "demo"}
INTERFACES |= {"autolog", "features"}  # patches libraries to log into the SDK's current run
LAYERS: list[tuple[str, set[str]]] = [
    ("core", {"core"}),
    ("storage", {"store", "artifacts"}),
    ("kernels", {"profiling", "predictions", "compute", "models", "specs"}),
    ("service interfaces", {"services"}),
    ("services", SERVICES),
    ("composition", {"wiring"}),
    ("interfaces", INTERFACES),
]
LAYER_OF = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}


def _top(module: str) -> str:
    """The top-level package of `loopline.a.b` (`a`), or the facade for `loopline` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


def _targets(node: ast.AST) -> Iterator[str]:
    """The loopline modules one import statement reaches."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "loopline":  # `from loopline import x`: submodule x, or the facade
            for alias in node.names:
                submodule = PACKAGE / alias.name
                found = submodule.is_dir() or submodule.with_suffix(".py").exists()
                yield f"loopline.{alias.name}" if found else "loopline"
        else:
            yield node.module


def _edges() -> list[tuple[str, str, str]]:
    """(importing package, imported package, where) for every import between two packages."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        source = relative.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            for module in _targets(node):
                if module != "loopline" and not module.startswith("loopline."):
                    continue
                target = _top(module)
                if target != source:
                    edges.append((source, target, f"{relative}:{node.lineno} imports {module}"))
    return edges


def test_every_package_has_a_layer() -> None:
    packages = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    packages -= {"__pycache__", "py.typed"}
    assert sorted(packages - set(LAYER_OF)) == []


def test_imports_never_point_to_a_higher_layer() -> None:
    upward = [
        f"{where} ({LAYERS[LAYER_OF[source]][0]} -> {LAYERS[LAYER_OF[target]][0]})"
        for source, target, where in _edges()
        if LAYER_OF[target] > LAYER_OF[source]
    ]
    assert upward == []


def test_below_the_interfaces_nothing_imports_the_facade() -> None:
    bare = [
        where
        for source, target, where in _edges()
        if target == FACADE and LAYER_OF[source] < LAYER_OF[FACADE]
    ]
    assert bare == []


def test_no_two_packages_import_each_other_directly_or_in_a_loop() -> None:
    graph: dict[str, set[str]] = {}
    for source, target, _ in _edges():
        graph.setdefault(source, set()).add(target)
    assert _cycles(graph) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_check_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_core_uses_the_standard_library_only() -> None:
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
