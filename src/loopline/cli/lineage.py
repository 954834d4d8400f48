"""`loopline lineage ...`"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.tree import Tree

from loopline.cli.context import cli_context, print_json
from loopline.core.errors import InvalidInput
from loopline.core.lineage import LineageGraph, LineageNode


def _node_label(node: LineageNode) -> str:
    key = node.key if node.kind == "run" else f"sha256:{node.key[:12]}"
    return f"[bold]{node.kind}[/bold] {node.label or ''} [dim]{key}[/dim]"


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
    ref: str = typer.Argument(..., help="models:/NAME/VERSION (or @ALIAS), run:RUN_ID or dataset:SHA256."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Where a model version, run or dataset came from and what was made from it."""
    services = cli_context(ctx).services
    if ref.startswith("models:/"):
        root = ("model_version", services.registry.resolve(ref).digest or "")
    elif ref.startswith(("run:", "dataset:")):
        kind, _, key = ref.partition(":")
        root = (kind, key)
    else:
        raise InvalidInput(f"{ref!r}: give models:/NAME/VERSION, run:RUN_ID or dataset:SHA256")
    graph = services.lineage.graph(root)
    if json_:
        print_json(graph.to_dict())
        return
    tree = Tree(_node_label(graph.root))
    up = tree.add("[italic]comes from[/italic]")
    _grow(up, graph, graph.root, True, {root})
    down = tree.add("[italic]feeds[/italic]")
    _grow(down, graph, graph.root, False, {root})
    Console().print(tree)
