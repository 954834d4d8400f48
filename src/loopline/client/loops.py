"""Retraining loops through a server: declared, read and reset there. Starting one runs its
pipeline, which happens on a worker (a trigger, or `loopline jobs enqueue --retrain`)."""

from __future__ import annotations

from loopline.client.connection import ServerConnection, segment
from loopline.core.loops import Loop, LoopEvent
from loopline.core.wire import decode
from loopline.specs.loop import LoopPolicy


def _loop(deployment: str) -> str:
    return f"/loops/{segment(deployment)}"


class RemoteLoopService:
    """The server's retraining loops, as the token's owner."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def declare(self, policy: LoopPolicy) -> Loop:
        body = policy.model_dump(mode="json")
        return decode(Loop, self._connection.call("PUT", _loop(policy.deployment), json=body))

    def get(self, deployment: str) -> Loop:
        return decode(Loop, self._connection.call("GET", _loop(deployment)))

    def events(self, deployment: str) -> list[LoopEvent]:
        return [decode(LoopEvent, e) for e in self._connection.pages(f"{_loop(deployment)}/events")]

    def reset(self, deployment: str, reason: str) -> LoopEvent:
        found = self._connection.call("POST", f"{_loop(deployment)}/reset", json={"reason": reason})
        return decode(LoopEvent, found)
