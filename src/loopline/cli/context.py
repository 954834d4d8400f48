"""What every command shares: settings from global options, services opened on demand."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import typer

from loopline.automation.service import AutomationService
from loopline.backends import Backends, local_owner, open_backends
from loopline.client.connection import ServerConnection
from loopline.client.datasets import RemoteDatasetService
from loopline.client.governance import RemoteAccessService, RemoteAuditTrail
from loopline.client.operations import RemoteAutomationService, RemoteDeploymentService, RemoteMonitorService
from loopline.client.registry import RemoteRegistryService
from loopline.client.tracking import RemoteTrackingService
from loopline.core.errors import InvalidInput
from loopline.data.datasets import DatasetService
from loopline.governance.access import AccessService
from loopline.governance.audit import AuditTrail
from loopline.monitoring.service import MonitorService
from loopline.registry.service import RegistryService
from loopline.serving.deployments import DeploymentService
from loopline.settings import Settings
from loopline.tracking.service import TrackingService


@dataclass
class CliContext:
    settings: Settings
    _backends: Backends | None = field(default=None, repr=False)
    _connection: ServerConnection | None = field(default=None, repr=False)

    @property
    def backends(self) -> Backends:
        """The local store; refused when the CLI is pointed at a server."""
        if self.settings.uri:
            raise InvalidInput(
                f"this command works on a local store, and LOOPLINE_URI points at {self.settings.uri} "
                "(unset LOOPLINE_URI, or run it where the store is)"
            )
        if self._backends is None:
            self._backends = open_backends(self.settings)
        return self._backends

    @property
    def connection(self) -> ServerConnection | None:
        if self.settings.uri and self._connection is None:
            self._connection = ServerConnection(self.settings.uri, self.settings.token)
        return self._connection

    def tracking(self) -> TrackingService:
        if self.connection is not None:
            return RemoteTrackingService(self.connection)
        return self.backends.tracking(local_owner())

    def registry(self) -> RegistryService:
        if self.connection is not None:
            return RemoteRegistryService(self.connection)
        return self.backends.registry(local_owner())

    def deployments(self) -> DeploymentService:
        if self.connection is not None:
            return RemoteDeploymentService(self.connection)
        return self.backends.deployments(local_owner())

    def monitors(self) -> MonitorService:
        if self.connection is not None:
            return RemoteMonitorService(self.connection)
        return self.backends.monitors(local_owner())

    def automation(self) -> AutomationService:
        if self.connection is not None:
            return RemoteAutomationService(self.connection)
        return self.backends.automation(local_owner())

    def datasets(self) -> DatasetService:
        if self.connection is not None:
            return RemoteDatasetService(self.connection)
        return self.backends.datasets(local_owner())

    def access(self) -> AccessService:
        if self.connection is not None:
            return RemoteAccessService(self.connection)
        return self.backends.access(local_owner())

    def audit(self) -> AuditTrail:
        if self.connection is not None:
            return RemoteAuditTrail(self.connection)
        return self.backends.audit(local_owner())

    def close(self) -> None:
        if self._backends is not None:
            self._backends.close()
        if self._connection is not None:
            self._connection.close()


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext)
    return obj


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return to_jsonable(value._asdict())
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None  # NaN is not JSON
    return value


def print_json(value: Any) -> None:
    json.dump(to_jsonable(value), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
