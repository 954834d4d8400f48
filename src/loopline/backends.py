"""The composition root: settings in, storage backends and services out.

This is the one place that maps URI schemes to implementations; everything else receives
its store and blob store through its constructor.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from loopline.artifacts import BlobStore
from loopline.artifacts.tables import TableArea
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput
from loopline.governance.access import AccessService
from loopline.governance.audit import AuditTrail
from loopline.registry.evaluation import EvaluationService
from loopline.registry.promotion import PromotionService
from loopline.registry.service import RegistryService
from loopline.serving.deployments import DeploymentService
from loopline.settings import Settings
from loopline.store import MetadataStore, open_metadata_store
from loopline.tracking.service import TrackingService

if TYPE_CHECKING:
    from loopline.automation.retraining import LoopService, RunPipeline
    from loopline.automation.service import AutomationService
    from loopline.data.datasets import DatasetService
    from loopline.monitoring.service import MonitorService


@dataclass
class Backends:
    store: MetadataStore
    blobs: BlobStore

    def tracking(self, principal: Principal) -> TrackingService:
        return TrackingService(self.store, self.blobs, principal)

    def registry(self, principal: Principal) -> RegistryService:
        return RegistryService(self.store, self.blobs, principal)

    def evaluations(self, principal: Principal) -> EvaluationService:
        return EvaluationService(self.store, self.blobs, principal)

    def promotion(self, principal: Principal) -> PromotionService:
        return PromotionService(self.store, self.blobs, principal)

    def deployments(self, principal: Principal) -> DeploymentService:
        return DeploymentService(self.store, self.blobs, principal)

    def datasets(self, principal: Principal) -> DatasetService:
        from loopline.data.datasets import DatasetService  # pandas and Arrow: loaded when used

        return DatasetService(self.store, self.blobs, principal)

    def monitors(self, principal: Principal) -> MonitorService:
        from loopline.monitoring.service import MonitorService

        return MonitorService(self.store, self.blobs, self.tables, principal)

    def automation(self, principal: Principal) -> AutomationService:
        from loopline.automation.service import AutomationService

        return AutomationService(self.store, principal)

    def access(self, principal: Principal) -> AccessService:
        return AccessService(self.store, principal)

    def audit(self, principal: Principal) -> AuditTrail:
        return AuditTrail(self.store, principal)

    def loops(self, principal: Principal, run_pipeline: RunPipeline | None = None) -> LoopService:
        from loopline.automation.retraining import LoopService

        return LoopService(self.store, self.blobs, self.tables, principal, run_pipeline)

    @property
    def tables(self) -> TableArea:
        """Parquet tables (prediction logs, feedback) beside the blobs."""
        return TableArea(f"{self.blobs.url.rstrip('/')}/tables", self.blobs.storage_options)

    def close(self) -> None:
        self.store.close()


def local_owner() -> Principal:
    """Who acts in embedded mode: the operating-system user, owner of everything."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "local"
    return Principal(name=name, is_owner=True)


def open_blob_store(settings: Settings) -> BlobStore:
    uri = settings.resolved_artifacts_uri
    scheme = urlparse(uri).scheme
    options: dict[str, Any] = {}
    if scheme == "s3":
        try:
            import s3fs  # noqa: F401
        except ImportError:
            raise InvalidInput(
                f"artifact store {uri!r} needs S3 support: pip install 'loopline[s3]'"
            ) from None
        if settings.s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": settings.s3_endpoint_url}
    elif scheme not in ("", "file"):
        raise InvalidInput(f"artifact store {uri!r}: use a local folder or s3://bucket/prefix")
    return BlobStore(uri, options)


def open_backends(settings: Settings) -> Backends:
    blobs = open_blob_store(settings)
    return Backends(open_metadata_store(settings.resolved_store_uri), blobs)
