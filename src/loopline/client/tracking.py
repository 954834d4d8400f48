"""Tracking over HTTP: the same methods, answered by a loopline server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loopline.artifacts import check_artifact_name, destination, files_under
from loopline.client.connection import ServerConnection, path_segments, segment, texts
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
from loopline.core.errors import AlreadyExists, NotFound
from loopline.core.validation import check_metrics
from loopline.core.wire import decode, metric_to_wire, to_wire


def whoami(connection: ServerConnection) -> Principal:
    found = connection.call("GET", "/whoami")
    return Principal(found["name"], is_owner=found["admin"])


class RemoteTrackingService:
    """Every call is one request to the server, which runs the real tracking service (its
    checks, roles and audit included) as the token's owner."""

    def __init__(self, connection: ServerConnection, principal: Principal) -> None:
        self._connection = connection
        self.principal = principal

    @property
    def connection(self) -> ServerConnection:
        return self._connection

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._connection.call(method, path, **kwargs)

    # experiments -----------------------------------------------------------------------

    def create_experiment(
        self, name: str, project: str = DEFAULT_PROJECT, description: str = ""
    ) -> Experiment:
        body = {"name": name, "project": project, "description": description}
        return decode(Experiment, self._call("POST", "/experiments", json=body))

    def get_experiment(self, ref: ExperimentRef, project: str = DEFAULT_PROJECT) -> Experiment:
        if isinstance(ref, int):
            return decode(Experiment, self._call("GET", f"/experiments/{ref}"))
        path = f"/projects/{segment(project)}/experiments/{segment(ref)}"
        return decode(Experiment, self._call("GET", path))

    def get_or_create_experiment(self, ref: ExperimentRef, project: str = DEFAULT_PROJECT) -> Experiment:
        if isinstance(ref, int):
            return self.get_experiment(ref)
        try:
            return self.get_experiment(ref, project)
        except NotFound:
            pass
        try:
            return self.create_experiment(ref, project)
        except AlreadyExists:
            return self.get_experiment(ref, project)

    def list_experiments(self, project: str | None = None) -> list[Experiment]:
        return [decode(Experiment, e) for e in self._connection.pages("/experiments", {"project": project})]

    def experiment_activity(self, project: str | None = None) -> list[ExperimentActivity]:
        params = {} if project is None else {"project": project}
        found = self._connection.pages("/experiments/activity", params=params)
        return [decode(ExperimentActivity, a) for a in found]

    def list_projects(self) -> list[Project]:
        return [decode(Project, p) for p in self._connection.pages("/projects")]

    # runs ------------------------------------------------------------------------------

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
        body = {
            "experiment": experiment, "project": project, "run_name": run_name,
            "tags": texts(tags), "parent_id": parent_id,
            "source": to_wire(source), "environment": to_wire(dict(environment or {})),
        }  # fmt: skip
        return decode(Run, self._call("POST", "/runs", json=body))

    def import_run(self, run: Run, experiment: ExperimentRef, project: str = DEFAULT_PROJECT) -> Run:
        body = {"run": to_wire(run), "experiment": experiment, "project": project}
        return decode(Run, self._call("POST", "/runs/import", json=body))

    def end_run(self, run_id: str, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> Run:
        body = {"status": RunStatus(status).value, "error": error}
        return decode(Run, self._call("POST", f"/runs/{segment(run_id)}/end", json=body))

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        self._call("POST", "/runs/heartbeat", json={"run_ids": list(run_ids)})

    def get_run(self, run_id: str) -> Run:
        return decode(Run, self._call("GET", f"/runs/{segment(run_id)}"))

    def delete_run(self, run_id: str) -> None:
        self._call("DELETE", f"/runs/{segment(run_id)}")

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
        refs = None if experiments is None else (
            [experiments] if isinstance(experiments, str | int) else list(experiments)
        )  # fmt: skip
        body = {
            "experiments": refs, "project": project, "filter": filter,
            "order_by": [order_by] if isinstance(order_by, str) else list(order_by or []),
            "max_results": max_results, "page_token": page_token, "include_deleted": include_deleted,
            "columns": None if columns is None else list(columns),
        }  # fmt: skip
        found = self._call("POST", "/runs/search", json=body)
        return RunPage([decode(Run, r) for r in found["items"]], found["next_page_token"])

    # params, metrics, tags -------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> None:
        checked = check_metrics(metrics)  # bad values fail here, with the local message
        body = {
            "metrics": [metric_to_wire(*m) for m in checked],
            "params": texts(params),
            "tags": texts(tags),
            "batch_id": batch_id,
        }
        self._call("POST", f"/runs/{segment(run_id)}/log-batch", json=body)

    def log_metric_batch(self, run_id: str, metrics: Sequence[Metric], batch_id: str) -> bool:
        self.log_batch(run_id, metrics, batch_id=batch_id)
        return True

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        path = f"/runs/{segment(run_id)}/metrics/{segment(key)}"
        return [decode(Metric, m) for m in self._connection.pages(path, size=10_000)]

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
        query = {"key": key, "buckets": buckets, "axis": axis, "start": start, "end": end}
        bounded = {name: value for name, value in query.items() if value is not None}
        return decode(MetricSeries, self._call("GET", f"/runs/{segment(run_id)}/series", params=bounded))

    # artifacts -------------------------------------------------------------------------

    def log_artifact_bytes(
        self, run_id: str, name: str, data: bytes, content_type: str | None = None
    ) -> ArtifactEntry:
        path = f"/runs/{segment(run_id)}/artifacts/{path_segments(check_artifact_name(name))}"
        return decode(ArtifactEntry, self._call("PUT", path, content=data))

    def log_artifact_path(
        self, run_id: str, path: str | os.PathLike[str], name: str | None = None
    ) -> list[ArtifactEntry]:
        source = Path(path)
        if not source.exists():
            raise NotFound(f"cannot log {source}: no such file or directory")
        base = check_artifact_name(name if name is not None else source.name)
        files = (
            [(source, base)] if source.is_file() else [(p, f"{base}/{rel}") for p, rel in files_under(source)]
        )
        for _, artifact_name in files:
            check_artifact_name(artifact_name)
        entries = []
        for file, artifact_name in files:
            route = f"/runs/{segment(run_id)}/artifacts/{path_segments(artifact_name)}"
            entries.append(decode(ArtifactEntry, self._connection.upload(route, file)))
        return entries

    def link_model_files(self, run_id: str, model: str, version: int) -> None:
        self._call("POST", f"/runs/{segment(run_id)}/model-files", json={"model": model, "version": version})

    def log_input(self, run_id: str, name: str, digest: str) -> None:
        self._call("POST", f"/runs/{segment(run_id)}/inputs", json={"name": name, "digest": digest})

    def inputs(self, run_id: str) -> list[tuple[str, str]]:
        return [(i["name"], i["digest"]) for i in self._connection.pages(f"/runs/{segment(run_id)}/inputs")]

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        found = self._connection.pages(f"/runs/{segment(run_id)}/artifacts", {"prefix": prefix}, 10_000)
        return [decode(ArtifactEntry, a) for a in found]

    def artifact_file(self, run_id: str, name: str) -> tuple[ArtifactEntry, Path]:
        check_artifact_name(name)
        entry = next((e for e in self.list_artifacts(run_id, name) if e.name == name), None)
        if entry is None:
            raise NotFound(f"run {run_id} has no artifact {name!r}")
        cached = Path(tempfile.gettempdir(), "loopline-blobs", entry.digest)
        if not cached.exists():
            self._connection.download(self._artifact_route(run_id, name), cached, entry.digest)
        return entry, cached

    def read_artifact(self, run_id: str, name: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="loopline-artifact-") as tmp:
            target = Path(tmp, "artifact")
            self._connection.download(self._artifact_route(run_id, name), target)
            return target.read_bytes()

    def _artifact_route(self, run_id: str, name: str) -> str:
        return f"/runs/{segment(run_id)}/artifacts/{path_segments(check_artifact_name(name))}"

    def download_artifacts(self, run_id: str, target: str | os.PathLike[str], prefix: str = "") -> list[Path]:
        root = Path(target)
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for entry in self.list_artifacts(run_id, prefix):
            path = destination(root, entry.name)
            self._connection.download(self._artifact_route(run_id, entry.name), path, entry.digest)
            written.append(path)
        return written
