"""The prediction server of one or more deployments, and its configuration; `processes`
runs it in one process per worker."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.artifacts.tables import TableArea
from loopline.core.errors import InvalidInput
from loopline.predictions.log import PredictionLog
from loopline.services import Services
from loopline.serving.app import HttpOptions, ServingApp
from loopline.serving.features import FeatureCatalog
from loopline.serving.metrics import ServingMetrics
from loopline.serving.runtime import DeploymentRuntime, ServingOptions
from loopline.serving.tls import TlsFiles

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class ServerConfig:
    deployments: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    serving: ServingOptions = field(default_factory=ServingOptions)
    http: HttpOptions = field(default_factory=HttpOptions)
    log_flush_interval: float = 1.0
    access_log: bool = False
    tls: TlsFiles | None = None  # HTTPS with these files; None: plain HTTP


def bundle_features(services: Services) -> Callable[[], FeatureCatalog]:
    """The feature store of `services`, built on first use (only a deployment declaring online
    features needs it)."""

    def catalog() -> FeatureCatalog:
        found = services.features
        if not isinstance(found, FeatureCatalog):  # a remote bundle's: no lookups of its own
            raise InvalidInput(
                "this server's feature store cannot look up online values: serve over a local store"
            )
        return found

    return catalog


def build_app(
    services: Services,
    tables: TableArea,
    config: ServerConfig,
    metrics_dir: Path | None = None,
    features: Callable[[], FeatureCatalog] | None = None,
    hash_key: bytes | None = None,
) -> ServingApp:
    """The prediction server of `config.deployments`: their policies and models come from
    `services`, their prediction log goes to `tables`, and the online features they declare
    from `features` (by default the bundle's feature store). `hash_key` is what log policies
    hash inputs under (LOOPLINE_PII_HASH_KEY)."""
    metrics = ServingMetrics(metrics_dir)
    catalog = features if features is not None else bundle_features(services)
    runtimes = {
        name: DeploymentRuntime(
            name,
            services.deployments,
            services.registry,
            config.serving,
            metrics.observe_batch,
            catalog,
            hash_key,
        )
        for name in config.deployments
    }
    log = PredictionLog(tables, flush_interval=config.log_flush_interval)
    return ServingApp(runtimes, log, metrics, config.http)


@contextlib.contextmanager
def serving_in_thread(
    services: Services, tables: TableArea, deployments: tuple[str, ...], *, refresh_interval: float = 0.3
) -> Iterator[httpx.Client]:
    """The real HTTP server (uvicorn, the app `loopline serve` runs) in a thread of this
    process on a free loopback port, following policy changes every `refresh_interval`
    seconds and writing its log every 0.2 s; yields a client of it. For the demo and the
    loop's benchmark, where one process plays server, worker and clients."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = ServerConfig(
        deployments,
        port=port,
        serving=ServingOptions(refresh_interval=refresh_interval),
        log_flush_interval=0.2,
    )
    server = uvicorn.Server(
        uvicorn.Config(build_app(services, tables, config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the HTTP server did not start on port {port}")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=60)
