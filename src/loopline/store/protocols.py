"""Narrow storage interfaces, one per role. Services depend on these, never on SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from loopline.core.entities import (
    ArtifactEntry,
    Experiment,
    Metric,
    Project,
    Run,
    RunPage,
    RunStatus,
    Source,
)
from loopline.core.search import Expr, OrderKey


class ExperimentStore(Protocol):
    def list_projects(self) -> list[Project]: ...

    def create_experiment(self, project: str, name: str, description: str, created_by: str) -> Experiment: ...

    def get_experiment(self, experiment_id: int) -> Experiment: ...

    def find_experiment(self, project: str, name: str) -> Experiment | None: ...

    def list_experiments(self, project: str | None = None) -> list[Experiment]: ...


class RunStore(Protocol):
    def create_run(
        self,
        *,
        run_id: str,
        experiment_id: int,
        name: str,
        created_by: str,
        start_time: int,
        parent_id: str | None,
        source: Source,
        environment: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> Run: ...

    def get_run(self, run_id: str) -> Run: ...

    def end_run(self, run_id: str, status: RunStatus, end_time: int, error: str | None) -> Run: ...

    def delete_run(self, run_id: str, deleted_at: int) -> None: ...

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def search_runs(
        self,
        experiment_ids: Sequence[int],
        filter_expr: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        page_token: str | None,
        include_deleted: bool = False,
    ) -> RunPage: ...


class MetricStore(Protocol):
    def log_metrics(self, run_id: str, metrics: Sequence[Metric], batch_id: str) -> bool:
        """Store a batch once: False when `batch_id` was stored before (a retried call)."""
        ...

    def metric_history(self, run_id: str, key: str) -> list[Metric]: ...


class ArtifactIndex(Protocol):
    def add_artifact(self, run_id: str, entry: ArtifactEntry) -> None: ...

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]: ...

    def get_artifact(self, run_id: str, name: str) -> ArtifactEntry: ...
