"""`loopline lineage ...`"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.tree import Tree

from loopline.cli.context import cli_context, print_json
from loopline.core.errors import InvalidInput
from loopline.core.lineage import CONTENT_KINDS, NODE_KINDS, LineageGraph, LineageNode, Node
from loopline.services import Services

USAGE = "models:/NAME/VERSION (or @ALIAS), datasets:/NAME/VERSION, or KIND:KEY as the graph prints it"


def _node_ref(node: LineageNode) -> str:
    """How the graph names a node, in a form `loopline lineage` takes back."""
    key = f"sha256:{node.key[:12]}" if node.kind in CONTENT_KINDS else node.key
    return f"{node.kind}:{key}"


def _node_label(node: LineageNode) -> str:
    return f"[bold]{node.kind}[/bold] {node.label or ''} [dim]{_node_ref(node)}[/dim]"


def _grow(
    tree: Tree, graph: LineageGraph, node: LineageNode, upstream: bool, seen: set[tuple[str, str]]
) -> None:
    neighbours = (
        graph.upstream_of((node.kind, node.key)) if upstream else graph.downstream_of((node.kind, node.key))
    )
    for neighbour in neighbours:
        key = (neighbour.kind, neighbour.key)
        branch = tree.add(_node_label(neighbour))
        if key not in seen:
            _grow(branch, graph, neighbour, upstream, seen | {key})


def lineage(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help=USAGE + "."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Where a model version, run or dataset came from and what was made from it."""
    services = cli_context(ctx).services
    graph = services.lineage.graph(_root(services, ref))
    if json_:
        print_json(graph.to_dict())
        return
    root = graph.root
    tree = Tree(_node_label(root))
    up = tree.add("[italic]comes from[/italic]")
    _grow(up, graph, root, True, {(root.kind, root.key)})
    down = tree.add("[italic]feeds[/italic]")
    _grow(down, graph, root, False, {(root.kind, root.key)})
    Console().print(tree)


def _root(services: Services, ref: str) -> Node:
    if ref.startswith("models:/"):
        return "model_version", services.registry.resolve(ref).digest or ""
    if ref.startswith("datasets:/"):
        return "dataset", services.datasets.get(ref).digest
    kind, _, key = ref.partition(":")
    if kind not in NODE_KINDS or not key:
        raise InvalidInput(f"{ref!r}: give {USAGE}")
    return kind, key
