"""Experiment tracking: the one place its rules live. SDK, CLI and server all call this."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loopline.artifacts import BlobStore, check_artifact_name, destination, files_under, media_type
from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.datasets import VALIDATION_TAG
from loopline.core.entities import (
    DEFAULT_EXPERIMENT,
    DEFAULT_PROJECT,
    SERIES_AXES,
    ArtifactEntry,
    Experiment,
    ExperimentActivity,
    ExperimentRef,
    LoggedModel,
    Metric,
    MetricSeries,
    Project,
    Run,
    RunPage,
    RunStatus,
    Source,
)
from loopline.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound, PermissionDenied
from loopline.core.ids import is_id, new_id
from loopline.core.registry import LineageEdge
from loopline.core.search import check_search, parse_filter, parse_order_by
from loopline.core.validation import (
    check_key,
    check_metrics,
    check_name,
    check_param_value,
    check_tag_value,
    check_text,
)
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.store import MetadataStore, atomic
from loopline.tracking.names import random_run_name

MAX_ERROR_LENGTH = 16_000
MAX_HEARTBEAT_RUNS = 1000
MAX_SERIES_BUCKETS = 2000
_PROJECTED = {"params": "param", "metrics": "metric", "tags": "tag"}


def _projection(columns: Sequence[str]) -> dict[str, list[str]]:
    """`params.lr`-style column names as keys per entity; says which name is not one."""
    keys: dict[str, list[str]] = {}
    for column in columns:
        prefix, _, key = column.partition(".")
        if prefix not in _PROJECTED or not key:
            raise InvalidInput(f"column {column!r} is not params.KEY, metrics.KEY or tags.KEY")
        keys.setdefault(_PROJECTED[prefix], []).append(key)
    return keys


SILENT_AFTER_S = 300.0  # ten missed heartbeats (`loopline.tracking.heartbeat`)


class TrackingService:
    """Experiments, runs, their data and artifacts, acting as `principal`."""

    def __init__(
        self, store: MetadataStore, blobs: BlobStore, *, authorizer: Authorizer, audit: AuditTrail
    ) -> None:
        self._store = store
        self._blobs = blobs
        self.principal = authorizer.principal
        self._access = authorizer
        self._audit = audit

    # experiments -----------------------------------------------------------------------

    @atomic
    def create_experiment(
        self, name: str, project: str = DEFAULT_PROJECT, description: str = ""
    ) -> Experiment:
        check_name("experiment name", name)
        check_name("project name", project)
        self._access.require(project, Role.EDITOR)
        created = self._store.experiments.create_experiment(project, name, description, self.principal.name)
        after = {"project": project, "name": name}
        self._audit.record("experiment.create", f"experiment:{created.id}", after=after)
        return created

    def get_experiment(self, ref: ExperimentRef, project: str = DEFAULT_PROJECT) -> Experiment:
        """An experiment by id, or by name within `project`."""
        if isinstance(ref, int):
            if not 0 <= ref < 2**63:  # no id is stored outside int64
                raise NotFound(f"experiment {ref} does not exist")
            self._access.require_experiment(ref, Role.VIEWER)
            return self._store.experiments.get_experiment(ref)
        self._access.require(project, Role.VIEWER)
        found = self._store.experiments.find_experiment(project, ref)
        if found is None:
            raise NotFound(f"experiment {ref!r} does not exist in project {project!r}")
        return found

    def get_or_create_experiment(self, ref: ExperimentRef, project: str = DEFAULT_PROJECT) -> Experiment:
        if isinstance(ref, int):
            return self.get_experiment(ref)
        self._access.require(project, Role.VIEWER)
        found = self._store.experiments.find_experiment(project, ref)
        if found is not None:
            return found
        try:
            return self.create_experiment(ref, project)
        except AlreadyExists:  # created by a concurrent caller in between
            return self.get_experiment(ref, project)

    def list_experiments(self, project: str | None = None) -> list[Experiment]:
        visible = self._access.visible_projects()
        found = self._store.experiments.list_experiments(project)
        return found if visible is None else [e for e in found if e.project in visible]

    def experiment_activity(self, project: str | None = None) -> list[ExperimentActivity]:
        ids = [e.id for e in self.list_experiments(project)]
        return self._store.experiments.activity(ids) if ids else []

    def list_projects(self) -> list[Project]:
        """Projects group experiments; one is created with its first experiment."""
        visible = self._access.visible_projects()
        found = self._store.experiments.list_projects()
        return found if visible is None else [p for p in found if p.name in visible]

    # runs ------------------------------------------------------------------------------

    @atomic
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
        exp = self.get_or_create_experiment(experiment, project)
        self._access.require(exp.project, Role.EDITOR)
        name = check_name("run name", run_name) if run_name is not None else random_run_name()
        checked_tags = _checked_tags(tags or {})
        if parent_id is not None:
            parent = self.get_run(parent_id)
            if parent.experiment_id != exp.id:
                raise InvalidInput(
                    f"a child run belongs to its parent's experiment: parent run {parent_id} is in "
                    f"experiment {parent.experiment_id}, not in {exp.name!r} (from the SDK, start it "
                    "with nested=False to make it a top-level run)"
                )
        run = self._store.runs.create_run(
            run_id=new_id(),
            experiment_id=exp.id,
            name=name,
            created_by=self.principal.name,
            start_time=now_ms(),
            parent_id=parent_id,
            source=source or Source(),
            environment=environment or {},
            tags=checked_tags,
        )
        self._audit.record("run.start", f"run:{run.id}", after={"experiment": exp.id, "name": run.name})
        return run

    @atomic
    def import_run(self, run: Run, experiment: ExperimentRef, project: str = DEFAULT_PROJECT) -> Run:
        """Recreate `run`, kept by another tracking system, in `experiment`: with its id, name,
        author, times, status, params and tags (metrics and artifacts follow through
        `log_batch` and the artifact calls). A run imported before is returned as it is, so an
        import can be re-run. Maintainers only: the author and times are taken as given."""
        exp = self.get_or_create_experiment(experiment, project)
        self._access.require(exp.project, Role.MAINTAINER)
        _check_run_id(run.id)
        with contextlib.suppress(NotFound):
            existing = self._store.runs.get_run(run.id)
            if existing.experiment_id != exp.id:
                raise Conflict(f"run {run.id} exists already, in experiment {existing.experiment_id}")
            return existing
        if run.parent_id is not None:
            _check_run_id(run.parent_id)
        self._store.runs.create_run(
            run_id=run.id,
            experiment_id=exp.id,
            name=check_name("run name", run.name),
            created_by=check_name("run author", run.created_by),
            start_time=run.start_time,
            parent_id=run.parent_id,
            source=run.source,
            environment=run.environment,
            tags=_checked_tags(run.tags),
        )
        self._store.runs.log_params(
            run.id, {check_key("param key", k): check_param_value(k, v) for k, v in run.params.items()}
        )
        status = RunStatus(run.status)
        if status.is_terminal:
            error = None if run.error is None else run.error[-MAX_ERROR_LENGTH:]
            self._store.runs.end_run(run.id, status, run.end_time or run.start_time, error)
        if run.deleted:
            self._store.runs.delete_run(run.id, now_ms())
        self._audit.record(
            "run.import", f"run:{run.id}", after={"experiment": exp.id, "author": run.created_by}
        )
        return self._store.runs.get_run(run.id)

    @atomic
    def end_run(self, run_id: str, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> Run:
        """Record how a run ended. Ending it again the same way changes nothing."""
        status = RunStatus(status)
        if not status.is_terminal:
            raise InvalidInput(f"a run ends as FINISHED, FAILED or KILLED, not {status.value}")
        run = self.get_run(run_id)
        self._access.require_run(run_id, Role.EDITOR)
        if run.status.is_terminal:
            if run.status is status:
                return run
            raise Conflict(f"run {run_id} already ended as {run.status.value}; it cannot become {status}")
        if error is not None and len(error) > MAX_ERROR_LENGTH:
            error = "..." + error[-MAX_ERROR_LENGTH:]
        ended = self._store.runs.end_run(run_id, status, now_ms(), error)
        self._audit.record("run.end", f"run:{run_id}", before=run.status.value, after=status.value)
        return ended

    def get_run(self, run_id: str) -> Run:
        self._access.require_run(_check_run_id(run_id), Role.VIEWER)
        return self._store.runs.get_run(run_id)

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        """Note that the process running these runs is alive (the SDK sends this every 30 s);
        a run whose heartbeats stop is ended as KILLED by `end_silent_runs`."""
        if len(run_ids) > MAX_HEARTBEAT_RUNS:
            raise InvalidInput(f"a heartbeat names at most {MAX_HEARTBEAT_RUNS} runs, not {len(run_ids)}")
        for run_id in run_ids:
            self._access.require_run(_check_run_id(run_id), Role.EDITOR)
        self._store.runs.heartbeat(run_ids, now_ms())

    @atomic
    def end_silent_runs(self, silent_for_s: float = SILENT_AFTER_S) -> list[str]:
        """End as KILLED the RUNNING runs that sent heartbeats but none for `silent_for_s`
        (their process died without a word), each on the audit trail; a worker calls this
        on its rounds. Runs that never sent one (started by other clients) are left alone.
        Administrators only."""
        if not self.principal.is_owner:
            raise PermissionDenied("only an administrator may end other processes' runs")
        now = now_ms()
        why = f"its process sent no heartbeat for {silent_for_s:g} s: it died, or lost the store"
        ended = self._store.runs.end_silent_runs(now - int(silent_for_s * 1000), now, why)
        for run_id in ended:
            self._audit.record("run.end", f"run:{run_id}", before="RUNNING", after="KILLED", reason=why)
        return ended

    @atomic
    def delete_run(self, run_id: str) -> None:
        """Hide a run from searches; its data stays stored."""
        self._access.require_run(_check_run_id(run_id), Role.EDITOR)
        self._store.runs.delete_run(run_id, now_ms())
        self._audit.record("run.delete", f"run:{run_id}")

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
        """One page of runs matching `filter` (see `loopline.core.search`), in `order_by` order."""
        filter_expr = parse_filter(filter)
        order = parse_order_by(order_by)
        check_search(filter_expr, order)
        if experiments is None:
            ids = [e.id for e in self.list_experiments(project)]
        else:
            refs = [experiments] if isinstance(experiments, str | int) else list(experiments)
            ids = [self.get_experiment(ref, project).id for ref in refs]
        if not ids:
            return RunPage([], None)
        projection = None if columns is None else _projection(columns)
        return self._store.runs.search_runs(
            ids, filter_expr, order, max_results, page_token, include_deleted, projection
        )

    # params, metrics, tags -------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> None:
        """Log params, tags and metric values. A retried call with the same `batch_id` is a no-op."""
        checked_metrics = check_metrics(metrics)
        checked_params = {
            check_key("param key", k): check_param_value(k, v) for k, v in (params or {}).items()
        }
        checked_tags = _checked_tags(tags or {})
        self._access.require_run(_check_run_id(run_id), Role.EDITOR)
        self._store.runs.log_params(run_id, checked_params)
        if checked_tags:  # tags carry evidence (a validation's verdict, say): each change on record
            self._store.atomically(lambda: self._set_tags(run_id, checked_tags))
        if checked_metrics or batch_id is not None:
            self._store.metrics.log_metrics(run_id, checked_metrics, batch_id or new_id())

    def _set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._store.runs.set_tags(run_id, tags)
        self._audit.record("run.tags", f"run:{run_id}", after=tags)

    def log_metric_batch(self, run_id: str, metrics: Sequence[Metric], batch_id: str) -> bool:
        """Store already-checked metric values once per `batch_id` (the background writer's path)."""
        self._access.require_run(run_id, Role.EDITOR)
        return self._store.metrics.log_metrics(run_id, metrics, batch_id)

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        self._access.require_run(_check_run_id(run_id), Role.VIEWER)
        return self._store.metrics.metric_history(run_id, check_key("metric key", key))

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
        if not 1 <= buckets <= MAX_SERIES_BUCKETS:
            raise InvalidInput(f"buckets must be between 1 and {MAX_SERIES_BUCKETS}, got {buckets}")
        if axis not in SERIES_AXES:
            raise InvalidInput(f"axis must be one of {', '.join(SERIES_AXES)}, not {axis!r}")
        if start is not None and end is not None and start > end:
            raise InvalidInput(f"the range's start ({start}) is after its end ({end})")
        self._access.require_run(_check_run_id(run_id), Role.VIEWER)
        return self._store.metrics.metric_series(
            run_id, check_key("metric key", key), buckets, axis, start, end
        )

    # artifacts -------------------------------------------------------------------------

    def log_artifact_bytes(
        self, run_id: str, name: str, data: bytes, content_type: str | None = None
    ) -> ArtifactEntry:
        check_artifact_name(name)
        self._require_writable(run_id)
        blob = self._blobs.put_bytes(data)
        return self._index(run_id, name, blob.digest, blob.size, content_type)

    def log_artifact_path(
        self, run_id: str, path: str | os.PathLike[str], name: str | None = None
    ) -> list[ArtifactEntry]:
        """Log a file, or every file below a directory, under `name` (default: its base name)."""
        source = Path(path)
        if not source.exists():
            raise NotFound(f"cannot log {source}: no such file or directory")
        base = name if name is not None else source.name
        check_artifact_name(base)
        files = (
            [(source, base)] if source.is_file() else [(p, f"{base}/{rel}") for p, rel in files_under(source)]
        )
        for _, artifact_name in files:
            check_artifact_name(artifact_name)
        self._require_writable(run_id)
        entries = []
        for file, artifact_name in files:
            blob = self._blobs.put_file(file)
            entries.append(self._index(run_id, artifact_name, blob.digest, blob.size, None))
        return entries

    def link_model_files(self, run_id: str, model: str, version: int) -> None:
        """List a model version's files among the run's artifacts under
        `models/NAME/VERSION/`, without storing them again."""
        self._require_writable(run_id)
        self._access.model(model, Role.VIEWER)
        stored = self._store.registry.get_version(model, version)
        for path, (digest, size) in sorted(stored.files.items()):
            name = check_artifact_name(f"models/{stored.model}/{stored.version}/{path}")
            if not self._blobs.exists(digest):
                raise NotFound(f"blob sha256:{digest} of {name!r} is not in the artifact store")
            self._index(run_id, name, digest, size, None)

    def log_input(self, run_id: str, name: str, digest: str) -> None:
        """Record that the run read the dataset whose content hash is `digest`."""
        check_name("dataset name", name)
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise InvalidInput(f"dataset digest {digest!r} is not a sha256 hex digest")
        self._require_writable(run_id)
        edge = LineageEdge("dataset", digest, "input_to", "run", run_id, name, now_ms())
        self._store.lineage.add_edges([edge])

    def inputs(self, run_id: str) -> list[tuple[str, str]]:
        """(name, digest) of every dataset the run recorded as an input."""
        self._access.require_run(_check_run_id(run_id), Role.VIEWER)
        edges = self._store.lineage.edges_touching([("run", run_id)])
        return [(e.label, e.src_key) for e in edges if e.dst_kind == "run" and e.src_kind == "dataset"]

    def _require_writable(self, run_id: str) -> None:
        self._access.require_run(_check_run_id(run_id), Role.EDITOR)
        self._store.runs.get_run(run_id)

    def _index(
        self, run_id: str, name: str, digest: str, size: int, content_type: str | None
    ) -> ArtifactEntry:
        entry = ArtifactEntry(name, digest, size, content_type or media_type(name), now_ms())
        self._store.artifacts.add_artifact(run_id, entry)
        return entry

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        self.get_run(run_id)
        return self._store.artifacts.list_artifacts(run_id, prefix)

    def read_artifact(self, run_id: str, name: str) -> bytes:
        """The artifact's bytes, verified against their hash."""
        entry = self._artifact(run_id, name)
        return self._blobs.read(entry.digest, name)

    def artifact_file(self, run_id: str, name: str) -> tuple[ArtifactEntry, Path]:
        """The artifact's entry and a local file of its verified bytes, for sending on."""
        entry = self._artifact(run_id, name)
        return entry, self._blobs.local_file(entry.digest, name)

    def _artifact(self, run_id: str, name: str) -> ArtifactEntry:
        self._access.require_run(_check_run_id(run_id), Role.VIEWER)
        return self._store.artifacts.get_artifact(run_id, check_artifact_name(name))

    # models logged in MLflow's format -------------------------------------------------

    @atomic
    def create_logged_model(
        self,
        experiment: ExperimentRef,
        name: str,
        *,
        run_id: str | None = None,
        model_type: str = "",
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> LoggedModel:
        """Begin a model logged in MLflow's format: PENDING while its files are uploaded as
        the run's artifacts under `artifact_prefix`, then `finalize_logged_model`. A model
        logged outside a run gets a run of its own, named after it, to hold its files."""
        exp = self.get_experiment(experiment)
        name = check_name("model name", name)
        if run_id is None:
            run_id = self.start_run(exp.id, run_name=name).id
        run = self.get_run(run_id)
        self._access.require_run(run_id, Role.EDITOR)
        if run.experiment_id != exp.id:
            raise InvalidInput(f"run {run_id} is in experiment {run.experiment_id}, not in {exp.id}")
        at = now_ms()
        model = LoggedModel(
            id=f"m-{new_id()}",
            experiment_id=exp.id,
            run_id=run_id,
            name=name,
            model_type=check_text("model type", model_type, 250),
            status="PENDING",
            created_at=at,
            updated_at=at,
            created_by=self.principal.name,
            tags=_checked_tags(tags or {}),
            params={check_key("param key", k): check_param_value(k, v) for k, v in (params or {}).items()},
        )
        created = self._store.logged_models.create(model)
        self._audit.record("logged_model.create", f"run:{run_id}", after={"id": model.id, "name": name})
        return created

    def get_logged_model(self, model_id: str) -> LoggedModel:
        found = self._store.logged_models.get(_check_logged_model_id(model_id))
        self._access.require_run(found.run_id, Role.VIEWER)
        return found

    @atomic
    def finalize_logged_model(self, model_id: str, status: str) -> LoggedModel:
        """Mark a logged model READY once its files are uploaded (or FAILED)."""
        if status not in LOGGED_MODEL_STATUSES[1:]:
            raise InvalidInput(f"a logged model is finalized as READY or FAILED, not {status!r:.40}")
        model = self._logged_model_to_change(model_id)
        changed = self._store.logged_models.update(model.id, now_ms(), status=status)
        self._audit.record(
            "logged_model.finalize",
            f"run:{model.run_id}",
            before=model.status,
            after={"id": model.id, "status": status},
        )
        return changed

    def update_logged_model(
        self,
        model_id: str,
        *,
        tags: Mapping[str, Any] | None = None,
        removed_tags: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
    ) -> LoggedModel:
        """Set or remove a logged model's tags, or add params."""
        model = self._logged_model_to_change(model_id)
        checked_params = {
            check_key("param key", k): check_param_value(k, v) for k, v in (params or {}).items()
        }
        removed = [check_key("tag key", k) for k in removed_tags]
        return self._store.logged_models.update(
            model.id, now_ms(), tags=_checked_tags(tags or {}), removed_tags=removed, params=checked_params
        )

    def _logged_model_to_change(self, model_id: str) -> LoggedModel:
        model = self.get_logged_model(model_id)
        self._access.require_run(model.run_id, Role.EDITOR)
        return model

    def search_logged_models(
        self, experiments: Sequence[ExperimentRef], *, max_results: int = 100, offset: int = 0
    ) -> list[LoggedModel]:
        """The logged models of the experiments, newest first."""
        ids = [self.get_experiment(ref).id for ref in experiments]
        return self._store.logged_models.search(ids, max_results, offset) if ids else []

    def download_artifacts(self, run_id: str, target: str | os.PathLike[str], prefix: str = "") -> list[Path]:
        """Write the run's artifacts (those under `prefix`) below directory `target`."""
        root = Path(target)
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for entry in self.list_artifacts(run_id, prefix):
            path = destination(root, entry.name)
            self._blobs.download(entry.digest, entry.name, path)
            written.append(path)
        return written


_LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
LOGGED_MODEL_STATUSES = ("PENDING", "READY", "FAILED")


def _check_logged_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not _LOGGED_MODEL_ID.fullmatch(model_id):
        raise InvalidInput(f"{model_id!r:.80} is not a logged model id (m- and 32 lowercase hex digits)")
    return model_id


def _check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not is_id(run_id):
        raise InvalidInput(f"{run_id!r} is not a run id (32 lowercase hex digits)")
    return run_id


def _checked_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    if VALIDATION_TAG in tags:
        raise InvalidInput(
            f"tag {VALIDATION_TAG!r} is set by data validation (ll.validate, `loopline data validate "
            "--run`), which records its verdict; it cannot be set by hand"
        )
    return {check_key("tag key", k): check_tag_value(k, v) for k, v in tags.items()}
