"""The services over a local store, each built on first use with its collaborators: the
store, the blob store, the table area, the authorizer and audit trail of the acting
principal, and the other services it works with. No service builds another."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.core.entities import Principal
from loopline.governance.access import AccessService
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.lineage import LineageService
from loopline.registry.service import RegistryService
from loopline.services import Services
from loopline.tracking.service import TrackingService

if TYPE_CHECKING:
    from loopline.automation.loops import LoopService, RunPipeline
    from loopline.automation.service import AutomationService
    from loopline.data.datasets import DatasetService
    from loopline.feature_store.service import FeatureService
    from loopline.governance.encryption import EncryptionService
    from loopline.governance.erasure import ErasureService
    from loopline.lifecycle.service import StorageService
    from loopline.monitoring.service import MonitorService
    from loopline.registry.evaluation import EvaluationService
    from loopline.registry.promotion import PromotionService
    from loopline.serving.deployments import DeploymentService
    from loopline.wiring.backends import Backends


class LocalServices(Services):
    """Every service over `backends`, acting as `principal`. Heavy ones (datasets, monitors,
    loops: pandas and Arrow) are imported only when first used."""

    def __init__(
        self,
        backends: Backends,
        principal: Principal,
        run_pipeline: RunPipeline | None = None,
        *,
        owns_backends: bool = False,
    ) -> None:
        self.backends = backends
        self._principal = principal
        self._run_pipeline = run_pipeline
        self._store = backends.store
        self._blobs = backends.blobs
        self._owns_backends = owns_backends

    @property
    def principal(self) -> Principal:
        return self._principal

    def close(self) -> None:
        """Close the store, if this bundle opened it, and the feature store's online connection."""
        if "features" in self.__dict__:  # built (a cached_property): it may hold a connection
            self.features.close()
        if self._owns_backends:
            self.backends.close()

    @cached_property
    def authorizer(self) -> Authorizer:
        """The principal's role checks, shared by every service of the bundle."""
        return Authorizer(self._store, self.principal)

    @cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self._store, self.principal, self.backends.audit_keys)

    @cached_property
    def lineage(self) -> LineageService:
        return LineageService(self._store, self.authorizer)

    @cached_property
    def tracking(self) -> TrackingService:
        return TrackingService(self._store, self._blobs, authorizer=self.authorizer, audit=self.audit)

    @cached_property
    def registry(self) -> RegistryService:
        return RegistryService(
            self._store, self._blobs, authorizer=self.authorizer, audit=self.audit, lineage=self.lineage
        )

    @cached_property
    def evaluations(self) -> EvaluationService:
        from loopline.registry.evaluation import EvaluationService

        return EvaluationService(self._store, self._blobs, registry=self.registry, lineage=self.lineage)

    @cached_property
    def promotion(self) -> PromotionService:
        from loopline.registry.promotion import PromotionService

        return PromotionService(
            self._store,
            registry=self.registry,
            evaluations=self.evaluations,
            tracking=self.tracking,
            lineage=self.lineage,
        )

    @cached_property
    def deployments(self) -> DeploymentService:
        from loopline.serving.deployments import DeploymentService

        return DeploymentService(
            self._store,
            self.backends.tables, registry=self.registry, authorizer=self.authorizer, audit=self.audit,
            lineage=self.lineage, hash_key=self.backends.pii_hash_key,
        )  # fmt: skip

    @cached_property
    def datasets(self) -> DatasetService:
        from loopline.data.datasets import DatasetService

        return DatasetService(
            self._store, self._blobs, authorizer=self.authorizer, audit=self.audit,
            hash_key=self.backends.pii_hash_key,
        )  # fmt: skip

    @cached_property
    def features(self) -> FeatureService:
        from loopline.feature_store.online import open_online_store
        from loopline.feature_store.service import FeatureService

        blobs = self.backends.blobs.url
        folder = None if "://" in blobs else Path(blobs).parent  # beside a local artifact folder
        return FeatureService(
            self._store, authorizer=self.authorizer, audit=self.audit, lineage=self.lineage,
            datasets=self.datasets, online=lambda: open_online_store(self.backends.online_store, folder),
            file_roots=self.backends.file_roots,
        )  # fmt: skip

    @cached_property
    def monitors(self) -> MonitorService:
        from loopline.monitoring.service import MonitorService

        return MonitorService(
            self._store, self._blobs, self.backends.tables, datasets=self.datasets,
            deployments=self.deployments, registry=self.registry, authorizer=self.authorizer,
            features=self.features,
        )  # fmt: skip

    @cached_property
    def automation(self) -> AutomationService:
        from loopline.automation.service import AutomationService

        return AutomationService(self._store, authorizer=self.authorizer, audit=self.audit)

    @cached_property
    def loops(self) -> LoopService:
        from loopline.automation.loops import LoopService

        return LoopService(
            self._store, self.backends.tables, datasets=self.datasets, deployments=self.deployments,
            promotion=self.promotion, registry=self.registry, authorizer=self.authorizer, audit=self.audit,
            run_pipeline=self._run_pipeline,
        )  # fmt: skip

    @cached_property
    def privacy(self) -> ErasureService:
        from loopline.governance.erasure import ErasureService

        return ErasureService(
            self._store, self._blobs, self.backends.tables, datasets=self.datasets,
            authorizer=self.authorizer, audit=self.audit,
        )  # fmt: skip

    @cached_property
    def storage(self) -> StorageService:
        from loopline.lifecycle.service import StorageService

        return StorageService(
            self._store, self._blobs, self.backends.tables, authorizer=self.authorizer, audit=self.audit
        )

    @cached_property
    def access(self) -> AccessService:
        return AccessService(self._store, authorizer=self.authorizer, audit=self.audit)

    @cached_property
    def encryption(self) -> EncryptionService:
        """Encryption at rest: key census and rotation, where the store and its keys are."""
        from loopline.governance.encryption import EncryptionService

        return EncryptionService(
            self._store, self._blobs, self.backends.tables, authorizer=self.authorizer, audit=self.audit
        )
