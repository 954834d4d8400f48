"""The metadata store: narrow role interfaces and their SQL implementation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from loopline.store.access import SqlAccessStore
from loopline.store.aliases import SqlAliasStore
from loopline.store.approvals import SqlApprovalStore
from loopline.store.artifact_index import SqlArtifactIndex
from loopline.store.audit import SqlAuditLog
from loopline.store.automation import SqlAutomationStore
from loopline.store.database import Database
from loopline.store.datasets import SqlDatasetStore
from loopline.store.deployments import SqlDeploymentStore
from loopline.store.engine import create_store_engine
from loopline.store.evaluations import SqlEvaluationStore
from loopline.store.experiments import SqlExperimentStore
from loopline.store.features import SqlFeatureRegistry
from loopline.store.lineage import SqlLineageStore
from loopline.store.logged_models import SqlLoggedModelStore
from loopline.store.loops import SqlLoopStore
from loopline.store.metrics import SqlMetricStore
from loopline.store.migrate import ensure_schema
from loopline.store.monitors import SqlMonitorStore
from loopline.store.pipelines import SqlPipelineStore
from loopline.store.privacy import SqlPrivacyStore
from loopline.store.protocols import (
    AccessStore,
    AliasStore,
    ApprovalStore,
    ArtifactIndex,
    AuditLogStore,
    AutomationStore,
    DatasetStore,
    DeploymentStore,
    EvaluationStore,
    ExperimentStore,
    FeatureRegistry,
    LineageStore,
    LoggedModelStore,
    LoopStore,
    MetricStore,
    MonitorStore,
    PipelineStore,
    PrivacyStore,
    RegistryStore,
    RetentionStore,
    RunStore,
)
from loopline.store.registry import SqlRegistryStore
from loopline.store.retention import SqlRetentionStore
from loopline.store.runs import RunKeys, SqlRunStore

__all__ = [
    "AccessStore",
    "AliasStore",
    "ApprovalStore",
    "ArtifactIndex",
    "AuditLogStore",
    "AutomationStore",
    "DatasetStore",
    "DeploymentStore",
    "EvaluationStore",
    "ExperimentStore",
    "FeatureRegistry",
    "LineageStore",
    "LoggedModelStore",
    "LoopStore",
    "MetadataStore",
    "MetricStore",
    "MonitorStore",
    "PipelineStore",
    "PrivacyStore",
    "RegistryStore",
    "RetentionStore",
    "RunStore",
    "atomic",
    "open_metadata_store",
]

T = TypeVar("T")
Method = TypeVar("Method", bound=Callable[..., Any])


class MetadataStore:
    """Every role store over one database; services take the roles they need from it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        keys = RunKeys()
        self.experiments: ExperimentStore = SqlExperimentStore(db)
        self.runs: RunStore = SqlRunStore(db, keys)
        self.metrics: MetricStore = SqlMetricStore(db, keys)
        self.artifacts: ArtifactIndex = SqlArtifactIndex(db, keys)
        self.logged_models: LoggedModelStore = SqlLoggedModelStore(db, keys)
        self.registry: RegistryStore = SqlRegistryStore(db, keys)
        self.aliases: AliasStore = SqlAliasStore(db)
        self.evaluations: EvaluationStore = SqlEvaluationStore(db)
        self.lineage: LineageStore = SqlLineageStore(db)
        self.deployments: DeploymentStore = SqlDeploymentStore(db)
        self.datasets: DatasetStore = SqlDatasetStore(db)
        self.monitors: MonitorStore = SqlMonitorStore(db)
        self.pipelines: PipelineStore = SqlPipelineStore(db)
        self.automation: AutomationStore = SqlAutomationStore(db)
        self.loops: LoopStore = SqlLoopStore(db)
        self.audit: AuditLogStore = SqlAuditLog(db)
        self.access: AccessStore = SqlAccessStore(db)
        self.approvals: ApprovalStore = SqlApprovalStore(db)
        self.features: FeatureRegistry = SqlFeatureRegistry(db)
        self.retention: RetentionStore = SqlRetentionStore(db, keys)
        self.privacy: PrivacyStore = SqlPrivacyStore(db)

    def atomically(self, work: Callable[[], T]) -> T:
        """Run `work` as one transaction: every role store it writes through commits with
        the others or not at all (re-run whole if the database was busy)."""
        return self.db.write(lambda _conn: work())

    def in_transaction(self) -> bool:
        """Whether this thread or task is inside `atomically`."""
        return self.db.in_write()

    def close(self) -> None:
        self.db.dispose()


def atomic(method: Method) -> Method:
    """Make a service method one transaction of its `_store` (a `MetadataStore`): its changes
    and their audit entries commit together, so a crash between them leaves neither."""

    @functools.wraps(method)
    def wrapper(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        store: MetadataStore = self._store
        return store.atomically(lambda: method(self, *args, **kwargs))

    return cast(Method, wrapper)


def open_metadata_store(url: str) -> MetadataStore:
    """Open (creating and migrating if needed) the database at `url`."""
    db = Database(create_store_engine(url))
    ensure_schema(db)
    return MetadataStore(db)
