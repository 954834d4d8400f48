"""The lineage service's interface: one graph from datasets through runs and model
versions to deployments."""

from __future__ import annotations

from typing import Protocol

from loopline.core.lineage import LineageGraph, LineageNode, Node


class Lineage(Protocol):
    """Reads of the lineage graph; services record its edges as they act."""

    def graph(self, root: Node, max_depth: int = 20) -> LineageGraph:
        """Everything upstream and downstream of `root`, `max_depth` edges away at most."""

    def downstream(self, root: Node, kind: str) -> list[LineageNode]:
        """The nodes of `kind` downstream of `root`."""

    def models_trained_on(self, dataset_digest: str) -> list[tuple[str, int]]:
        """(model, version) of every version trained on the dataset with this content hash."""
