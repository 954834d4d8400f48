"""A real server on 127.0.0.1 for tests, and the models it serves."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pandas as pd
import uvicorn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from loopline.core.registry import ModelVersion
from loopline.serving.processes import uvicorn_config
from loopline.serving.runtime import ServingOptions
from loopline.serving.server import ServerConfig, build_app
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import free_port


def cancer_data() -> tuple[pd.DataFrame, pd.Series]:
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    return features, target


def register_cancer_models(tracker: Tracker) -> list[ModelVersion]:
    """Two logistic regressions on the breast-cancer data: v1, and a more regularised v2."""
    features, target = cancer_data()
    with tracker.start_run("serving") as run:
        return [
            run.log_model(
                LogisticRegression(C=c, max_iter=5000).fit(features, target),
                "cancer",
                input_example=features.head(),
            )
            for c in (1.0, 0.01)
        ]


@dataclass
class RunningServer:
    url: str
    app: object
    server: uvicorn.Server
    thread: threading.Thread

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


@contextlib.contextmanager
def running_server(
    backends: Backends,
    deployments: tuple[str, ...],
    serving: ServingOptions | None = None,
    **config: object,
) -> Iterator[RunningServer]:
    """uvicorn in a thread, serving until the block ends, then shut down gracefully."""
    port = free_port()
    server_config = ServerConfig(
        deployments=deployments,
        port=port,
        serving=serving or ServingOptions(refresh_interval=0.2),
        log_flush_interval=0.2,
        **config,  # type: ignore[arg-type]
    )
    app = build_app(backends.services(local_owner()), backends.tables, server_config)
    with uvicorn_in_thread(app, port, lifespan="on") as (server, thread):
        yield RunningServer(f"http://127.0.0.1:{port}", app, server, thread)


@contextlib.contextmanager
def uvicorn_in_thread(
    app: object, port: int, lifespan: str
) -> Iterator[tuple[uvicorn.Server, threading.Thread]]:
    """uvicorn serving `app` on 127.0.0.1 in a thread until the block ends, then shut down gracefully."""
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, lifespan=lifespan, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield server, thread
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@contextlib.contextmanager
def server_process(
    store_url: str, artifacts: str, *args: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`loopline serve ...` in its own process (its own interpreter: no GIL shared with
    the test's clients); yields its URL once /ready says so, and stops it with SIGTERM."""
    port = free_port()
    env = {**os.environ, "LOOPLINE_STORE_URI": store_url, "LOOPLINE_ARTIFACTS_URI": artifacts}
    command = [sys.executable, "-m", "loopline", "serve", *args, "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"the server exited with {process.returncode}: {output[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
