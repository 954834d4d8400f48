"""What every command shares: settings from global options, services opened on demand."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import typer

from loopline.backends import Backends, local_owner, open_backends
from loopline.client.connection import ServerConnection
from loopline.client.registry import RemoteRegistryService
from loopline.client.tracking import RemoteTrackingService
from loopline.core.errors import InvalidInput
from loopline.registry.service import RegistryService
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
                f"this command works on a local store, and LOOPLINE_URI points at {self.settings.uri}: "
                "through a server, use the experiments, runs and models commands (or unset LOOPLINE_URI)"
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
