"""The lineage graph through a server."""

from __future__ import annotations

from loopline.client.connection import ServerConnection
from loopline.core.lineage import LineageGraph, LineageNode, Node


class RemoteLineageService:
    """Reads of the server's lineage graph."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def graph(self, root: Node, max_depth: int = 20) -> LineageGraph:
        params = {"kind": root[0], "key": root[1], "max_depth": max_depth}
        return LineageGraph.from_dict(self._connection.call("GET", "/lineage", params=params))

    def downstream(self, root: Node, kind: str) -> list[LineageNode]:
        params = {"kind": root[0], "key": root[1], "of_kind": kind}
        return [LineageNode(**n) for n in self._connection.call("GET", "/lineage/downstream", params=params)]

    def models_trained_on(self, dataset_digest: str) -> list[tuple[str, int]]:
        found = self._connection.call("GET", "/lineage/models", params={"dataset_digest": dataset_digest})
        return [(m["model"], m["version"]) for m in found]
