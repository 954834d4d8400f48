"""The lineage graph: nodes are (kind, key), keyed by content hash where the thing has
content (a dataset's table digest, a model version's description digest) and by id
otherwise (runs, deployments). Edges point downstream: dataset -> run -> model version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.errors import InvalidInput, NotFound, PermissionDenied
from loopline.core.lineage import CONTENT_KINDS, NODE_KINDS, LineageGraph, LineageNode, Node
from loopline.core.registry import LineageEdge
from loopline.governance.authorization import Authorizer
from loopline.store import MetadataStore

MIN_PREFIX = 8  # hex digits of a digest that may name a node (the graph prints 12)


class LineageService:
    """Records the graph's edges as services act, and reads it for those who may see the
    operations project (where datasets and deployments live)."""

    def __init__(self, store: MetadataStore, authorizer: Authorizer) -> None:
        self._store = store
        self._access = authorizer

    def link(self, source: Node, relation: str, target: Node, label: str = "") -> None:
        """Record that `source` feeds `target`; `label` names the source for people."""
        for kind, _ in (source, target):
            if kind not in NODE_KINDS:
                raise InvalidInput(f"lineage node kind {kind!r} is not one of {NODE_KINDS}")
        edge = LineageEdge(source[0], source[1], relation, target[0], target[1], label, now_ms())
        self._store.lineage.add_edges([edge])

    def graph(self, root: Node, max_depth: int = 20) -> LineageGraph:
        """Everything upstream and downstream of `root`, following edges one way each. A
        content-keyed root may be named by the start of its digest (`sha256:` optional), as
        the graph is printed; a node the graph does not hold is NotFound."""
        self._access.operations(Role.VIEWER)
        root = self._resolve(root)
        edges: dict[tuple[str, ...], LineageEdge] = {}
        for direction in ("up", "down"):
            frontier = {root}
            seen = {root}
            for _ in range(max_depth):
                found = self._store.lineage.edges_touching(sorted(frontier))
                step = [
                    e
                    for e in found
                    if (direction == "up" and (e.dst_kind, e.dst_key) in frontier)
                    or (direction == "down" and (e.src_kind, e.src_key) in frontier)
                ]
                for e in step:
                    edges[(e.src_kind, e.src_key, e.relation, e.dst_kind, e.dst_key)] = e
                nxt = {
                    (e.src_kind, e.src_key) if direction == "up" else (e.dst_kind, e.dst_key) for e in step
                }
                frontier = nxt - seen
                seen |= nxt
                if not frontier:
                    break
        labels = self._labels(root, edges.values())
        graph = LineageGraph(root=LineageNode(*root, labels[root]), edges=list(edges.values()))
        graph.nodes = {node: LineageNode(*node, label) for node, label in labels.items()}
        return graph

    def _resolve(self, node: Node) -> Node:
        kind, key = node
        if kind not in NODE_KINDS:
            raise InvalidInput(f"lineage node kind {kind!r} is not one of {NODE_KINDS}")
        key = key.removeprefix("sha256:")
        if kind not in CONTENT_KINDS or len(key) in (0, 64):  # 0: a version still being stored
            return kind, key  # a whole key: its graph, empty if nothing was made from it
        found = self._store.lineage.keys_starting(kind, key) if len(key) >= MIN_PREFIX else []
        if len(found) == 1:
            return kind, found[0]
        if found:
            raise InvalidInput(f"{kind} {key} names more than one node; give more of its digest")
        raise NotFound(f"no {kind} in the lineage graph has a digest starting {key!r}")

    def downstream(self, root: Node, kind: str) -> list[LineageNode]:
        """Every node of `kind` reachable downstream of `root`."""
        graph = self.graph(root)
        reachable = {root}
        changed = True
        while changed:
            changed = False
            for e in graph.edges:
                if (e.src_kind, e.src_key) in reachable and (e.dst_kind, e.dst_key) not in reachable:
                    reachable.add((e.dst_kind, e.dst_key))
                    changed = True
        return [graph.nodes[n] for n in sorted(reachable) if n[0] == kind and n != root]

    def models_trained_on(self, dataset_digest: str) -> list[tuple[str, int]]:
        """(model, version) of every model version downstream of a dataset version."""
        found: list[tuple[str, int]] = []
        for node in self.downstream(("dataset", dataset_digest), "model_version"):
            found.extend(self._store.registry.find_by_digest(node.key))
        return sorted(set(found))

    def _labels(self, root: Node, edges: Iterable[LineageEdge]) -> dict[Node, str]:
        """Names of the nodes for people: only those of runs and models the caller may see
        (the graph itself is the operations project's; their projects may be others)."""
        labels: dict[Node, str] = {root: ""}
        for e in edges:
            labels[(e.src_kind, e.src_key)] = e.label or labels.get((e.src_kind, e.src_key), "")
            labels.setdefault((e.dst_kind, e.dst_key), "")
        for node in labels:
            kind, key = node
            if kind == "model_version":
                versions = [
                    (n, v) for n, v in self._store.registry.find_by_digest(key) if self._sees_model(n)
                ]
                labels[node] = ", ".join(f"{n}/{v}" for n, v in versions)
            elif kind == "run":
                labels[node] = self._run_name(key)
        return labels

    def _sees_model(self, name: str) -> bool:
        try:
            self._access.model(name, Role.VIEWER)
        except (PermissionDenied, NotFound):
            return False
        return True

    def _run_name(self, run_id: str) -> str:
        """The run's name, or "" when it is gone or the caller may not see it."""
        with contextlib.suppress(PermissionDenied, NotFound):
            self._access.require_run(run_id, Role.VIEWER)
            return self._store.runs.get_run(run_id).name
        return ""
