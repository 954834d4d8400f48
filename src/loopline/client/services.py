"""`RemoteServices`: every service through one connection to a loopline server, acting as
the owner of the connection's token."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from loopline.client.automation import RemoteAutomationService
from loopline.client.connection import ServerConnection
from loopline.client.datasets import RemoteDatasetService
from loopline.client.deployments import RemoteDeploymentService
from loopline.client.features import RemoteFeatureService
from loopline.client.governance import RemoteAccessService, RemoteAuditTrail
from loopline.client.lineage import RemoteLineageService
from loopline.client.loops import RemoteLoopService
from loopline.client.monitors import RemoteMonitorService
from loopline.client.privacy import RemotePrivacyService
from loopline.client.promotion import RemotePromotionService
from loopline.client.registry import RemoteRegistryService
from loopline.client.storage import RemoteStorageService
from loopline.client.tracking import RemoteTrackingService, whoami
from loopline.core.entities import Principal
from loopline.services import Services


class RemoteServices(Services):
    """The server's services over HTTP; each request is checked there as the token's owner."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection

    @classmethod
    def connect(cls, uri: str, token: str | None, ca_bundle: Path | None = None) -> RemoteServices:
        """Services through the server at `uri`, sending `token`; an https server's certificate
        is verified against `ca_bundle` when given (a private CA), else the system's CAs."""
        return cls(ServerConnection(uri, token, ca_bundle=ca_bundle))

    @cached_property
    def principal(self) -> Principal:
        return whoami(self.connection)

    @cached_property
    def tracking(self) -> RemoteTrackingService:
        return RemoteTrackingService(self.connection, self.principal)

    @cached_property
    def registry(self) -> RemoteRegistryService:
        return RemoteRegistryService(self.connection, self.principal)

    @cached_property
    def datasets(self) -> RemoteDatasetService:
        return RemoteDatasetService(self.connection, self.principal)

    @cached_property
    def deployments(self) -> RemoteDeploymentService:
        return RemoteDeploymentService(self.connection, self.registry)

    @cached_property
    def features(self) -> RemoteFeatureService:
        return RemoteFeatureService(self.connection)

    @cached_property
    def monitors(self) -> RemoteMonitorService:
        return RemoteMonitorService(self.connection, self.principal)

    @cached_property
    def automation(self) -> RemoteAutomationService:
        return RemoteAutomationService(self.connection)

    @cached_property
    def promotion(self) -> RemotePromotionService:
        return RemotePromotionService(self.connection, self.principal)

    @cached_property
    def loops(self) -> RemoteLoopService:
        return RemoteLoopService(self.connection)

    @cached_property
    def lineage(self) -> RemoteLineageService:
        return RemoteLineageService(self.connection)

    @cached_property
    def storage(self) -> RemoteStorageService:
        return RemoteStorageService(self.connection)

    @cached_property
    def privacy(self) -> RemotePrivacyService:
        return RemotePrivacyService(self.connection)

    @cached_property
    def access(self) -> RemoteAccessService:
        return RemoteAccessService(self.connection, self.principal)

    @cached_property
    def audit(self) -> RemoteAuditTrail:
        return RemoteAuditTrail(self.connection)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()
