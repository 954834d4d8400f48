"""Adaptive micro-batching: concurrent requests share one model call.

A batch takes every request already queued, yielding to the event loop once so that
requests just received can join, up to `max_rows` rows or `max_wait` seconds of
collecting. It never idles waiting for traffic: under light load a request is scored at
once, so batching only adds latency when it saves model calls. The model runs on the
event loop thread: a thread pool would add a handoff per batch and gains nothing while
the model holds the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Score = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


@dataclass
class _Pending:
    rows: np.ndarray
    done: asyncio.Future[tuple[np.ndarray, np.ndarray | None]] = field(repr=False)


class MicroBatcher:
    def __init__(
        self,
        score: Score,
        max_rows: int = 64,
        max_wait: float = 0.002,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._score = score
        self._max_rows = max_rows
        self._max_wait = max_wait
        self._on_batch = on_batch  # told the rows of every model call (metrics)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def score(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        done: asyncio.Future[tuple[np.ndarray, np.ndarray | None]] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put(_Pending(rows, done))
        return await done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].rows)
            deadline = loop.time() + self._max_wait
            while size < self._max_rows:
                if self._queue.empty():
                    await asyncio.sleep(0)  # let requests already received reach the queue
                    if self._queue.empty() or loop.time() >= deadline:
                        break
                pending = self._queue.get_nowait()
                batch.append(pending)
                size += len(pending.rows)
            self._answer(batch)

    def _answer(self, batch: list[_Pending]) -> None:
        try:
            rows = batch[0].rows if len(batch) == 1 else np.vstack([p.rows for p in batch])
            predicted, proba = self._score(rows)
        except Exception as exc:  # every waiting request learns of it
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(rows))
        start = 0
        for pending in batch:
            end = start + len(pending.rows)
            if not pending.done.done():
                pending.done.set_result((predicted[start:end], None if proba is None else proba[start:end]))
            start = end

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
