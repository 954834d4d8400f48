"""Lineage: one graph from datasets through runs and model versions to deployments."""

from loopline.core.lineage import LineageGraph, LineageNode
from loopline.lineage.service import LineageService

__all__ = ["LineageGraph", "LineageNode", "LineageService"]
