"""The SDK's heartbeat thread: beats for the open runs, at once on a start, then on its interval."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from loopline.tracking.heartbeat import Heartbeat


def test_beats_for_open_runs_until_stopped_and_survives_a_failing_store() -> None:
    sent: list[list[str]] = []
    open_runs = ["r1"]
    got = threading.Event()

    def send(ids: Sequence[str]) -> None:
        sent.append(list(ids))
        got.set()
        if len(sent) == 2:
            raise ConnectionError("the store is away for a moment")

    heartbeat = Heartbeat(send, lambda: list(open_runs), interval=0.02)
    heartbeat.beat_now()
    assert got.wait(5)
    deadline = time.monotonic() + 5
    while len(sent) < 4 and time.monotonic() < deadline:  # the failed second beat stops nothing
        time.sleep(0.01)
    open_runs.clear()
    time.sleep(0.1)
    count = len(sent)
    heartbeat.stop()
    time.sleep(0.1)
    assert len(sent) == count >= 4 and all(ids == ["r1"] for ids in sent)  # nothing sent for no run
