"""Lineage: one graph from datasets through runs and model versions to deployments."""

from loopline.lineage.service import LineageGraph, LineageNode, LineageService

__all__ = ["LineageGraph", "LineageNode", "LineageService"]
