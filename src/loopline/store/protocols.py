"""Narrow storage interfaces, one per role. Services depend on these, never on SQL."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Protocol

from loopline.core.access import AliasRequest, ApiToken, Role, User
from loopline.core.audit import AuditEntry
from loopline.core.automation import Job, JobKind, JobStatus, Schedule, Trigger
from loopline.core.datasets import DatasetVersion, DataValidation
from loopline.core.entities import (
    ArtifactEntry,
    Experiment,
    ExperimentActivity,
    LoggedModel,
    Metric,
    MetricSeries,
    Project,
    Run,
    RunPage,
    RunStatus,
    Source,
)
from loopline.core.features import Entity, FeatureView, RegisteredView
from loopline.core.identities import Identity
from loopline.core.lifecycle import RetentionPolicy
from loopline.core.loops import Loop, LoopEvent, LoopState
from loopline.core.monitoring import Alert, Monitor, MonitorRun
from loopline.core.pipelines import PipelineRun, StepRun
from loopline.core.registry import (
    AliasEvent,
    Deployment,
    DeploymentRevision,
    LineageEdge,
    ModelVersion,
    RegisteredModel,
)
from loopline.core.search import Expr, OrderKey


class ExperimentStore(Protocol):
    def list_projects(self) -> list[Project]: ...

    def create_experiment(self, project: str, name: str, description: str, created_by: str) -> Experiment: ...

    def get_experiment(self, experiment_id: int) -> Experiment: ...

    def find_experiment(self, project: str, name: str) -> Experiment | None: ...

    def list_experiments(self, project: str | None = None) -> list[Experiment]: ...

    def activity(self, experiment_ids: Sequence[int]) -> list[ExperimentActivity]: ...


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

    def project_of_run(self, run_id: str) -> str: ...

    def end_run(self, run_id: str, status: RunStatus, end_time: int, error: str | None) -> Run: ...

    def delete_run(self, run_id: str, deleted_at: int) -> None: ...

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def heartbeat(self, run_ids: Sequence[str], at: int) -> None: ...

    def end_silent_runs(self, silent_since: int, at: int, error: str) -> list[str]: ...

    def add_validation(self, validation: DataValidation) -> DataValidation: ...

    def validations(self, run_id: str) -> list[DataValidation]: ...

    def search_runs(
        self,
        experiment_ids: Sequence[int],
        filter_expr: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        page_token: str | None,
        include_deleted: bool = False,
        projection: Mapping[str, Collection[str]] | None = None,
    ) -> RunPage: ...


class MetricStore(Protocol):
    def log_metrics(self, run_id: str, metrics: Sequence[Metric], batch_id: str) -> bool:
        """Store a batch once: False when `batch_id` was stored before (a retried call)."""
        ...

    def metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def metric_series(
        self, run_id: str, key: str, buckets: int, axis: str, start: int | None, end: int | None
    ) -> MetricSeries: ...


class ArtifactIndex(Protocol):
    def add_artifact(self, run_id: str, entry: ArtifactEntry) -> None: ...

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]: ...

    def get_artifact(self, run_id: str, name: str) -> ArtifactEntry: ...


class RegistryStore(Protocol):
    def create_model(
        self, name: str, display_name: str, project: str, description: str, created_by: str, created_at: int
    ) -> RegisteredModel: ...

    def get_model(self, name: str) -> RegisteredModel: ...

    def list_models(self, in_projects: Collection[str] | None = None) -> list[RegisteredModel]: ...

    def project_of_model(self, name: str) -> str: ...

    def update_model(self, name: str, description: str | None, tags: Mapping[str, str]) -> None: ...

    def delete_model(self, name: str, deleted_at: int) -> None: ...

    def begin_version(
        self,
        name: str,
        *,
        run_id: str | None,
        flavor: str,
        task: str | None,
        description: str,
        model_json: Mapping[str, Any],
        size: int,
        created_by: str,
        created_at: int,
        tags: Mapping[str, str],
    ) -> int: ...

    def finish_version(
        self,
        name: str,
        version: int,
        files: Mapping[str, tuple[str, int]],
        digest: str,
        ready_at: int,
        run_metrics: Mapping[str, float],
    ) -> None: ...

    def fail_version(self, name: str, version: int) -> None: ...

    def fail_stale_versions(self, created_before: int) -> list[tuple[str, int]]: ...

    def get_version(self, name: str, version: int) -> ModelVersion: ...

    def list_versions(self, name: str) -> list[ModelVersion]: ...

    def latest_ready_version(self, name: str) -> int | None: ...

    def versions_of_run(self, run_id: str) -> list[tuple[str, int]]: ...

    def find_by_digest(self, digest: str) -> list[tuple[str, int]]: ...

    def update_version(
        self, name: str, version: int, description: str | None, tags: Mapping[str, str]
    ) -> None: ...

    def add_version_metrics(
        self, name: str, version: int, source: str, values: Mapping[str, float]
    ) -> None: ...

    def delete_version(self, name: str, version: int, deleted_at: int) -> None: ...


class AliasStore(Protocol):
    def move_alias(self, event: AliasEvent) -> None: ...

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]: ...


class EvaluationStore(Protocol):
    def add_evaluation(
        self,
        name: str,
        version: int,
        *,
        dataset_digest: str,
        dataset_name: str,
        task: str,
        result: dict[str, Any],
        created_at: int,
        created_by: str,
    ) -> int: ...

    def list_evaluations(self, name: str, version: int) -> list[dict[str, Any]]: ...


class LineageStore(Protocol):
    def keys_starting(self, kind: str, prefix: str, limit: int = 2) -> list[str]: ...

    def add_edges(self, edges: Sequence[LineageEdge]) -> None: ...

    def edges_touching(self, nodes: Sequence[tuple[str, str]]) -> list[LineageEdge]: ...


class DeploymentStore(Protocol):
    def create(
        self, name: str, policy: Mapping[str, Any], actor: str, at: int, reason: str, extra_fields: str
    ) -> Deployment: ...

    def get(self, name: str) -> Deployment: ...

    def set_extra_fields(self, name: str, extra_fields: str, at: int) -> Deployment: ...

    def list_all(self) -> list[Deployment]: ...

    def set_policy(
        self,
        name: str,
        policy: Mapping[str, Any],
        actor: str,
        at: int,
        reason: str,
        expected_revision: int | None,
    ) -> Deployment: ...

    def revisions(self, name: str) -> list[DeploymentRevision]: ...

    def delete(self, name: str, at: int) -> None: ...


class DatasetStore(Protocol):
    def add_version(self, draft: DatasetVersion) -> tuple[DatasetVersion, bool]: ...

    def get_version(self, name: str, version: int | None = None) -> DatasetVersion: ...

    def list_versions(self, name: str) -> list[DatasetVersion]: ...

    def list_latest(self) -> list[DatasetVersion]: ...

    def find_digest(self, digest: str) -> list[DatasetVersion]: ...

    def mark_erased(
        self, name: str, version: int, into: int | None, at: int, columns: list[dict[str, Any]]
    ) -> None: ...


class PrivacyStore(Protocol):
    def blob_referrers(self, digest: str) -> list[str]: ...

    def holding(self, value: str) -> list[tuple[str, int]]: ...

    def release_freed_space(self, tables: list[str]) -> bool: ...


class MonitorStore(Protocol):
    def create(self, monitor: Monitor) -> Monitor: ...

    def replace(self, monitor: Monitor) -> Monitor: ...

    def get(self, name: str) -> Monitor: ...

    def list_all(self) -> list[Monitor]: ...

    def add_run(
        self,
        name: str,
        at: int,
        window: tuple[int | None, int | None],
        rows: int,
        values: Mapping[str, float | None],
        details: Mapping[str, Any],
    ) -> MonitorRun: ...

    def runs(self, name: str, limit: int = 100, with_details: bool = False) -> list[MonitorRun]: ...

    def run(self, name: str, run_id: int) -> MonitorRun: ...

    def open_alert(self, name: str, alert: Alert) -> tuple[Alert, bool]: ...

    def resolve_alert(self, name: str, rule: str, at: int) -> Alert | None: ...

    def record_notifications(self, name: str, alert_id: int, outcomes: list[dict[str, Any]]) -> None: ...

    def alert(self, name: str, alert_id: int) -> Alert: ...

    def alerts(self, name: str | None = None, status: str | None = None, limit: int = 200) -> list[Alert]: ...


class PipelineStore(Protocol):
    def start_run(self, run: PipelineRun) -> None: ...

    def end_run(self, run_id: str, status: str, ended_at: int) -> None: ...

    def begin_step(self, step: StepRun) -> None: ...

    def finish_step(self, step: StepRun) -> None: ...

    def cached(self, cache_key: str) -> StepRun | None: ...

    def get_run(self, run_id: str) -> PipelineRun: ...

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[PipelineRun]: ...


class AutomationStore(Protocol):
    def add_schedule(self, schedule: Schedule) -> Schedule: ...

    def schedules(self) -> list[Schedule]: ...

    def delete_schedule(self, name: str) -> None: ...

    def advance_schedule(self, name: str, due_at: int, next_at: int) -> bool: ...

    def add_trigger(self, trigger: Trigger) -> Trigger: ...

    def triggers(self) -> list[Trigger]: ...

    def delete_trigger(self, name: str) -> None: ...

    def consider_alert(self, name: str, alert_id: int) -> bool: ...

    def fire(self, name: str, now: int, cooldown_ms: int) -> bool: ...

    def enqueue(
        self,
        kind: JobKind,
        target: str,
        params: dict[str, Any],
        reason: str,
        now: int,
        dedupe_key: str | None = None,
        status: JobStatus = JobStatus.QUEUED,
        error: str | None = None,
    ) -> Job | None: ...

    def job(self, job_id: int) -> Job: ...

    def jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]: ...

    def claim(self, owner: str, now: int, lease_ms: int) -> Job | None: ...

    def renew(self, job_id: int, owner: str, expires_at: int) -> bool: ...

    def finish(
        self, job_id: int, owner: str, status: JobStatus, now: int, result: dict[str, Any], error: str | None
    ) -> bool: ...


class LoopStore(Protocol):
    def declare(self, deployment: str, policy: dict[str, Any], now: int) -> Loop: ...

    def get(self, deployment: str) -> Loop: ...

    def list_all(self) -> list[Loop]: ...

    def move(
        self,
        deployment: str,
        from_state: LoopState,
        to_state: LoopState,
        now: int,
        cooled_by: int | None = None,
        **values: Any,
    ) -> bool: ...

    def record(self, event: LoopEvent) -> LoopEvent: ...

    def events(self, deployment: str, limit: int = 200) -> list[LoopEvent]: ...


class AuditLogStore(Protocol):
    def append(self, entry: AuditEntry, key: bytes | None = None) -> AuditEntry: ...

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]: ...

    def chain(self, batch: int = 5000) -> Iterator[AuditEntry]: ...


class AccessStore(Protocol):
    def add_user(self, name: str, is_admin: bool, now: int) -> User: ...

    def user(self, name: str) -> User: ...

    def users(self) -> list[User]: ...

    def add_token(
        self, user: str, name: str, token_hash: str, prefix: str, now: int, expires_at: int | None
    ) -> ApiToken: ...

    def cached_token(self, token_hash: str) -> tuple[ApiToken, User] | None: ...

    def token_by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None: ...

    def tokens(self, user: str) -> list[ApiToken]: ...

    def token(self, token_id: int) -> ApiToken: ...

    def revoke_token(self, token_id: int, now: int) -> ApiToken: ...

    def set_role(self, project: str, user: str, role: Role) -> None: ...

    def remove_member(self, project: str, user: str) -> None: ...

    def role(self, project: str, user: str) -> Role | None: ...

    def members(self, project: str) -> list[tuple[str, Role]]: ...

    def roles_of(self, user: str) -> dict[str, Role]: ...

    def set_admin(self, user: str, is_admin: bool) -> None: ...

    def identity(self, issuer: str, subject: str) -> Identity | None: ...

    def add_identity(self, identity: Identity) -> None: ...

    def update_identity(
        self, issuer: str, subject: str, email: str | None, groups: tuple[str, ...], now: int
    ) -> None: ...


class ApprovalStore(Protocol):
    def protect(self, model: str, alias: str) -> None: ...

    def unprotect(self, model: str, alias: str) -> None: ...

    def is_protected(self, model: str, alias: str) -> bool: ...

    def protected(self, model: str) -> list[str]: ...

    def add_request(
        self, model: str, alias: str, version: int, by: str, at: int, reason: str
    ) -> AliasRequest: ...

    def request(self, request_id: int) -> AliasRequest: ...

    def requests(self, model: str | None = None, status: str | None = None) -> list[AliasRequest]: ...

    def decide(self, request_id: int, status: str, by: str, at: int, decision: str) -> bool: ...


class LoggedModelStore(Protocol):
    def create(self, model: LoggedModel) -> LoggedModel: ...

    def get(self, model_id: str) -> LoggedModel: ...

    def update(
        self,
        model_id: str,
        at: int,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        removed_tags: Sequence[str] = (),
        params: Mapping[str, str] | None = None,
    ) -> LoggedModel: ...

    def search(self, experiment_ids: Sequence[int], limit: int, offset: int) -> list[LoggedModel]: ...


class FeatureRegistry(Protocol):
    def put_entity(self, entity: Entity, at: int, by: str) -> bool: ...

    def entity(self, name: str) -> Entity: ...

    def entities(self) -> list[Entity]: ...

    def add_version(
        self, view: FeatureView, join_keys: tuple[str, ...], at: int, by: str
    ) -> RegisteredView: ...

    def view(self, name: str, version: int | None = None) -> RegisteredView: ...

    def versions(self, name: str) -> list[RegisteredView]: ...

    def views(self) -> list[RegisteredView]: ...


class RetentionStore(Protocol):
    """The retention policy, what the metadata refers to, and purging deleted runs (gc)."""

    def policy(self) -> RetentionPolicy | None: ...

    def set_policy(self, policy: RetentionPolicy) -> None: ...

    def deleted_runs(self, deleted_before: int) -> list[tuple[str, str | None]]:
        """Runs deleted before then, each with why it must stay (None: it may be purged)."""
        ...

    def purge_runs(self, run_ids: Sequence[str]) -> int:
        """Remove the runs and what is only theirs; returns how many artifact entries went."""
        ...

    def referenced_among(self, digests: Collection[str], ignoring_runs: Sequence[str] = ()) -> set[str]:
        """Those of `digests` that the metadata refers to now (as if `ignoring_runs` were purged)."""
        ...

    def count_artifacts(self, run_ids: Sequence[str]) -> int: ...

    def oldest_registration_in_progress(self) -> int | None: ...
