"""Running the server: uvicorn (uvloop, httptools), one process per worker.

With several workers the parent forks them and forwards SIGTERM and SIGINT; each worker
binds its own socket to the port with SO_REUSEPORT, so the kernel spreads connections
over the workers (one shared socket lets a few busy workers take them all), finishes its
in-flight requests and writes its prediction log before it exits. Configuration reaches
the workers as Python objects through fork, not through environment variables.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loopline.artifacts.tables import TableArea
from loopline.serving.app import HttpOptions, ServingApp
from loopline.serving.deployments import DeploymentService
from loopline.serving.metrics import ServingMetrics
from loopline.serving.predlog import PredictionLog
from loopline.serving.runtime import DeploymentRuntime, ServingOptions

GRACEFUL_SHUTDOWN_S = 30


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


AppFactory = Callable[[Path | None], ServingApp]  # metrics folder (several workers) -> app


def build_app(
    service: DeploymentService, tables: TableArea, config: ServerConfig, metrics_dir: Path | None = None
) -> ServingApp:
    metrics = ServingMetrics(metrics_dir)
    runtimes = {
        name: DeploymentRuntime(name, service, config.serving, metrics.observe_batch)
        for name in config.deployments
    }
    log = PredictionLog(tables, flush_interval=config.log_flush_interval)
    return ServingApp(runtimes, log, metrics, config.http)


def _uvicorn_server(app: ServingApp, config: ServerConfig) -> object:
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=config.access_log,
            log_level="info",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            timeout_keep_alive=5,
        )
    )


def serve(make_app: AppFactory, config: ServerConfig) -> None:
    """Serve until SIGTERM or Ctrl-C; returns once every worker has shut down cleanly.
    `make_app` runs in each worker, which opens its own store connections."""
    if config.workers <= 1:
        server = _uvicorn_server(make_app(None), config)
        server.run()  # type: ignore[attr-defined]
        return
    _serve_forked(make_app, config)


def _serve_forked(make_app: AppFactory, config: ServerConfig) -> None:
    metrics_dir = Path(tempfile.mkdtemp(prefix="loopline-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # read by prometheus-client itself
    children = []
    for _ in range(config.workers):
        pid = os.fork()
        if pid == 0:  # a worker
            code = 0
            try:
                server = _uvicorn_server(make_app(metrics_dir), config)
                server.run(sockets=[_reuse_port_socket(config.host, config.port)])  # type: ignore[attr-defined]
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    from prometheus_client import multiprocess

    for child in children:
        os.waitpid(child, 0)
        multiprocess.mark_process_dead(child)  # type: ignore[no-untyped-call]


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock
