"""The lineage graph's nodes and the graph a query returns: nodes are (kind, key), keyed
by content hash where the thing has content and by id otherwise; edges point downstream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopline.core.registry import LineageEdge

NODE_KINDS = ("dataset", "run", "model_version", "deployment", "monitor", "feature_view")
CONTENT_KINDS = ("dataset", "model_version")  # keyed by sha256; the others by id or name


Node = tuple[str, str]


@dataclass(frozen=True, slots=True)
class LineageNode:
    kind: str
    key: str
    label: str


@dataclass
class LineageGraph:
    root: LineageNode
    nodes: dict[Node, LineageNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)

    def upstream_of(self, node: Node) -> list[LineageNode]:
        return [self.nodes[(e.src_kind, e.src_key)] for e in self.edges if (e.dst_kind, e.dst_key) == node]

    def downstream_of(self, node: Node) -> list[LineageNode]:
        return [self.nodes[(e.dst_kind, e.dst_key)] for e in self.edges if (e.src_kind, e.src_key) == node]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageGraph:
        """The graph `to_dict` wrote (as a server sends it)."""
        nodes = [LineageNode(n["kind"], n["key"], n["label"]) for n in data["nodes"]]
        edges = [
            LineageEdge(
                e["from"][0], e["from"][1], e["relation"], e["to"][0], e["to"][1], e["label"], e["at"]
            )
            for e in data["edges"]
        ]
        root = data["root"]
        return cls(
            LineageNode(root["kind"], root["key"], root["label"]), {(n.kind, n.key): n for n in nodes}, edges
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": {"kind": self.root.kind, "key": self.root.key, "label": self.root.label},
            "nodes": [{"kind": n.kind, "key": n.key, "label": n.label} for n in self.nodes.values()],
            "edges": [
                {
                    "from": [e.src_kind, e.src_key],
                    "relation": e.relation,
                    "to": [e.dst_kind, e.dst_key],
                    "label": e.label,
                    "at": e.created_at,
                }
                for e in self.edges
            ],
        }
