"""What every command shares: settings from global options, services opened on demand."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from loopline.core.errors import InvalidInput
from loopline.wiring import open_services

if TYPE_CHECKING:
    from loopline.services import Services
    from loopline.wiring.backends import Backends
    from loopline.wiring.local import LocalServices
    from loopline.wiring.settings import Settings


@dataclass
class CliContext:
    """The settings of this command line, and what it opens on first use."""

    settings: Settings
    _services: Services | None = field(default=None, repr=False)

    @property
    def services(self) -> Services:
        """Every service: through the server when LOOPLINE_URI is set, else on the local store
        as its owner."""
        if self._services is None:
            self._services = open_services(self.settings)
        return self._services

    @property
    def local(self) -> LocalServices:
        """The services on the local store, for what runs where the store is (serving, workers,
        the database); refused when the command line is pointed at a server."""
        if self.settings.uri:
            raise InvalidInput(
                f"this command works on a local store, and LOOPLINE_URI points at {self.settings.uri} "
                "(unset LOOPLINE_URI, or run it where the store is)"
            )
        from loopline.wiring.local import LocalServices

        services = self.services
        assert isinstance(services, LocalServices)
        return services

    @property
    def backends(self) -> Backends:
        """The local store and blob store (refused when pointed at a server)."""
        return self.local.backends

    def close(self) -> None:
        """Close what was opened."""
        if self._services is not None:
            self._services.close()
            self._services = None


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
