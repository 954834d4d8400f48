"""Buffers metric values and stores them in batches from a background thread.

`add` costs a lock and an append. A batch goes out when `max_batch` values are waiting or
`interval` seconds have passed; `flush` sends whatever is left from the calling thread and
returns once everything added before it is durable, raising any error the writer met.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

from loopline.core.entities import Metric
from loopline.core.errors import MetricWriteError
from loopline.core.ids import new_id


class MetricSink(Protocol):
    def __call__(self, run_id: str, metrics: list[Metric], batch_id: str) -> object: ...


class MetricWriter:
    def __init__(self, sink: MetricSink, max_batch: int = 5000, interval: float = 1.0) -> None:
        self._sink = sink
        self._max_batch = max_batch
        self._interval = interval
        self._lock = threading.Lock()  # guards _pending and _count
        self._send_lock = threading.Lock()  # one batch in flight at a time
        self._pending: dict[str, list[Metric]] = {}
        self._count = 0
        self._errors: list[str] = []
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        # A forked child (multiprocessing, data-loader workers) inherits the buffer and the
        # locks but not the thread: it starts empty, so the parent's values are sent once. A
        # fork waits for a batch in flight: forked in the middle of one, the child would inherit
        # the database driver's locks held by a thread it does not have, and hang.
        os.register_at_fork(
            before=functools.partial(_call_if_alive, weakref.WeakMethod(self._before_fork)),
            after_in_parent=functools.partial(_call_if_alive, weakref.WeakMethod(self._after_fork_in_parent)),
            after_in_child=functools.partial(_call_if_alive, weakref.WeakMethod(self._after_fork)),
        )

    def _before_fork(self) -> None:
        self._send_lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._send_lock.release()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._pending, self._count, self._errors, self._thread = {}, 0, [], None

    def add(self, run_id: str, metric: Metric) -> None:
        self.add_many(run_id, (metric,))

    def add_many(self, run_id: str, metrics: tuple[Metric, ...] | list[Metric]) -> None:
        if self._errors:
            self._raise_errors()
        with self._lock:
            self._pending.setdefault(run_id, []).extend(metrics)
            self._count += len(metrics)
            full = self._count >= self._max_batch
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Store everything added so far; raise if any value could not be stored."""
        self._drain()
        self._raise_errors()

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="loopline-metric-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        with self._send_lock:
            with self._lock:
                pending, self._pending, self._count = self._pending, {}, 0
            for run_id, metrics in pending.items():
                for start in range(0, len(metrics), self._max_batch):
                    self._send(run_id, metrics[start : start + self._max_batch])

    def _send(self, run_id: str, batch: list[Metric]) -> None:
        try:
            self._sink(run_id, batch, new_id())
        except Exception as exc:  # surfaced to the caller by the next add or flush
            self._errors.append(f"{len(batch)} values for run {run_id} were not stored: {exc}")

    def _raise_errors(self) -> None:
        if self._errors:
            errors, self._errors = self._errors, []
            raise MetricWriteError("; ".join(errors))


def _call_if_alive(method_ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = method_ref()
    if method is not None:
        method()
