"""The tracking service's interface: experiments, runs, their values and artifacts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from loopline.core.entities import (
    DEFAULT_EXPERIMENT,
    DEFAULT_PROJECT,
    ArtifactEntry,
    Experiment,
    ExperimentActivity,
    ExperimentRef,
    Metric,
    MetricSeries,
    Principal,
    Project,
    Run,
    RunPage,
    RunStatus,
    Source,
)


class Tracking(Protocol):
    """Experiments, runs, their params, metrics, tags, inputs and artifacts, acting as `principal`."""

    principal: Principal

    def create_experiment(
        self, name: str, project: str = DEFAULT_PROJECT, description: str = ""
    ) -> Experiment:
        """A new experiment in `project` (created with its first experiment)."""

    def get_experiment(self, ref: ExperimentRef, project: str = DEFAULT_PROJECT) -> Experiment:
        """An experiment by id, or by name within `project`."""

    def get_or_create_experiment(self, ref: ExperimentRef, project: str = DEFAULT_PROJECT) -> Experiment:
        """The experiment `ref`, created in `project` if it is a name that does not exist yet."""

    def list_experiments(self, project: str | None = None) -> list[Experiment]:
        """The experiments of `project`, or of every project the principal sees."""

    def experiment_activity(self, project: str | None = None) -> list[ExperimentActivity]:
        """Run counts and the newest run's start, of each experiment visible to the caller."""

    def list_projects(self) -> list[Project]:
        """The projects the principal sees."""

    def start_run(
        self,
        experiment: ExperimentRef = DEFAULT_EXPERIMENT,
        *,
        project: str = DEFAULT_PROJECT,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
        source: Source | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> Run:
        """A new RUNNING run of `experiment` (created if it is a new name)."""

    def end_run(self, run_id: str, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> Run:
        """Record how a run ended. Ending it again the same way changes nothing."""

    def import_run(self, run: Run, experiment: ExperimentRef, project: str = DEFAULT_PROJECT) -> Run:
        """Recreate a run kept by another tracking system, with its id, author, times and
        status (maintainers); a run imported before is returned as it is."""

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        """Note that the process running these runs is alive."""

    def get_run(self, run_id: str) -> Run:
        """A run with its params, tags and latest metric values."""

    def delete_run(self, run_id: str) -> None:
        """Hide a run from searches; its data stays stored."""

    def search_runs(
        self,
        experiments: ExperimentRef | Sequence[ExperimentRef] | None = None,
        *,
        project: str = DEFAULT_PROJECT,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
        columns: Sequence[str] | None = None,
    ) -> RunPage:
        """One page of runs matching `filter` (see `loopline.core.search`), in `order_by` order.

        With `columns` (`params.lr`, `metrics.auc`, `tags.team`), each run brings only those
        params, metrics and tags: what a table of a few columns needs, however many keys the
        runs hold."""

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> None:
        """Log params, tags and metric values. A retried call with the same `batch_id` is a no-op."""

    def log_metric_batch(self, run_id: str, metrics: Sequence[Metric], batch_id: str) -> bool:
        """Store already-checked metric values once per `batch_id` (the background writer's path)."""

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every value of metric `key`, in step order."""

    def metric_series(
        self,
        run_id: str,
        key: str,
        *,
        buckets: int = 300,
        axis: str = "step",
        start: int | None = None,
        end: int | None = None,
    ) -> MetricSeries:
        """Metric `key` between `start` and `end` on `axis` ("step" or "time", in ms), reduced
        by the store to at most `buckets` buckets of min, max and newest value: what a chart
        draws, whatever the length of the history."""

    def log_artifact_bytes(
        self, run_id: str, name: str, data: bytes, content_type: str | None = None
    ) -> ArtifactEntry:
        """Store `data` as the run's artifact `name`."""

    def log_artifact_path(
        self, run_id: str, path: str | os.PathLike[str], name: str | None = None
    ) -> list[ArtifactEntry]:
        """Log a file, or every file below a directory, under `name` (default: its base name)."""

    def link_model_files(self, run_id: str, model: str, version: int) -> None:
        """List a model version's files among the run's artifacts."""

    def log_input(self, run_id: str, name: str, digest: str) -> None:
        """Record that the run read the dataset whose content hash is `digest`."""

    def inputs(self, run_id: str) -> list[tuple[str, str]]:
        """(name, digest) of every dataset the run recorded as an input."""

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        """The run's artifacts whose names start with `prefix`."""

    def read_artifact(self, run_id: str, name: str) -> bytes:
        """The artifact's bytes, verified against their hash."""

    def artifact_file(self, run_id: str, name: str) -> tuple[ArtifactEntry, Path]:
        """The artifact's entry and a local file of its verified bytes."""

    def download_artifacts(self, run_id: str, target: str | os.PathLike[str], prefix: str = "") -> list[Path]:
        """Write the run's artifacts (those under `prefix`) below directory `target`."""
