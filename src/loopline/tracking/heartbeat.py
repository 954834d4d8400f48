"""Tells the store, from a background thread, that the runs this process has open are alive.

A process killed with SIGKILL (or by the out-of-memory killer, or a lost machine) cannot
end its runs; the worker's janitor ends those whose heartbeats stopped
(`TrackingService.end_silent_runs`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence

HEARTBEAT_INTERVAL_S = 30.0

log = logging.getLogger(__name__)


class Heartbeat:
    """Every `interval` seconds, `send` the ids `open_runs` returns (if any)."""

    def __init__(
        self,
        send: Callable[[Sequence[str]], object],
        open_runs: Callable[[], list[str]],
        interval: float = HEARTBEAT_INTERVAL_S,
    ) -> None:
        self._send = send
        self._open_runs = open_runs
        self._interval = interval
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # held while a beat is sent
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        # A forked child inherits the runs but not the thread: the parent keeps beating for them.
        # A fork waits for a beat in flight: forked in the middle of one, the child would inherit
        # the database driver's locks held by a thread it does not have, and hang on its first
        # write.
        ref = weakref.ref(self)
        os.register_at_fork(
            before=functools.partial(_lock_sending, ref, True),
            after_in_parent=functools.partial(_lock_sending, ref, False),
            after_in_child=functools.partial(_forget_thread, ref),
        )

    def beat_now(self) -> None:
        """Send a beat at once (a run just started), starting the thread if need be."""
        with self._lock:
            if self._stopped:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="loopline-heartbeat", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopped:
                return
            ids = self._open_runs()
            if not ids:
                continue
            with self._sending:
                try:
                    self._send(ids)
                except Exception as exc:  # a beat missed is no error; the next one may get through
                    log.debug("heartbeat for runs %s not sent: %s", ids, exc)


def _lock_sending(ref: weakref.ref[Heartbeat], acquire: bool) -> None:
    heartbeat = ref()
    if heartbeat is not None:
        (heartbeat._sending.acquire if acquire else heartbeat._sending.release)()


def _forget_thread(ref: weakref.ref[Heartbeat]) -> None:
    heartbeat = ref()
    if heartbeat is not None:
        heartbeat._lock = threading.Lock()
        heartbeat._sending = threading.Lock()
        heartbeat._wake = threading.Event()
        heartbeat._thread = None
        heartbeat._stopped = True
