"""The registry: every model, a model's versions, aliases and approvals, and a version's
signature, files, evaluations, gate reports, model card and lineage."""

from __future__ import annotations

import contextlib
import html
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopline.core.access import Role
from loopline.core.errors import NotFound, PermissionDenied
from loopline.core.lineage import NODE_KINDS, LineageGraph, LineageNode, Node
from loopline.core.registry import AliasEvent, ModelVersion, RegisteredModel, VersionStatus
from loopline.ui.deps import Viewer, permits
from loopline.ui.rendering import render
from loopline.wiring.local import LocalServices

router = APIRouter()

PENDING = "pending"  # the status of an alias request nobody has decided yet (core.access.AliasRequest)
KIND_COLOURS = {
    "dataset": "#2e90fa",
    "run": "#12b76a",
    "model_version": "#7a5af8",
    "deployment": "#f79009",
    "monitor": "#f04438",
    "feature_view": "#0ba5ec",
}

STAGGER = 0.3  # how far every other column of the lineage figure sits above the rest
MAX_ARROWS = 300  # arrowheads drawn on the figure's edges; past that, lines alone
ARROW = {
    "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "text": "", "showarrow": True,
    "arrowhead": 2, "arrowsize": 1.2, "arrowwidth": 1.5, "arrowcolor": "#98a2b3", "standoff": 9,
}  # fmt: skip


@dataclass(frozen=True)
class ShownNode:
    """A lineage node for the page's list: what it is, and where its pages are."""

    kind: str
    key: str
    label: str
    links: list[tuple[str, str]]  # (text, href)
    root: bool


@dataclass(frozen=True)
class SignatureColumn:
    """One input or output of a signature: a column, or the tensor of a tensor model."""

    name: str
    type: str
    detail: str


def _segment(value: object) -> str:
    """`value` as one path segment of a URL: nothing in it can start another segment."""
    return quote(str(value), safe="")


def _holds(services: LocalServices, model: str, role: Role) -> bool:
    """Whether the user holds `role` on the project of `model` (the service decides)."""
    return permits(lambda: services.registry.require_model_role(model, role))


# the list of models -----------------------------------------------------------------------


@router.get("/models")
def models_page(request: Request, services: Viewer) -> Response:
    """Every registered model the user may see: description, latest version, aliases and
    when it last changed."""
    registry = services.registry
    rows = [(model, _last_change(services, model)) for model in registry.list_models()]
    return render(request, "models.html", rows=rows)


def _last_change(services: LocalServices, model: RegisteredModel) -> int:
    """When `model` last changed: created, given a version, or an alias moved."""
    registry = services.registry
    times = [model.created_at]
    if model.latest_version:
        with contextlib.suppress(NotFound):  # deleted since
            times.append(registry.get_version(model.name, model.latest_version).created_at)
    times += [event.at for event in registry.alias_history(model.name)[-1:]]
    return max(times)


# one model -------------------------------------------------------------------------------


@router.get("/models/{name}")
def model_page(request: Request, services: Viewer, name: str) -> Response:
    """A model: its versions, its aliases with every move, and the requests to move a
    protected alias, with Approve and Reject for those who may decide them."""
    registry = services.registry
    model = registry.get_model(name)
    requests = registry.alias_requests(model.name)
    maintainer = _holds(services, model.name, Role.MAINTAINER)
    return render(
        request,
        "model.html",
        model=model,
        versions=registry.list_versions(model.name),
        history=list(reversed(registry.alias_history(model.name))),
        pending=[r for r in requests if r.status == PENDING],
        decided=[r for r in requests if r.status != PENDING],
        can_decide=maintainer,
        can_move=maintainer,
        quoted=_segment(model.name),
        protected=registry.protected_aliases(model.name),
    )


# one version -----------------------------------------------------------------------------


@router.get("/models/{name}/versions/{version}")
def version_page(request: Request, services: Viewer, name: str, version: int) -> Response:
    """A version: signature, files and their sha256, evaluations with their slices, the gate
    reports of the moves to it, its model card, its source run and its lineage."""
    registry = services.registry
    model = registry.get_model(name)
    found = registry.get_version(model.name, version)
    graph, lineage_problem = _lineage(services, found)
    card, card_problem = _card(services, found)
    inputs, outputs = _signature(found)
    return render(
        request,
        "model_version.html",
        model=model,
        mv=found,
        quoted=_segment(model.name),
        inputs=inputs,
        outputs=outputs,
        evaluations=services.promotion.evaluations(model.name, found.version),
        gate_reports=_gate_reports(registry.alias_history(model.name), found.version),
        card=card,
        card_problem=card_problem,
        nodes=_shown_nodes(services, graph) if graph is not None else [],
        figure=lineage_figure(graph) if graph is not None and graph.edges else None,
        lineage_problem=lineage_problem,
        protected=registry.protected_aliases(model.name),
        can_move=found.status is VersionStatus.READY
        and not found.deleted
        and _holds(services, model.name, Role.MAINTAINER),
    )


def _lineage(services: LocalServices, mv: ModelVersion) -> tuple[LineageGraph | None, str | None]:
    """The graph around the version, or why it cannot be shown to this user."""
    if mv.digest is None:
        return None, "this version has no content hash yet: its files were never completely stored"
    try:
        return services.lineage.graph(("model_version", mv.digest)), None
    except (PermissionDenied, NotFound) as exc:
        return None, str(exc)


def _card(services: LocalServices, mv: ModelVersion) -> tuple[str | None, str | None]:
    """The model card as Markdown (shown as text), or why it cannot be shown."""
    try:
        return services.promotion.model_card(mv.model, mv.version), None
    except (PermissionDenied, NotFound) as exc:
        return None, str(exc)


def _signature(mv: ModelVersion) -> tuple[list[SignatureColumn], list[SignatureColumn]]:
    """The inputs and outputs of the version's signature, as rows of a table."""
    signature = mv.model_json.get("signature") or {}
    return _schema(signature.get("inputs")), _schema(signature.get("outputs"))


def _schema(schema: Any) -> list[SignatureColumn]:
    if not isinstance(schema, dict):
        return []
    if "tensor" in schema:
        tensor = schema["tensor"] or {}
        shape = " x ".join("?" if d in (None, -1) else str(d) for d in tensor.get("shape", []))
        return [SignatureColumn("tensor", str(tensor.get("dtype", "")), f"shape {shape}")]
    rows = []
    for column in schema.get("columns") or []:
        detail = "missing allowed" if column.get("nullable") else "missing refused"
        if column.get("categories"):
            detail += f"; categories: {', '.join(map(str, column['categories']))}"
        rows.append(SignatureColumn(str(column.get("name", "")), str(column.get("type", "")), detail))
    return rows


def _gate_reports(history: list[AliasEvent], version: int) -> list[AliasEvent]:
    """The alias moves to `version` that a promotion made, each with its gates' report."""
    return [event for event in reversed(history) if event.to_version == version and event.report]


# lineage -----------------------------------------------------------------------------------


def _shown_nodes(services: LocalServices, graph: LineageGraph) -> list[ShownNode]:
    """Every node of the graph, in layer order, with links to its pages."""
    order = {kind: i for i, kind in enumerate(NODE_KINDS)}
    nodes = sorted(graph.nodes.values(), key=lambda n: (order.get(n.kind, len(order)), n.label, n.key))
    root = (graph.root.kind, graph.root.key)
    return [
        ShownNode(node.kind, node.key, node.label, _links(services, node), (node.kind, node.key) == root)
        for node in nodes
    ]


def _links(services: LocalServices, node: LineageNode) -> list[tuple[str, str]]:
    """(text, href) of the pages of `node`: a dataset digest may be several named versions."""
    if node.kind == "dataset":
        try:
            found = services.datasets.versions_with_digest(node.key)
        except (PermissionDenied, NotFound):
            found = []
        return [(f"{d.name} v{d.version}", f"/datasets/{_segment(d.name)}") for d in found]
    if node.kind == "run":
        return [(node.label or node.key, f"/runs/{_segment(node.key)}")]
    if node.kind == "model_version":
        pairs = [label.rsplit("/", 1) for label in node.label.split(", ") if "/" in label]
        return [
            (f"{model} v{version}", f"/models/{_segment(model)}/versions/{_segment(version)}")
            for model, version in pairs
        ]
    if node.kind == "deployment":
        return [(node.key, f"/deployments/{_segment(node.key)}")]
    if node.kind == "monitor":
        return [(node.key, f"/monitors/{_segment(node.key)}")]
    return []


def _node_text(node: LineageNode) -> str:
    """A short name of a node for the figure: its label, else the start of its key."""
    return node.label or node.key[:12]


def lineage_figure(graph: LineageGraph) -> dict[str, Any]:
    """The graph as a plotly figure: one column per kind (dataset → run → model version →
    deployment → monitor), nodes as markers with their names, edges as line segments.

    plotly reads a few HTML tags in text, so every text is escaped first and shown as typed."""
    columns: dict[str, list[LineageNode]] = {}
    for node in sorted(graph.nodes.values(), key=lambda n: (n.label, n.key)):
        columns.setdefault(node.kind, []).append(node)
    x_of = {kind: i for i, kind in enumerate(NODE_KINDS)}
    place: dict[Node, tuple[float, float]] = {}
    for kind, nodes in columns.items():
        x = x_of.get(kind, len(x_of))
        stagger = STAGGER if x % 2 else 0.0  # so that an edge skipping a column misses its nodes
        for i, node in enumerate(nodes):
            place[(node.kind, node.key)] = (float(x), (len(nodes) - 1) / 2 - i + stagger)
    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    arrows: list[dict[str, Any]] = []
    for edge in graph.edges:
        start, end = place.get((edge.src_kind, edge.src_key)), place.get((edge.dst_kind, edge.dst_key))
        if start is not None and end is not None:
            edge_x += [start[0], end[0], None]
            edge_y += [start[1], end[1], None]
            arrows.append({**ARROW, "ax": start[0], "ay": start[1], "x": end[0], "y": end[1]})
    lines = {"color": "#98a2b3", "width": 1.5}
    edges = {"type": "scatter", "mode": "lines", "x": edge_x, "y": edge_y, "hoverinfo": "skip"}
    traces: list[dict[str, Any]] = [{**edges, "line": lines, "showlegend": False}]
    root = (graph.root.kind, graph.root.key)
    for kind in [k for k in NODE_KINDS if k in columns]:
        nodes = columns[kind]
        roots = [(n.kind, n.key) == root for n in nodes]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": kind.replace("_", " "),
                "x": [place[(n.kind, n.key)][0] for n in nodes],
                "y": [place[(n.kind, n.key)][1] for n in nodes],
                "text": [html.escape(_node_text(n)) for n in nodes],
                "hovertext": [html.escape(f"{n.kind} {n.label} {n.key}".replace("  ", " ")) for n in nodes],
                "hoverinfo": "text",
                "textposition": "top center",
                "marker": {
                    "color": KIND_COLOURS.get(kind, "#667085"),
                    "size": [20 if is_root else 13 for is_root in roots],
                    "line": {"color": "#1d2330", "width": [2 if is_root else 0 for is_root in roots]},
                },
            }
        )
    tallest = max((len(nodes) for nodes in columns.values()), default=1)
    return {
        "data": traces,
        "layout": {
            "height": max(300, 70 * tallest + 120),
            "hovermode": "closest",
            "annotations": arrows[:MAX_ARROWS],
            "showlegend": True,
            "legend": {"orientation": "h"},
            "xaxis": {
                "tickvals": list(range(len(NODE_KINDS))),
                "ticktext": [kind.replace("_", " ") for kind in NODE_KINDS],
                "range": [-0.5, len(NODE_KINDS) - 0.5],
                "showgrid": False,
                "zeroline": False,
            },
            "yaxis": {"visible": False, "range": [-tallest / 2 - 0.5, tallest / 2 + 0.5 + STAGGER]},
        },
    }
