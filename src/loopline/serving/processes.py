"""Running an ASGI app: uvicorn (uvloop, httptools), one process per worker.

With several workers the parent forks them and forwards SIGTERM and SIGINT; each worker
binds its own socket to the port with SO_REUSEPORT, so the kernel spreads connections
over the workers (one shared socket lets a few busy workers take them all), and finishes
its in-flight requests before it exits. Configuration reaches the workers as Python
objects through fork, not through environment variables. The prediction server and the
team server both run this way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from loopline.serving.tls import TlsFiles

GRACEFUL_SHUTDOWN_S = 30
AppFactory = Callable[[Path | None], Any]  # metrics folder (several workers) -> an ASGI app


class Listen(Protocol):
    """Where and how many workers serve."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def workers(self) -> int: ...

    @property
    def access_log(self) -> bool: ...

    @property
    def tls(self) -> TlsFiles | None:
        """HTTPS with these files; None: plain HTTP."""


def uvicorn_config(app: Any, host: str, port: int, *, access_log: bool = False, **overrides: Any) -> Any:
    """How loopline's servers run under uvicorn (`overrides` for tests: a quieter log)."""
    import uvicorn

    options: dict[str, Any] = {
        "loop": "uvloop", "http": "httptools", "lifespan": "on", "access_log": access_log,
        "proxy_headers": False,  # the client's address is the connection's: forwarded headers lie
        "log_level": "info", "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S, "timeout_keep_alive": 5,
    }  # fmt: skip
    return uvicorn.Config(app, host=host, port=port, **{**options, **overrides})


def _uvicorn_server(app: Any, config: Listen) -> object:
    import uvicorn

    tls = {} if config.tls is None else config.tls.uvicorn_options()
    return uvicorn.Server(uvicorn_config(app, config.host, config.port, access_log=config.access_log, **tls))


def serve(make_app: AppFactory, config: Listen) -> None:
    """Serve until SIGTERM or Ctrl-C; returns once every worker has shut down cleanly.
    `make_app` runs in each worker, which opens its own store connections."""
    if config.workers <= 1:
        server = _uvicorn_server(make_app(None), config)
        server.run()  # type: ignore[attr-defined]
        return
    _serve_forked(make_app, config)


def _serve_forked(make_app: AppFactory, config: Listen) -> None:
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
