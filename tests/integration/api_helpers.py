"""A real `loopline server` app on 127.0.0.1 for tests, and clients of it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from loopline.backends import Backends
from loopline.server.app import ServerOptions, create_app
from tests.conftest import free_port


@contextlib.contextmanager
def running_api(backends: Backends, options: ServerOptions = ServerOptions()) -> Iterator[str]:
    """uvicorn in a thread serving the API until the block ends; yields its base URL."""
    port = free_port()
    app = create_app(backends, options)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
