"""What every command shares: settings from global options, services opened on demand."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import typer

from loopline.automation.service import AutomationService
from loopline.backends import Backends, local_owner, open_backends
from loopline.client.connection import ServerConnection
from loopline.client.datasets import RemoteDatasetService
from loopline.client.governance import RemoteAccessService, RemoteAuditTrail
from loopline.client.operations import RemoteAutomationService, RemoteDeploymentService, RemoteMonitorService
from loopline.client.registry import RemoteRegistryService
from loopline.client.tracking import RemoteTrackingService
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput
from loopline.data.datasets import DatasetService
from loopline.governance.access import AccessService
from loopline.governance.audit import AuditTrail
from loopline.monitoring.service import MonitorService
from loopline.registry.service import RegistryService
from loopline.serving.deployments import DeploymentService
from loopline.settings import Settings
from loopline.tracking.service import TrackingService

T = TypeVar("T")


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

    def _service(
        self, remote: Callable[[ServerConnection], T], local: Callable[[Backends, Principal], T]
    ) -> T:
        """Through the server when LOOPLINE_URI is set, else on the local store as its owner."""
        if self.connection is not None:
            return remote(self.connection)
        return local(self.backends, local_owner())

    def tracking(self) -> TrackingService:
        return self._service(RemoteTrackingService, Backends.tracking)

    def registry(self) -> RegistryService:
        return self._service(RemoteRegistryService, Backends.registry)

    def deployments(self) -> DeploymentService:
        return self._service(RemoteDeploymentService, Backends.deployments)

    def monitors(self) -> MonitorService:
        return self._service(RemoteMonitorService, Backends.monitors)

    def automation(self) -> AutomationService:
        return self._service(RemoteAutomationService, Backends.automation)

    def datasets(self) -> DatasetService:
        return self._service(RemoteDatasetService, Backends.datasets)

    def access(self) -> AccessService:
        return self._service(RemoteAccessService, Backends.access)

    def audit(self) -> AuditTrail:
        return self._service(RemoteAuditTrail, Backends.audit)

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
