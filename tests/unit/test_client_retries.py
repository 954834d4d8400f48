"""The client waits out a busy server (429, 503) instead of failing the caller's work, within
a bounded time, and never sends a streamed body twice."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from loopline.client.connection import ServerConnection
from loopline.core.errors import LooplineError


class Busy(http.server.BaseHTTPRequestHandler):
    """Answers 503, then 429 with Retry-After, then 200: a server under load, then free."""

    answers: ClassVar[list[int]] = []
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Busy.seen.append(self.command)
        status = Busy.answers.pop(0) if Busy.answers else 200
        body = b'{"ok": true}' if status == 200 else b'{"error": {"code": "store_error", "message": "busy"}}'
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy() -> Iterator[str]:
    Busy.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_429_and_503_are_retried_until_the_server_answers(busy: str) -> None:
    Busy.answers = [503, 429, 503]
    connection = ServerConnection(busy, "ll_token")
    assert connection.call("POST", "/runs/x/log-batch", json={"metrics": []}) == {"ok": True}
    assert Busy.seen == ["POST"] * 4


def test_a_server_that_stays_busy_is_reported_once_the_tries_are_spent(busy: str) -> None:
    Busy.answers = [503] * 10
    with pytest.raises(LooplineError, match="busy"):
        ServerConnection(busy, "ll_token", retries=2).call("GET", "/whoami")
    assert len(Busy.seen) == 3


def test_a_streamed_body_is_never_sent_twice(busy: str) -> None:
    Busy.answers = [503]
    with pytest.raises(LooplineError):
        ServerConnection(busy, "ll_token").call("PUT", "/uploads/u/files/f", content=iter([b"part"]))
    assert Busy.seen == ["PUT"]
